"""`python manage.py tick`: Celery beat for the embedded default (no broker).

Runs the periodic tasks of `portal/celery.py`'s beat schedule in this process, each when it is
due, until interrupted. `make run` starts it beside the web server; with a broker configured,
run `celery -A portal beat` and workers instead.
"""

import signal
import time

from django.core.management.base import BaseCommand
from django.utils import timezone

from portal.celery import app


class Command(BaseCommand):
    help = "Run the periodic tasks in-process (embedded default, no broker)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run every task once and exit")

    def handle(self, *args, **opts):
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        last_run: dict[str, object] = {}
        entries = app.conf.beat_schedule
        while not stop["now"]:
            soonest = 5.0
            for name, entry in entries.items():
                schedule = entry["schedule"]
                if not hasattr(schedule, "is_due"):
                    from celery.schedules import schedule as every

                    schedule = entry["schedule"] = every(schedule)
                due, next_in = schedule.is_due(last_run.get(name) or timezone.now().replace(
                    year=2000))
                if opts["once"] or due:
                    last_run[name] = timezone.now()
                    task = app.tasks.get(entry["task"])
                    if task is None:
                        continue  # declared in the schedule but not installed
                    try:
                        task.apply(throw=True)
                    except Exception as exc:  # keep ticking; the failure is reported
                        self.stderr.write(f"{name} failed: {exc}")
                soonest = min(soonest, max(next_in, 0.5))
            if opts["once"]:
                return
            time.sleep(soonest)
