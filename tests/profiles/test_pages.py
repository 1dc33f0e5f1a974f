"""Portal pages of the profile store: datasets, profile look-up, the merge-policy wizard."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audiences.models import Dataset, MergePolicy, StreamingConnection
from audiences.services.ingest import ingest_records
from portal.scope import sandbox_scope
from tests.profiles.conftest import NOW, event, person


@pytest.fixture
def data(acme_prod):
    from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create

    with sandbox_scope(acme_prod):
        crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
        web = dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID})
        ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "a@x.com"},
                                                    homeAddress={"city": "Paris"})],
                       now=NOW, source="import")
        ingest_records(dataset=web, records=[event("e1", {"Email": "a@x.com"},
                                                   event_type="commerce.checkouts"),
                                             {"bad": True}], now=NOW, source="streaming")
    return {"crm": crm, "web": web}


def test_the_datasets_page_lists_datasets_inlets_and_rejections(alice, data):
    page = alice.web().get(reverse("audiences:datasets"))
    assert page.status_code == 200
    html = page.content.decode()
    assert data["crm"].pk in html and "Create dataset" in html
    assert "identityMap is missing" in html
    assert "homeAddress.city" in html  # the schema catalogue


def test_admins_create_datasets_and_connections_from_the_page(alice, acme_prod):
    web = alice.web()
    response = web.post(reverse("audiences:dataset_create"),
                        {"name": "Loyalty", "schema": "https://ns.adobe.com/xdm/context/profile"})
    assert response.status_code == 302
    response = web.post(reverse("audiences:connection_create"),
                        {"name": "Kiosk", "authenticated": "on"})
    assert response.status_code == 302
    with sandbox_scope(acme_prod):
        assert Dataset.objects.get().name == "Loyalty"
        assert StreamingConnection.objects.get().authentication_required
    duplicate = web.post(reverse("audiences:dataset_create"),
                         {"name": "Loyalty", "schema": "https://ns.adobe.com/xdm/context/profile"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.content.decode()


def test_marketers_see_datasets_but_cannot_create_them(bob, data):
    web = bob.web()
    page = web.get(reverse("audiences:datasets"))
    assert page.status_code == 200 and "Create dataset" not in page.content.decode()
    refused = web.post(reverse("audiences:dataset_create"),
                       {"name": "X", "schema": "https://ns.adobe.com/xdm/context/profile"})
    assert refused.status_code == 403


def test_the_profile_page_shows_attributes_identities_and_events(bob, data):
    page = bob.web().get(reverse("audiences:profiles"),
                         {"namespace": "email", "identity": "a@x.com"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Paris" in html and "CRMID" in html and "commerce.checkouts" in html
    missing = bob.web().get(reverse("audiences:profiles"),
                            {"namespace": "Email", "identity": "nobody@x.com"})
    assert "No profile found" in missing.content.decode()


def test_the_profile_page_does_not_show_another_organizations_profile(charlie, data):
    page = charlie.web().get(reverse("audiences:profiles"),
                             {"namespace": "Email", "identity": "a@x.com"})
    assert "No profile found" in page.content.decode()


def test_merge_policy_pages_are_for_admins_only(alice, bob, data):
    assert alice.web().get(reverse("audiences:merge_policies")).status_code == 200
    assert alice.web().get(reverse("audiences:merge_policy_new")).status_code == 200
    assert bob.web().get(reverse("audiences:merge_policies")).status_code == 403
    assert bob.web().get(reverse("audiences:merge_policy_new")).status_code == 403


def test_the_wizard_creates_a_precedence_policy_step_by_step(
        alice, acme_prod, data, django_capture_on_commit_callbacks):
    web = alice.web()
    url = reverse("audiences:merge_policy_new")
    base = {"name": "CRM first", "identity_graph": "pdg",
            "attribute_merge": "dataSetPrecedence", "dataset_order": "", "event_datasets": ""}
    step1 = web.post(url, {**base, "step": "0", "action": "next"})
    assert step1.status_code == 200 and f"priority-{data['crm'].pk}" in step1.content.decode()
    step2 = web.post(url, {**base, "step": "1", "action": "next",
                           f"priority-{data['crm'].pk}": "1"})
    assert "Event datasets" in step2.content.decode()
    review = web.post(url, {**base, "dataset_order": data["crm"].pk, "step": "2",
                            "action": "next", "event_dataset": data["web"].pk})
    html = review.content.decode()
    assert "Review" in html and "Paris" in html  # the preview merges the stored fragment
    with django_capture_on_commit_callbacks(execute=True):  # the rebuild task, eager
        saved = web.post(url, {**base, "dataset_order": data["crm"].pk,
                               "event_datasets": data["web"].pk, "step": "3",
                               "action": "save"})
    assert saved.status_code == 302
    with sandbox_scope(acme_prod):
        policy = MergePolicy.objects.get(name="CRM first")
        assert policy.dataset_order == [data["crm"].pk]
        assert policy.event_datasets == [data["web"].pk]
        assert policy.profiles.get().attributes == {"homeAddress": {"city": "Paris"}}


def test_make_default_and_delete_from_the_list(alice, acme_prod, data):
    with sandbox_scope(acme_prod):
        from audiences.services.merge_policies import merge_policy_create

        other = merge_policy_create(name="Other", now=NOW)
        old = MergePolicy.objects.get(is_default=True)
    web = alice.web()
    web.post(reverse("audiences:merge_policy_default", args=[other.pk]))
    refused = web.post(reverse("audiences:merge_policy_delete", args=[other.pk]), follow=True)
    assert "default merge policy cannot be deleted" in refused.content.decode()
    web.post(reverse("audiences:merge_policy_edge", args=[old.pk]))
    web.post(reverse("audiences:merge_policy_delete", args=[old.pk]))
    with sandbox_scope(acme_prod):
        assert list(MergePolicy.objects.values_list("name", flat=True)) == ["Other"]
