"""The estimate's interval: exact on full data, honest 95 % coverage on samples."""

from __future__ import annotations

import random

from audiences.services.previews import estimate_interval


def test_full_data_gives_an_exact_count():
    assert estimate_interval(matched=42, scanned=1000, total=1000) == {
        "estimate": 42.0, "standardError": 0.0, "lower": 42.0, "upper": 42.0}


def test_the_interval_stays_within_what_the_sample_proves():
    bounds = estimate_interval(matched=0, scanned=100, total=10_000)
    assert bounds["lower"] == 0 and bounds["upper"] > 0
    bounds = estimate_interval(matched=100, scanned=100, total=10_000)
    assert bounds["upper"] == 10_000 and bounds["lower"] < 10_000


def test_the_95_interval_covers_the_truth_about_95_times_in_100():
    """Draw 1000 simple random samples of 200 out of 5000 (1200 match): ~95 % coverage."""
    rng = random.Random(20261102)
    population = [True] * 1200 + [False] * 3800
    covered = 0
    for _ in range(1000):
        sample = rng.sample(population, 200)
        b = estimate_interval(matched=sum(sample), scanned=200, total=5000)
        covered += b["lower"] <= 1200 <= b["upper"]
    assert 930 <= covered <= 975
