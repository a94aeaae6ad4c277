"""The Celery app: workers run the saga's steps, beat runs the watchdog."""

from __future__ import annotations

import os

from celery import Celery

from observability import celery as observability_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes the database connection around every task unless this is set;
# reusing it halves the cost of a short step (see docs/performance.md).
app.conf.CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "100"))
app.autodiscover_tasks(["provisioning"])
app.autodiscover_tasks(["webhooks"])
observability_celery.install(app)
