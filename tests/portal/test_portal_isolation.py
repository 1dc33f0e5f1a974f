"""The portal shows each organization only its own rows, even with equal sandbox names."""

from django.utils import timezone

from audiences.models import MergePolicy, SegmentDefinition
from portal.scope import sandbox_scope


def make_definition(sandbox, name):
    with sandbox_scope(sandbox):
        now = timezone.now()
        return SegmentDefinition.objects.create(
            name=name, expression='homeAddress.countryISO = "US"',
            merge_policy=MergePolicy.objects.get(is_default=True), created_at=now,
            updated_at=now)


def test_each_org_sees_only_its_own_audiences(bob, charlie, acme_prod, globex_prod):
    make_definition(acme_prod, "Acme loyalists")
    make_definition(globex_prod, "Globex whales")
    acme_page = bob.web().get("/").content.decode()
    globex_page = charlie.web().get("/").content.decode()
    assert "Acme loyalists" in acme_page and "Globex whales" not in acme_page
    assert "Globex whales" in globex_page and "Acme loyalists" not in globex_page


def test_a_user_cannot_switch_into_another_orgs_sandbox(bob, globex_prod, acme_prod):
    make_definition(globex_prod, "Globex whales")
    client = bob.web()
    client.post("/sandbox/switch/", {"sandbox": str(globex_prod.sandbox_id)})
    page = client.get("/").content.decode()
    assert "Globex whales" not in page
    assert str(acme_prod.sandbox_id) in page  # still in its own sandbox


def test_switching_sandbox_changes_what_is_listed(bob, acme_prod, acme_dev):
    make_definition(acme_dev, "Dev only audience")
    client = bob.web()
    assert "Dev only audience" not in client.get("/").content.decode()
    client.post("/sandbox/switch/", {"sandbox": str(acme_dev.sandbox_id)})
    assert "Dev only audience" in client.get("/").content.decode()


def test_anonymous_users_are_sent_to_login(db):
    from django.test import Client

    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_admin_pages_are_refused_to_marketers(bob, alice):
    assert bob.web().get("/merge-policies/").status_code == 403
    assert alice.web().get("/merge-policies/").status_code == 200
