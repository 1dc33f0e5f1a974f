"""A segment job through a real Redis broker and a real `celery worker` process."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audiences.models import Membership, SegmentJob, SegmentJobRun
from audiences.services import batch
from portal.scope import sandbox_scope
from tests.factories import default_policy
from tests.fixtures.services import wait_for
from tests.services import profile_data

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_job_runs_its_definitions_as_tasks_on_a_worker(acme_prod, celery_worker_process):
    from audiences.services.definitions import definition_create

    now = timezone.now()
    with sandbox_scope(acme_prod):
        policy = default_policy()
        for country in ("US", "CA", "US"):
            profile_data.person(policy=policy, attributes={"homeAddress": {"countryISO": country}},
                                at=now)
        base = definition_create(name="US", expression='homeAddress.countryISO = "US"',
                                 user=None, now=now)
        definition_create(name="CA", expression='homeAddress.countryISO = "CA"', user=None,
                          now=now)
        derived = definition_create(name="Not US", expression=f'not inSegment("{base.pk}")',
                                    user=None, now=now)
        job = batch.segment_job_create(segment_ids="*", source="api", now=now)

    def finished():
        return SegmentJob.objects.unscoped().get(pk=job.pk).status in SegmentJob.FINISHED

    wait_for(finished, timeout=60, message="the worker did not finish the job")
    with sandbox_scope(acme_prod):
        job.refresh_from_db()
        assert job.status == "SUCCEEDED", job.errors
        assert SegmentJobRun.objects.filter(job=job, status="succeeded").count() == 3
        assert Membership.objects.filter(definition=derived).count() == 1
        assert job.metrics["segmentedProfileCounter"][str(base.pk)] == 2
