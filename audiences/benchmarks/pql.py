"""Evaluations per second of the compiled Python evaluator, per core (CPU time, so other load
on the machine does not distort it).

A fixed suite — profile-only, single event, a chain of three steps, a count aggregation,
inSegment — over generated profiles with 50 events each. Run:

    python manage.py benchmark pql [--profiles 2000] [--seconds 2]
    python -m audiences.benchmarks.pql            (without Django)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from audiences.pql import parse

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
EVENT_TYPES = ["web.webpagedetails.pageViews", "commerce.productViews",
               "commerce.productListAdds", "commerce.checkouts",
               "directMarketing.emailOpened", "directMarketing.emailClicked"]
SUITE = [
    ("profile-only", 'homeAddress.stateProvince = "CA" and person.age >= 30'),
    ("single event", 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts",'
                     ' false)) WHEN(<= 24 hours before now)])'),
    ("chain of three steps", 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = '
                             '"commerce.productViews") WHEN(<= 24 hours before now), C1: WHAT('
                             'eventType = "commerce.productListAdds"), C2: WHAT(eventType = '
                             '"commerce.checkouts")])'),
    ("count aggregation", 'xEvent[eventType = "commerce.productViews" and timestamp occurs '
                          '<= 7 days before now].count() >= 3'),
    ("inSegment", 'inSegment("vip") and homeAddress.countryISO = "US"'),
]


def add_arguments(parser) -> None:
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--events-per-profile", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="minimum measuring time per query")


def generate(count: int, per_profile: int, seed: int = 7):
    rng = random.Random(seed)
    data = []
    for n in range(count):
        profile = {"homeAddress": {"stateProvince": rng.choice(["CA", "NY", "TX"]),
                                   "countryISO": rng.choice(["US", "US", "CA"])},
                   "person": {"age": rng.randint(18, 80), "name": {"firstName": f"P{n}"}}}
        events = []
        for _ in range(per_profile):
            at = NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
            events.append({"_id": f"{n}-{len(events)}", "eventType": rng.choice(EVENT_TYPES),
                           "timestamp": at.isoformat().replace("+00:00", "Z")})
        events.sort(key=lambda e: e["timestamp"])
        segments = frozenset({"vip"}) if rng.random() < 0.3 else frozenset()
        data.append((profile, events, segments))
    return data


def run(options, stdout) -> None:
    data = generate(options["profiles"], options["events_per_profile"])
    stdout.write(f"PQL evaluator, one core: {len(data)} profiles x "
                 f"{options['events_per_profile']} events\n")
    stdout.write(f"{'query':<24}{'evaluations/s':>16}{'matched':>10}\n")
    for name, text in SUITE:
        query = parse(text)
        # Events are generated oldest first and said to be, as Sift's store loads them.
        matched = sum(query.evaluate(p, e, now=NOW, segments=s, events_in_order=True)
                      for p, e, s in data)  # warm up
        done, started = 0, time.process_time()
        while True:
            for profile, events, segments in data:
                query.evaluate(profile, events, now=NOW, segments=segments,
                               events_in_order=True)
            done += len(data)
            elapsed = time.process_time() - started
            if elapsed >= options["seconds"]:
                break
        stdout.write(f"{name:<24}{done / elapsed:>16,.0f}{matched:>10}\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    run(vars(parser.parse_args()), sys.stdout)
