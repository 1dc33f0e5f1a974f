# Import the Celery app at start-up so shared tasks bind to it (and eager mode works without a
# broker: otherwise `.delay()` would try the default AMQP broker).
from portal.celery import app as celery_app

__all__ = ["celery_app"]
