from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from portal.models import Member, Organization
from tests.conftest import ApiClient


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_admin_commands_set_up_an_org_a_user_and_a_working_token(db):
    assert "Created" in run("create_org", "NEWCO123@AdobeOrg")
    assert "Already exists" in run("create_org", "NEWCO123@AdobeOrg")
    assert "Created sandbox" in run("create_sandbox", "NEWCO123@AdobeOrg", "qa")
    run("create_user", "dana", "--org", "NEWCO123@AdobeOrg", "--role", "marketer",
        "--password", "pw")
    assert Member.objects.get(user__username="dana").role == "marketer"
    token = run("create_api_token", "dana", "--org", "NEWCO123@AdobeOrg").strip()
    response = ApiClient(token, "NEWCO123@AdobeOrg", "qa").get(
        "/data/foundation/sandbox-management/sandboxes/qa")
    assert response.status_code == 200
    assert response.json()["type"] == "development"


def test_commands_explain_bad_input(db):
    with pytest.raises(CommandError, match="does not exist"):
        run("create_sandbox", "MISSING@AdobeOrg", "qa")
    with pytest.raises(CommandError, match="does not exist"):
        run("create_api_token", "nobody")


def test_demo_is_idempotent(db):
    run("demo", "--no-data")
    run("demo", "--no-data")
    org = Organization.objects.get(ims_org_id="DEMO1234@AdobeOrg")
    assert [s.name for s in org.sandboxes.all()] == ["prod"]
    roles = dict(Member.objects.filter(organization=org)
                 .values_list("user__username", "role"))
    assert roles == {"admin": "admin", "marketer": "marketer"}
