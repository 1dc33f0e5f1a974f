"""The parity command: live streaming memberships against a recomputation from stored data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from audiences.models import Membership, MergePolicy
from audiences.services.parity import parity_check
from audiences.services.streaming import streaming_evaluate
from tests.factories import make_definition
from tests.services.profile_data import event, person

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CHECKOUT = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) '
            'WHEN(<= 3 hours before now)])')


@pytest.fixture
def setup(in_acme_prod):
    policy = MergePolicy.objects.get(is_default=True)
    definition = make_definition(name="Recent checkouts", expression=CHECKOUT,
                                 evaluation_continuous=True)
    return policy, definition


def test_live_memberships_that_match_the_data_have_parity(setup, acme_prod):
    policy, definition = setup
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(hours=1))
    streaming_evaluate(sandbox=acme_prod, profile_ids=[profile.pk], attribute_paths=[],
                       event_types=["commerce.checkouts"], now=NOW)
    (report,) = parity_check(now=NOW)
    assert (report.live, report.computed, report.differences) == (1, 1, [])


def test_a_lapsed_window_not_yet_swept_is_expected_lag_and_later_wrong(setup, acme_prod):
    policy, definition = setup
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(hours=1))
    streaming_evaluate(sandbox=acme_prod, profile_ids=[profile.pk], attribute_paths=[],
                       event_types=["commerce.checkouts"], now=NOW)
    lapse = Membership.objects.get(definition=definition).recheck_at
    (report,) = parity_check(now=lapse + timedelta(seconds=10))
    assert [d.kind for d in report.differences] == ["expected lag"]
    (report,) = parity_check(now=lapse + timedelta(minutes=10))  # the sweep never came
    assert [d.kind for d in report.differences] == ["wrong"]


def test_a_member_the_data_does_not_explain_is_wrong_and_the_command_fails(setup, acme_prod):
    policy, definition = setup
    profile, _ = person(policy=policy, attributes={}, at=NOW - timedelta(days=1))
    Membership.objects.create(definition=definition, profile=profile, status="realized",
                              last_qualification_time=NOW, updated_at=NOW)
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("parity", "--org", acme_prod.organization.ims_org_id, "--now",
                     NOW.isoformat(), stdout=out)
    assert exit_.value.code == 1
    assert "1 membership(s) are wrong" in out.getvalue()
    assert "live member, but the stored data does not qualify" in out.getvalue()
