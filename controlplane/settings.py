"""One settings module for both ways to run.

With nothing set you get the embedded default: SQLite (WAL, busy timeout, IMMEDIATE
transactions) and kombu's filesystem transport, so web and worker work as separate processes
without any server. Production names PostgreSQL and Redis through DATABASE_URL and
CELERY_BROKER_URL. Every knob is an environment variable read through the small typed helpers
below; secrets may also come from a ``<NAME>_FILE`` variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name, "")
    if raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = env_str(name, "")
    return int(raw) if raw.strip() else default


def env_float(name: str, default: float) -> float:
    raw = env_str(name, "")
    return float(raw) if raw.strip() else default


DATA_DIR = Path(env_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=False)
_INSECURE_KEY = "django-insecure-embedded-default-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", "")
# Production is the server-backed path (DATABASE_URL set): there a missing or development key
# is refused unless DEBUG is on. The embedded default is a laptop's development run.
_PRODUCTION = bool(env_str("DATABASE_URL", ""))
if not SECRET_KEY or SECRET_KEY == _INSECURE_KEY:
    if _PRODUCTION and not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production (DATABASE_URL set, DEBUG off) needs a real "
            "SECRET_KEY or SECRET_KEY_FILE."
        )
    SECRET_KEY = _INSECURE_KEY

ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "audit",
    "tenants",
    "provisioning",
    "api",
    "console",
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
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

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
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("CONN_MAX_AGE", 600), conn_health_checks=True
        )
    }
else:
    # WAL lets readers go on while a writer writes; IMMEDIATE takes the write lock when a
    # transaction starts, so two processes never deadlock upgrading a read lock; the busy
    # timeout makes the loser wait instead of raising "database is locked".
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("CONTROLPLANE_SQLITE_PATH", str(DATA_DIR / "db.sqlite3")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(DATA_DIR / "test-db.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from static/ as well, so a run without collectstatic (embedded, tests) has its
# stylesheet and htmx; production runs collectstatic for compressed, cached copies.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/tenants/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=False)
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("CONTROLPLANE_MAX_BODY_BYTES", 64 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Control plane knobs --------------------------------------------------------------------
CONTROLPLANE_DATA_ROOT = Path(env_str("CONTROLPLANE_DATA_ROOT", str(DATA_DIR / "tenant-data")))
CONTROLPLANE_HEARTBEAT_TIMEOUT = env_float("CONTROLPLANE_HEARTBEAT_TIMEOUT", 30)
CONTROLPLANE_STEP_TIMEOUT = env_float("CONTROLPLANE_STEP_TIMEOUT", 600)
CONTROLPLANE_WATCHDOG_INTERVAL = env_float("CONTROLPLANE_WATCHDOG_INTERVAL", 10)
CONTROLPLANE_STEP_MAX_TRIES = env_int("CONTROLPLANE_STEP_MAX_TRIES", 3)
CONTROLPLANE_RETRY_BACKOFF = env_float("CONTROLPLANE_RETRY_BACKOFF", 1)
CONTROLPLANE_STEP_DELAY = env_float("CONTROLPLANE_STEP_DELAY", 0)
CONTROLPLANE_FAULT_INJECTION = env_bool("CONTROLPLANE_FAULT_INJECTION", default=False)
CONTROLPLANE_RELEASE_MAX_TRIES = env_int("CONTROLPLANE_RELEASE_MAX_TRIES", 3)
# How often a working step writes its heartbeat: often enough that a few missed beats are
# still well inside the timeout.
CONTROLPLANE_HEARTBEAT_INTERVAL = env_float(
    "CONTROLPLANE_HEARTBEAT_INTERVAL", max(0.2, min(5.0, CONTROLPLANE_HEARTBEAT_TIMEOUT / 5))
)
# How often a console page refreshes itself while a saga moves (htmx polling).
CONSOLE_POLL_SECONDS = env_float("CONSOLE_POLL_SECONDS", 2)
CONTROLPLANE_PROVIDERS = {
    "storage": "provisioning.providers.storage.LocalDirectoryStorage",
    "identity": "provisioning.providers.identity.DjangoGroupIdentity",
    "database": "provisioning.providers.database.SchemaDatabase",
    "dns": "provisioning.providers.records.DnsRecords",
    "billing": "provisioning.providers.records.BillingRecords",
    "invite": "provisioning.providers.records.InviteRecords",
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or "filesystem://"
_broker_dir = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    # One folder for in and out: every process both publishes and consumes.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The folder is polled; a short interval keeps a step's hand-off well under a second.
        "polling_interval": 0.2,
    }
else:
    # An unacknowledged message comes back after the visibility timeout: keep it well above
    # the longest a step may run, or a slow step would be delivered twice while it works.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(max(3600, CONTROLPLANE_STEP_TIMEOUT * 3)),
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = {
    "watchdog": {
        "task": "provisioning.watchdog",
        "schedule": CONTROLPLANE_WATCHDOG_INTERVAL,
        "options": {"expires": max(1.0, CONTROLPLANE_WATCHDOG_INTERVAL)},
    }
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# Control work (rollback, decommission, the watchdog) has a queue of its own, so a cancel never
# waits behind provisioning steps that fill every slot of the step workers. Run a worker on
# each queue (``-Q celery`` and ``-Q control``), or one on both for development; see
# docs/operations.md.
CONTROLPLANE_CONTROL_QUEUE = "control"
CELERY_TASK_ROUTES = {
    "provisioning.compensate": {"queue": CONTROLPLANE_CONTROL_QUEUE},
    "provisioning.decommission": {"queue": CONTROLPLANE_CONTROL_QUEUE},
    "provisioning.watchdog": {"queue": CONTROLPLANE_CONTROL_QUEUE},
}

# Django's own PostgreSQL connection pool (psycopg_pool), off unless DATABASE_POOL=1: a sync
# gunicorn worker or a prefork Celery child is one thread, and its persistent connection
# (CONN_MAX_AGE) is already a pool of one; the pool pays off for thread-pool workers (see
# docs/performance.md). Django refuses persistent connections with a pool: CONN_MAX_AGE is 0.
if DATABASE_URL and env_bool("DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 16),
        "timeout": 30,
    }

# Permissions in one query per request (tenants/permissions.py): Django's ModelBackend, wherever
# it stands in the list of backends, is swapped for the one-query subclass.
AUTHENTICATION_BACKENDS = [
    "tenants.permissions.OneQueryModelBackend"
    if backend == "django.contrib.auth.backends.ModelBackend"
    else backend
    for backend in globals().get(
        "AUTHENTICATION_BACKENDS", ["django.contrib.auth.backends.ModelBackend"]
    )
]
