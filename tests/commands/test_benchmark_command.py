"""Every published benchmark still runs: each at a tiny size, checked for the figures it
reports (not for speed: benchmarks measure, tests do not time)."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from portal.models import Sandbox


def run(*args) -> str:
    out = StringIO()
    call_command("benchmark", *args, stdout=out)
    return out.getvalue()


def test_pql_reports_a_rate_for_every_query_of_the_suite():
    out = run("pql", "--profiles", "30", "--events-per-profile", "5", "--seconds", "0.01")
    for name in ("profile-only", "single event", "chain of three steps", "count aggregation",
                 "inSegment"):
        assert re.search(rf"{name}\s+[\d,]+\s+\d+", out), out


@pytest.mark.django_db(transaction=True)
def test_ingest_stores_every_record_and_cleans_up_after_itself():
    out = run("ingest", "--profiles", "12", "--events", "30", "--batch", "10")
    assert re.search(r"profile records:\s+12 in", out), out
    assert re.search(r"events, new visitors:\s+30 in", out), out
    assert re.search(r"events, known visitors:\s+30 in", out), out
    if connection.vendor == "postgresql":  # concurrent clients need a server database
        assert re.search(r"known visitors, 2 clients:\s+30 in", out), out
    assert not Sandbox.objects.filter(name__startswith="ingest-").exists()


@pytest.mark.django_db(transaction=True)
def test_edge_reports_latency_percentiles():
    out = run("edge", "--profiles", "10", "--requests", "10", "--definitions", "4")
    assert re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms", out), out


@pytest.mark.django_db(transaction=True)
def test_portal_reports_the_audiences_page_times():
    out = run("portal", "--audiences", "20", "--repeat", "1")
    assert "ms" in out and "20" in out, out


def test_an_unknown_benchmark_is_refused_with_the_list():
    with pytest.raises(CommandError, match="invalid choice"):
        run("nonsense")
