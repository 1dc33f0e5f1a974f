"""`/data/core/ups/segment/definitions` as Adobe's clients use it, persona by persona."""

from __future__ import annotations

import json

import pytest

from audiences.models import DefinitionHistory, MergePolicy, SegmentDefinition
from portal.scope import sandbox_scope
from tests.api.conftest import DEFINITIONS, definition_body

# --- The seed guides' sample requests ----------------------------------------------------------
#
# Streaming guide, "Create audience": the body as published, with its one JSON typo fixed
# (`"description: "An audience…"` lacks the closing quote of the key).
SEED_STREAMING_CREATE = """{
        "name": "People in the USA",
        "description": "An audience that looks for people who live in the USA",
        "expression": {
            "type": "PQL",
            "format": "pql/text",
            "value": "homeAddress.country = \\"US\\""
        },
        "evaluationInfo": {
            "batch": {
                "enabled": false
            },
            "continuous": {
                "enabled": true
            },
            "synchronous": {
                "enabled": false
            }
        },
        "schema": {
            "name": "_xdm.context.profile"
        }
     }"""
# The keys of the guide's sample response to that request.
SEED_CREATE_RESPONSE_KEYS = {
    "id", "schema", "profileInstanceId", "imsOrgId", "sandbox", "name", "description",
    "expression", "evaluationInfo", "dataGovernancePolicy", "creationTime", "updateEpoch",
    "updateTime"}
# The two definitions of the guides' list responses (batch and streaming guides), posted as
# their list entries show them (no JSON typos there).
SEED_LISTED = [
    {"name": " People who are NOT on their homepage ",
     "expression": {"type": "PQL", "format": "pql/text",
                    "value": "select var1 from xEvent where var1._experience.analytics.endUser"
                             ".firstWeb.webPageDetails.isHomePage = false"},
     "evaluationInfo": {"batch": {"enabled": True}, "continuous": {"enabled": False},
                        "synchronous": {"enabled": False}},
     "schema": {"name": "_xdm.context.profile"}, "ttlInDays": 30},
    {"name": "Homepage_continuous",
     "description": "People who are on their homepage - continuous",
     "expression": {"type": "PQL", "format": "pql/text",
                    "value": "select var1 from xEvent where var1._experience.analytics.endUser"
                             ".firstWeb.webPageDetails.isHomePage = true"},
     "evaluationInfo": {"batch": {"enabled": True}, "continuous": {"enabled": True},
                        "synchronous": {"enabled": False}},
     "schema": {"name": "_xdm.context.profile"}, "ttlInDays": 30},
]
SEED_LIST_ENTRY_KEYS = {"id", "schema", "ttlInDays", "imsOrgId", "sandbox", "name", "expression",
                        "evaluationInfo", "creationTime", "updateEpoch", "updateTime"}


def test_the_streaming_guides_create_request_works_as_documented(bob):
    response = bob.api().post(DEFINITIONS, json.loads(SEED_STREAMING_CREATE))
    assert response.status_code == 200
    body = response.json()
    assert SEED_CREATE_RESPONSE_KEYS <= set(body)
    assert response["X-Location"] == f"{DEFINITIONS}/{body['id']}"
    assert body["name"] == "People in the USA"
    assert body["description"] == "An audience that looks for people who live in the USA"
    assert body["expression"] == {"type": "PQL", "format": "pql/text",
                                  "value": 'homeAddress.country = "US"'}
    # Profile-only qualifies for streaming, and the default policy is active on edge.
    assert body["evaluationInfo"] == {"batch": {"enabled": False},
                                      "continuous": {"enabled": True},
                                      "synchronous": {"enabled": False}}
    assert body["profileInstanceId"] == "ups"
    assert body["imsOrgId"] == "ACME1234@AdobeOrg"
    assert body["sandbox"]["sandboxName"] == "prod"
    assert body["sandbox"]["type"] == "production" and body["sandbox"]["default"] is True
    assert body["dataGovernancePolicy"] == {"excludeOptOut": True}
    assert body["updateTime"] == body["updateEpoch"] * 1000 + body["updateTime"] % 1000
    assert body["sift:eligibility"]["refused"] == {}
    # Read back in the same shape.
    again = bob.api().get(f"{DEFINITIONS}/{body['id']}").json()
    assert again == body


def test_the_guides_list_requests_work_as_documented(bob):
    created = {}
    for entry in SEED_LISTED:
        response = bob.api().post(DEFINITIONS, entry)
        assert response.status_code == 200, response.json()
        created[entry["name"]] = response.json()
    streaming = bob.api().post(DEFINITIONS, json.loads(SEED_STREAMING_CREATE)).json()

    # Batch guide: GET /segment/definitions?evaluationInfo.batch.enabled=true
    batch = bob.api().get(f"{DEFINITIONS}?evaluationInfo.batch.enabled=true").json()
    assert set(batch) == {"segments", "page", "link"}
    assert batch["page"] == {"totalCount": 2, "totalPages": 1, "sortField": "creationTime",
                             "sort": "desc", "pageSize": 2, "limit": 100}
    assert batch["link"] == {}
    assert {s["name"] for s in batch["segments"]} == set(created)
    for segment in batch["segments"]:
        assert SEED_LIST_ENTRY_KEYS <= set(segment)
        assert segment["ttlInDays"] == 30
    # "Homepage_continuous" asked for streaming, but one event with no time window is batch
    # under the May 2025 rules: saved as batch, with the reason, never silently.
    homepage = created["Homepage_continuous"]
    assert homepage["evaluationInfo"]["continuous"] == {"enabled": False}
    assert homepage["evaluationInfo"]["batch"] == {"enabled": True}
    assert homepage["sift:eligibility"]["refused"]["streaming"]

    # Streaming guide: GET /segment/definitions?evaluationInfo.continuous.enabled=true
    listed = bob.api().get(f"{DEFINITIONS}?evaluationInfo.continuous.enabled=true").json()
    assert [s["id"] for s in listed["segments"]] == [streaming["id"]]
    assert listed["page"]["totalCount"] == 1


# --- Create -------------------------------------------------------------------------------------


def test_an_absent_evaluation_info_means_batch(create):
    body = create("Plain")
    assert body["evaluationInfo"] == {"batch": {"enabled": True},
                                      "continuous": {"enabled": False},
                                      "synchronous": {"enabled": False}}
    assert body["sift:eligibility"]["requested"] == {"batch": True, "streaming": False,
                                                     "edge": False}


def test_a_second_definition_with_the_same_name_gets_422(alice, create):
    create("Twins")
    response = alice.api().post(DEFINITIONS, definition_body("Twins"))
    assert response.status_code == 422
    assert response.json()["errors"]["422"][0]["code"] == "already_exists"


def test_bad_pql_names_the_line_column_and_what_was_expected(alice):
    response = alice.api().post(DEFINITIONS, definition_body(
        "Broken", 'homeAddress.country = "US" and\n  inSegment(42)'))
    assert response.status_code == 400
    body = response.json()
    assert body["errors"]["400"][0]["code"] == "pql_syntax_error"
    report = body["report"]
    assert report["line"] == 2
    assert report["column"] >= 3
    assert "line 2" in body["detail"]
    assert report["caret"].splitlines()[0] == "  inSegment(42)"
    assert report["caret"].splitlines()[1].endswith("^")
    with sandbox_scope(alice.org.sandboxes.get(name="prod")):
        assert not SegmentDefinition.objects.exists()


def test_the_seed_guides_unclosed_quote_is_refused_with_its_position(alice):
    """The streaming guide's last example misses a closing quote (pql.md A15: reject it)."""
    response = alice.api().post(DEFINITIONS, definition_body(
        "Two events", 'inSegment("7deb246a-49b4-4687-95f9-6316df049948) and '
                      'inSegment("9e1646bb-57ff-4309-ba59-17d6c5bab6a1")'))
    assert response.status_code == 400
    assert response.json()["report"]["line"] == 1


def test_an_unknown_merge_policy_is_refused(alice):
    response = alice.api().post(DEFINITIONS, definition_body(
        "Lost", mergePolicyId="00000000-0000-0000-0000-000000000000"))
    assert response.status_code == 400
    assert response.json()["errors"]["400"][0]["code"] == "unknown_merge_policy"


def test_another_organizations_merge_policy_is_unknown(alice, charlie, globex_prod):
    with sandbox_scope(globex_prod):
        theirs = MergePolicy.objects.get(is_default=True)
    response = alice.api().post(DEFINITIONS, definition_body("Theirs",
                                                             mergePolicyId=str(theirs.pk)))
    assert response.status_code == 400
    assert response.json()["error_code"] == "unknown_merge_policy"


def test_an_ineligible_streaming_request_is_saved_as_batch_with_the_reason(create):
    body = create("Page views", 'select v from xEvent where v.web.name = "home"',
                  streaming=True, edge=True)
    assert body["evaluationInfo"] == {"batch": {"enabled": True},
                                      "continuous": {"enabled": False},
                                      "synchronous": {"enabled": False}}
    eligibility = body["sift:eligibility"]
    assert eligibility["streaming"] is False
    assert eligibility["refused"]["streaming"] and eligibility["refused"]["edge"]
    assert eligibility["requested"] == {"batch": False, "streaming": True, "edge": True}


def test_streaming_on_a_policy_not_active_on_edge_falls_back_to_batch(create, second_policy):
    body = create("Off edge", streaming=True, mergePolicyId=str(second_policy.pk))
    assert body["mergePolicyId"] == str(second_policy.pk)
    assert body["evaluationInfo"]["continuous"] == {"enabled": False}
    assert body["evaluationInfo"]["batch"] == {"enabled": True}
    (reason,) = body["sift:eligibility"]["refused"]["streaming"]
    assert "active-on-edge" in reason and "No stitching" in reason
    # The query itself is eligible: only the policy refused it.
    assert body["sift:eligibility"]["streaming"] is True


def test_edge_is_granted_on_the_active_on_edge_policy(create):
    body = create("Edge", edge=True, batch=True)
    assert body["evaluationInfo"] == {"batch": {"enabled": True},
                                      "continuous": {"enabled": False},
                                      "synchronous": {"enabled": True}}


def test_an_absent_merge_policy_means_the_sandbox_default(create, acme_prod):
    body = create("Default policy")
    with sandbox_scope(acme_prod):
        assert body["mergePolicyId"] == str(MergePolicy.objects.get(is_default=True).pk)


def test_in_segment_ids_must_exist_in_the_same_sandbox(alice, charlie):
    theirs = charlie.api().post(DEFINITIONS, definition_body("Theirs")).json()
    response = alice.api().post(DEFINITIONS, definition_body(
        "Uses theirs", f'inSegment("{theirs["id"]}")'))
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "unknown_segment_reference"
    assert theirs["id"] in body["detail"]


def test_in_segment_records_dependencies(create, alice):
    base = create("California")
    user = create("Uses California", f'inSegment("{base["id"]}")')
    audience = alice.api().get(f"/data/core/ups/audiences/{user['id']}").json()
    assert audience["dependencies"] == [base["id"]]
    assert alice.api().get(f"/data/core/ups/audiences/{base['id']}").json()["dependents"] == [
        user["id"]]


@pytest.mark.parametrize("body, field", [
    ({"expression": {"type": "PQL", "format": "pql/text", "value": "a = 1"},
      "schema": {"name": "_xdm.context.profile"}}, "name"),
    ({"name": "x", "schema": {"name": "_xdm.context.profile"}}, "expression"),
    ({"name": "x", "expression": {"type": "PQL", "format": "pql/text", "value": "a = 1"}},
     "schema"),
    ({"name": "x", "expression": {"type": "PQL", "format": "pql/text", "value": "a = 1"},
      "schema": {"name": "_xdm.context.experienceevent"}}, "schema.name"),
    ({"name": "x", "expression": {"type": "ARL", "format": "pql/text", "value": "a = 1"},
      "schema": {"name": "_xdm.context.profile"}}, "expression.type"),
    ({"name": "x", "expression": {"type": "PQL", "format": "pql/xml", "value": "a = 1"},
      "schema": {"name": "_xdm.context.profile"}}, "expression.format"),
])
def test_invalid_bodies_name_the_field(alice, body, field):
    response = alice.api().post(DEFINITIONS, body)
    assert response.status_code == 400
    assert field in response.json()["detail"]


# --- Read: list, filters, sort, paging ----------------------------------------------------------


@pytest.fixture
def five(create):
    """Five definitions: names b, d, a, e, c created in that order; a is streaming, e edge."""
    out = {}
    for name in ("b", "d", "a", "e", "c"):
        out[name] = create(name, streaming=name == "a", edge=name == "e", batch=name != "a")
    return out


def _names(response) -> list[str]:
    return [s["name"] for s in response.json()["segments"]]


def test_the_list_is_newest_first_by_default(alice, five):
    assert _names(alice.api().get(DEFINITIONS)) == ["c", "e", "a", "d", "b"]


@pytest.mark.parametrize("sort, expected", [
    ("name:asc", ["a", "b", "c", "d", "e"]),
    ("name:desc", ["e", "d", "c", "b", "a"]),
    ("creationTime:asc", ["b", "d", "a", "e", "c"]),
    ("updateTime:desc", ["c", "e", "a", "d", "b"]),
])
def test_the_list_sorts(alice, five, sort, expected):
    response = alice.api().get(DEFINITIONS, {"sort": sort})
    assert _names(response) == expected
    field, direction = sort.split(":")
    assert response.json()["page"]["sortField"] == field
    assert response.json()["page"]["sort"] == direction


def test_sorting_by_an_unknown_attribute_is_refused(alice, five):
    response = alice.api().get(DEFINITIONS, {"sort": "color:asc"})
    assert response.status_code == 400
    assert "sort" in response.json()["detail"]


def test_the_method_filters(alice, five):
    api = alice.api()
    assert sorted(_names(api.get(DEFINITIONS, {"evaluationInfo.continuous.enabled": "true"}))
                  ) == ["a"]
    assert sorted(_names(api.get(DEFINITIONS, {"evaluationInfo.synchronous.enabled": "true"}))
                  ) == ["e"]
    assert sorted(_names(api.get(DEFINITIONS, {"evaluationInfo.batch.enabled": "false"}))
                  ) == ["a"]
    assert sorted(_names(api.get(DEFINITIONS, {"evaluationInfo.batch.enabled": "true",
                                               "evaluationInfo.synchronous.enabled": "false"}))
                  ) == ["b", "c", "d"]
    assert api.get(DEFINITIONS, {"evaluationInfo.batch.enabled": "maybe"}).status_code == 400


def test_name_search_is_case_insensitive_contains(alice, create):
    create("Recent Buyers")
    create("Lapsed buyers")
    create("Visitors")
    response = alice.api().get(DEFINITIONS, {"name": "BUYER", "sort": "name:asc"})
    assert _names(response) == ["Lapsed buyers", "Recent Buyers"]


def test_paging_walks_every_definition_once(alice, five):
    api = alice.api()
    first = api.get(DEFINITIONS, {"limit": 2, "sort": "name:asc"}).json()
    assert [s["name"] for s in first["segments"]] == ["a", "b"]
    assert first["page"] == {"totalCount": 5, "totalPages": 3, "sortField": "name",
                             "sort": "asc", "pageSize": 2, "limit": 2}
    second = api.get(first["link"]["next"]).json()
    assert [s["name"] for s in second["segments"]] == ["c", "d"]
    last = api.get(second["link"]["next"]).json()
    assert [s["name"] for s in last["segments"]] == ["e"]
    assert last["page"]["pageSize"] == 1
    assert last["link"] == {}


def test_the_page_parameter_is_a_zero_based_page_index(alice, five):
    response = alice.api().get(DEFINITIONS, {"limit": 2, "page": 1, "sort": "name:asc"})
    assert _names(response) == ["c", "d"]


def test_a_page_past_the_end_is_empty(alice, five):
    body = alice.api().get(DEFINITIONS, {"start": 50}).json()
    assert body["segments"] == []
    assert body["page"]["totalCount"] == 5 and body["page"]["pageSize"] == 0
    assert body["link"] == {}


def test_an_empty_sandbox_lists_nothing(alice):
    body = alice.api(sandbox="dev").get(DEFINITIONS).json()
    assert body["segments"] == [] and body["page"]["totalCount"] == 0
    assert body["page"]["totalPages"] == 0


def test_a_limit_over_the_maximum_is_clamped_to_100(alice, five):
    body = alice.api().get(DEFINITIONS, {"limit": 5000}).json()
    assert body["page"]["limit"] == 100
    assert len(body["segments"]) == 5


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "ten"}, {"start": -1}])
def test_bad_paging_parameters_are_refused(alice, params):
    response = alice.api().get(DEFINITIONS, params)
    assert response.status_code == 400
    assert list(params)[0] in response.json()["detail"]


def test_the_list_query_count_does_not_grow_with_the_page(alice, create,
                                                          django_assert_max_num_queries):
    for n in range(6):
        create(f"Audience {n}")
    # Auth (token, member, sandbox, token update) + count + page.
    with django_assert_max_num_queries(8):
        response = alice.api().get(DEFINITIONS)
    assert len(response.json()["segments"]) == 6


# --- Get, tenancy -------------------------------------------------------------------------------


def test_another_organizations_definition_is_not_found(alice, charlie):
    theirs = charlie.api().post(DEFINITIONS, definition_body("Globex only")).json()
    for call in (lambda api: api.get(f"{DEFINITIONS}/{theirs['id']}"),
                 lambda api: api.patch(f"{DEFINITIONS}/{theirs['id']}", {"name": "mine"}),
                 lambda api: api.delete(f"{DEFINITIONS}/{theirs['id']}")):
        response = call(alice.api())
        assert response.status_code == 404
        assert response.json()["errors"]["404"][0]["code"] == "not_found"
    assert charlie.api().get(f"{DEFINITIONS}/{theirs['id']}").json()["name"] == "Globex only"


def test_another_sandboxes_definition_is_not_found(alice, create):
    body = create("Prod only")
    assert alice.api(sandbox="dev").get(f"{DEFINITIONS}/{body['id']}").status_code == 404
    assert alice.api(sandbox="dev").get(DEFINITIONS).json()["segments"] == []


def test_a_malformed_id_is_not_found(alice):
    assert alice.api().get(f"{DEFINITIONS}/not-a-uuid").status_code == 404


def test_a_viewer_reads_but_cannot_write(victor, create):
    body = create("Read only")
    api = victor.api()
    assert api.get(f"{DEFINITIONS}/{body['id']}").status_code == 200
    for response in (api.post(DEFINITIONS, definition_body("Mine")),
                     api.patch(f"{DEFINITIONS}/{body['id']}", {"name": "Renamed"}),
                     api.delete(f"{DEFINITIONS}/{body['id']}")):
        assert response.status_code == 403
        assert response.json()["error_code"] == "403030"
    assert api.get(f"{DEFINITIONS}/{body['id']}").json()["name"] == "Read only"


def test_a_request_without_a_token_gets_401(acme):
    from tests.conftest import ApiClient

    assert ApiClient(None, acme.ims_org_id, None).get(DEFINITIONS).status_code == 401


# --- PATCH (a whole object) ---------------------------------------------------------------------


def test_patch_takes_a_whole_object_and_moves_the_update_times(bob, create, acme_prod):
    body = create("Before", streaming=True)
    whole = {**body, "name": "After", "description": "Changed",
             "expression": {"type": "PQL", "format": "pql/text",
                            "value": 'homeAddress.country = "CA"'},
             "creationTime": 0}
    response = bob.api().patch(f"{DEFINITIONS}/{body['id']}", whole)
    assert response.status_code == 200
    after = response.json()
    assert after["name"] == "After" and after["description"] == "Changed"
    assert after["expression"]["value"] == 'homeAddress.country = "CA"'
    assert after["creationTime"] == body["creationTime"]
    assert after["updateTime"] >= body["updateTime"]
    assert after["evaluationInfo"]["continuous"] == {"enabled": True}
    with sandbox_scope(acme_prod):
        history = DefinitionHistory.objects.filter(definition_uuid=body["id"]).order_by("id")
        created, updated = list(history)
        assert created.action == "created"
        assert updated.action == "updated" and updated.user.username == "bob"
        assert {"name", "description", "expression"} <= set(updated.changed_fields)
        assert updated.old_expression == 'homeAddress.country = "US"'
        assert updated.new_expression == 'homeAddress.country = "CA"'
        assert updated.old_values["name"] == "Before" and updated.new_values["name"] == "After"


def test_an_edit_that_breaks_streaming_switches_to_batch_with_the_reason(alice, create):
    body = create("Streaming", streaming=True)
    assert body["evaluationInfo"]["continuous"] == {"enabled": True}
    response = alice.api().patch(f"{DEFINITIONS}/{body['id']}", {
        "expression": {"type": "PQL", "format": "pql/text",
                       "value": 'select v from xEvent where v.web.name = "home"'}})
    after = response.json()
    assert after["evaluationInfo"]["continuous"] == {"enabled": False}
    assert after["evaluationInfo"]["batch"] == {"enabled": True}
    assert after["sift:eligibility"]["refused"]["streaming"]


def test_a_definition_that_fell_back_to_batch_stays_batch_until_streaming_is_asked_again(
        alice, create):
    body = create("Fell back", 'select v from xEvent where v.web.name = "home"', streaming=True)
    api = alice.api()
    fixed = {"expression": {"type": "PQL", "format": "pql/text",
                            "value": 'homeAddress.country = "US"'}}
    after = api.patch(f"{DEFINITIONS}/{body['id']}", fixed).json()
    assert after["evaluationInfo"]["continuous"] == {"enabled": False}
    asked = api.patch(f"{DEFINITIONS}/{body['id']}", {
        "evaluationInfo": {"continuous": {"enabled": True}}}).json()
    assert asked["evaluationInfo"]["continuous"] == {"enabled": True}


def test_a_patch_that_would_close_a_cycle_is_refused_naming_it(alice, create):
    a = create("A")
    b = create("B", f'inSegment("{a["id"]}")')
    c = create("C", f'inSegment("{b["id"]}")')
    response = alice.api().patch(f"{DEFINITIONS}/{a['id']}", {
        "expression": {"type": "PQL", "format": "pql/text", "value": f'inSegment("{c["id"]}")'}})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "segment_cycle"
    assert body["report"]["cycle"] == [a["id"], c["id"], b["id"], a["id"]]
    assert "A (" in body["detail"] and "C (" in body["detail"] and "B (" in body["detail"]
    assert alice.api().get(f"{DEFINITIONS}/{a['id']}").json()["expression"]["value"] == (
        'homeAddress.country = "US"')


def test_a_definition_cannot_reference_itself(alice, create):
    a = create("Self")
    response = alice.api().patch(f"{DEFINITIONS}/{a['id']}", {
        "expression": {"type": "PQL", "format": "pql/text", "value": f'inSegment("{a["id"]}")'}})
    assert response.status_code == 400
    assert response.json()["error_code"] == "segment_cycle"


def test_renaming_to_a_taken_name_is_refused(alice, create):
    create("Taken")
    other = create("Other")
    response = alice.api().patch(f"{DEFINITIONS}/{other['id']}", {"name": "Taken"})
    assert response.status_code == 422


def test_a_patch_with_bad_pql_changes_nothing(alice, create):
    body = create("Stable")
    response = alice.api().patch(f"{DEFINITIONS}/{body['id']}", {
        "expression": {"type": "PQL", "format": "pql/text", "value": "homeAddress.country ="}})
    assert response.status_code == 400
    assert alice.api().get(f"{DEFINITIONS}/{body['id']}").json() == body


# --- DELETE -------------------------------------------------------------------------------------


def test_delete_answers_200_and_the_definition_is_gone(alice, create, acme_prod):
    body = create("Doomed")
    response = alice.api().delete(f"{DEFINITIONS}/{body['id']}")
    assert response.status_code == 200
    assert response.json()["status"] is True
    assert alice.api().get(f"{DEFINITIONS}/{body['id']}").status_code == 404
    with sandbox_scope(acme_prod):
        actions = list(DefinitionHistory.objects.filter(definition_uuid=body["id"])
                       .order_by("id").values_list("action", flat=True))
    assert actions == ["created", "deleted"]


def test_a_definition_others_reference_cannot_be_deleted(alice, create):
    base = create("Base")
    create("Child", f'inSegment("{base["id"]}")')
    response = alice.api().delete(f"{DEFINITIONS}/{base['id']}")
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "has_dependents"
    assert "Child" in body["detail"]
    assert alice.api().get(f"{DEFINITIONS}/{base['id']}").status_code == 200


# --- bulk-get -----------------------------------------------------------------------------------


def test_bulk_get_returns_207_with_objects_and_per_id_errors(alice, create, charlie):
    one, two = create("One"), create("Two")
    theirs = charlie.api().post(DEFINITIONS, definition_body("Theirs")).json()
    missing = "00000000-0000-0000-0000-000000000001"
    response = alice.api().post(f"{DEFINITIONS}/bulk-get", {"ids": [
        {"id": one["id"]}, {"id": two["id"]}, {"id": missing}, {"id": theirs["id"]}]})
    assert response.status_code == 207
    results = response.json()["results"]
    assert results[one["id"]] == one and results[two["id"]] == two
    for absent in (missing, theirs["id"]):
        assert results[absent]["errors"]["404"][0]["code"] == "not_found"


@pytest.mark.parametrize("count", [0, 101])
def test_bulk_get_needs_one_to_a_hundred_ids(alice, count):
    ids = [{"id": f"00000000-0000-0000-0000-{n:012d}"} for n in range(count)]
    response = alice.api().post(f"{DEFINITIONS}/bulk-get", {"ids": ids})
    assert response.status_code == 400
    assert response.json()["error_code"] == "bulk_ids_invalid"


def test_bulk_get_of_only_unknown_ids_is_404(alice):
    response = alice.api().post(f"{DEFINITIONS}/bulk-get", {"ids": [{"id": "nope"}]})
    assert response.status_code == 404
    assert response.json()["error_code"] == "bulk_none_found"


# --- Conversion ---------------------------------------------------------------------------------


def test_conversion_goes_from_text_to_json_and_back(alice):
    text = 'homeAddress.country = "US"'
    response = alice.api().post("/data/core/ups/segment/conversion", {
        "name": "x", "description": "convert me",
        "expression": {"type": "PQL", "format": "pql/text", "value": text}})
    assert response.status_code == 200
    body = response.json()
    assert body["imsOrgId"] == "ACME1234@AdobeOrg" and body["description"] == "convert me"
    assert body["expression"]["format"] == "pql/json"
    tree = json.loads(body["expression"]["value"])
    assert isinstance(tree, dict)
    back = alice.api().post("/data/core/ups/segment/conversion", {
        "expression": {"type": "PQL", "format": "pql/json", "value": body["expression"]["value"]}
    }).json()
    assert back["expression"]["format"] == "pql/text"
    assert back["expression"]["value"].replace(" ", "") == text.replace(" ", "")


def test_conversion_of_bad_pql_is_a_400_with_the_position(alice):
    response = alice.api().post("/data/core/ups/segment/conversion", {
        "expression": {"type": "PQL", "format": "pql/text", "value": "a = "}})
    assert response.status_code == 400
    assert response.json()["error_code"] == "pql_syntax_error"


def test_a_definition_posted_as_pql_json_reads_back_as_pql_json(alice, create):
    text = 'homeAddress.country = "US"'
    tree = alice.api().post("/data/core/ups/segment/conversion", {
        "expression": {"type": "PQL", "format": "pql/text", "value": text}}).json()
    response = alice.api().post(DEFINITIONS, {
        "name": "From JSON", "schema": {"name": "_xdm.context.profile"},
        "expression": tree["expression"]})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["expression"]["format"] == "pql/json"
    assert json.loads(body["expression"]["value"]) == json.loads(tree["expression"]["value"])
