"""create_streaming_connection and import_data."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audiences.models import Event, ProfileFragment, StreamingConnection
from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from portal.scope import sandbox_scope


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_streaming_connection_prints_the_inlet_id(acme, globex, acme_dev):
    inlet = run("create_streaming_connection", "Kiosk", "--org", "ACME1234@AdobeOrg",
                "--sandbox", "dev", "--authenticated").strip()
    connection = StreamingConnection.objects.unscoped().get(inlet_id=inlet)
    assert len(inlet) == 64 and connection.sandbox == acme_dev
    assert connection.authentication_required
    with pytest.raises(CommandError, match="--org"):
        run("create_streaming_connection", "Kiosk")


def test_import_data_stores_good_rows_and_reports_bad_ones(acme_prod, tmp_path):
    with sandbox_scope(acme_prod):
        web = dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID})
    lines = [
        {"_id": "e1", "timestamp": "2026-11-20T10:00:00Z", "eventType": "commerce.checkouts",
         "identityMap": {"ECID": [{"id": "1", "primary": True}]}},
        "not json",
        {"_id": "e2", "identityMap": {"ECID": [{"id": "1"}]}},
        {"_id": "e3", "timestamp": "2026-11-20T11:00:00Z",
         "identityMap": {"ECID": [{"id": "2"}]}},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line)
                              for line in lines) + "\n")
    out = run("import_data", web.pk, str(path), "--batch", "2")
    assert "rejected record 1: the line is not valid JSON" in out
    assert "rejected record 2: timestamp" in out
    assert "Imported 2 of 4 records" in out
    with sandbox_scope(acme_prod):
        assert sorted(Event.objects.values_list("event_id", flat=True)) == ["e1", "e3"]


def test_import_data_reads_csv_with_identity_and_typed_columns(acme_prod, tmp_path):
    with sandbox_scope(acme_prod):
        crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
    path = tmp_path / "people.csv"
    path.write_text("identityMap.CRMID,identityMap.Email,homeAddress.postalCode,"
                    "loyalty.points:int\n"
                    "c1,a@x.com,01234,7\n"
                    "c2,,75001,many\n")
    out = run("import_data", crm.pk, str(path))
    assert "rejected record 1: column 'loyalty.points:int': 'many' is not a int" in out
    with sandbox_scope(acme_prod):
        fragment = ProfileFragment.objects.get()
        assert fragment.attributes == {"homeAddress": {"postalCode": "01234"},
                                       "loyalty": {"points": 7}}
        assert fragment.identity_map == {"CRMID": [{"id": "c1", "primary": True}],
                                         "Email": [{"id": "a@x.com"}]}


def test_import_data_refuses_an_unknown_dataset(db, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    with pytest.raises(CommandError, match="No dataset"):
        run("import_data", "nope", str(path))
