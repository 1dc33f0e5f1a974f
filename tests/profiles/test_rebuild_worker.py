"""A merge-policy rebuild runs on a real Celery worker through Redis, with progress."""

from __future__ import annotations

import time

import pytest

from audiences.models import MergePolicy, Profile
from audiences.services.datasets import PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from audiences.services.merge_policies import merge_policy_create
from portal.scope import sandbox_scope
from tests.profiles.conftest import NOW, person

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_new_policy_is_rebuilt_by_a_worker(acme_prod, celery_worker_process):
    with sandbox_scope(acme_prod):
        crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
        ingest_records(dataset=crm, records=[
            person({"CRMID": f"c{n}", "Email": f"{n}@x.com"}, loyalty={"points": n})
            for n in range(30)], now=NOW, source="import")
        policy = merge_policy_create(name="Per identity", identity_graph="none", now=NOW)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            policy.refresh_from_db()
            if policy.rebuild_state != MergePolicy.RebuildState.REBUILDING:
                break
            time.sleep(0.3)
        assert policy.rebuild_state == MergePolicy.RebuildState.READY
        assert policy.rebuild_progress["done"] == policy.rebuild_progress["total"] == 60
        assert Profile.objects.filter(merge_policy=policy).count() == 30
