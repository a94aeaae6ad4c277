"""The Celery app: workers run the saga's steps, beat runs the watchdog."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

from observability import celery as observability_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
# Celery's Django fixup runs Django's system checks when a worker starts and ignores what they
# find; their URL checks import every URLconf, so each worker process carried the JSON API
# (ninja, pydantic), the console's views and the admin's: 23 MiB of a prefork child's 90 that
# no task uses (docs/performance.md, "Memory"). gunicorn runs no checks either; `manage.py
# check --deploy` is where they are read. A task that reverses a URL loads the URLconf then.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes the database connection around every task unless this is set;
# reusing it halves the cost of a short step (see docs/performance.md).
app.conf.CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "100"))
app.autodiscover_tasks(["provisioning"])
app.autodiscover_tasks(["tenants"])
app.autodiscover_tasks(["webhooks"])
app.autodiscover_tasks(["tenants"])  # the approval policy's expiry pass
observability_celery.install(app)


@task_prerun.connect
@task_postrun.connect
def heal_database_connections(**_: Any) -> None:
    """Drop a connection that died since the last task, so this task opens a fresh one.

    With ``CELERY_DB_REUSE_MAX`` the fixup keeps a task's connection for the next one and
    never asks whether it still works. After a database restart, a failover or a
    ``pg_terminate_backend`` every later task of the worker would then fail on the dead
    connection. This is what Django does around every web request (``close_old_connections``:
    drop a connection left in a transaction, broken by an error or past its age, and mark the
    others for a health check on their next use, ``CONN_HEALTH_CHECKS``), so the worker heals
    on its very next task.

    Django's health check is a ``SELECT 1`` before every task, which the floor's worker does
    not pay (its fixup checks every 200 tasks): it is sent only when the connection's socket
    says the server may have ended it (``controlplane.dbhealth``).
    """
    from django.db import close_old_connections

    from .dbhealth import skip_needless_health_checks

    close_old_connections()
    skip_needless_health_checks()
