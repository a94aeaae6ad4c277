"""``CONTROLPLANE_LOG_FORMAT=json``: every line of web, worker and beat is one JSON object."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from observability.logs import JsonFormatter, bound
from tenants.models import Tenant

from .. import factories as f
from ..conftest import ROOT, subprocess_env, wait_for
from .test_metrics import free_port

REQUIRED = {"time", "level", "logger", "message"}


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be a JSON object with the required keys."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)  # fails the test on any line that is not JSON
        assert isinstance(line, dict) and line.keys() >= REQUIRED, raw
        lines.append(line)
    assert lines, "no log lines at all"
    return lines


def test_the_formatter_writes_one_object_with_ids_and_the_traceback():
    record = logging.LogRecord("provisioning.saga", logging.ERROR, __file__, 1, "boom\nx", (), None)
    try:
        raise RuntimeError("inner")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    record.step = "create_database"
    with bound(tenant_id="t-1", run_id="r-1"):
        text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["level"] == "ERROR" and line["logger"] == "provisioning.saga"
    assert line["message"] == "boom\nx"
    assert (line["tenant_id"], line["run_id"], line["step"]) == ("t-1", "r-1", "create_database")
    assert "RuntimeError: inner" in line["exception"]
    assert line["time"].endswith("+00:00")


def run_manage(settings: Any, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.services
@pytest.mark.django_db
def test_a_management_command_logs_json(settings):
    code = (
        "import logging; log = logging.getLogger('controlplane.check'); "
        "log.warning('hello %s', 'there', extra={'tenant_id': 'abc'})\n"
        "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('it broke')"
    )
    out = run_manage(settings, "shell", "-c", code, CONTROLPLANE_LOG_FORMAT="json")
    assert out.returncode == 0, out.stderr
    lines = parse_lines(out.stderr)
    assert lines[0]["message"] == "hello there" and lines[0]["tenant_id"] == "abc"
    assert "ZeroDivisionError" in lines[1]["exception"]


@pytest.mark.services
@pytest.mark.django_db
def test_an_unknown_log_format_is_refused(settings):
    out = run_manage(settings, "check", CONTROLPLANE_LOG_FORMAT="xml")
    assert out.returncode != 0
    assert "CONTROLPLANE_LOG_FORMAT" in out.stderr


@pytest.mark.services
@pytest.mark.worker
def test_a_real_worker_logs_json_with_tenant_run_and_step(worker_process):
    worker_process.env["CONTROLPLANE_LOG_FORMAT"] = "json"
    worker_process.start(concurrency=1)
    tenant = f.new_tenant(slug="json-logs")
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).state == "active",
        timeout=90,
        what="the saga to complete",
    )
    worker_process.stop()
    lines = parse_lines(worker_process.log_path.read_text())
    loggers = {line["logger"] for line in lines}
    assert {"celery.app.trace", "controlplane.celery"} <= loggers
    steps = {
        line.get("step")
        for line in lines
        if line.get("tenant_id") == str(tenant.id) and line.get("run_id") == str(tenant.workflow_id)
    }
    assert {"validate_request", "mark_active"} <= steps


@pytest.mark.services
@pytest.mark.worker
def test_a_pool_child_that_dies_is_logged_as_json(worker_process):
    """billiard reports a pool child killed by a signal on its own ``multiprocessing`` logger,
    which does not propagate: it needs the JSON handler of its own."""
    worker_process.env["CONTROLPLANE_LOG_FORMAT"] = "json"
    worker_process.start(concurrency=1)
    # Killed before the worker has finished starting, a child can be replaced without a word:
    # the pool reports deaths from its loop, which runs once the worker is ready.
    wait_for(
        lambda: " ready." in worker_process.log_path.read_text(),
        what="the worker to be ready",
    )
    (child,) = wait_for(worker_process.children, what="the worker's pool child")
    os.kill(child, signal.SIGTERM)
    wait_for(
        lambda: "exited with" in worker_process.log_path.read_text(),
        what="the worker to report its pool child's death",
    )
    worker_process.stop()
    lines = parse_lines(worker_process.log_path.read_text())
    deaths = [line for line in lines if "exited with" in line["message"]]
    assert deaths and {line["logger"] for line in deaths} == {"multiprocessing"}, deaths


@pytest.mark.services
@pytest.mark.worker
def test_beat_logs_json(fast_saga, transactional_db, tmp_path):
    log_path = tmp_path / "beat.log"
    env = subprocess_env(
        fast_saga, CONTROLPLANE_LOG_FORMAT="json", CONTROLPLANE_WATCHDOG_INTERVAL="1"
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "--quiet",  # beat prints its banner; quiet, it only logs
                "beat",
                "--loglevel=INFO",
                f"--schedule={tmp_path / 'schedule'}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: "Sending due task watchdog" in log_path.read_text(),
                timeout=60,
                what="beat to send the watchdog",
            )
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    lines = parse_lines(log_path.read_text())
    assert any(line["logger"] == "celery.beat" for line in lines)


@pytest.mark.services
def test_gunicorn_logs_json_with_the_deploy_config(settings, transactional_db, tmp_path: Path):
    port = free_port()
    log_path = tmp_path / "web.log"
    env = subprocess_env(
        settings,
        CONTROLPLANE_LOG_FORMAT="json",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        ALLOWED_HOSTS="127.0.0.1",
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "deploy/gunicorn.conf.py",
                "controlplane.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def healthz() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):  # noqa: S310
                    return True
            except OSError:
                return False

        try:
            wait_for(healthz, timeout=60, what="gunicorn to serve")
            wait_for(lambda: "/healthz" in log_path.read_text(), what="the access log line")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    lines = parse_lines(log_path.read_text())
    assert any(
        line["logger"] == "gunicorn.access" and "/healthz" in line["message"] for line in lines
    )


def test_a_request_about_a_tenant_logs_its_id(rf):
    """Views that name a tenant in their URL (console and API) log with its id."""
    from django.http import HttpResponse

    from observability.logs import log_context
    from observability.middleware import LogContextMiddleware

    seen: list[dict[str, Any]] = []

    def view(request: Any, tenant_id: str) -> HttpResponse:
        seen.append(dict(log_context.get() or {}))
        return HttpResponse()

    def handler(request: Any) -> HttpResponse:
        kwargs = {"tenant_id": "7d6c0c4e-0000-4000-8000-000000000001"}
        middleware.process_view(request, view, (), kwargs)
        return view(request, **kwargs)

    middleware = LogContextMiddleware(handler)
    middleware(rf.get("/tenants/7d6c0c4e-0000-4000-8000-000000000001/"))
    assert seen == [{"tenant_id": "7d6c0c4e-0000-4000-8000-000000000001"}]
    assert not log_context.get()  # nothing leaks to the next request
