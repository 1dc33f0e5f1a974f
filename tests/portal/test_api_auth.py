"""Authentication, organization and sandbox headers, roles — against a real endpoint."""

from portal.models import ApiToken
from tests.conftest import ApiClient

SANDBOXES = "/data/foundation/sandbox-management/sandboxes"


def test_a_request_without_a_token_gets_401_in_the_error_shape(acme):
    response = ApiClient(None, acme.ims_org_id, None).get(SANDBOXES)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == 401
    assert body["error_code"] == "401010"
    assert body["errors"]["401"][0]["code"] == "401010"
    assert body["requestId"]


def test_an_invalid_token_gets_401(acme):
    response = ApiClient("sift_not-a-token", acme.ims_org_id, None).get(SANDBOXES)
    assert response.status_code == 401
    assert response.json()["error_code"] == "401013"


def test_another_organizations_header_gets_403(alice, charlie):
    response = alice.api(org=charlie.org.ims_org_id).get(SANDBOXES)
    assert response.status_code == 403
    assert response.json()["error_code"] == "403025"


def test_an_unknown_sandbox_gets_404(alice):
    response = alice.api(sandbox="nope").get(SANDBOXES + "/prod")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_the_default_sandbox_is_used_when_the_header_is_absent(alice):
    response = alice.api().get(SANDBOXES)
    assert response.status_code == 200
    names = {s["name"]: s for s in response.json()["sandboxes"]}
    assert set(names) == {"prod", "dev"}
    assert names["prod"]["isDefault"] is True


def test_the_api_key_is_recorded(alice):
    alice.api().get(SANDBOXES)
    token = ApiToken.objects.get(user__username="alice")
    assert token.last_api_key == "test-client"
    assert token.last_used_at is not None


def test_a_viewer_cannot_write(victor):
    response = victor.api().post(SANDBOXES, {"name": "staging"})
    assert response.status_code == 403
    assert response.json()["error_code"] == "403030"


def test_a_marketer_cannot_create_sandboxes_but_an_admin_can(bob, alice):
    assert bob.api().post(SANDBOXES, {"name": "staging"}).status_code == 403
    response = alice.api().post(SANDBOXES, {"name": "staging", "type": "development"})
    assert response.status_code == 201
    assert response.json()["name"] == "staging"


def test_bad_input_names_the_field(alice):
    response = alice.api().post(SANDBOXES, {"name": "has spaces"})
    assert response.status_code == 400
    assert "name" in response.json()["detail"]


def test_unknown_api_paths_answer_json_404(alice):
    response = alice.api().get("/data/core/ups/no-such-thing")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_organizations_sharing_a_sandbox_name_see_only_their_own(alice, charlie):
    acme_ids = {s["id"] for s in alice.api(sandbox="prod").get(SANDBOXES).json()["sandboxes"]}
    globex_ids = {s["id"] for s in charlie.api(sandbox="prod").get(SANDBOXES).json()["sandboxes"]}
    assert acme_ids and globex_ids and not acme_ids & globex_ids


def test_last_used_is_written_at_most_once_a_minute(alice):
    from datetime import timedelta

    alice.api().get(SANDBOXES)
    first = ApiToken.objects.get(user__username="alice").last_used_at
    alice.api().get(SANDBOXES)
    assert ApiToken.objects.get(user__username="alice").last_used_at == first
    ApiToken.objects.filter(user__username="alice").update(last_used_at=first - timedelta(
        minutes=2))
    alice.api().get(SANDBOXES)
    assert ApiToken.objects.get(user__username="alice").last_used_at > first
