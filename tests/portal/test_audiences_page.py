"""The Audiences page through the Django client: filters, sorting, paging, columns, actions,
roles and tenant isolation."""

from __future__ import annotations

import pytest

from audiences.models import DefinitionHistory, SegmentDefinition, Tag
from portal.scope import sandbox_scope
from tests.portal.audience_data import audience

pytestmark = pytest.mark.django_db


def names(response) -> list[str]:
    """Audience names in table order (the name cell links to the details page)."""
    return [d.name for d in response.context["definitions"]]


@pytest.fixture
def catalogue(acme_prod, bob):
    from django.contrib.auth.models import User

    author = User.objects.get(username="bob")
    return {
        "stream": audience(acme_prod, "Cart abandoners now", frequency="streaming", count=40,
                           tags=["cart", "web"], days_ago=1),
        "edge": audience(acme_prod, "Homepage visitors", frequency="edge", count=7,
                         tags=["web"], days_ago=3, creator=author),
        "batch": audience(acme_prod, "Gold members", count=300, tags=["loyalty"], days_ago=20),
        "draft": audience(acme_prod, "Winter draft", lifecycle="draft", days_ago=40,
                          description="Not yet"),
        "upload": audience(acme_prod, "Trade show leads", expression="",
                           origin=SegmentDefinition.Origin.CUSTOM_UPLOAD, count=12),
    }


def test_update_frequency_streaming_lists_only_streaming_audiences(bob, catalogue):
    response = bob.web().get("/", {"frequency": "streaming"})
    assert names(response) == ["Cart abandoners now"]


def test_two_frequencies_are_ored(bob, catalogue):
    response = bob.web().get("/", {"frequency": ["streaming", "edge"]})
    assert names(response) == ["Cart abandoners now", "Homepage visitors"]


def test_has_any_tag_and_has_all_tags(bob, catalogue, in_acme_prod):
    web, cart = Tag.objects.get(name="web"), Tag.objects.get(name="cart")
    client = bob.web()
    assert names(client.get("/", {"tags_any": [web.pk, cart.pk]})) == [
        "Cart abandoners now", "Homepage visitors"]
    assert names(client.get("/", {"tags_all": [web.pk, cart.pk]})) == ["Cart abandoners now"]


def test_origin_lifecycle_creator_and_search(bob, catalogue):
    client = bob.web()
    assert names(client.get("/", {"origin": "CUSTOM_UPLOAD"})) == ["Trade show leads"]
    assert names(client.get("/", {"lifecycle": "draft"})) == ["Winter draft"]
    from django.contrib.auth.models import User

    bob_id = User.objects.get(username="bob").pk
    assert names(client.get("/", {"created_by": bob_id})) == ["Homepage visitors"]
    assert names(client.get("/", {"q": "gold"})) == ["Gold members"]


def test_creation_date_range(bob, catalogue):
    from datetime import timedelta

    from django.utils import timezone

    since = (timezone.now() - timedelta(days=10)).date().isoformat()
    response = bob.web().get("/", {"created_after": since})
    assert set(names(response)) == {"Cart abandoners now", "Homepage visitors",
                                    "Trade show leads"}


def test_merge_policy_filter(bob, catalogue):
    policy = catalogue["batch"].merge_policy_id
    assert len(names(bob.web().get("/", {"merge_policy": policy}))) == 5


def test_sorting_by_profile_count_both_ways(bob, catalogue):
    client = bob.web()
    assert names(client.get("/", {"sort": "-count"}))[:3] == [
        "Gold members", "Cart abandoners now", "Trade show leads"]
    assert names(client.get("/", {"sort": "count"}))[0] == "Winter draft"


def test_an_unknown_sort_falls_back_to_name(bob, catalogue):
    response = bob.web().get("/", {"sort": "password"})
    assert response.status_code == 200
    assert names(response)[0] == "Cart abandoners now"


def test_htmx_requests_get_only_the_results_fragment(bob, catalogue):
    response = bob.web().get("/", {"frequency": "edge"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "<html" not in body and "Homepage visitors" in body
    assert "Gold members" not in body
    assert "HX-Request" in response["Vary"]


def test_paging_is_count_less_and_stable(bob, acme_prod):
    for i in range(55):
        audience(acme_prod, f"Audience {i:03d}")
    client = bob.web()
    first, second = client.get("/"), client.get("/", {"page": 2})
    assert len(names(first)) == 50 and first.context["has_next"]
    assert names(second) == [f"Audience {i:03d}" for i in range(50, 55)]
    assert not second.context["has_next"]


def test_optional_columns_appear_when_chosen(bob, catalogue):
    client = bob.web()
    default = client.get("/").content.decode()
    assert "Not yet" not in default  # description is optional
    chosen = client.get("/", {"cols": ["count", "description", "frequency"]}).content.decode()
    assert "Not yet" in chosen and "badge-streaming" in chosen


def test_empty_filters_show_an_empty_state(bob, catalogue):
    body = bob.web().get("/", {"q": "no such audience"}).content.decode()
    assert "No audiences match these filters" in body


def test_browse_query_count_does_not_grow_with_rows(bob, acme_prod, django_assert_max_num_queries):
    for i in range(30):
        audience(acme_prod, f"Tagged {i}", tags=["t1", "t2"])
    client = bob.web()
    client.get("/")  # warm the session
    with django_assert_max_num_queries(16):
        client.get("/")


def test_viewers_see_the_list_but_cannot_change_anything(victor, catalogue):
    client = victor.web()
    page = client.get("/").content.decode()
    assert "Gold members" in page and "Create audience" not in page
    target = catalogue["batch"]
    assert client.post(f"/audiences/{target.pk}/action/delete/").status_code == 403
    assert client.post("/audiences/bulk/", {"action": "delete", "ids": [target.pk]}
                       ).status_code == 403
    assert client.get("/audiences/new/").status_code == 403
    assert client.post("/audiences/schedule/", {"enabled": "on"}).status_code == 403


def test_other_organizations_cannot_touch_acme_audiences(charlie, catalogue):
    client = charlie.web()
    target = catalogue["batch"]
    assert client.get(f"/audiences/{target.pk}/").status_code == 404
    client.post(f"/audiences/{target.pk}/action/delete/")
    with sandbox_scope(target.sandbox):
        assert SegmentDefinition.objects.filter(pk=target.pk).exists()
    assert "Gold members" not in client.get("/").content.decode()


def test_delete_refuses_an_audience_others_depend_on(bob, acme_prod):
    base = audience(acme_prod, "Base")
    dependent = audience(acme_prod, "Uses base", expression=f'inSegment("{base.pk}")')
    with sandbox_scope(acme_prod):
        dependent.dependencies.add(base)
    response = bob.web().post(f"/audiences/{base.pk}/action/delete/", follow=True)
    assert "Uses base" in response.content.decode()
    with sandbox_scope(acme_prod):
        assert SegmentDefinition.objects.filter(pk=base.pk).exists()


def test_copy_publish_and_deactivate_row_actions(bob, catalogue, in_acme_prod):
    client = bob.web()
    draft = catalogue["draft"]
    client.post(f"/audiences/{draft.pk}/action/publish/")
    draft.refresh_from_db()
    assert draft.lifecycle_state == "published"
    client.post(f"/audiences/{draft.pk}/action/deactivate/")
    draft.refresh_from_db()
    assert draft.lifecycle_state == "inactive"
    client.post(f"/audiences/{catalogue['batch'].pk}/action/copy/")
    copy = SegmentDefinition.objects.get(name="Gold members (copy)")
    assert copy.lifecycle_state == "draft"


def test_bulk_tags_across_every_page_of_a_filter(bob, catalogue, in_acme_prod):
    response = bob.web().post("/audiences/bulk/", {
        "action": "tags", "tags": "q4, promo", "all_matching": "1",
        "filters": "frequency=streaming&frequency=edge"})
    assert response.status_code == 302
    tagged = set(SegmentDefinition.objects.filter(tags__name="promo").values_list("name",
                                                                                  flat=True))
    assert tagged == {"Cart abandoners now", "Homepage visitors"}
    assert DefinitionHistory.objects.filter(changed_fields=["tags"]).count() == 2


def test_bulk_delete_keeps_audiences_with_dependents(bob, acme_prod, in_acme_prod):
    base = audience(acme_prod, "Base")
    user = audience(acme_prod, "User", expression=f'inSegment("{base.pk}")')
    user.dependencies.add(base)
    lonely = audience(acme_prod, "Lonely")
    bob.web().post("/audiences/bulk/", {"action": "delete", "ids": [base.pk, lonely.pk]})
    left = set(SegmentDefinition.objects.values_list("name", flat=True))
    assert left == {"Base", "User"}


def test_evaluate_now_explains_when_batch_jobs_are_missing(bob, catalogue, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "audiences.services.batch", None)
    response = bob.web().post(f"/audiences/{catalogue['batch'].pk}/action/evaluate/",
                              follow=True)
    assert "Batch evaluation is not available" in response.content.decode()


def test_schedule_all_audiences_toggle(bob, acme_prod, in_acme_prod):
    from audiences.models import Schedule

    client = bob.web()
    client.post("/audiences/schedule/", {})
    assert Schedule.objects.get(is_system=True).state == "inactive"
    client.post("/audiences/schedule/", {"enabled": "on"})
    assert Schedule.objects.get(is_system=True).state == "active"
    page = client.get("/").content.decode()
    assert "05:00 UTC" in page and "evaluation-summary-chart" in page


def test_export_downloads_current_members(bob, acme_prod, in_acme_prod):
    from django.utils import timezone

    from audiences.services.memberships import membership_apply
    from tests.factories import make_profile

    target = audience(acme_prod, "Exported")
    inside, outside = make_profile(email="in@example.com"), make_profile(email="out@ex.com")
    membership_apply(definition=target, results={inside.pk: True, outside.pk: False},
                     at=timezone.now(), source="batch")
    response = bob.web().get(f"/audiences/{target.pk}/export/")
    body = b"".join(response.streaming_content).decode()
    assert "in@example.com" in body and "out@ex.com" not in body
