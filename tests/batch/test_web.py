"""The portal's batch pages: one job's per-definition history, and export downloads."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from audiences.services import batch
from portal.scope import sandbox_scope

pytestmark = pytest.mark.django_db


def test_a_job_page_shows_each_definitions_history(bob, acme_prod):
    from audiences.services.definitions import definition_create

    with sandbox_scope(acme_prod):
        definition_create(name="US", expression='homeAddress.countryISO = "US"', user=None,
                          now=timezone.now())
        job = batch.segment_job_create(segment_ids="*", source="portal", now=timezone.now(),
                                       enqueue=False)
        batch.segment_job_run(job_id=job.pk, now=timezone.now(), inline=True)
    page = bob.web().get(reverse("audiences:segment_job", args=[job.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "SUCCEEDED" in text and "US" in text and "succeeded" in text and ">sql<" in text


def test_other_orgs_see_no_job_and_no_export(charlie, acme_prod, settings, tmp_path):
    from audiences.services.exports import export_create, export_run
    from tests.factories import make_definition

    settings.SIFT_EXPORT_DIR = tmp_path
    with sandbox_scope(acme_prod):
        job = batch.segment_job_create(segment_ids="*", source="api", now=timezone.now(),
                                       enqueue=False)
        export = export_create(segment_id=str(make_definition(name="E").pk), user=None,
                               now=timezone.now(), enqueue=False)
        export_run(export_id=export.pk, now=timezone.now())
    assert charlie.web().get(reverse("audiences:segment_job", args=[job.pk])).status_code == 404
    url = reverse("audiences:export_download", args=[export.pk])
    assert charlie.web().get(url).status_code == 404


def test_a_member_downloads_a_finished_export(victor, acme_prod, settings, tmp_path):
    from audiences.services.exports import export_create, export_run
    from tests.factories import make_definition

    settings.SIFT_EXPORT_DIR = tmp_path
    with sandbox_scope(acme_prod):
        export = export_create(segment_id=str(make_definition(name="E").pk), user=None,
                               now=timezone.now(), enqueue=False)
        export_run(export_id=export.pk, now=timezone.now())
    response = victor.web().get(reverse("audiences:export_download", args=[export.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"namespace,id,status")
