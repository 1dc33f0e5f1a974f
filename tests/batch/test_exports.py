"""Exports: the file's content, the API, and memory that stays flat with the audience size."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest
from django.utils import timezone

from audiences.models import Membership, Profile
from audiences.services.exports import export_create, export_run
from tests.factories import default_policy, make_definition

pytestmark = pytest.mark.django_db

EXPORTS = "/data/core/ups/export/jobs"


def members(definition, count: int, *, start: int = 0) -> None:
    """`count` profiles and their memberships, generated inside the database (fast)."""
    from django.db import connection

    from audiences.benchmarks.batch import _series, _table

    pg = connection.vendor == "postgresql"
    obj = "jsonb_build_object" if pg else "json_object"
    array = "jsonb_build_array" if pg else "json_array"
    with_, source = _series(count)
    policy = default_policy()
    now = timezone.now()
    ids = (str(policy.pk), str(definition.pk)) if pg else (policy.pk.hex, definition.pk.hex)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(Profile)} (sandbox_id, merge_policy_id, entity_id, attributes,"
            f" identity_map, primary_namespace, primary_id, identity_count, excluded, "
            f"updated_at) {with_}SELECT %s, %s, 10000000 + n + %s, {obj}('person', "
            f"{obj}('name', 'P' || (n + %s)), 'loyalty', {obj}('points', n + %s)), "
            f"{obj}('Email', {array}({obj}('id', 'p' || (n + %s) || '@x.io'))), 'Email', "
            f"'p' || (n + %s) || '@x.io', 1, %s, %s FROM {source}",
            [definition.sandbox_id, ids[0], start, start, start, start, start, False, now])
        cursor.execute(
            f"INSERT INTO {_table(Membership)} (sandbox_id, definition_id, profile_id, status, "
            f"last_qualification_time, source, version, updated_at) SELECT sandbox_id, %s, id, "
            f"'realized', %s, 'batch', 1, %s FROM {_table(Profile)} WHERE entity_id >= %s",
            [ids[1], now, now, 10_000_000 + start])


def peak_bytes_of_export(definition, settings, tmp_path) -> tuple[int, int]:
    settings.SIFT_EXPORT_DIR = tmp_path
    export = export_create(segment_id=str(definition.pk), fields=["person.name"], user=None,
                           now=timezone.now(), enqueue=False)
    tracemalloc.start()
    try:
        done = export_run(export_id=export.pk, now=timezone.now())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, done.metrics["totalExportedProfileCounter"]


def test_exporting_100k_members_stays_under_a_fixed_memory_bound(in_acme_prod, settings,
                                                                   tmp_path):
    audience = make_definition(name="Everyone")
    members(audience, 10_000)
    small_peak, small = peak_bytes_of_export(audience, settings, tmp_path)
    members(audience, 90_000, start=10_000)
    big_peak, big = peak_bytes_of_export(audience, settings, tmp_path)
    assert (small, big) == (10_000, 100_000)
    # Ten times the members, (about) the same memory: bounded by the chunk, not the audience.
    assert big_peak < 16 * 1024 * 1024
    assert big_peak < 2 * small_peak


def test_csv_and_jsonl_files_hold_identities_and_chosen_attributes(in_acme_prod, settings,
                                                                   tmp_path):
    settings.SIFT_EXPORT_DIR = tmp_path
    audience = make_definition(name="Some")
    members(audience, 3)
    export = export_create(segment_id=str(audience.pk), fields=["person.name", "loyalty.points"],
                           user=None, now=timezone.now(), enqueue=False)
    done = export_run(export_id=export.pk, now=timezone.now())
    rows = list(csv.reader(io.StringIO(open(done.file_path).read())))
    assert rows[0] == ["namespace", "id", "status", "lastQualificationTime", "person.name",
                       "loyalty.points"]
    assert [r[1] for r in rows[1:]] == ["p0@x.io", "p1@x.io", "p2@x.io"]
    assert [r[4:] for r in rows[1:]] == [["P0", "0"], ["P1", "1"], ["P2", "2"]]
    export = export_create(segment_id=str(audience.pk), file_format="jsonl",
                           fields=["loyalty.points"], user=None, now=timezone.now(),
                           enqueue=False)
    done = export_run(export_id=export.pk, now=timezone.now())
    lines = [json.loads(line) for line in open(done.file_path)]
    assert lines[2]["identityMap"] == {"Email": [{"id": "p2@x.io"}]}
    assert lines[2]["attributes"] == {"loyalty.points": 2}


def test_the_export_api_creates_reads_lists_and_streams_the_file(
        alice, charlie, acme_prod, settings, tmp_path, django_capture_on_commit_callbacks):
    from portal.scope import sandbox_scope

    settings.SIFT_EXPORT_DIR = tmp_path
    with sandbox_scope(acme_prod):
        audience = make_definition(name="Exported")
        members(audience, 5)
    body = {"fields": "person.name", "format": "csv",
            "filter": {"segments": [{"segmentId": str(audience.pk)}]}}
    with django_capture_on_commit_callbacks(execute=True):
        created = alice.api().post(EXPORTS, body)
    assert created.status_code == 200, created.json()
    export_id = created.json()["id"]
    detail = alice.api().get(f"{EXPORTS}/{export_id}").json()
    assert detail["status"] == "SUCCEEDED"
    assert detail["metrics"]["totalExportedProfileCounter"] == 5
    listing = alice.api().get(EXPORTS).json()
    assert [r["id"] for r in listing["records"]] == [export_id]
    download = alice.api().get(f"{EXPORTS}/{export_id}/file")
    assert download.status_code == 200 and download.streaming
    text = b"".join(download.streaming_content).decode()
    assert text.splitlines()[0].endswith("person.name") and len(text.splitlines()) == 6
    assert charlie.api().get(f"{EXPORTS}/{export_id}").status_code == 404
    bad = alice.api().post(EXPORTS, {"filter": {"segments": []}})
    assert bad.status_code == 400 and bad.json()["report"]["field"] == "filter.segments"
