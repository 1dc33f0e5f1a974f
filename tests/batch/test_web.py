"""The portal's segment-job pages: list, start (writers only), per-definition history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audiences.models import SegmentJob
from portal.scope import sandbox_scope

pytestmark = pytest.mark.django_db


def test_a_marketer_starts_a_job_and_reads_its_history(bob, acme_prod,
                                                       django_capture_on_commit_callbacks):
    from django.utils import timezone

    from audiences.services.definitions import definition_create

    with sandbox_scope(acme_prod):
        definition_create(name="US", expression='homeAddress.countryISO = "US"', user=None,
                          now=timezone.now())
    web = bob.web()
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(reverse("audiences:job_start"))
    assert response.status_code == 302
    detail = web.get(response["Location"])
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "SUCCEEDED" in page and "US" in page and "sql" in page
    listing = web.get(reverse("audiences:jobs")).content.decode()
    assert "Evaluate all batch audiences now" in listing and "SUCCEEDED" in listing


def test_viewers_cannot_start_jobs_and_other_orgs_see_nothing(victor, charlie, acme_prod):
    from django.utils import timezone

    from audiences.services import batch

    assert victor.web().post(reverse("audiences:job_start")).status_code == 403
    with sandbox_scope(acme_prod):
        job = batch.segment_job_create(segment_ids="*", source="api", now=timezone.now(),
                                       enqueue=False)
    assert charlie.web().get(reverse("audiences:job", args=[job.pk])).status_code == 404
    assert str(job.pk)[:8] not in charlie.web().get(reverse("audiences:jobs")).content.decode()
    with sandbox_scope(acme_prod):
        assert SegmentJob.objects.count() == 1
