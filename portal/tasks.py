"""Infrastructure tasks of the portal itself."""

from celery import shared_task


@shared_task(name="portal.tasks.ping")
def ping(value: str = "pong") -> str:
    """Echo: lets /health and the real-worker test prove a round trip through the broker."""
    return value
