"""Supervision: ``make run``'s runner and the shipped supervisord configuration both bring a
killed worker back. Real processes; the runner on the embedded engine in a tmp var dir,
supervisord on the test's PostgreSQL and Redis."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, close_other_sessions, subprocess_env, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


def children(pid: int) -> dict[int, str]:
    out = subprocess.run(["pgrep", "-a", "-P", str(pid)], capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        child, _, cmd = line.partition(" ")
        found[int(child)] = cmd
    return found


def worker_pid(runner: int) -> int | None:
    """The step worker (``-n steps@…``), not the control worker beside it."""
    return next(
        (
            pid
            for pid, cmd in children(runner).items()
            if " worker" in cmd and "steps@" in cmd and alive(pid)
        ),
        None,
    )


@pytest.mark.worker
def test_the_runner_restarts_a_killed_worker_and_ctrl_c_stops_everything(tmp_path: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY"}
    }
    env.update(
        {
            "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
            "CONTROLPLANE_RUN_PORT": str(free_port()),
            "CONTROLPLANE_HEARTBEAT_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "controlplane.devrun"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Ctrl-C stops" in log.read_text(), timeout=120, what="the runner")
        first = wait_for(lambda: worker_pid(runner.pid), timeout=30, what="a worker")
        started = set(children(runner.pid))

        os.killpg(first, signal.SIGKILL)

        wait_for(
            lambda: re.search(
                rf"worker \(pid {first}\) exited with -9; restarting", log.read_text()
            ),
            timeout=30,
            what="the runner to see the worker die",
        )
        second = wait_for(
            lambda: (pid := worker_pid(runner.pid)) and pid != first and pid,
            timeout=30,
            what="a new worker",
        )
        wait_for(lambda: "worker restarted" in log.read_text(), timeout=30, what="the message")
        assert runner.poll() is None, "the runner must keep running"

        # Ctrl-C: everything stops, cleanly.
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=60) == 0
        for pid in started | {second}:
            wait_for(lambda p=pid: not alive(p), timeout=30, what=f"process {pid} to stop")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for pid in children(runner.pid):
            os.killpg(pid, signal.SIGKILL)


def supervisorctl(conf: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return out.stdout


def states(conf: Path, env: dict[str, str]) -> dict[str, tuple[str, int | None]]:
    found = {}
    for line in supervisorctl(conf, env, "status").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = re.search(r"pid (\d+)", line)
            found[parts[0]] = (parts[1], int(pid.group(1)) if pid else None)
    return found


@pytest.mark.services
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_supervisord_runs_web_worker_and_beat_and_restarts_a_killed_worker(
    fast_saga: Any, tmp_path: Path
):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    conf = ROOT / "deploy" / "supervisord.conf"
    env = subprocess_env(
        fast_saga,
        CONTROLPLANE_VENV=str(Path(sys.executable).parent.parent),
        CONTROLPLANE_RUN_DIR=str(run_dir),
        CONTROLPLANE_BIND=f"127.0.0.1:{free_port()}",
        SECRET_KEY="test-only",
    )
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "supervisord"), "-n", "-c", str(conf)],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "supervisord.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        running = wait_for(
            lambda: (
                (s := states(conf, env))
                and all(s.get(p, ("",))[0] == "RUNNING" for p in ("web", "worker", "beat"))
                and s
            ),
            timeout=60,
            what="web, worker and beat RUNNING",
        )
        first = running["worker"][1]
        assert first and alive(first)

        os.killpg(first, signal.SIGKILL)

        wait_for(
            lambda: (
                (s := states(conf, env).get("worker"))
                and s[0] == "RUNNING"
                and s[1] not in (None, first)
            ),
            timeout=60,
            what="supervisord to restart the worker",
        )
        log = (run_dir / "supervisord.log").read_text()
        assert re.search(r"exited: worker \(terminated by SIGKILL", log), log
        assert states(conf, env)["web"][1] == running["web"][1]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=90)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        close_other_sessions()
