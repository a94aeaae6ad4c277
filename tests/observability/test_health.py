"""``/healthz`` and ``/readyz``: each failing check turns readiness to 503, naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.celery import app
from observability.consumers import record_consumers
from observability.models import Pulse
from observability.pulse import last_watchdog_pass, record_watchdog_pass
from provisioning.tasks import run_watchdog

from ..conftest import ROOT, subprocess_env

pytestmark = [pytest.mark.django_db]


def stamp_consumers() -> None:
    """A worker on every queue has said so (tests/provisioning/test_plain_worker.py starts
    real ones)."""
    record_consumers(worker="celery@test", queues=["celery", "control"])


def test_healthz_answers_without_auth_or_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.services
def test_ready_when_database_broker_watchdog_and_consumers_answer(client):
    record_watchdog_pass()
    stamp_consumers()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "watchdog": "ok", "consumers": "ok"},
    }


@pytest.mark.services
def test_the_watchdog_task_records_its_pass(client):
    assert last_watchdog_pass() is None
    run_watchdog()  # the task's body, as beat's message would run it
    assert timezone.now() - last_watchdog_pass() < timedelta(seconds=5)
    run_watchdog()
    assert Pulse.objects.count() == 1  # one row, updated in place


@pytest.mark.services
def test_not_ready_when_the_watchdog_never_ran(client):
    stamp_consumers()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["watchdog"]
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok"
    assert "not recorded a pass" in body["checks"]["watchdog"]


@pytest.mark.services
def test_not_ready_when_the_watchdog_missed_three_intervals(client, settings):
    settings.CONTROLPLANE_WATCHDOG_INTERVAL = 10
    stamp_consumers()
    record_watchdog_pass(now=timezone.now() - timedelta(seconds=29))
    assert client.get("/readyz").status_code == 200
    record_watchdog_pass(now=timezone.now() - timedelta(seconds=31))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["watchdog"]
    assert "three intervals" in response.json()["checks"]["watchdog"]


@pytest.mark.services
def test_not_ready_when_the_broker_is_down_and_no_secret_is_told(client, monkeypatch):
    record_watchdog_pass()
    stamp_consumers()
    # A real broker address where nothing listens, with a password in it.
    # (Celery reads CELERY_BROKER_URL from the environment before its configuration.)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:hunter2-secret@127.0.0.1:1/0")
    assert "127.0.0.1:1/" in app.conf.broker_url
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"].startswith("unavailable (")
    assert b"hunter2" not in response.content and b"127.0.0.1" not in response.content


@pytest.mark.services
def test_not_ready_when_the_database_is_down(settings):
    """A real process whose database does not answer (nothing listens on its port)."""
    env = subprocess_env(settings)
    env["DATABASE_URL"] = "postgres://postgres:hunter2-secret@127.0.0.1:1/controlplane"
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz', HTTP_HOST='localhost'); "
        "print(json.dumps([r.status_code, r.json()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "controlplane.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, body = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 503
    assert body["failing"] == ["database", "watchdog", "consumers"]
    assert body["checks"]["broker"] == "ok"
    assert body["checks"]["watchdog"].startswith("unknown")
    assert body["checks"]["consumers"].startswith("unknown")
    assert "hunter2" not in out.stdout
