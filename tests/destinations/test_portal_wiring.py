"""The Audience Portal shows where each audience goes: the details card and the list filter."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from audiences.models import Activation, Destination
from portal.scope import sandbox_scope
from tests.factories import make_definition


def test_details_show_the_activated_destinations_and_the_list_filters_by_them(bob, acme_prod):
    with sandbox_scope(acme_prod):
        sent = make_definition(name="Sent to CRM")
        make_definition(name="Kept here")
        now = timezone.now()
        destination = Destination.objects.create(name="CRM webhook", kind="webhook",
                                                 url="http://127.0.0.1:9/hook", created_at=now,
                                                 updated_at=now)
        Activation.objects.create(destination=destination, definition=sent, namespace="Email",
                                  created_at=now)
    web = bob.web()
    details = web.get(reverse("audiences:detail", args=[sent.pk])).content.decode()
    assert "Activated destinations" in details and "CRM webhook" in details
    listing = web.get(reverse("audiences:browse"), {"has_destination": "true"}).content.decode()
    assert "Sent to CRM" in listing and "Kept here" not in listing
    listing = web.get(reverse("audiences:browse"), {"has_destination": "false"}).content.decode()
    assert "Kept here" in listing and "Sent to CRM" not in listing
