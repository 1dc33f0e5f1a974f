"""The Audience Portal in Chromium, used the way a marketer uses it. Every page is saved as a
screenshot under artifacts/screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audiences.models import SegmentDefinition, SegmentJob, SegmentJobRun
from portal.scope import sandbox_scope
from tests.factories import default_policy
from tests.portal.audience_data import audience
from tests.services.profile_data import person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def audiences(acme_prod):
    audience(acme_prod, "Cart abandoners now", frequency="streaming", count=420,
             tags=["cart"], days_ago=1)
    audience(acme_prod, "Homepage visitors", frequency="edge", count=75, tags=["web"])
    audience(acme_prod, "Gold members", count=1300, tags=["loyalty"], days_ago=12)
    audience(acme_prod, "Lapsed buyers", count=230, days_ago=30, lifecycle="draft")


def rows(page):
    return page.locator("#audience-results tbody tr")


def test_filter_by_update_frequency_streaming(page, live_server, login, bob, audiences, shot):
    login("bob", bob.password)
    expect(rows(page)).to_have_count(4)
    shot("audiences-browse")
    page.get_by_role("checkbox", name="Streaming").check()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Cart abandoners now")
    expect(page).to_have_url(re.compile(r"frequency=streaming"))
    shot("audiences-browse-streaming")
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"frequency="))
    expect(rows(page)).to_have_count(4)


def test_sort_search_and_column_chooser(page, live_server, login, bob, audiences, shot):
    login("bob", bob.password)
    page.get_by_role("link", name="Profile count").click()
    expect(page).to_have_url(re.compile(r"sort=count"))
    expect(rows(page).first).to_contain_text("Homepage visitors")
    page.get_by_role("searchbox", name="Search by name").fill("gold")
    expect(rows(page)).to_have_count(1)
    page.get_by_text("Columns").click()
    page.get_by_role("checkbox", name="Update frequency").check()
    expect(page.locator("#audience-results th", has_text="Update frequency")).to_be_visible()
    page.keyboard.press("Escape")
    rows(page).first.get_by_label("Actions for Gold members").click()
    shot("audiences-browse-row-menu")


def test_build_recent_checkouts_on_the_canvas(page, live_server, login, bob, shot):
    login("bob", bob.password)
    page.locator(".page-header").get_by_role("link", name="Create audience").click()
    expect(page.get_by_role("heading", name="Create audience")).to_be_visible()
    page.get_by_role("button", name="Add event commerce.checkouts").click()
    time = page.get_by_label("Time constraint")
    expect(time).to_be_visible()
    time.select_option("last")
    code = page.locator("#pql-code")
    expect(code).to_have_value(re.compile(r"WHEN\(<= 24 hours before now\)"))
    streaming = page.get_by_role("radio", name=re.compile("Streaming"))
    expect(streaming).to_be_enabled()
    streaming.check()
    page.get_by_role("textbox", name="Name", exact=True).fill("Recent checkouts")
    page.get_by_role("textbox", name="Description", exact=True).fill(
        "Checked out in the last 24 hours")
    expect(page.locator("#feedback")).to_contain_text("Valid PQL")
    shot("builder-streaming")

    page.get_by_label("Time amount").fill("3")
    page.get_by_label("Time unit").select_option("days")
    expect(code).to_have_value(re.compile(r"<= 3 days before now"))
    expect(page.get_by_role("radio", name=re.compile("Streaming"))).to_be_disabled()
    method = page.locator('#methods .method[data-method="streaming"]')
    expect(method).to_contain_text("more than 24 hours")
    expect(page.get_by_role("radio", name=re.compile("Batch"))).to_be_checked()
    shot("builder-three-days-batch-only")

    page.get_by_role("button", name="Save as draft").click()
    expect(page.get_by_role("heading", name="Recent checkouts")).to_be_visible()
    with sandbox_scope(bob.org.sandboxes.get(name="prod")):
        saved = SegmentDefinition.objects.get(name="Recent checkouts")
    assert saved.lifecycle_state == "draft" and saved.methods == ["batch"]
    assert "3 days" in saved.expression

    page.get_by_role("button", name="Last 24 hours").click()
    expect(page.locator('.chart[data-range="24h"]')).to_be_visible()
    expect(page).to_have_url(re.compile(r"range=24h"))
    chart = page.locator("[id^=profiles-over-time-chart]").first
    expect(chart).to_have_class(re.compile("js-plotly-plot"))  # plotly.js owns the swapped div
    expect(chart.locator(".main-svg").first).to_be_visible()
    shot("audience-details")


def test_pql_typed_in_the_code_view_redraws_the_canvas(page, live_server, login, bob, shot):
    login("bob", bob.password)
    page.goto(f"{live_server.url}/audiences/new/")
    code = page.locator("#pql-code")
    code.fill('loyalty.tier = "gold" and')
    expect(page.locator("#feedback")).to_contain_text("Syntax error at line 1")
    shot("builder-syntax-error")
    code.fill('loyalty.tier = "gold" and loyalty.points > 500')
    expect(page.get_by_label("Operator for loyalty.points")).to_have_value("gt")
    expect(page.get_by_label("Value for loyalty.points")).to_have_value("500")


def test_rules_can_be_added_with_the_keyboard(page, live_server, login, bob):
    login("bob", bob.password)
    page.goto(f"{live_server.url}/audiences/new/")
    page.get_by_role("searchbox", name="Search fields").fill("countryISO")
    add = page.get_by_role("button", name="Add attribute homeAddress.countryISO")
    add.focus()
    page.keyboard.press("Enter")
    value = page.get_by_label("Value for homeAddress.countryISO")
    value.fill("US")
    value.press("Tab")
    expect(page.locator("#pql-code")).to_have_value('homeAddress.countryISO = "US"')
    expect(page.locator("#feedback")).to_contain_text("Valid PQL")


def test_import_an_audience_from_csv(page, live_server, login, bob, acme_prod, tmp_path,
                                     shot):
    with sandbox_scope(acme_prod):
        now = timezone.now()
        for email in ("ann@example.com", "raj@example.com"):
            person(policy=default_policy(), at=now, email=email, attributes={})
    upload = tmp_path / "trade-show.csv"
    upload.write_text("name,email\nAnn,ann@example.com\nRaj,raj@example.com\n"
                      "Zoe,zoe@example.com\n")
    login("bob", bob.password)
    page.get_by_role("link", name="Import audience").click()
    page.get_by_label("CSV file").set_input_files(str(upload))
    expect(page.locator("#import-preview table")).to_contain_text("zoe@example.com")
    page.get_by_label("Identity column").select_option("email")
    page.get_by_label("Identity namespace").select_option("Email")
    page.get_by_label("Audience name").fill("Trade show leads")
    shot("import-audience")
    page.get_by_role("button", name="Import audience").click()
    expect(page.get_by_role("heading", name="Trade show leads")).to_be_visible()
    expect(page.get_by_text("2 of 3 identities matched")).to_be_visible()
    expect(page.locator(".summary-facts-list")).to_contain_text("Custom upload")
    shot("imported-audience-details")


def test_segment_jobs_page(page, live_server, login, bob, acme_prod, shot):
    target = audience(acme_prod, "Gold members", count=1300)
    with sandbox_scope(acme_prod):
        now = timezone.now()
        done = SegmentJob.objects.create(
            status="SUCCEEDED", snapshot_at=now - timedelta(hours=5), progress_done=2,
            progress_total=2, created_at=now - timedelta(hours=5),
            started_at=now - timedelta(hours=5), finished_at=now - timedelta(hours=5) +
            timedelta(seconds=42), updated_at=now)
        SegmentJobRun.objects.create(job=done, definition=target, definition_name=target.name,
                                     status="succeeded", duration_ms=812, qualified=1300,
                                     realized=40, existing=1260, exited=12,
                                     profiles_scanned=20000)
        SegmentJob.objects.create(status="FAILED", snapshot_at=now, created_at=now,
                                  updated_at=now, progress_done=0, progress_total=3,
                                  errors=[{"message": "The worker stopped responding."}])
    login("bob", bob.password)
    page.get_by_role("navigation", name="Main").get_by_role("link",
                                                           name="Segment jobs").click()
    expect(page.get_by_role("heading", name="Segment jobs")).to_be_visible()
    expect(page.get_by_text("The worker stopped responding.")).to_be_visible()
    expect(page.locator(".job-card").nth(1)).to_contain_text("812 ms")
    shot("segment-jobs")


def test_profiles_over_time_shows_the_rolled_up_history(page, live_server, login, bob,
                                                        acme_prod, shot):
    from audiences.services.memberships import membership_apply
    from audiences.services.metrics import metrics_rollup

    target = audience(acme_prod, "Weekend browsers", frequency="streaming",
                      expression='CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals('
                                 '"web.webpagedetails.pageViews", false)) WHEN(today)])')
    with sandbox_scope(acme_prod):
        now = timezone.now()
        people = [person(policy=default_policy(), at=now, attributes={
            "person": {"name": {"firstName": f"Pat{i}", "lastName": "Doe"}}},
            email=f"pat{i}@example.com")[0] for i in range(40)]
        for hour in range(20):  # two people qualify per hour, one leaves every 4 hours
            at = now - timedelta(hours=20 - hour)
            membership_apply(definition=target, results={
                p.pk: True for p in people[2 * hour:2 * hour + 2]}, at=at, source="streaming")
            if hour % 4 == 3:
                membership_apply(definition=target, results={people[hour].pk: False}, at=at,
                                 source="streaming")
        metrics_rollup()
    login("bob", bob.password)
    page.goto(f"{live_server.url}/audiences/{target.pk}/?range=24h")
    expect(page.locator(".chart")).not_to_contain_text("No changes rolled up")
    expect(page.get_by_role("cell", name="Pat39 Doe")).to_be_visible()
    expect(page.locator("[id^=profiles-over-time-chart] .main-svg").first).to_be_visible()
    shot("audience-details-history")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Time constraint")).to_have_value("today")
    expect(page.get_by_role("radio", name=re.compile("Streaming"))).to_be_checked()
    page.get_by_role("button", name="Refresh estimate").click()
    expect(page.get_by_test_id("estimate")).to_be_visible()
    expect(page.locator("#estimate .sample-list li")).to_have_count(0)  # nobody browsed today
    shot("builder-edit")


def test_an_audience_is_dragged_onto_a_second_container(page, live_server, login, bob,
                                                         acme_prod):
    gold = audience(acme_prod, "Gold members", expression='loyalty.tier = "gold"')
    login("bob", bob.password)
    page.goto(f"{live_server.url}/audiences/new/")
    page.get_by_role("button", name="Add event commerce.checkouts").click()
    expect(page.get_by_label("Time constraint")).to_be_visible()
    page.get_by_role("button", name="+ Add container").click()
    second = page.locator('.rule-container[data-ci="1"]')
    expect(second).to_be_visible()
    page.get_by_label("Container 2: include or exclude").select_option("exclude")
    expect(page.locator('.rule-container[data-ci="1"]')).to_have_class(re.compile("exclude"))
    page.locator(".field-leaf", has_text="Gold members").drag_to(
        page.locator('.rule-container[data-ci="1"]'))
    expect(page.locator("#pql-code")).to_have_value(re.compile(
        rf'and \(?not \(inSegment\("{gold.pk}"\)\)'))
    expect(page.locator('.rule-container[data-ci="1"]')).to_contain_text("Gold members")
