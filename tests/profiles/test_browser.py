"""The profile-store pages in a real browser: the merge-policy wizard and a profile look-up."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from audiences.models import MergePolicy
from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from portal.scope import sandbox_scope
from tests.profiles.conftest import NOW, event, person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stored(acme_prod):
    with sandbox_scope(acme_prod):
        crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
        web = dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID})
        ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "ann@x.com"},
                                                    homeAddress={"city": "Paris"})],
                       now=NOW, source="import")
        ingest_records(dataset=web, records=[event("e1", {"Email": "ann@x.com"},
                                                   event_type="commerce.checkouts")],
                       now=NOW, source="import")
    return crm


def test_an_admin_creates_a_precedence_policy_in_four_steps(page, live_server, login, alice,
                                                           acme_prod, stored, shot):
    login("alice", alice.password)
    page.get_by_role("navigation", name="Main").get_by_role("link",
                                                            name="Merge policies").click()
    page.get_by_role("link", name="Create merge policy").click()
    page.get_by_label("Name").fill("CRM first")
    page.get_by_label("Merge method").select_option("dataSetPrecedence")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("CRM").fill("1")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Web").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    expect(page.get_by_role("cell", name="Paris")).to_be_visible()
    shot("merge-policy-review")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="CRM first")).to_be_visible()
    with sandbox_scope(acme_prod):
        policy = MergePolicy.objects.get(name="CRM first")
        assert policy.dataset_order == [stored.pk] and policy.profiles.count() == 1

    # Make it the policy that edge segmentation reads (at most one per sandbox).
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="CRM first"))
    row.get_by_role("button", name="Activate on edge").click()
    expect(page.get_by_text("CRM first is now active on edge.")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="CRM first"))
    expect(row.get_by_text("Active on edge", exact=True)).to_be_visible()
    expect(row.get_by_role("button", name="Deactivate on edge")).to_be_visible()
    shot("merge-policy-active-on-edge")
    with sandbox_scope(acme_prod):
        assert list(MergePolicy.objects.filter(is_active_on_edge=True).values_list(
            "name", flat=True)) == ["CRM first"]


def test_a_marketer_looks_a_profile_up_by_email(page, live_server, login, bob, stored, shot):
    login("bob", bob.password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Profiles").click()
    page.get_by_label("Identity namespace").fill("Email")
    page.get_by_label("Identity value").fill("ann@x.com")
    page.get_by_role("button", name="View").click()
    expect(page.get_by_role("heading", name="Attributes")).to_be_visible()
    expect(page.get_by_role("cell", name="Paris")).to_be_visible()
    expect(page.get_by_role("cell", name="commerce.checkouts")).to_be_visible()
    shot("profile-lookup")
