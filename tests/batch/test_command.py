"""`manage.py run_segment_job`: runs a job in-process and prints one line per definition."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from audiences.models import Membership, SegmentJob
from portal.scope import sandbox_scope
from tests.factories import default_policy
from tests.services import profile_data

pytestmark = pytest.mark.django_db


def test_it_runs_the_named_segments_at_the_given_instant(acme, acme_prod):
    from datetime import UTC, datetime

    from audiences.services.definitions import definition_create

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with sandbox_scope(acme_prod):
        profile_data.person(policy=default_policy(), at=at,
                            attributes={"homeAddress": {"countryISO": "US"}})
        audience = definition_create(name="US", expression='homeAddress.countryISO = "US"',
                                     user=None, now=at)
    out, err = io.StringIO(), io.StringIO()
    call_command("run_segment_job", "--segments", str(audience.pk), "--now",
                 "2026-01-02T03:04:05Z", "--org", acme.ims_org_id, stdout=out, stderr=err)
    assert "succeeded" in out.getvalue() and "SUCCEEDED" in out.getvalue()
    with sandbox_scope(acme_prod):
        job = SegmentJob.objects.get()
        assert job.snapshot_at == at
        assert Membership.objects.get().last_qualification_time == at


def test_it_refuses_unknown_segments_and_bad_instants(acme):
    with pytest.raises(CommandError, match="Unknown segment"):
        call_command("run_segment_job", "--segments", "nope", "--org", acme.ims_org_id,
                     stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="ISO-8601"):
        call_command("run_segment_job", "--now", "yesterday", "--org", acme.ims_org_id,
                     stdout=io.StringIO(), stderr=io.StringIO())
