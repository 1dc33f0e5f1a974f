"""The portal shell in a real browser: login, sandbox switcher, role-based navigation."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_marketer_logs_in_and_sees_the_audiences_page(page, live_server, login, bob, shot):
    login("bob", bob.password)
    expect(page.get_by_role("heading", name="Audiences", exact=True)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Audiences")).to_be_visible()
    shot("audiences-empty")


def test_a_marketer_switches_sandbox(page, live_server, login, bob, acme_dev):
    login("bob", bob.password)
    page.get_by_label("Sandbox").select_option(str(acme_dev.sandbox_id))
    expect(page.get_by_text("Switched to sandbox dev")).to_be_visible()
    expect(page.get_by_label("Sandbox")).to_have_value(str(acme_dev.sandbox_id))


def test_admins_see_merge_policies_and_marketers_do_not(page, live_server, login, alice, bob,
                                                        shot):
    login("alice", alice.password)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Merge policies")).to_be_visible()
    nav.get_by_role("link", name="Merge policies").click()
    expect(page.get_by_role("cell", name="Default Timebased")).to_be_visible()
    shot("merge-policies")
    page.context.clear_cookies()
    login("bob", bob.password)
    expect(page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Merge policies")).to_have_count(0)


def test_the_login_page_rejects_a_wrong_password(page, live_server, bob, shot):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    shot("login-error")
