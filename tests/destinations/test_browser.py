"""The Destinations page in a real browser, with a real receiver on loopback."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audiences.models import Destination
from audiences.services.memberships import membership_apply
from portal.scope import sandbox_scope
from tests.factories import make_definition, make_profile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_a_webhook_activates_tests_and_reads_the_history(
        page, live_server, login, alice, acme_prod, receiver, shot):
    with sandbox_scope(acme_prod):
        definition = make_definition(name="Cart abandoners", evaluation_continuous=True)
        person = make_profile(email="jane@example.com")
    login("alice", alice.password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Destinations").click()
    expect(page.get_by_role("heading", name="Destinations", exact=True)).to_be_visible()
    page.get_by_label("Name").fill("CRM webhook")
    page.get_by_label("Kind").select_option("webhook")
    page.get_by_label("Webhook URL").fill(receiver.url)
    page.get_by_role("button", name="Create destination").click()
    expect(page.get_by_role("heading", name="CRM webhook")).to_be_visible()

    page.get_by_label("Audience", exact=True).select_option(label="Cart abandoners")
    page.get_by_label("Attributes").fill("person.name.firstName")
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("cell", name="Cart abandoners")).to_be_visible()

    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status").filter(has_text="Connection OK")).to_be_visible()
    assert receiver.wait_for(1, timeout=5)[0].json["test"] is True

    with sandbox_scope(acme_prod):
        membership_apply(definition=definition, results={person.pk: True}, at=timezone.now(),
                         source="streaming")
        destination = Destination.objects.get(name="CRM webhook")
    assert receiver.wait_for(2, timeout=5)[1].changes[0]["identities"] == ["jane@example.com"]
    page.reload()
    history = page.get_by_role("region", name="Delivery history")
    expect(history.get_by_role("cell", name="200", exact=True)).to_be_visible()
    expect(history.get_by_text("1 delivered")).to_be_visible()
    history.get_by_label("Status").select_option("dead")
    expect(history.get_by_text("No deliveries with status dead")).to_be_visible()
    assert page.url.endswith(f"/destinations/{destination.pk}/?status=dead")
    shot("destinations-detail")
