"""`/data/core/ups/audiences`: the audience object over the same rows as the definitions."""

from __future__ import annotations

import pytest

from tests.api.conftest import AUDIENCES, DEFINITIONS

PLATFORM_BODY = {  # api/audiences.md "Create a new audience", Platform-generated
    "name": "People who ordered in the last 30 days",
    "profileInstanceId": "ups",
    "description": "Last 30 days",
    "type": "SegmentDefinition",
    "expression": {"type": "PQL", "format": "pql/text", "value": 'workAddress.country = "US"'},
    "schema": {"name": "_xdm.context.profile"},
    "labels": ["core/C1"],
    "ttlInDays": 60,
}
EXTERNAL_BODY = {  # the same page, externally generated
    "audienceId": "test-external-audience-id",
    "name": "externalAudience",
    "namespace": "aam",
    "description": "Last 30 days",
    "type": "ExternalSegment",
    "originName": "CUSTOM_UPLOAD",
    "lifecycleState": "published",
    "datasetId": "6254cf3c97f8e31b639fb14d",
    "labels": ["core/C1"],
    "linkedAudienceRef": {"flowId": "4685ea90-d2b6-11ec-9d64-0242ac120002"},
}


@pytest.fixture
def audience(alice):
    def _create(**overrides) -> dict:
        response = alice.api().post(AUDIENCES, {**PLATFORM_BODY, **overrides})
        assert response.status_code == 201, response.json()
        return response.json()
    return _create


def test_a_platform_audience_is_created_with_the_documented_fields(audience):
    body = audience()
    assert body["audienceId"] == body["id"]
    assert body["type"] == "SegmentDefinition"
    assert body["originName"] == "REAL_TIME_CUSTOMER_PROFILE"
    assert body["namespace"] == "AEPSegments"
    assert body["lifecycleState"] == "published"
    assert body["labels"] == ["core/C1"] and body["ttlInDays"] == 60
    assert body["dependents"] == [] and body["dependencies"] == []
    assert body["createdBy"] == "alice"
    assert body["createEpoch"] * 1000 <= body["creationTime"]
    assert body["_etag"].startswith('"') and body["_etag"].endswith('"')
    assert body["definedOn"][0]["$ref"] == "https://ns.adobe.com/xdm/context/profile__union"
    assert body["evaluationInfo"]["batch"] == {"enabled": True}


def test_an_audience_is_also_a_segment_definition(alice, audience):
    body = audience()
    definition = alice.api().get(f"{DEFINITIONS}/{body['id']}").json()
    assert definition["name"] == body["name"]
    assert definition["expression"] == body["expression"]


def test_an_external_audience_keeps_its_client_id_and_references(alice):
    response = alice.api().post(AUDIENCES, EXTERNAL_BODY)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["audienceId"] == "test-external-audience-id" and body["id"] != body["audienceId"]
    assert body["type"] == "ExternalSegment" and body["originName"] == "CUSTOM_UPLOAD"
    assert body["namespace"] == "aam"
    assert body["datasetId"] == "6254cf3c97f8e31b639fb14d"
    assert body["linkedAudienceRef"] == {"flowId": "4685ea90-d2b6-11ec-9d64-0242ac120002"}
    assert "expression" not in body
    # External audiences are not PQL definitions.
    assert alice.api().get(f"{DEFINITIONS}/{body['id']}").status_code == 404


@pytest.mark.parametrize("state", ["archived", "deleted"])
def test_an_audience_cannot_be_created_deleted(alice, state):
    response = alice.api().post(AUDIENCES, {**PLATFORM_BODY, "lifecycleState": state})
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_lifecycle_state"


def test_a_platform_audience_needs_an_expression(alice):
    body = {k: v for k, v in PLATFORM_BODY.items() if k != "expression"}
    response = alice.api().post(AUDIENCES, body)
    assert response.status_code == 400
    assert "expression" in response.json()["detail"]


# --- List -----------------------------------------------------------------------------------


@pytest.fixture
def three(audience, alice):
    out = [audience(name="Alpha buyers", description="First"),
           audience(name="Beta", description="Second buyers"),
           audience(name="Gamma", description="Third")]
    external = alice.api().post(AUDIENCES, EXTERNAL_BODY).json()
    return [*out, external]


def test_the_list_envelope_and_its_last_page(alice, three):
    body = alice.api().get(AUDIENCES).json()
    assert set(body) == {"children", "_page", "_links"}
    assert len(body["children"]) == 4
    assert body["_page"] == {"totalCount": 4, "totalPages": 1, "sortField": "creationTime",
                             "sort": "desc", "pageSize": 4, "limit": 100, "start": 0, "next": 0}
    assert body["_links"]["next"]["href"] == ""


def test_paging_follows_next_until_it_is_zero(alice, three):
    api = alice.api()
    seen, start, pages = [], 0, 0
    while True:
        body = api.get(AUDIENCES, {"start": start, "limit": 3, "sort": "name:asc"}).json()
        seen += [c["name"] for c in body["children"]]
        pages += 1
        if not body["_page"]["next"]:
            assert body["_links"]["next"]["href"] == ""
            break
        assert body["_links"]["next"]["href"] == (
            f"@/audiences?sort=name%3Aasc&start={body['_page']['next']}&limit=3&totalCount=4")
        start = body["_page"]["next"]
    assert pages == 2
    assert seen == ["Alpha buyers", "Beta", "Gamma", "externalAudience"]


def test_the_list_filters_by_name_description_and_property(alice, three):
    api = alice.api()

    def names(params):
        return sorted(c["name"] for c in api.get(AUDIENCES, params).json()["children"])

    assert names({"name": "ALPHA"}) == ["Alpha buyers"]
    assert names({"description": "buyers"}) == ["Beta"]
    assert names({"property": "audienceId==test-external-audience-id"}) == ["externalAudience"]
    assert names({"property": f"audienceId=={three[1]['id']}"}) == ["Beta"]
    assert names({"property": ["type==SegmentDefinition", "lifecycleState==published"]}) == [
        "Alpha buyers", "Beta", "Gamma"]
    bad = api.get(AUDIENCES, {"property": "color==red"})
    assert bad.status_code == 400 and "property" in bad.json()["detail"]


def test_the_list_sorts(alice, three):
    body = alice.api().get(AUDIENCES, {"sort": "name:desc"}).json()
    assert [c["name"] for c in body["children"]][:3] == ["externalAudience", "Gamma", "Beta"]
    assert body["_page"]["sortField"] == "name" and body["_page"]["sort"] == "desc"


def test_a_limit_over_the_maximum_is_clamped(alice, three):
    assert alice.api().get(AUDIENCES, {"limit": 1000}).json()["_page"]["limit"] == 100


def test_the_list_query_count_is_fixed(alice, three, django_assert_max_num_queries):
    # Auth (4) + count + page + dependents + dependencies.
    with django_assert_max_num_queries(9):
        assert len(alice.api().get(AUDIENCES).json()["children"]) == 4


# --- Get, PUT, PATCH ------------------------------------------------------------------------


def test_get_and_cross_organization_404(alice, charlie, audience):
    body = audience()
    assert alice.api().get(f"{AUDIENCES}/{body['id']}").json() == body
    response = charlie.api().get(f"{AUDIENCES}/{body['id']}")
    assert response.status_code == 404
    assert "is not found" in response.json()["detail"]


def test_patch_with_op_add_changes_the_expression(alice, audience):
    body = audience()
    response = alice.api().patch(f"{AUDIENCES}/{body['id']}", [
        {"op": "add", "path": "/expression",
         "value": {"type": "PQL", "format": "pql/text", "value": 'workAddress.country = "CA"'}}])
    assert response.status_code == 200, response.json()
    after = response.json()
    assert after["expression"]["value"] == 'workAddress.country = "CA"'
    assert after["name"] == body["name"]
    assert after["_etag"] != body["_etag"]


def test_patch_paths_reach_inside_objects_and_lists(alice, audience):
    body = audience()
    after = alice.api().patch(f"{AUDIENCES}/{body['id']}", [
        {"op": "add", "path": "/labels/-", "value": "core/C2"},
        {"op": "add", "path": "/description", "value": "Updated"},
        {"op": "add", "path": "/evaluationInfo/continuous/enabled", "value": True},
    ]).json()
    assert after["labels"] == ["core/C1", "core/C2"]
    assert after["description"] == "Updated"
    assert after["evaluationInfo"]["continuous"] == {"enabled": True}


@pytest.mark.parametrize("operation, code", [
    ({"op": "add", "path": "/namespace", "value": "AAM"}, "immutable_field"),
    ({"op": "add", "path": "/lifecycleState", "value": "deleted"}, "invalid_lifecycle_state"),
    ({"op": "add", "path": "/creationTime", "value": 0}, "invalid"),
    ({"op": "remove", "path": "/name"}, "invalid"),
    ({"op": "add", "path": "/expression/value", "value": "a ="}, "pql_syntax_error"),
])
def test_patch_refuses_what_it_cannot_do(alice, audience, operation, code):
    body = audience()
    response = alice.api().patch(f"{AUDIENCES}/{body['id']}", [operation])
    assert response.status_code == 400
    assert response.json()["error_code"] == code
    assert alice.api().get(f"{AUDIENCES}/{body['id']}").json() == body


def test_put_replaces_the_audience(alice, audience):
    body = audience()
    response = alice.api().put(f"{AUDIENCES}/{body['id']}", {
        "name": "Replaced", "type": "SegmentDefinition",
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.city = "Oslo"'},
        "schema": {"name": "_xdm.context.profile"}})
    assert response.status_code == 200, response.json()
    after = response.json()
    assert after["name"] == "Replaced"
    assert after["description"] == "" and after["labels"] == []
    assert after["expression"]["value"] == 'homeAddress.city = "Oslo"'


def test_put_of_an_external_audience_refuses_a_new_namespace(alice):
    body = alice.api().post(AUDIENCES, EXTERNAL_BODY).json()
    response = alice.api().put(f"{AUDIENCES}/{body['id']}", {**EXTERNAL_BODY, "namespace": "AO"})
    assert response.status_code == 400
    assert response.json()["detail"] == "Namespace is immutable field."
    renamed = alice.api().put(f"{AUDIENCES}/{body['id']}",
                              {**EXTERNAL_BODY, "name": "New external audience"}).json()
    assert renamed["name"] == "New external audience"
    assert renamed["datasetId"] == EXTERNAL_BODY["datasetId"]


def test_a_viewer_cannot_write_audiences(victor, audience):
    body = audience()
    api = victor.api()
    assert api.post(AUDIENCES, PLATFORM_BODY).status_code == 403
    assert api.put(f"{AUDIENCES}/{body['id']}", PLATFORM_BODY).status_code == 403
    assert api.patch(f"{AUDIENCES}/{body['id']}", [
        {"op": "add", "path": "/name", "value": "x"}]).status_code == 403
    assert api.delete(f"{AUDIENCES}/{body['id']}").status_code == 403


# --- Lifecycle, dependents, delete ----------------------------------------------------------


def _in_segment(audience_id: str) -> dict:
    return {"type": "PQL", "format": "pql/text", "value": f'inSegment("{audience_id}")'}


def test_dependents_and_dependencies_point_both_ways(alice, audience):
    parent = audience(name="Parent")
    child = audience(name="Child", expression=_in_segment(parent["id"]))
    assert child["dependencies"] == [parent["id"]]
    assert alice.api().get(f"{AUDIENCES}/{parent['id']}").json()["dependents"] == [child["id"]]


def test_delete_answers_204_unless_others_depend_on_it(alice, audience):
    parent = audience(name="Parent")
    child = audience(name="Child", expression=_in_segment(parent["id"]))
    refused = alice.api().delete(f"{AUDIENCES}/{parent['id']}")
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "has_dependents"
    assert f"Child ({child['id']})" in refused.json()["detail"]
    assert alice.api().delete(f"{AUDIENCES}/{child['id']}").status_code == 204
    assert alice.api().delete(f"{AUDIENCES}/{parent['id']}").status_code == 204
    assert alice.api().get(f"{AUDIENCES}/{parent['id']}").status_code == 404


def test_deactivating_an_audience_in_use_is_refused_naming_the_user(alice, audience):
    parent = audience(name="Parent")
    audience(name="Child", expression=_in_segment(parent["id"]))
    response = alice.api().patch(f"{AUDIENCES}/{parent['id']}", [
        {"op": "add", "path": "/lifecycleState", "value": "inactive"}])
    assert response.status_code == 400
    assert response.json()["error_code"] == "has_dependents"
    assert "Child" in response.json()["detail"]


def test_publishing_needs_the_referenced_audiences_published(alice, audience):
    draft = audience(name="Draft parent", lifecycleState="draft")
    response = alice.api().post(AUDIENCES, {**PLATFORM_BODY, "name": "Child",
                                            "expression": _in_segment(draft["id"])})
    assert response.status_code == 400
    assert "Draft parent" in response.json()["detail"]
    child = audience(name="Child", lifecycleState="draft", expression=_in_segment(draft["id"]))
    publish = [{"op": "add", "path": "/lifecycleState", "value": "published"}]
    assert alice.api().patch(f"{AUDIENCES}/{child['id']}", publish).status_code == 400
    assert alice.api().patch(f"{AUDIENCES}/{draft['id']}", publish).status_code == 200
    assert alice.api().patch(f"{AUDIENCES}/{child['id']}", publish).json()[
        "lifecycleState"] == "published"


def test_a_published_audience_never_goes_back_to_draft(alice, audience):
    body = audience()
    response = alice.api().patch(f"{AUDIENCES}/{body['id']}", [
        {"op": "add", "path": "/lifecycleState", "value": "draft"}])
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_lifecycle_state"


def test_an_inactive_audience_cannot_be_referenced(alice, audience):
    parent = audience(name="Parent")
    alice.api().patch(f"{AUDIENCES}/{parent['id']}", [
        {"op": "add", "path": "/lifecycleState", "value": "inactive"}])
    response = alice.api().post(AUDIENCES, {**PLATFORM_BODY, "name": "Child",
                                            "expression": _in_segment(parent["id"])})
    assert response.status_code == 400
    assert response.json()["error_code"] == "segment_reference_inactive"


# --- bulk-get -------------------------------------------------------------------------------


def test_audience_bulk_get(alice, audience):
    one = audience(name="One")
    external = alice.api().post(AUDIENCES, EXTERNAL_BODY).json()
    response = alice.api().post(f"{AUDIENCES}/bulk-get", {"ids": [
        {"id": one["id"]}, {"id": external["id"]},
        {"id": "QU9fLTEzOTgzNTE0MzY0NzY0NDg5NzkyOTkx_6ed34f6f-fe21-4a30-934f-6ffe21fa3075"}]})
    assert response.status_code == 207
    results = response.json()["results"]
    assert results[one["id"]]["name"] == "One"
    assert results[external["id"]]["audienceId"] == "test-external-audience-id"
    assert "errors" in results[
        "QU9fLTEzOTgzNTE0MzY0NzY0NDg5NzkyOTkx_6ed34f6f-fe21-4a30-934f-6ffe21fa3075"]
    assert alice.api().post(f"{AUDIENCES}/bulk-get", {"ids": []}).status_code == 400
