"""`python manage.py simulate --rate 20`: stream live events into the demo sandbox.

Events go through the real ingestion path (the same service as `POST /collection/...`), so
streaming audiences qualify and exit while you watch. Stops on Ctrl-C / SIGTERM, or after
`--seconds`.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError

from audiences.models import Dataset, Identity
from audiences.services import demo_data
from portal.models import Sandbox
from portal.scope import sandbox_scope

DEMO_ORG = "DEMO1234@AdobeOrg"


class Command(BaseCommand):
    help = "Stream live demo events through the ingestion path at a fixed rate."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=20.0, help="events per second")
        parser.add_argument("--seconds", type=float, default=0,
                            help="stop after this long (0: until interrupted)")
        parser.add_argument("--org", default=DEMO_ORG)
        parser.add_argument("--sandbox", default="prod")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **opts):
        if opts["rate"] <= 0:
            raise CommandError("--rate must be positive")
        sandbox = Sandbox.objects.filter(organization__ims_org_id=opts["org"],
                                         name=opts["sandbox"]).first()
        if sandbox is None:
            raise CommandError(f"No sandbox {opts['sandbox']} in {opts['org']}: run demo first.")
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        rng = random.Random(opts["seed"])
        with sandbox_scope(sandbox):
            dataset = Dataset.objects.filter(name=demo_data.WEB).first()
            if dataset is None:
                raise CommandError("The demo sandbox has no web event dataset: run demo first.")
            people = list(Identity.objects.filter(namespace="Email")
                          .values_list("value", flat=True)[:50_000])
            if not people:
                raise CommandError("The demo sandbox has no people yet: run demo first.")
            self.stdout.write(f"Streaming about {opts['rate']:g} events/s into {sandbox} "
                              "(Ctrl-C stops).")
            self._loop(rng, dataset, people, opts, stop)

    def _loop(self, rng, dataset, people, opts, stop):
        from audiences.services.ingest import ingest_records

        interval = 1.0
        started = time.monotonic()
        sent = 0
        try:
            while not stop["now"]:
                tick = time.monotonic()
                if opts["seconds"] and tick - started >= opts["seconds"]:
                    break
                now = datetime.now(UTC)
                batch = []
                while len(batch) < max(1, round(opts["rate"] * interval)):
                    batch.extend(self._session(rng, rng.choice(people), now, sent + len(batch)))
                result = ingest_records(dataset=dataset, records=batch, now=now,
                                        source="streaming")
                sent += result.accepted
                time.sleep(max(0.0, interval - (time.monotonic() - tick)))
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"Sent {sent} events.")

    @staticmethod
    def _session(rng, email, now, n):
        """A short burst of one signed-in visitor's activity, ending now."""
        kind = rng.choices(["browse", "cart", "checkout", "email"], weights=[5, 3, 2, 1])[0]
        steps = {"browse": ["web.webpagedetails.pageViews", "commerce.productViews"],
                 "cart": ["commerce.productViews", "commerce.productListAdds"],
                 "checkout": ["commerce.productListAdds", "commerce.checkouts"],
                 "email": ["directMarketing.emailClicked"]}[kind]
        product = rng.choice(demo_data.PRODUCTS)
        events = []
        for index, event_type in enumerate(steps):
            at = now - timedelta(seconds=(len(steps) - index) * rng.randint(1, 20))
            record = {"_id": f"sim-{now.timestamp():.0f}-{n}-{index}-{rng.getrandbits(32):x}",
                      "timestamp": at.isoformat().replace("+00:00", "Z"),
                      "eventType": event_type,
                      "identityMap": {"Email": [{"id": email, "primary": True}]}}
            if event_type == "web.webpagedetails.pageViews":
                record.update(demo_data._page("home" if rng.random() < 0.5 else "sale"))
            elif event_type.startswith("commerce."):
                record["productListItems"] = [demo_data._item(product)]
                if event_type == "commerce.checkouts":
                    record["commerce"] = {"order": {"priceTotal": product[2],
                                                    "currencyCode": "USD"},
                                          "checkouts": {"value": 1}}
            events.append(record)
        return events
