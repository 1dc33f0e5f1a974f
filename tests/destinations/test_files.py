"""File exports: exactly the right members, full and incremental, CSV and JSON Lines."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audiences.models import Destination, FileExportRun, SegmentJob
from audiences.services.definitions import definition_delete
from audiences.services.destinations import (
    activation_blockers,
    activation_set,
    definitions_with_destination,
    destination_create,
    destination_test,
    destination_update,
    destinations_for_definition,
    destinations_job_finished,
    file_export_run,
    file_exports_due,
)
from audiences.services.memberships import membership_apply
from portal.errors import SiftError
from tests.factories import make_definition, make_profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.SIFT_EXPORT_DIR = tmp_path
    return tmp_path


def people(n):
    return [make_profile(email=f"m{i}@example.com", attributes={"loyalty": {"tier": f"T{i}"}})
            for i in range(n)]


def file_destination(*, file_format="csv", mode="full", name="Files"):
    return destination_create(name=name, kind="file", folder="crm/daily",
                              file_format=file_format, mode=mode, schedule="on_demand",
                              user=None, now=timezone.now())


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def data_file(run: FileExportRun, export_dir: Path) -> Path:
    [entry] = run.manifest["files"]
    return export_dir / "crm" / "daily" / entry["file"]


def test_full_then_incremental_csv_contain_exactly_the_right_members(in_acme_prod, export_dir):
    definition = make_definition(name="Gold members")
    a, b, c, d = people(4)
    destination = file_destination()
    activation_set(destination=destination, definition=definition, namespace="Email",
                   attributes=["loyalty.tier"], user=None, now=timezone.now())
    t0 = timezone.now()
    membership_apply(definition=definition, results={a.pk: True, b.pk: True, c.pk: True,
                                                     d.pk: False}, at=t0, source="batch")
    full = file_export_run(destination=destination, trigger="on_demand", now=t0)
    assert full.status == "succeeded" and full.mode == "full" and full.rows == 3
    rows = read_csv(data_file(full, export_dir))
    assert sorted((r["Email"], r["status"], r["loyalty.tier"]) for r in rows) == [
        ("m0@example.com", "realized", "T0"), ("m1@example.com", "realized", "T1"),
        ("m2@example.com", "realized", "T2")]

    destination_update(destination=destination, changes={"mode": "incremental"},
                       now=timezone.now())
    t1 = t0 + timedelta(minutes=5)
    membership_apply(definition=definition, results={a.pk: False, d.pk: True}, at=t1,
                     source="streaming")
    membership_apply(definition=definition, results={b.pk: True}, at=t1, source="streaming")
    incremental = file_export_run(destination=destination, trigger="on_demand", now=t1)
    assert incremental.mode == "incremental"
    assert incremental.first_change_id == full.last_change_id
    rows = read_csv(data_file(incremental, export_dir))
    assert sorted((r["Email"], r["status"]) for r in rows) == [
        ("m0@example.com", "exited"), ("m3@example.com", "realized")]

    nothing_new = file_export_run(destination=destination, trigger="on_demand",
                                  now=t1 + timedelta(minutes=1))
    assert read_csv(data_file(nothing_new, export_dir)) == [] and nothing_new.rows == 0


def test_a_jsonl_export_writes_a_manifest_that_describes_its_files(in_acme_prod, export_dir):
    gold, silver = make_definition(name="Gold"), make_definition(name="Silver")
    a, b = people(2)
    destination = file_destination(file_format="jsonl")
    for definition in (gold, silver):
        activation_set(destination=destination, definition=definition, namespace="email",
                       attributes=["loyalty.tier", "missing.path"], user=None,
                       now=timezone.now())
    now = timezone.now()
    membership_apply(definition=gold, results={a.pk: True, b.pk: True}, at=now, source="batch")
    membership_apply(definition=silver, results={b.pk: True}, at=now, source="batch")
    run = file_export_run(destination=destination, trigger="on_demand", now=now)
    manifest_path = export_dir / "crm" / "daily" / run.manifest["manifest"]
    manifest = json.loads(manifest_path.read_text())
    assert manifest["mode"] == "full" and manifest["lastChangeId"] == run.last_change_id
    by_audience = {f["audienceName"]: f for f in manifest["files"]}
    assert {name: f["rows"] for name, f in by_audience.items()} == {"Gold": 2, "Silver": 1}
    path = export_dir / "crm" / "daily" / by_audience["Silver"]["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == by_audience["Silver"]["sha256"]
    [line] = [json.loads(x) for x in path.read_text().splitlines()]
    assert line["identities"] == ["m1@example.com"] and line["status"] == "realized"
    assert line["attributes"] == {"loyalty.tier": "T1", "missing.path": None}
    assert not list((export_dir / "crm" / "daily").glob(".*.part"))


def test_an_unwritable_folder_fails_the_run_and_keeps_the_cursor(in_acme_prod, export_dir):
    destination = file_destination()
    (export_dir / "crm").write_text("a file where the folder should be")
    run = file_export_run(destination=destination, trigger="on_demand", now=timezone.now())
    assert run.status == "failed" and run.error
    assert not destination_test(destination=destination, now=timezone.now()).ok


def test_hourly_exports_are_claimed_once_per_period(in_acme_prod, export_dir, settings):
    settings.SIFT_INPROCESS_BACKGROUND = False
    destination = file_destination()
    destination_update(destination=destination, changes={"schedule": "hourly"},
                       now=timezone.now())
    now = timezone.now()
    assert file_exports_due(now=now) == 1
    assert file_exports_due(now=now + timedelta(minutes=30)) == 0
    assert file_exports_due(now=now + timedelta(minutes=61)) == 1


def test_a_run_whose_worker_died_is_failed_by_the_sweep(in_acme_prod, export_dir):
    destination = file_destination()
    now = timezone.now()
    lost = FileExportRun.objects.create(destination=destination, mode="full", trigger="daily",
                                        started_at=now - timedelta(hours=2))
    recent = FileExportRun.objects.create(destination=destination, mode="full",
                                          trigger="daily", started_at=now)
    file_exports_due(now=now)
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert (lost.status, recent.status) == ("failed", "running") and "lost" in lost.error


def test_a_finished_batch_job_runs_the_after_job_exports(in_acme_prod, export_dir,
                                                         django_capture_on_commit_callbacks):
    definition = make_definition(name="Nightly")
    a, b = people(2)
    destination = destination_create(name="After jobs", kind="file", folder="jobs",
                                     schedule="after_job", user=None, now=timezone.now())
    activation_set(destination=destination, definition=definition, namespace="Email",
                   user=None, now=timezone.now())
    now = timezone.now()
    job = SegmentJob.objects.create(snapshot_at=now, created_at=now, updated_at=now)
    membership_apply(definition=definition, results={a.pk: True, b.pk: True}, at=now,
                     source="batch", job_id=job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        destinations_job_finished(job_id=job.pk)
    [run] = FileExportRun.objects.filter(destination=destination)
    assert (run.status, run.trigger, run.rows) == ("succeeded", "after_job", 2)
    assert (export_dir / "jobs" / run.manifest["manifest"]).exists()


def test_folders_outside_the_export_directory_are_refused(in_acme_prod, export_dir):
    for folder in ("../etc", "/etc", "a/../../b", ".hidden"):
        with pytest.raises(SiftError) as error:
            destination_create(name=f"Bad {folder}", kind="file", folder=folder, user=None,
                               now=timezone.now())
        assert error.value.code == "invalid" and error.value.details["field"] == "folder"


def test_an_activated_audience_cannot_be_deleted_until_deactivated(in_acme_prod, export_dir):
    definition, other = make_definition(name="Activated"), make_definition(name="Plain")
    destination = file_destination(name="Warehouse")
    activation = activation_set(destination=destination, definition=definition,
                                namespace="Email", user=None, now=timezone.now())
    assert "Warehouse" in activation_blockers(definition)[0]
    assert [a.destination for a in destinations_for_definition(definition)] == [destination]
    queryset = type(definition).objects.all()
    assert list(definitions_with_destination(queryset, True)) == [definition]
    assert list(definitions_with_destination(queryset, False)) == [other]
    with pytest.raises(SiftError) as error:
        definition_delete(definition=definition, user=None, now=timezone.now())
    assert error.value.code == "has_activations" and "Warehouse" in error.value.message
    activation.delete()
    definition_delete(definition=definition, user=None, now=timezone.now())
    assert Destination.objects.filter(pk=destination.pk).exists()
