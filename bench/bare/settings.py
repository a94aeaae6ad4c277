"""Settings of the bare project: what a JSON view needs on the same servers as ours, nothing else.

The read and memory floors of ``make bench`` (issue 21): the same Django, psycopg, PostgreSQL
(and, for the floor's Celery worker, the same Celery and Redis) as the product, with nothing of
ours — no app, no middleware, no template engine, no session, auth, CSP, axes or htmx. It is
served by gunicorn with 2 sync workers in its own process, as the product is in the bench, so
the difference between this floor and the in-stack floor (a view inside our stack) is the cost
of our middleware and settings.

What it shares with ours, so that the comparison is fair: the database connection exactly as
``controlplane/settings.py`` makes it (DATABASE_URL, CONN_MAX_AGE default 600, health checks
on, and Django's psycopg pool when DATABASE_POOL=1), and the Celery settings the saga's worker
runs with (acks late, prefetch 1, JSON, no results). It must import no module of ours:
``tests/test_bench_smoke.py`` checks that.
"""

from __future__ import annotations

import os

import dj_database_url


def _bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("SECRET_KEY") or "bench-bare"
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1").split(",")]

# A JSON view needs no app and no middleware.
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.bare.urls"
WSGI_APPLICATION = "bench.bare.wsgi.application"
TEMPLATES: list[dict] = []

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ["DATABASE_URL"],
        conn_max_age=int(os.environ.get("CONN_MAX_AGE") or 600),
        conn_health_checks=True,
    )
}
if _bool("DATABASE_POOL"):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE") or 16),
        "timeout": 30,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# The floor's Celery worker (bench/floor_app.py) reads these, as the saga's worker reads ours.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
