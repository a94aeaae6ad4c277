"""The chaos harness: a Redis of its own (so it can be restarted), real worker processes it
kills and replaces, backend terminations, operator actions from threads, then the invariants.

Only the pieces; ``test_chaos.py`` plays the scenario.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.backends.signals import connection_created

from controlplane import embedded

from .. import conftest

HARNESS_APP = "chaos-harness"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A Redis-protocol server (the embedded engine's ``valkey-server``) on a free port, without
    persistence: a restart loses every queued message, as a Redis that dies does."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(embedded.valkey_bin()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        conftest.wait_for(up, timeout=20, what="the chaos suite's own Valkey to answer")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None


def point_celery_at(url: str) -> str:
    """Make this process's Celery app publish to ``url``; returns the old broker URL."""
    from controlplane.celery import app

    old = app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its own setting.
    os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url
    app._pool = None  # noqa: SLF001 - rebuilt from the new URL on first use
    app.amqp._producer_pool = None  # noqa: SLF001
    return old


def mark_harness_connections() -> None:
    """Every database connection of this process names itself, so backend terminations hit
    only the workers' connections (the harness plays the web processes, which a database
    restart would hit too, but then every tool dies with them)."""

    def name_it(sender: Any, connection: Any, **_: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET application_name TO '{HARNESS_APP}'")

    connection_created.connect(name_it, weak=False, dispatch_uid="chaos-harness")
    connection.close()


def unmark_harness_connections() -> None:
    connection_created.disconnect(dispatch_uid="chaos-harness")


def terminate_worker_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND application_name <> %s",
            [HARNESS_APP],
        )
        return sum(1 for (ok,) in cursor.fetchall() if ok)


class Workers:
    """A fleet of real ``celery worker`` processes; the harness is their supervisor."""

    def __init__(self, env: dict[str, str], logdir: Path, size: int, concurrency: int) -> None:
        self.env = env
        self.logdir = logdir
        self.size = size
        self.concurrency = concurrency
        self.fleet: list[conftest.WorkerProcess] = []
        self.started = 0
        self.killed = 0
        self.died = 0  # exited on their own (a Redis restart can do that)

    def _spawn(self) -> None:
        self.started += 1
        worker = conftest.WorkerProcess(self.env, self.logdir / f"worker-{self.started}.log")
        worker.start(concurrency=self.concurrency)
        self.fleet.append(worker)

    def fill(self) -> None:
        for worker in list(self.fleet):
            if worker.proc is None or worker.proc.poll() is not None:
                self.died += 1
                self.fleet.remove(worker)
        while len(self.fleet) < self.size:
            self._spawn()

    def kill_one(self, rng: random.Random) -> None:
        live = [w for w in self.fleet if w.proc is not None and w.proc.poll() is None]
        if not live:
            return
        victim = rng.choice(live)
        assert victim.proc is not None
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        victim.proc = None
        self.fleet.remove(victim)
        self.killed += 1

    def stop(self) -> None:
        for worker in self.fleet:
            worker.stop()
        self.fleet = []


@dataclass
class Tally:
    """What the run did, printed at the end and written to docs/reliability.md."""

    seed: int = 0
    seconds: float = 0
    tenants: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    http_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    workers_killed: int = 0
    workers_died: int = 0
    workers_started: int = 0
    redis_restarts: int = 0
    backend_terminations: int = 0
    backends_terminated: int = 0
    watchdog_passes: int = 0
    settle_seconds: float = 0
    violations: list[str] = field(default_factory=list)
    leaked: int = 0
    missing: int = 0
    infra_stalls: int = 0
    load_stalls: int = 0
    fault_stalls: int = 0
    infra_stall_steps: Counter[str] = field(default_factory=Counter)
    final_states: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, action: str, outcome: str) -> None:
        with self.lock:
            self.actions[action] += 1
            self.outcomes[outcome] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "chaos_seconds": round(self.seconds, 1),
            "settle_seconds": round(self.settle_seconds, 1),
            "tenants": self.tenants,
            "actions_fired": sum(self.actions.values()),
            "actions": dict(sorted(self.actions.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "http_status": {str(k): v for k, v in sorted(self.http_status.items())},
            "5xx": sum(v for k, v in self.http_status.items() if k >= 500)
            + len([e for e in self.server_errors if not e.startswith("http")]),
            "workers_killed": self.workers_killed,
            "workers_died_on_their_own": self.workers_died,
            "workers_started": self.workers_started,
            "redis_restarts": self.redis_restarts,
            "backend_terminations": self.backend_terminations,
            "backends_terminated": self.backends_terminated,
            "watchdog_passes": self.watchdog_passes,
            "invariant_violations": len(self.violations),
            "leaked": self.leaked,
            "missing": self.missing,
            "stalls_from_infrastructure": self.infra_stalls,
            "stalls_from_load": self.load_stalls,
            "stalls_from_injected_faults": self.fault_stalls,
            "infrastructure_stalls_by_step": dict(self.infra_stall_steps),
            "final_states": dict(sorted(self.final_states.items())),
        }
