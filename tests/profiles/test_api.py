"""The catalog, streaming ingestion, merge-policy and Profile Access endpoints."""

from __future__ import annotations

import json

import pytest

from audiences.models import Event, IngestionBatch, MergePolicy, ProfileFragment
from portal.scope import sandbox_scope
from tests.api.conftest import DEFINITIONS, definition_body

DATASETS = "/data/foundation/catalog/dataSets"
CONNECTIONS = "/data/foundation/flowservice/connections"
POLICIES = "/data/core/ups/config/mergePolicies"
ENTITIES = "/data/core/ups/access/entities"
PROFILE_ID = "https://ns.adobe.com/xdm/context/profile"
EVENT_ID = "https://ns.adobe.com/xdm/context/experienceevent"


def create_dataset(persona, name: str, schema_id: str) -> str:
    response = persona.api().post(DATASETS, {"name": name, "schemaRef": {"id": schema_id}})
    assert response.status_code == 201, response.json()
    reference = response.json()[0]
    assert reference.startswith("@/dataSets/")
    return reference.removeprefix("@/dataSets/")


def create_inlet(persona, *, authenticated: bool = False) -> str:
    response = persona.api().post(CONNECTIONS, {
        "name": "Web SDK", "auth": {"specName": "Streaming Connection",
                                    "params": {"authenticationRequired": authenticated}}})
    assert response.status_code == 201, response.json()
    detail = persona.api().get(f"{CONNECTIONS}/{response.json()['id']}").json()["items"][0]
    inlet = detail["auth"]["params"]["inletId"]
    assert len(inlet) == 64 and detail["auth"]["params"]["inletUrl"].endswith(inlet)
    return inlet


def message(dataset_id: str, entity: dict, *, schema_id: str = EVENT_ID,
            org: str | None = "ACME1234@AdobeOrg") -> dict:
    header = {"schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed-full+json;"
                                                             "version=1"},
              "datasetId": dataset_id}
    if org:
        header["imsOrgId"] = org
    return {"header": header, "body": {"xdmMeta": {"schemaRef": header["schemaRef"]},
                                       "xdmEntity": entity}}


def page_view(event_id: str, email: str = "a@x.com") -> dict:
    return {"_id": event_id, "timestamp": "2026-11-20T10:00:00Z",
            "eventType": "web.webpagedetails.pageViews",
            "identityMap": {"Email": [{"id": email, "primary": True}]}}


# --- Catalog -----------------------------------------------------------------------------


def test_datasets_are_created_listed_and_read_in_catalog_shape(alice):
    dataset_id = create_dataset(alice, "CRM", PROFILE_ID)
    listed = alice.api().get(DATASETS).json()
    assert list(listed) == [dataset_id]
    one = alice.api().get(f"{DATASETS}/{dataset_id}").json()[dataset_id]
    assert one["schemaRef"]["id"] == PROFILE_ID and one["imsOrg"] == "ACME1234@AdobeOrg"
    assert one["tags"]["unifiedProfile"] == ["enabled:true"]
    only = alice.api().get(f"{DATASETS}/{dataset_id}", {"properties": "name"}).json()
    assert only == {dataset_id: {"name": "CRM"}}


def test_tenant_schemas_are_classed_by_their_name_and_unknown_ones_refused(alice):
    create_dataset(alice, "Web", "https://ns.adobe.com/acme/schemas/web-experienceevent")
    response = alice.api().post(DATASETS, {"name": "Odd",
                                           "schemaRef": {"id": "https://ns.adobe.com/acme/x"}})
    assert response.status_code == 400
    assert "schemaRef.id" in response.json()["detail"]


def test_marketers_may_read_datasets_but_not_create_them(alice, bob):
    create_dataset(alice, "CRM", PROFILE_ID)
    assert bob.api().get(DATASETS).status_code == 200
    response = bob.api().post(DATASETS, {"name": "X", "schemaRef": {"id": PROFILE_ID}})
    assert response.status_code == 403


def test_datasets_of_another_organization_are_invisible(alice, charlie):
    dataset_id = create_dataset(alice, "CRM", PROFILE_ID)
    assert charlie.api().get(DATASETS).json() == {}
    assert charlie.api().get(f"{DATASETS}/{dataset_id}").status_code == 404


# --- Streaming ingestion -----------------------------------------------------------------


def test_one_message_is_stored_and_answered_with_a_transaction_id(alice, client):
    dataset_id = create_dataset(alice, "Web", EVENT_ID)
    inlet = create_inlet(alice)
    response = client.post(f"/collection/{inlet}?syncValidation=true",
                           message(dataset_id, page_view("e1")), content_type="application/json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["inletId"] == inlet and body["syncValidation"] == {"status": "pass"}
    assert body["xactionId"].startswith(str(body["receivedTimeMs"]))
    with sandbox_scope(alice.org.sandboxes.get(name="prod")):
        assert Event.objects.get().event_id == "e1"


def test_sync_validation_reports_an_invalid_record_with_a_400(alice, client):
    dataset_id = create_dataset(alice, "Web", EVENT_ID)
    inlet = create_inlet(alice)
    bad = {**page_view("e1"), "timestamp": "soon"}
    response = client.post(f"/collection/{inlet}?synchronousValidation=true",
                           message(dataset_id, bad), content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid XDM Message Format"
    cause = body["report"]["cause"]["_streamingValidation"][0]["causingExceptions"][0]
    assert "timestamp" in cause["message"]
    # Without the flag the record fails asynchronously: 200, and the failed batch keeps it.
    response = client.post(f"/collection/{inlet}", message(dataset_id, bad),
                           content_type="application/json")
    assert response.status_code == 200
    assert response.json()["syncValidation"] == {"skipped": True}
    with sandbox_scope(alice.org.sandboxes.get(name="prod")):
        assert not Event.objects.exists()
        assert IngestionBatch.objects.filter(rejected=1).count() == 2


def test_the_batch_endpoint_answers_207_with_one_response_per_message_in_order(alice, client):
    dataset_id = create_dataset(alice, "Web", EVENT_ID)
    crm_id = create_dataset(alice, "CRM", PROFILE_ID)
    inlet = create_inlet(alice)
    messages = [
        message(dataset_id, page_view("e1")),
        {"header": {"datasetId": dataset_id}},
        message(dataset_id, page_view("e2"), org="OTHER@AdobeOrg"),
        message(crm_id, {"identityMap": {"Email": [{"id": "a@x.com"}]},
                         "person": {"gender": "female"}}, schema_id=PROFILE_ID),
        message(dataset_id, {**page_view("e3"), "_id": ""}),
        message(dataset_id, page_view("e4"), schema_id=PROFILE_ID),
    ]
    response = client.post(f"/collection/batch/{inlet}", {"messages": messages},
                           content_type="application/json")
    assert response.status_code == 207
    answers = response.json()["responses"]
    assert len(answers) == 6
    batch_id = response.json()["batchId"]
    assert answers[0] == {"xactionId": f"{batch_id}:0"}
    assert answers[1]["statusCode"] == 400 and "unknown xdm format" in answers[1]["message"]
    assert "wrong ims org" in answers[2]["message"]
    assert answers[3] == {"xactionId": f"{batch_id}:3"}
    assert "_id" in answers[4]["message"]
    assert "schemaRef" in answers[5]["message"]
    with sandbox_scope(alice.org.sandboxes.get(name="prod")):
        assert list(Event.objects.values_list("event_id", flat=True)) == ["e1"]
        assert ProfileFragment.objects.count() == 1


def test_a_body_over_one_megabyte_is_refused_with_413(alice, client):
    dataset_id = create_dataset(alice, "Web", EVENT_ID)
    inlet = create_inlet(alice)
    big = {**page_view("e1"), "padding": "x" * (1024 * 1024)}
    for path in (f"/collection/{inlet}", f"/collection/batch/{inlet}"):
        body = message(dataset_id, big) if "batch" not in path else {
            "messages": [message(dataset_id, big)]}
        response = client.post(path, json.dumps(body), content_type="application/json")
        assert response.status_code == 413


def test_an_authenticated_inlet_wants_a_token_of_its_organization(alice, charlie, client):
    dataset_id = create_dataset(alice, "Web", EVENT_ID)
    inlet = create_inlet(alice, authenticated=True)
    body = message(dataset_id, page_view("e1"))
    assert client.post(f"/collection/{inlet}", body,
                       content_type="application/json").status_code == 401
    wrong = client.post(f"/collection/{inlet}", body, content_type="application/json",
                        headers={"Authorization": f"Bearer {charlie.token}"})
    assert wrong.status_code == 403
    right = client.post(f"/collection/{inlet}", body, content_type="application/json",
                        headers={"Authorization": f"Bearer {alice.token}"})
    assert right.status_code == 200


def test_an_unknown_inlet_is_404(db, client):
    response = client.post("/collection/" + "0" * 64, {}, content_type="application/json")
    assert response.status_code == 404


# --- Merge policies ------------------------------------------------------------------------


def test_merge_policies_are_created_listed_patched_and_deleted(alice):
    crm = create_dataset(alice, "CRM", PROFILE_ID)
    api = alice.api()
    created = api.post(POLICIES, {"name": "CRM first", "identityGraph": {"type": "none"},
                                  "attributeMerge": {"type": "dataSetPrecedence",
                                                     "order": [crm]},
                                  "schema": {"name": "_xdm.context.profile"}})
    assert created.status_code == 200, created.json()
    policy = created.json()
    assert policy["attributeMerge"] == {"type": "dataSetPrecedence", "order": [crm]}
    assert policy["default"] is False and policy["version"] == 1
    listed = api.get(POLICIES, {"limit": 1}).json()
    assert listed["_page"] == {"totalCount": 2, "pageSize": 1}
    assert listed["_links"]["next"]["href"].startswith("@/mergePolicies?")
    patched = api.patch(f"{POLICIES}/{policy['id']}",
                        {"op": "add", "path": "/default", "value": "true"}).json()
    assert patched["default"] is True and patched["version"] == 2
    defaults = api.get(POLICIES, {"default": "true"}).json()["children"]
    assert [p["id"] for p in defaults] == [policy["id"]]
    refused = api.delete(f"{POLICIES}/{policy['id']}")
    assert refused.status_code == 409
    other = [p for p in api.get(POLICIES).json()["children"] if p["id"] != policy["id"]][0]
    api.patch(f"{POLICIES}/{other['id']}", {"op": "add", "path": "/isActiveOnEdge",
                                            "value": False})
    assert api.delete(f"{POLICIES}/{other['id']}").status_code == 200
    assert api.get(f"{POLICIES}/{other['id']}").status_code == 404


def test_the_merge_policy_limit_and_validation_errors(alice, settings):
    settings.SIFT_MAX_MERGE_POLICIES = 2
    api = alice.api()
    missing_order = api.post(POLICIES, {"name": "P", "attributeMerge": {
        "type": "dataSetPrecedence"}})
    assert missing_order.status_code == 400
    assert "attributeMerge.order" in missing_order.json()["detail"]
    assert api.post(POLICIES, {"name": "Second"}).status_code == 200
    over = api.post(POLICIES, {"name": "Third"})
    assert over.status_code == 422 and over.json()["error_code"] == "limit_exceeded"


def test_a_policy_used_by_a_definition_cannot_be_deleted(alice):
    api = alice.api()
    policy = api.post(POLICIES, {"name": "Used"}).json()
    response = api.post(DEFINITIONS, definition_body("Uses it", mergePolicyId=policy["id"]))
    assert response.status_code == 200, response.json()
    refused = api.delete(f"{POLICIES}/{policy['id']}")
    assert refused.status_code == 409
    assert refused.json()["error_code"] == "merge_policy_in_use"


def test_marketers_cannot_write_merge_policies(bob, alice):
    assert bob.api().get(POLICIES).status_code == 200
    assert bob.api().post(POLICIES, {"name": "Mine"}).status_code == 403
    policy_id = alice.api().get(POLICIES).json()["children"][0]["id"]
    assert bob.api().patch(f"{POLICIES}/{policy_id}",
                           {"op": "add", "path": "/name", "value": "x"}).status_code == 403


def test_merge_policies_of_another_organization_are_not_found(alice, charlie):
    policy_id = alice.api().get(POLICIES).json()["children"][0]["id"]
    assert charlie.api().get(f"{POLICIES}/{policy_id}").status_code == 404
    assert charlie.api().delete(f"{POLICIES}/{policy_id}").status_code == 404


# --- Profile Access ----------------------------------------------------------------------


@pytest.fixture
def stored(alice, client):
    """Alice's sandbox with one person (CRM record + two events) sent through an inlet."""
    web = create_dataset(alice, "Web", EVENT_ID)
    crm = create_dataset(alice, "CRM", PROFILE_ID)
    inlet = create_inlet(alice)
    person = {"identityMap": {"CRMID": [{"id": "c1", "primary": True}],
                              "Email": [{"id": "a@x.com"}]},
              "person": {"name": {"firstName": "Ann"}}, "homeAddress": {"city": "Paris"}}
    messages = [message(crm, person, schema_id=PROFILE_ID), message(web, page_view("e1")),
                message(web, {**page_view("e2"), "timestamp": "2026-11-20T11:00:00Z"})]
    response = client.post(f"/collection/batch/{inlet}", {"messages": messages},
                           content_type="application/json")
    assert all("xactionId" in r for r in response.json()["responses"])
    return {"web": web, "crm": crm}


def test_a_profile_is_read_by_identity_in_aep_shape(alice, stored):
    response = alice.api().get(ENTITIES, {"schema.name": "_xdm.context.profile",
                                          "entityId": "a@x.com", "entityIdNS": "email"})
    assert response.status_code == 200
    (key, entry), = response.json().items()
    assert entry["entityId"] == key
    assert entry["entity"]["person"]["name"]["firstName"] == "Ann"
    assert set(entry["entity"]["identityMap"]) == {"CRMID", "Email"}
    assert entry["sources"] == [stored["crm"]] and len(entry["identityGraph"]) == 2
    picked = alice.api().get(ENTITIES, {"schema.name": "_xdm.context.profile",
                                        "entityId": key, "fields": "homeAddress,identities"})
    entity = picked.json()[key]["entity"]
    assert entity["homeAddress"] == {"city": "Paris"} and "person" not in entity
    assert {i["namespace"]["code"] for i in entity["identities"]} == {"CRMID", "Email"}
    unknown = alice.api().get(ENTITIES, {"schema.name": "_xdm.context.profile",
                                         "entityId": "nobody", "entityIdNS": "Email"})
    assert unknown.status_code == 200 and unknown.json() == {}


def test_a_profiles_events_are_paged_with_a_cursor(alice, stored):
    params = {"schema.name": "_xdm.context.experienceevent",
              "relatedSchema.name": "_xdm.context.profile", "relatedEntityId": "c1",
              "relatedEntityIdNS": "CRMID", "limit": 1}
    first = alice.api().get(ENTITIES, params).json()
    assert [c["entityId"] for c in first["children"]] == ["e1"]
    assert first["_page"]["next"] == "e2"
    href = first["_links"]["next"]["href"]
    assert href.startswith("/entities?")
    second = alice.api().get("/data/core/ups/access" + href).json()
    assert [c["entityId"] for c in second["children"]] == ["e2"]
    assert second["_page"]["next"] == "" and second["_links"]["next"]["href"] == ""
    newest = alice.api().get(ENTITIES, {**params, "orderby": "-timestamp"}).json()
    assert newest["children"][0]["entityId"] == "e2"


def test_profiles_are_read_in_bulk_with_placeholders_for_unknown_identities(alice, stored):
    response = alice.api().post(ENTITIES, {
        "schema": {"name": "_xdm.context.profile"},
        "identities": [{"entityId": "c1", "entityIdNS": {"code": "CRMID"}},
                       {"entityId": "ghost", "entityIdNS": {"code": "CRMID"}}]})
    assert response.status_code == 200
    entries = list(response.json().values())
    assert entries[0]["entity"]["homeAddress"]["city"] == "Paris"
    assert entries[1]["entity"] == {} and entries[1]["lastModifiedAt"] == "1970-01-01T00:00:00Z"


def test_profile_access_is_isolated_per_organization(alice, charlie, stored):
    response = charlie.api().get(ENTITIES, {"schema.name": "_xdm.context.profile",
                                            "entityId": "c1", "entityIdNS": "CRMID"})
    assert response.json() == {}


def test_a_graph_over_the_identity_limit_is_refused_with_422(alice, stored, settings):
    settings.SIFT_MAX_GRAPH_IDENTITIES = 1
    with sandbox_scope(alice.org.sandboxes.get(name="prod")):
        from django.utils import timezone

        from audiences.models import Dataset
        from audiences.services.ingest import ingest_records

        ingest_records(dataset=Dataset.objects.get(name="CRM"), records=[
            {"identityMap": {"CRMID": [{"id": "c1", "primary": True}]}}],
            now=timezone.now(), source="import")
        assert MergePolicy.objects.get(is_default=True).profiles.get().excluded
    response = alice.api().get(ENTITIES, {"schema.name": "_xdm.context.profile",
                                          "entityId": "c1", "entityIdNS": "CRMID"})
    assert response.status_code == 422
    assert response.json()["detail"] == "Too many related identities"


def test_nul_characters_are_refused_with_400_not_a_server_error(alice, stored):
    api = alice.api()
    policy_id = api.get(POLICIES).json()["children"][0]["id"]
    assert api.patch(f"{POLICIES}/{policy_id}", {"op": "add", "path": "/name",
                                                 "value": "a\x00b"}).status_code == 400
    assert api.post(ENTITIES, {"schema": {"name": "_xdm.context.profile"},
                               "identities": [{"entityId": "a\x00", "entityIdNS": "Email"}]}
                    ).status_code == 400
    assert api.get(f"{DATASETS}/ab\x00").status_code == 404


def test_a_profile_carries_its_segment_membership(alice, stored):
    from django.utils import timezone

    from audiences.models import Profile
    from audiences.services.memberships import membership_apply

    response = alice.api().post(DEFINITIONS, definition_body("Parisians",
                                                             'homeAddress.city = "Paris"'))
    definition_id = response.json()["id"]
    with sandbox_scope(alice.org.sandboxes.get(name="prod")):
        from audiences.models import SegmentDefinition

        membership_apply(definition=SegmentDefinition.objects.get(pk=definition_id),
                         results={Profile.objects.get().pk: True}, at=timezone.now(),
                         source="batch")
    entry = next(iter(alice.api().get(ENTITIES, {"schema.name": "_xdm.context.profile",
                                                 "entityId": "c1",
                                                 "entityIdNS": "CRMID"}).json().values()))
    membership = entry["entity"]["segmentMembership"]["ups"][definition_id]
    assert membership["status"] == "realized"
    assert membership["lastQualificationTime"].endswith("Z")


def test_events_of_several_profiles_are_read_by_post_with_a_next_payload(alice, stored):
    body = {"schema": {"name": "_xdm.context.experienceevent"},
            "relatedSchema": {"name": "_xdm.context.profile"},
            "identities": [{"relatedEntityId": "a@x.com", "relatedEntityIdNS": {"code": "Email"}}],
            "limit": 1}
    first = alice.api().post(ENTITIES, body).json()
    (page,) = first.values()
    assert [c["entityId"] for c in page["children"]] == ["e1"]
    payload = page["_links"]["next"]["payload"]
    assert payload["identities"][0]["start"] == "e2"
    (second,) = alice.api().post(ENTITIES, payload).json().values()
    assert [c["entityId"] for c in second["children"]] == ["e2"]
    assert second["_links"]["next"] == {"href": ""}


def test_the_dataset_list_filters_by_tags_and_pages(alice):
    enabled = create_dataset(alice, "CRM", PROFILE_ID)
    response = alice.api().post(DATASETS, {"name": "Lake only", "schemaRef": {"id": EVENT_ID},
                                           "tags": {"unifiedProfile": ["enabled:false"],
                                                    "team": ["web"]}})
    lake = response.json()[0].removeprefix("@/dataSets/")
    api = alice.api()
    assert list(api.get(DATASETS, {"tags": "unifiedProfile:enabled:true"}).json()) == [enabled]
    assert list(api.get(DATASETS, {"tags": "team:*"}).json()) == [lake]
    assert list(api.get(DATASETS, {"limit": 1, "start": 1}).json()) == [lake]
    assert api.get(DATASETS, {"limit": 0}).status_code == 400
