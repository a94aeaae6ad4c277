"""The embedded engine, as `make run` and a laptop's `make test` use it: a real PostgreSQL and a
real Valkey started from Python packages under a var/ folder, owned by the process that started
them, gone when it goes, their data kept for the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from controlplane import embedded

from .conftest import ROOT, WorkerProcess, wait_for


def _query(servers: embedded.EmbeddedServers, sql: str) -> list[tuple]:
    with psycopg.connect(
        host=str(servers.sockets), user="postgres", dbname=embedded.DATABASE_NAME, autocommit=True
    ) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # exited, waiting for its new parent to reap it


@pytest.fixture
def var(tmp_path: Path) -> Path:
    return tmp_path / "var"


def test_a_tenant_reaches_active_on_the_embedded_engine(var: Path, tmp_path: Path):
    """No DATABASE_URL, no CELERY_BROKER_URL: settings find the servers of the var/ folder, a
    plain process migrates, a worker provisions, and it all happens on PostgreSQL."""
    servers = embedded.EmbeddedServers(var=var).start()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY"}
    }
    env.update(
        {
            "CONTROLPLANE_VAR_DIR": str(var),
            "DEBUG": "1",
            "CONTROLPLANE_INSECURE_HTTP": "1",
            "CONTROLPLANE_HEARTBEAT_TIMEOUT": "5",
        }
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        vendor = subprocess.run(
            [*manage, "shell", "-c", "from django.db import connection; print(connection.vendor)"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        assert vendor.stdout.strip().splitlines()[-1] == "postgresql"
        worker.start(concurrency=2)
        subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "from tenants.services import Actor, create_tenant; "
                "create_tenant(slug='laptop', name='Laptop', plan='starter', "
                "admin_email='me@laptop.test', actor=Actor.shell('me'))",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )

        def state() -> str | None:
            rows = _query(servers, "SELECT state FROM tenants_tenant WHERE slug = 'laptop'")
            return rows[0][0] if rows else None

        wait_for(lambda: state() == "active", timeout=120, what="the tenant to be active")
        kinds = {
            k
            for (k,) in _query(
                servers, "SELECT kind FROM provisioning_allocation WHERE released_at IS NULL"
            )
        }
        assert kinds == {"storage", "identity", "database", "dns", "billing", "invite"}
    finally:
        worker.stop()
        servers.stop()


def test_servers_die_with_their_owner_and_start_again_with_the_data(var: Path):
    """The owner (``make run``) is SIGKILLed: both servers stop by themselves (no orphan), and
    the next start finds no stale lock and the data of the first."""
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from controlplane import embedded; "
            "s = embedded.EmbeddedServers(var=Path(sys.argv[1])).start(); "
            "print(s.started['postgres'].pid, s.started['valkey'].pid, flush=True); "
            "time.sleep(600)",
            str(var),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2
        first = embedded.EmbeddedServers(var=var)  # finds them running: uses, does not own
        first.start()
        assert first.started == {}
        _query(first, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('before the crash')")
        redis.Redis.from_url(embedded.redis_url(var=var)).set("queued", "message")
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    wait_for(lambda: all(_gone(pid) for pid in pids), timeout=30, what="the servers to stop")
    assert not embedded._answers(first.pg_socket)

    again = embedded.EmbeddedServers(var=var).start()
    try:
        assert set(again.started) == {"postgres", "valkey"}
        assert _query(again, "SELECT note FROM kept") == [("before the crash",)]
        assert redis.Redis.from_url(embedded.redis_url(var=var)).get("queued") == b"message"
    finally:
        again.stop()
    for proc in again.started.values():
        assert proc.poll() is not None


def test_the_embedded_postgresql_has_what_the_product_uses(var: Path):
    servers = embedded.EmbeddedServers(var=var).start()
    try:
        _query(servers, "CREATE EXTENSION IF NOT EXISTS pg_trgm")
        version = _query(servers, "SHOW server_version_num")[0][0]
        assert int(version) >= 150000
        # Only a Unix socket: no TCP port to collide with or to expose.
        assert _query(servers, "SHOW listen_addresses") == [("",)]
    finally:
        servers.stop()
