"""`python manage.py demo`: the demo organization, its users and a living `prod` sandbox.

Idempotent: a sandbox that already holds the demo data is left alone. `--reset` rebuilds it,
`--profiles N` changes its size, `--no-data` only creates the organization and the users.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from portal.models import Sandbox
from portal.services import organization_create, user_create

DEMO_ORG = "DEMO1234@AdobeOrg"
DEMO_USERS = (("admin", "admin", "admin"), ("marketer", "marketer", "marketer"))
PHASES = {"generate": "Generating data", "ingest": "Ingesting records",
          "history": "Replaying 30 days of batch jobs"}


class Command(BaseCommand):
    help = ("Create (idempotently) the demo organization DEMO1234@AdobeOrg with sandbox prod, "
            "users admin/admin and marketer/marketer, and realistic data, audiences and history.")

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=20_000,
                            help="number of people to generate (default 20,000)")
        parser.add_argument("--reset", action="store_true",
                            help="delete the demo sandbox's data and build it again")
        parser.add_argument("--no-data", action="store_true",
                            help="only the organization, the sandbox and the users")
        parser.add_argument("--no-history", action="store_true",
                            help="run one batch job now instead of one per past day (fast; "
                                 "replay the month later with --history-only)")
        parser.add_argument("--history-only", action="store_true",
                            help="replay the batch jobs of the past 30 days that are missing")

    def handle(self, *args, **opts):
        if opts["profiles"] < 10:
            raise CommandError("--profiles must be at least 10")
        org, created = organization_create(ims_org_id=DEMO_ORG, name="Demo Retail Co.",
                                           sandbox_name="prod")
        self.stdout.write(f"{'Created' if created else 'Using'} organization {org.ims_org_id} "
                          f"(sandbox prod)")
        for username, password, role in DEMO_USERS:
            user_create(username=username, ims_org_id=DEMO_ORG, role=role, password=password)
        self.stdout.write("Sign in as admin/admin (administrator) or marketer/marketer.")
        if opts["no_data"]:
            return
        from audiences.services.demo import demo_build, demo_exists, demo_history, demo_reset

        sandbox = Sandbox.objects.get(organization=org, name="prod")
        if opts["history_only"]:
            if not demo_exists(sandbox=sandbox):
                raise CommandError("There is no demo data to replay history over: run demo.")
            started = time.monotonic()
            with tqdm(total=1, desc=PHASES["history"], file=self.stderr) as bar:
                def advance(phase, done, total):
                    bar.total = total
                    bar.update(done - bar.n)

                jobs = demo_history(sandbox=sandbox, now=timezone.now(), progress=advance)
            self.stdout.write(f"Replayed {jobs} batch jobs of history in "
                              f"{time.monotonic() - started:.0f} s.")
            return
        if opts["reset"]:
            sandbox = demo_reset(sandbox=sandbox)
            self.stdout.write("Reset the prod sandbox.")
        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            bar = bars.get(phase)
            if bar is None:
                for previous in bars.values():
                    previous.close()  # one phase at a time
                bar = bars[phase] = tqdm(total=total, desc=PHASES.get(phase, phase),
                                         unit="" if phase == "history" else " records",
                                         leave=True, file=self.stderr, dynamic_ncols=True)
            bar.update(done - bar.n)

        started = time.monotonic()
        result = demo_build(sandbox=sandbox, profiles=opts["profiles"], now=timezone.now(),
                            history=not opts["no_history"], progress=progress)
        for bar in bars.values():
            bar.close()
        if not result.built:
            self.stdout.write("The demo data is already there (use --reset to rebuild it).")
            return
        self.stdout.write(
            f"Built the demo in {time.monotonic() - started:.0f} s: {result.profiles:,} people, "
            f"{result.records:,} records ({result.rejected} rejected), {result.audiences} "
            f"audiences, {result.jobs} batch jobs of history.")
