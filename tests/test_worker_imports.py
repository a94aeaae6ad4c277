"""What a Celery worker process imports: the tasks and what they use, not the web doors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

# What a worker does before its first task: the app, its task modules, and the Django fixup's
# start-up (django.setup() and, unless skipped, the system checks).
WORKER_START = """
import json, sys
from controlplane.celery import app
app.loader.import_default_modules()
from celery.fixups.django import DjangoWorkerFixup
DjangoWorkerFixup(app).validate_models()
import provisioning.tasks, tenants.tasks, webhooks.tasks
web = ("ninja", "pydantic", "api.views", "console.views", "prometheus_client")
print(json.dumps(sorted(m for m in web if m in sys.modules)))
"""


def test_a_worker_does_not_load_the_api_the_console_or_the_metrics():
    env = {k: v for k, v in os.environ.items() if k != "CELERY_SKIP_CHECKS"}
    env.setdefault("SECRET_KEY", "test-only")
    out = subprocess.run(
        [sys.executable, "-c", WORKER_START],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
