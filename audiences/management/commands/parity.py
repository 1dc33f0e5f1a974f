"""`python manage.py parity [--segments ID …]`: can the live streaming numbers be trusted?"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audiences.services.parity import parity_check
from portal.models import Sandbox
from portal.scope import sandbox_scope


class Command(BaseCommand):
    help = ("Recompute streaming memberships from the stored data and diff them with the live "
            "ones; each difference is 'expected lag' or 'wrong'. Exits 1 if anything is wrong.")

    def add_arguments(self, parser):
        parser.add_argument("--org", default="DEMO1234@AdobeOrg", help="IMS org id")
        parser.add_argument("--sandbox", default="prod")
        parser.add_argument("--segments", nargs="*", help="definition ids (default: all "
                                                          "published streaming definitions)")
        parser.add_argument("--now", help="evaluate at this ISO instant (default: now)")
        parser.add_argument("--lag", type=int, default=60,
                            help="seconds of data considered still in flight (default 60)")
        parser.add_argument("--show", type=int, default=5,
                            help="differences listed per definition (default 5)")

    def handle(self, *args, **opts):
        sandbox = Sandbox.objects.filter(organization__ims_org_id=opts["org"],
                                         name=opts["sandbox"]).first()
        if sandbox is None:
            raise CommandError(f"No sandbox {opts['sandbox']!r} in organization {opts['org']!r}.")
        try:
            now = datetime.fromisoformat(opts["now"]) if opts["now"] else timezone.now()
        except ValueError as exc:
            raise CommandError(f"--now: {exc}") from exc
        if timezone.is_naive(now):
            now = timezone.make_aware(now, timezone.UTC)
        with sandbox_scope(sandbox):
            reports = parity_check(now=now, segment_ids=opts["segments"],
                                   lag=timedelta(seconds=opts["lag"]))
        if not reports:
            self.stdout.write("No published streaming definitions to check.")
            return
        wrong = 0
        self.stdout.write(f"{'Audience':40} {'live':>8} {'stored':>8} {'lag':>6} {'wrong':>6}")
        for report in reports:
            wrong += report.wrong
            self.stdout.write(f"{report.definition.name[:40]:40} {report.live:>8} "
                              f"{report.computed:>8} {report.lagging:>6} {report.wrong:>6}")
            for difference in report.differences[:opts["show"]]:
                self.stdout.write(f"    profile {difference.profile_id}: {difference.kind} — "
                                  f"{difference.why}")
        verdict = "OK: every difference is expected lag." if not wrong else (
            f"{wrong} membership(s) are wrong.")
        self.stdout.write(verdict)
        if wrong:
            raise SystemExit(1)
