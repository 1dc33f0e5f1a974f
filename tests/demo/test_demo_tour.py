"""The README's tour, walked in Chromium over a (small) demo sandbox built by the product's own
services. Its screenshots are the ones the README shows (copied to docs/screenshots/)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from audiences.models import SegmentDefinition
from audiences.services.demo import demo_build, demo_history
from portal.models import Sandbox
from portal.scope import sandbox_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_sandbox():
    call_command("demo", "--no-data")
    sandbox = Sandbox.objects.get(organization__ims_org_id="DEMO1234@AdobeOrg", name="prod")
    now = datetime.now(UTC)
    demo_build(sandbox=sandbox, profiles=1200, days=30, now=now, history=False)
    demo_history(sandbox=sandbox, days=30, now=now)
    return sandbox


def test_the_tour(page, live_server, login, demo_sandbox, shot):
    login("marketer", "marketer")
    expect(page.locator("#audience-results tbody tr").first).to_be_visible()
    expect(page.get_by_role("link", name="California Residents", exact=True)).to_be_visible()
    shot("tour-1-audiences")

    page.get_by_role("checkbox", name="Streaming").check()
    expect(page.get_by_role("link", name="Recent checkouts", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="California Residents", exact=True)).to_have_count(0)
    page.get_by_role("link", name="Recent checkouts", exact=True).click()
    expect(page.get_by_text("Profiles over time")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    shot("tour-2-audience-details")

    with sandbox_scope(demo_sandbox):
        usa = SegmentDefinition.objects.get(name="People in the USA")
        assert usa.qualified_count > 0
    page.goto(f"{live_server.url}/audiences/{usa.pk}/")
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    page.get_by_role("button", name="Last 30 days").click()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    shot("tour-3-thirty-days")

    page.goto(f"{live_server.url}/audiences/new/")
    expect(page.get_by_text("Evaluation method eligibility")).to_be_visible()
    shot("tour-4-segment-builder")

    page.goto(f"{live_server.url}/segment-jobs/")
    expect(page.get_by_text("SUCCEEDED").first).to_be_visible()
    shot("tour-5-segment-jobs")

    page.context.clear_cookies()
    login("admin", "admin")
    page.goto(f"{live_server.url}/merge-policies/")
    expect(page.get_by_text("CRM over loyalty")).to_be_visible()
    shot("tour-6-merge-policies")
    page.goto(f"{live_server.url}/datasets/")
    expect(page.get_by_text("Web & App Events").first).to_be_visible()
    shot("tour-7-datasets")
