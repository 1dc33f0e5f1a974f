"""Audience details, the CSV import and the segment jobs page through the Django client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from audiences.models import Membership, SegmentDefinition, SegmentJob, SegmentJobRun
from audiences.services.memberships import membership_apply
from audiences.services.metrics import metrics_rollup
from tests.factories import default_policy
from tests.portal.audience_data import audience
from tests.services.profile_data import person

pytestmark = pytest.mark.django_db


def csv_file(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("leads.csv", text.encode(), content_type="text/csv")


def test_details_show_summary_eligibility_members_history(bob, acme_prod, in_acme_prod):
    from audiences.services.definitions import definition_create, definition_update

    now = timezone.now()
    base = definition_create(name="Gold", expression='loyalty.tier = "gold"', user=None,
                             now=now - timedelta(days=2))
    target = definition_create(
        name="Checked out lately", description="Three days of checkouts",
        expression='CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts",'
                   ' false)) WHEN(<= 3 days before now)]) and inSegment("' + str(base.pk) + '")',
        requested={"streaming": True}, user=None, now=now - timedelta(days=1))
    definition_update(definition=target, changes={"description": "Edited"}, user=None, now=now)
    profile, _ = person(policy=default_policy(), at=now, email="ann@example.com",
                        attributes={"person": {"name": {"firstName": "Ann", "lastName": "Lee"}}})
    membership_apply(definition=target, results={profile.pk: True}, at=now - timedelta(hours=2),
                     source="batch")
    page = bob.web().get(f"/audiences/{target.pk}/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "Edited" in body and "Ann Lee" in body and "Email: ann@example.com" in body
    assert '<span class="kw">CHAIN</span>' in body  # highlighted PQL
    assert "more than 24 hours" in body  # why it is not streaming
    assert "Gold" in body  # depends on
    assert "profiles-over-time-chart" in body
    assert [h.action for h in page.context["history"]] == ["updated", "created"]
    base_page = bob.web().get(f"/audiences/{base.pk}/").content.decode()
    assert "Checked out lately" in base_page  # used by
    assert "cannot be deleted" in base_page
    assert re.search(r'<button class="btn btn-danger" type="button" disabled title="Checked out '
                     r'lately', base_page)


def test_deleting_from_the_details_page_returns_to_the_list(bob, acme_prod, in_acme_prod):
    target = audience(acme_prod, "Short lived")
    response = bob.web().post(f"/audiences/{target.pk}/action/delete/", {"next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert not SegmentDefinition.objects.filter(pk=target.pk).exists()


def test_chart_range_switch_returns_the_chart_fragment(bob, acme_prod, in_acme_prod):
    target = audience(acme_prod, "Charted")
    now = timezone.now()
    profiles = [person(policy=default_policy(), at=now, attributes={})[0] for _ in range(3)]
    membership_apply(definition=target, results={p.pk: True for p in profiles},
                     at=now - timedelta(hours=3), source="streaming")
    metrics_rollup()
    client = bob.web()
    day = client.get(f"/audiences/{target.pk}/", {"range": "24h"},
                     headers={"HX-Request": "true"})
    body = day.content.decode()
    assert "<html" not in body and 'data-range="24h"' in body
    assert day.context["has_data"]
    month = client.get(f"/audiences/{target.pk}/", {"range": "30d"},
                       headers={"HX-Request": "true"})
    assert 'data-range="30d"' in month.content.decode()


def test_last_evaluation_failure_is_shown_with_its_reason(bob, acme_prod, in_acme_prod):
    target = audience(acme_prod, "Failing")
    now = timezone.now()
    job = SegmentJob.objects.create(status="FAILED", snapshot_at=now, created_at=now,
                                    updated_at=now, progress_done=1, progress_total=1)
    SegmentJobRun.objects.create(job=job, definition=target, definition_name=target.name,
                                 status="failed", started_at=now, finished_at=now,
                                 duration_ms=1234, error_code="timeout",
                                 error_message="The query ran past 30 s.")
    body = bob.web().get(f"/audiences/{target.pk}/").content.decode()
    assert "The query ran past 30 s." in body and "1234 ms" in body


def test_import_csv_creates_a_custom_upload_audience(bob, acme_prod, in_acme_prod):
    now = timezone.now()
    ann, _ = person(policy=default_policy(), at=now, email="ann@example.com", attributes={})
    person(policy=default_policy(), at=now, email="bob@example.com", attributes={})
    client = bob.web()
    preview = client.post("/audiences/import/preview/",
                          {"file": csv_file("email,name\nann@example.com,Ann\n")})
    assert preview.context["preview"].columns == ["email", "name"]
    response = client.post("/audiences/import/", {
        "name": "Trade show", "file": csv_file("email,name\nann@example.com,Ann\n"
                                               "nobody@example.com,No\nann@example.com,Ann\n"),
        "identity_column": "email", "namespace": "Email", "expiration_days": "30"})
    assert response.status_code == 302
    imported = SegmentDefinition.objects.get(name="Trade show")
    assert imported.origin == SegmentDefinition.Origin.CUSTOM_UPLOAD
    assert imported.qualified_count == 1 and imported.expires_at > now + timedelta(days=29)
    member = Membership.objects.get(definition=imported)
    assert member.profile_id == ann.pk and member.source == "upload"


def test_import_names_the_missing_column(bob, acme_prod, in_acme_prod):
    response = bob.web().post("/audiences/import/", {
        "name": "Bad", "file": csv_file("mail\nx@example.com\n"), "identity_column": "email",
        "namespace": "Email"})
    assert response.status_code == 400
    assert "no column &#x27;email&#x27;" in response.content.decode()
    assert not SegmentDefinition.objects.filter(name="Bad").exists()


def test_jobs_page_shows_progress_counts_and_errors(bob, acme_prod, in_acme_prod):
    target = audience(acme_prod, "Nightly")
    now = timezone.now()
    job = SegmentJob.objects.create(status="PROCESSING", snapshot_at=now, created_at=now,
                                    updated_at=now, progress_done=1, progress_total=4,
                                    errors=[{"message": "One audience timed out"}])
    SegmentJobRun.objects.create(job=job, definition=target, definition_name="Nightly",
                                 status="succeeded", qualified=321, realized=20, exited=3)
    page = bob.web().get("/segment-jobs/")
    body = page.content.decode()
    assert 'aria-valuenow="25"' in body and "321" in body
    assert "One audience timed out" in body
    assert 'hx-trigger="every 2s"' in body  # refreshes while running


def test_jobs_page_empty_state_and_run_now_without_batch_service(bob, acme_prod, monkeypatch):
    import sys

    client = bob.web()
    assert "No segment jobs yet" in client.get("/segment-jobs/").content.decode()
    audience(acme_prod, "Batch one")
    monkeypatch.setitem(sys.modules, "audiences.services.batch", None)
    response = client.post("/segment-jobs/run/", follow=True)
    assert "Batch evaluation is not available" in response.content.decode()


def test_jobs_are_per_sandbox(charlie, acme_prod):
    from portal.scope import sandbox_scope

    with sandbox_scope(acme_prod):
        now = timezone.now()
        SegmentJob.objects.create(status="SUCCEEDED", snapshot_at=now, created_at=now,
                                  updated_at=now)
    assert "No segment jobs yet" in charlie.web().get("/segment-jobs/").content.decode()


def test_uploaded_members_leave_when_the_data_expires(bob, acme_prod):
    from audiences.services.uploads import audience_import_csv, uploads_expire_all
    from portal.scope import sandbox_scope

    now = timezone.now()
    with sandbox_scope(acme_prod):
        ann, _ = person(policy=default_policy(), at=now, email="ann@example.com", attributes={})
        result = audience_import_csv(name="Fair leads", data=b"email\nann@example.com\n",
                                     identity_column="email", namespace="Email",
                                     expiration_days=7, user=None, now=now)
        kept = audience_import_csv(name="Forever", data=b"email\nann@example.com\n",
                                   identity_column="email", namespace="Email", user=None,
                                   now=now)
    assert uploads_expire_all(now=now + timedelta(days=6)) == 0
    assert uploads_expire_all(now=now + timedelta(days=7, minutes=1)) == 1
    with sandbox_scope(acme_prod):
        result.definition.refresh_from_db()
        kept.definition.refresh_from_db()
        assert result.definition.qualified_count == 0
        assert Membership.objects.get(definition=result.definition).status == "exited"
        assert kept.definition.qualified_count == 1
    assert uploads_expire_all(now=now + timedelta(days=8)) == 0  # nothing left to expire
