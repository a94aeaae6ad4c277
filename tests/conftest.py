"""Shared fixtures: personas, the inline saga driver, and real Celery workers.

Every test runs on PostgreSQL and Redis: CI's (DATABASE_URL, CELERY_BROKER_URL) or the embedded
ones that ``controlplane.pytest_embedded`` starts on a laptop. Tests that share them between
threads and processes are marked ``services``; should a server not answer, those are skipped
with the reason, or (``CONTROLPLANE_REQUIRE_SERVICES=1``, CI) fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission, User
from hypothesis import settings as hypothesis_settings

from tenants.roles import sync_roles

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("CONTROLPLANE_REQUIRE_SERVICES") == "1"


def services_available() -> tuple[bool, str]:
    db = django_settings.DATABASES["default"]["ENGINE"]
    broker = django_settings.CELERY_BROKER_URL
    if "postgresql" not in db:
        return False, "DATABASE_URL does not name PostgreSQL"
    if not broker.startswith("redis"):
        return False, "CELERY_BROKER_URL does not name Redis"
    try:
        from controlplane.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001
        return False, f"Redis is not reachable: {exc}"
    return True, ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ok, why = services_available()
    if ok:
        return
    for item in items:
        if "services" in item.keywords:
            if REQUIRE_SERVICES:
                item.add_marker(
                    pytest.mark.xfail(reason=f"services required: {why}", strict=True, run=False)
                )
            else:
                item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL and Redis: {why}"))


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_SERVICES:
        ok, why = services_available()
        if not ok:
            raise pytest.UsageError(f"CONTROLPLANE_REQUIRE_SERVICES=1 but {why}")


# --- personas -------------------------------------------------------------------------------


@pytest.fixture
def roles(db: None) -> None:
    """The role groups (a transactional test's flush removes what the migration made)."""
    sync_roles(Group, Permission)


def make_user(username: str, role: str | None, *, superuser: bool = False) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username)
    user.is_superuser = superuser
    user.is_staff = superuser or role == "admin"
    user.save()
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(roles: None) -> User:
    return make_user("vera", "viewer")


@pytest.fixture
def operator(roles: None) -> User:
    return make_user("otto", "operator")


@pytest.fixture
def admin_user(roles: None) -> User:
    return make_user("ada", "admin")


@pytest.fixture
def outsider(roles: None) -> User:
    return make_user("olga", None)


# --- fast timings ---------------------------------------------------------------------------


@pytest.fixture
def fast_saga(settings: Any, tmp_path: Path) -> Any:
    """Short timeouts so watchdog scenarios play out in seconds; data under tmp_path."""
    settings.CONTROLPLANE_HEARTBEAT_TIMEOUT = 2.0
    settings.CONTROLPLANE_HEARTBEAT_INTERVAL = 0.2
    settings.CONTROLPLANE_RETRY_BACKOFF = 0.05
    settings.CONTROLPLANE_STEP_DELAY = 0
    settings.CONTROLPLANE_FAULT_INJECTION = True
    settings.CONTROLPLANE_DATA_ROOT = tmp_path / "data"
    return settings


# --- driving the saga in-process ------------------------------------------------------------


def drive(run_id: Any, *, max_steps: int = 50) -> int:
    """Execute every dispatched step of the run, in order, in this process. Returns how many."""
    from provisioning import saga
    from provisioning.models import StepExecution, StepStatus

    done = 0
    for _ in range(max_steps):
        step = (
            StepExecution.objects.filter(run_id=run_id, status=StepStatus.DISPATCHED)
            .order_by("position")
            .first()
        )
        if step is None:
            break
        saga.execute_step(step.pk, step.token)
        done += 1
    return done


def drive_compensation(run_id: Any) -> None:
    from provisioning import compensation

    compensation.compensate_run(run_id)


# --- real workers ---------------------------------------------------------------------------


def close_other_sessions() -> None:
    """End the worker threads' database sessions so the test database can be flushed/dropped."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# Every test worker consumes both queues: the steps' and the control work's (settings).
WORKER_QUEUES = ("celery", "control")


def purge_broker() -> None:
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        for queue in WORKER_QUEUES:
            conn.default_channel.queue_purge(queue)


@contextmanager
def thread_worker(*, concurrency: int = 4) -> Iterator[Any]:
    """A real Celery worker, in threads of this process, on the real broker (queues purged
    before and after)."""
    from celery.contrib.testing.worker import start_worker

    from controlplane.celery import app

    purge_broker()
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        queues=list(WORKER_QUEUES),
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker
    purge_broker()
    close_other_sessions()


@pytest.fixture
def celery_worker(fast_saga: Any, transactional_db: None) -> Iterator[Any]:
    """A real Celery worker with four threads."""
    with thread_worker() as worker:
        yield worker


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, what: str = "") -> Any:
    """Poll the database until ``predicate`` is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


class WorkerProcess:
    """``celery -A controlplane worker`` as a real subprocess on the test database."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, *, concurrency: int = 1, queues: tuple[str, ...] | None = WORKER_QUEUES
    ) -> None:
        """Start the worker; ``queues=None`` starts it as production's plain command does,
        without ``-Q`` (it consumes every queue the product declares)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                *(["-Q", ",".join(queues)] if queues is not None else []),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def database_url(db: dict[str, Any]) -> str:
    """A URL for the (test) database a settings dict names; a Unix-socket host (the embedded
    server) is percent-encoded, as dj-database-url reads it back."""
    host = quote(db["HOST"] or db.get("OPTIONS", {}).get("host") or "127.0.0.1", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{db['USER'] or 'postgres'}@{host}{port}/{db['NAME']}"


def subprocess_env(settings: Any, **extra: str) -> dict[str, str]:
    """Environment for a child process that uses the same (test) database and broker."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url(settings.DATABASES["default"])
    env.update(
        {
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CONTROLPLANE_DATA_ROOT": str(settings.CONTROLPLANE_DATA_ROOT),
            "CONTROLPLANE_HEARTBEAT_TIMEOUT": str(settings.CONTROLPLANE_HEARTBEAT_TIMEOUT),
            "CONTROLPLANE_HEARTBEAT_INTERVAL": str(settings.CONTROLPLANE_HEARTBEAT_INTERVAL),
            "CONTROLPLANE_RETRY_BACKOFF": str(settings.CONTROLPLANE_RETRY_BACKOFF),
            "CONTROLPLANE_STEP_DELAY": str(settings.CONTROLPLANE_STEP_DELAY),
            "CONTROLPLANE_FAULT_INJECTION": "1",
            "DEBUG": "1",
            # Children serve or call plain HTTP on 127.0.0.1.
            "CONTROLPLANE_INSECURE_HTTP": "1",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def worker_process(
    fast_saga: Any, transactional_db: None, tmp_path: Path
) -> Iterator[WorkerProcess]:
    purge_broker()
    worker = WorkerProcess(subprocess_env(fast_saga), tmp_path / "worker.log")
    yield worker
    worker.stop()
    purge_broker()
    close_other_sessions()


# --- hypothesis: the same examples every run in `make test`, new ones in `make fuzz` -----------

# "ci" (the default): derandomized, so a property or fuzz test asks the same questions on every
# run and the suite's outcome never depends on a seed; what it finds is real and reproducible.
# "fuzz" (`make fuzz`): new random examples each run, many more of them; a failure prints its
# example and a @reproduce_failure blob. An unknown HYPOTHESIS_PROFILE is an error, not "ci".
hypothesis_settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=300, print_blob=True
)
hypothesis_settings.register_profile(
    "fuzz", derandomize=False, database=None, deadline=None, max_examples=5000, print_blob=True
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """The test database alone lets TRUNCATE through the audit tables' triggers
    (audit/migrations/0004_keyed_chain.py): Django empties every table with TRUNCATE after a
    transactional test. Set on the database, so every session opened to it (worker threads,
    child processes) has it; and on the session already open."""
    from django.db import connection

    with django_db_blocker.unblock():
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} SET controlplane.allow_audit_truncate = on")
            cursor.execute("SET controlplane.allow_audit_truncate = on")


@pytest.fixture(autouse=True)
def _same_fake_data() -> None:
    """factory-boy's Faker values (tenant names) are the same in every run and whatever ran
    before: a test never meets data it was not written against."""
    import factory.random

    factory.random.reseed_random("controlplane-tests")


@pytest.fixture(autouse=True)
def _auth_caches_on_a_still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's caches of who is asking (``controlplane.recent``: bearer tokens and
    session users, kept a second) start every test empty, on a clock that stands still: whether
    a request reads the user again depends on what the test did, never on how fast the machine
    ran it. A test of expiry moves the clock itself (tests/api/test_auth.py)."""
    from api.tokens import recent_tokens
    from tenants.permissions import recent_users

    for cache in (recent_tokens, recent_users):
        cache.forget_all()
        monkeypatch.setattr(cache, "clock", lambda: 0.0)


@pytest.fixture(autouse=True)
def _fresh_database_connection() -> None:
    """Start every test on a live connection of this thread's.

    Tests that kill workers' database sessions (``close_other_sessions``), or a worker thread
    that terminated backends, can leave this thread's idle connection dead; Django finds out
    only when it next uses it, in the middle of the next test's setup. Dropping a dead one here
    (a raw ``SELECT 1``, not counted by query assertions) keeps tests independent of order.
    """
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            conn.close()
