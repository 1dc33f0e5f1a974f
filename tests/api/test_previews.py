"""`/preview` and `/estimate`: asynchronous samples and size estimates from current profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import MergePolicy, Preview
from portal.scope import sandbox_scope
from tests.fixtures.services import wait_for
from tests.services.profile_data import person

PREVIEW = "/data/core/ups/preview"
ESTIMATE = "/data/core/ups/estimate"
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


@pytest.fixture
def people(acme_prod):
    """Six profiles under the default (pdg) policy, two of them in the US."""
    with sandbox_scope(acme_prod):
        policy = MergePolicy.objects.get(is_default=True)
        for n, country in enumerate(["US", "CA", "US", "FR", "DE", "CA"]):
            person(policy=policy, attributes={"homeAddress": {"country": country}}, at=NOW,
                   email=f"p{n}@example.com")
    return policy


def _start(api, expression='homeAddress.country = "US"', **extra):
    return api.post(PREVIEW, {"predicateExpression": expression, "predicateType": "pql/text",
                              "predicateModel": "_xdm.context.profile", **extra})


def test_a_preview_runs_and_returns_the_matching_profiles(alice, people,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(alice.api(), graphType="pdg")
    assert response.status_code == 201
    created = response.json()
    assert created["state"] == "NEW"
    assert response["X-Location"] == f"{PREVIEW}/{created['previewId']}"
    preview = alice.api().get(f"{PREVIEW}/{created['previewId']}").json()
    assert preview["state"] == "RESULT_READY"
    keys = sorted(next(iter(r)) for r in preview["results"])
    assert keys == ["p0@example.com", "p2@example.com"]
    first = preview["results"][0][keys[0]]
    assert first["namespace"] == "Email"
    assert first["_href"].startswith("/data/core/ups/access/entities?")
    assert preview["page"] == {"offset": 0, "size": 2}

    estimate = alice.api().get(f"{ESTIMATE}/{created['previewId']}").json()
    assert estimate["state"] == "RESULT_READY"
    assert estimate["estimatedSize"] == 2
    assert estimate["confidenceInterval"] == "95%"
    assert estimate["profilesReadSoFar"] == 6 and estimate["totalRows"] == 6
    assert estimate["sift:bounds"] == {"lower": 2, "upper": 2, "method": "exact",
                                       "sampled": False}
    assert estimate["estimatedNamespaceDistribution"] == [
        {"namespaceId": "Email", "profilesMatchedSoFar": 2}]
    assert estimate["_links"]["preview"] == f"{PREVIEW}/{created['previewId']}"


def test_preview_results_page_with_offset_and_limit(alice, people,
                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = _start(alice.api(), 'homeAddress.country = "CA" or homeAddress.country = '
                                      '"US"').json()
    page = alice.api().get(f"{PREVIEW}/{created['previewId']}", {"offset": 1, "limit": 2}).json()
    assert page["page"] == {"offset": 1, "size": 2}
    assert "next" in page["links"] and "prev" in page["links"]


def test_a_large_sandbox_is_estimated_from_a_sample_with_a_95_interval(
        alice, acme_prod, settings, django_capture_on_commit_callbacks):
    settings.SIFT_ESTIMATE_FULL_DATA_MAX = 100
    settings.SIFT_ESTIMATE_SAMPLE_SIZE = 150
    with sandbox_scope(acme_prod):
        policy = MergePolicy.objects.get(is_default=True)
        for n in range(600):
            person(policy=policy, attributes={"tier": "gold" if n % 3 == 0 else "basic"}, at=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        created = _start(alice.api(), 'tier = "gold"').json()
    estimate = alice.api().get(f"{ESTIMATE}/{created['previewId']}").json()
    assert estimate["state"] == "RESULT_READY"
    assert estimate["totalRows"] == 600
    assert 90 <= estimate["profilesReadSoFar"] <= 220  # ~150 drawn by the pseudo-random filter
    bounds = estimate["sift:bounds"]
    assert bounds["sampled"] is True and bounds["method"] == "wilson-fpc"
    assert bounds["lower"] < estimate["estimatedSize"] < bounds["upper"]
    assert bounds["lower"] >= estimate["profilesMatchedSoFar"]
    assert 120 <= estimate["estimatedSize"] <= 280  # the truth is 200
    assert estimate["standardError"] > 0


def test_bad_pql_in_a_preview_is_a_400(alice):
    response = _start(alice.api(), "homeAddress.country = ")
    assert response.status_code == 400
    assert response.json()["error_code"] == "pql_syntax_error"


def test_a_graph_type_without_a_policy_is_refused(alice):
    response = _start(alice.api(), graphType="none")
    assert response.status_code == 400
    assert response.json()["error_code"] == "unknown_merge_policy"


def test_previews_of_another_organization_are_not_found(alice, charlie, people):
    created = _start(alice.api()).json()
    assert charlie.api().get(f"{PREVIEW}/{created['previewId']}").status_code == 404
    assert charlie.api().get(f"{ESTIMATE}/{created['previewId']}").status_code == 404
    assert charlie.api().delete(f"{PREVIEW}/{created['previewId']}").status_code == 404


def test_deleting_a_preview_kills_it(alice, people):
    created = _start(alice.api()).json()
    response = alice.api().delete(f"{PREVIEW}/{created['previewId']}")
    assert response.json() == {"status": True, "message": "KILLED"}
    assert alice.api().get(f"{PREVIEW}/{created['previewId']}").status_code == 404


def test_a_preview_no_worker_ran_is_reported_failed_once_stale(alice, people, acme_prod):
    created = _start(alice.api()).json()  # not committed: no task ran
    with sandbox_scope(acme_prod):
        Preview.objects.filter(pk=created["previewId"]).update(
            updated_at=datetime.now(UTC) - timedelta(hours=1))
    estimate = alice.api().get(f"{ESTIMATE}/{created['previewId']}").json()
    assert estimate["state"] == "FAILED"
    assert "no worker" in estimate["error"]["description"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_preview(alice, people, celery_worker_process):
    created = _start(alice.api()).json()
    api = alice.api()

    def ready():
        body = api.get(f"{ESTIMATE}/{created['previewId']}").json()
        return body if body["state"] in ("RESULT_READY", "FAILED") else None

    estimate = wait_for(ready, timeout=30, message="the worker did not finish the preview")
    assert estimate["state"] == "RESULT_READY", estimate
    assert estimate["estimatedSize"] == 2
