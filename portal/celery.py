"""The Celery application and the one place where periodic tasks are declared."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
if not app.conf.broker_url:
    # Embedded default: tasks run eagerly, nothing should ever dial a broker.
    app.conf.broker_url = "memory://"
app.conf.task_routes = {
    "audiences.tasks.streaming_*": {"queue": "streaming"},
    "audiences.tasks.segment_job_*": {"queue": "batch"},
    "audiences.tasks.export_*": {"queue": "batch"},
    "audiences.tasks.delivery_*": {"queue": "deliveries"},
}
app.autodiscover_tasks(["portal", "audiences"])

app.conf.beat_schedule = {
    # Fire due segment-job and export schedules (their own cron lives in the Schedule rows).
    "schedules-dispatch": {
        "task": "audiences.tasks.schedules_dispatch",
        "schedule": crontab(minute="*"),
    },
    # Exit streaming memberships whose time window has lapsed, on time.
    "streaming-lapses": {
        "task": "audiences.tasks.streaming_lapse_sweep",
        "schedule": 15.0,
    },
    # Fail segment jobs whose worker stopped sending heartbeats.
    "segment-jobs-reap": {
        "task": "audiences.tasks.segment_job_reap",
        "schedule": crontab(minute="*"),
    },
    # Roll the membership change log into the per-audience time buckets behind the charts.
    "metrics-rollup": {
        "task": "audiences.tasks.metrics_rollup",
        "schedule": 60.0,
    },
    # Send webhook deliveries whose retry time has come (exponential backoff, then dead letter).
    "deliveries-retry": {
        "task": "audiences.tasks.delivery_retry_sweep",
        "schedule": 5.0,
    },
    # Start hourly and daily file exports of file destinations when due.
    "destination-exports": {
        "task": "audiences.tasks.export_destinations_due",
        "schedule": crontab(minute="*"),
    },
    # Exit the members of custom-upload audiences once their data expiration has passed.
    "uploads-expire": {
        "task": "audiences.tasks.uploads_expire",
        "schedule": crontab(minute="*/15"),
    },
}
