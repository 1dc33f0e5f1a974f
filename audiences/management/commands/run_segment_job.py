"""`python manage.py run_segment_job [--segments ID ...] [--now ISO]`: a batch job, here and now.

Evaluates the definitions in this process (no broker needed) with a progress bar, in the
sandbox given by --org/--sandbox (default: the only organization's production sandbox).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from audiences.services import batch
from portal.errors import SiftError
from portal.models import Organization
from portal.scope import sandbox_scope


class Command(BaseCommand):
    help = "Run a segment job over the given segment ids (default: every batch definition)."

    def add_arguments(self, parser):
        parser.add_argument("--segments", nargs="+", default=["*"],
                            help="segment definition ids (default: * = all batch definitions)")
        parser.add_argument("--now", help="snapshot instant, ISO-8601 (default: now, UTC)")
        parser.add_argument("--org", help="IMS org id (default: the only organization)")
        parser.add_argument("--sandbox", default=None, help="sandbox name (default: prod)")
        parser.add_argument("--snapshot-name", default="")

    def handle(self, *args, **options):
        sandbox = self._sandbox(options["org"], options["sandbox"])
        now = self._now(options["now"])
        segments = "*" if options["segments"] == ["*"] else options["segments"]
        with sandbox_scope(sandbox):
            try:
                job = batch.segment_job_create(segment_ids=segments, source="portal", now=now,
                                               snapshot_name=options["snapshot_name"],
                                               enqueue=False)
            except SiftError as error:
                raise CommandError(error.message) from None
            with tqdm(total=job.progress_total, unit="segment", file=self.stderr._out,
                      disable=None) as bar:
                def advance(run):
                    bar.set_postfix_str(f"{run.definition_name[:30]}: {run.status}")
                    bar.update(1)

                job = batch.segment_job_run(job_id=job.pk, now=now, inline=True,
                                            on_progress=advance)
            for run in job.runs.order_by("definition_name"):
                line = (f"{run.status:10} {run.qualified:>9} qualified  {run.evaluator or '-':10}"
                        f" {run.duration_ms or 0:>7} ms  {run.definition_name}")
                if run.error_code:
                    line += f"  [{run.error_code}] {run.error_message}"
                self.stdout.write(line)
            self.stdout.write(f"job {job.pk} {job.status}")
            if job.status != "SUCCEEDED":
                raise CommandError(f"job {job.pk} {job.status}")

    def _sandbox(self, org_id, name):
        orgs = Organization.objects.all()
        if org_id:
            orgs = orgs.filter(ims_org_id=org_id)
        if orgs.count() != 1:
            raise CommandError("Name the organization with --org (found "
                               f"{orgs.count()} matching).")
        org = orgs.get()
        sandbox = org.sandboxes.filter(name=name).first() if name else (
            org.sandboxes.filter(is_default=True).first() or org.sandboxes.first())
        if sandbox is None:
            raise CommandError(f"No sandbox {name!r} in {org.ims_org_id}.")
        return sandbox

    def _now(self, text):
        if not text:
            return timezone.now()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(f"--now must be ISO-8601, got {text!r}") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
