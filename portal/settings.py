"""Sift settings, read from the environment with embedded defaults.

The embedded default (nothing set) is what `make run` uses: SQLite under var/, Celery tasks run
in-process. `DATABASE_URL=postgres://…` and `CELERY_BROKER_URL=redis://…` switch to the real
services with no code change. Parsers are strict: a malformed value stops start-up with a message
naming the variable, rather than silently falling back.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SIFT_VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
TESTING = envbool("SIFT_TESTING", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "insecure-development-key-do-not-use-in-production"
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (make run generates one under var/)."
        )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "django_htmx",
    "django_celery_beat",
    "portal",
    "audiences",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.TenancyMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.tenancy",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'sift.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the portal read while the simulator and in-process tasks write;
        # IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file-backed test database, so a Celery worker process started by a test can open it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "audiences:browse"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files: the project's own assets, htmx from django-htmx, plotly.js from plotly -----
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
try:
    import plotly

    STATICFILES_DIRS.append(("plotly", Path(plotly.__file__).parent / "package_data"))
except ImportError:  # pragma: no cover - plotly is a hard dependency
    pass
# Serve straight from the finders: `make run` works without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.api_auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["portal.permissions.RoleWritePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "portal.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sift API",
    "DESCRIPTION": (
        "Audience segmentation with Adobe Experience Platform's Segmentation Service paths "
        "and JSON shapes."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else None
)
# No broker configured: tasks run in-process, right where they are enqueued.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# In the embedded default, long tasks (batch jobs, rebuilds) run on a background thread of the
# web process so a click returns at once; tests turn this off to stay deterministic.
SIFT_INPROCESS_BACKGROUND = envbool("SIFT_INPROCESS_BACKGROUND", not TESTING)

# --- Sift -----------------------------------------------------------------------------------
SIFT_MAX_MERGE_POLICIES = envint("SIFT_MAX_MERGE_POLICIES", 5)
SIFT_STREAMING_MAX_REQUEST_BYTES = 1024 * 1024
# Called after commit with `change=ProfileChange` (services.profiles.changed).
SIFT_CHANGE_CONSUMERS: list[str] = ["audiences.services.streaming.streaming_on_profiles_changed"]
# Called after commit with `announcement=ChangesRecorded` (services.memberships).
SIFT_MEMBERSHIP_CONSUMERS: list[str] = [
    "audiences.services.streaming.streaming_on_memberships_changed",
]
SIFT_EXPORT_DIR = Path(os.environ.get("SIFT_EXPORT_DIR", VAR_DIR / "exports"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"},
                # Eager tasks log every run at INFO: noise in the embedded default.
                "celery.app.trace": {"level": "WARNING"}},
}
if not CELERY_BROKER_URL:
    # In-process Celery still borrows a "memory://" producer, and kombu warns about its missing
    # host name on every first use; there is no broker to warn about.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}
# Previews and estimates (services.previews): Adobe estimates on full data under 1M profiles,
# on a 1M-profile sample up to 20M, and on a 5 % sample above that.
SIFT_ESTIMATE_FULL_DATA_MAX = envint("SIFT_ESTIMATE_FULL_DATA_MAX", 1_000_000)
SIFT_ESTIMATE_SAMPLE_SIZE = envint("SIFT_ESTIMATE_SAMPLE_SIZE", 1_000_000)
SIFT_ESTIMATE_SAMPLE_FRACTION_ABOVE = envint("SIFT_ESTIMATE_SAMPLE_FRACTION_ABOVE", 20_000_000)
SIFT_PREVIEW_MAX_RESULTS = envint("SIFT_PREVIEW_MAX_RESULTS", 1000)
# A preview whose worker has not written progress for this long is reported FAILED.
SIFT_PREVIEW_STALE_SECONDS = envint("SIFT_PREVIEW_STALE_SECONDS", 600)

# --- Batch segmentation (issue 6) ---
# Dotted callables told `hook(job_id=...)` after a segment job finishes (destinations).
SIFT_JOB_FINISHED_HOOKS: list[str] = []
# A PROCESSING job whose heartbeat is older than this is resumed once, then failed.
SIFT_JOB_HEARTBEAT_TIMEOUT = envint("SIFT_JOB_HEARTBEAT_TIMEOUT", 600)
SIFT_JOB_MAX_RESUMES = envint("SIFT_JOB_MAX_RESUMES", 1)
# --- Destinations (services.destinations) ----------------------------------------------------
SIFT_MEMBERSHIP_CONSUMERS.append("audiences.services.destinations.destinations_changes_recorded")
# Called on commit as `hook(job_id=...)` when a batch segment job finishes.
SIFT_JOB_FINISHED_HOOKS = ["audiences.services.destinations.destinations_job_finished"]
SIFT_DELIVERY_TIMEOUT_SECONDS = envint("SIFT_DELIVERY_TIMEOUT_SECONDS", 10)
SIFT_DELIVERY_MAX_ATTEMPTS = envint("SIFT_DELIVERY_MAX_ATTEMPTS", 6)
# Retry n waits base * 2**(n-1) seconds, at most the max: 10 s, 20 s, 40 s, 80 s, 160 s.
SIFT_DELIVERY_RETRY_BASE_SECONDS = envint("SIFT_DELIVERY_RETRY_BASE_SECONDS", 10)
SIFT_DELIVERY_RETRY_MAX_SECONDS = envint("SIFT_DELIVERY_RETRY_MAX_SECONDS", 3600)
SIFT_DELIVERY_BATCH_SIZE = envint("SIFT_DELIVERY_BATCH_SIZE", 100)
# A merge-policy rebuild whose heartbeat is older than this is re-enqueued by the sweeper.
SIFT_REBUILD_STALE_SECONDS = envint("SIFT_REBUILD_STALE_SECONDS", 600)
