import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def run(*args) -> str:
    out = StringIO()
    call_command("pql", *args, stdout=out)
    return out.getvalue()


def test_check_prints_canonical_form_references_and_eligibility():
    body = json.loads(run("check", 'homeAddress.countryISO="US" AND person.age > 30'))
    assert body["canonical"] == 'homeAddress.countryISO = "US" and person.age > 30'
    assert body["references"]["profilePaths"] == ["homeAddress.countryISO", "person.age"]
    assert body["eligibility"]["streaming"] is True


def test_check_reports_errors_with_location():
    out = StringIO()
    with pytest.raises(CommandError, match="line 1, column 5"):
        call_command("pql", "check", "a = ", stdout=out)
    assert json.loads(out.getvalue())["error"]["column"] == 5


def test_eval_prints_the_matching_profiles(tmp_path):
    profiles = tmp_path / "p.jsonl"
    events = tmp_path / "e.jsonl"
    profiles.write_text("\n".join(json.dumps(p) for p in [
        {"id": "ann", "identityMap": {"Email": [{"id": "ann@x.com"}]}},
        {"id": "ben", "identityMap": {"Email": [{"id": "ben@x.com"}]}},
    ]))
    events.write_text("\n".join(json.dumps(e) for e in [
        {"eventType": "commerce.checkouts", "timestamp": "2026-11-18T10:00:00Z",
         "identityMap": {"email": [{"id": "ann@x.com"}]}},
        {"eventType": "commerce.checkouts", "timestamp": "2026-11-10T10:00:00Z",
         "profileId": "ben"},
    ]))
    out = run("eval", 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts") '
                      "WHEN(<= 24 hours before now)])", "--profiles", str(profiles),
              "--events", str(events), "--now", "2026-11-18T12:00:00Z")
    assert out.split() == ["ann"]
