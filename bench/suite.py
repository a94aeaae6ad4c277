"""Every benchmark of issue 10, each beside its floor, as functions over sizes.

``bench/run.py`` calls them on a fresh database and prints the table; the smoke test
(tests/test_bench_smoke.py) calls them with tiny sizes on the test database to show that
they run and give sane numbers (it times nothing). Django must be set up, on
``bench.settings``, before anything here is called; ``env`` is the environment of the worker
and web processes started here (same database and broker).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count(1)


@dataclass
class Sample:
    """Repeated measurements of one figure (higher or lower is better: say it in ``unit``),
    each with the 1-minute load average of the machine when it was taken (``add``)."""

    values: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)
        self.loads.append(os.getloadavg()[0])

    @property
    def load(self) -> str:
        if not self.loads:
            return ""
        low, high = min(self.loads), max(self.loads)
        return f"load {low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"load {low:.1f}–{high:.1f}"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        return f"{min(self.values):.4g}–{max(self.values):.4g}"

    def pct(self, p: float) -> float:
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# --- processes ------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def rss_mib(pid: int, *, peak: bool = False) -> float:
    """Resident MiB of a process now, or its peak so far (``VmHWM``, the high-water mark)."""
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for {pid}")


BARE_SETTINGS = "bench.bare.settings"


def bare_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a bare-stack process (bench/bare: nothing of ours): the floor's
    Celery worker and the bare gunicorn. Same database and broker as ours: the broker named
    even when ours is the embedded default (bench/bare/settings.py has no default of its own)."""
    from django.conf import settings

    return {
        **env,
        "DJANGO_SETTINGS_MODULE": BARE_SETTINGS,
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL") or settings.CELERY_BROKER_URL,
    }


class Worker:
    """A Celery worker subprocess (``app`` is ``controlplane`` or ``bench.floor_app``)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        app: str,
        queues: str,
        concurrency: int,
        pool: str = "prefork",
        log: Path | None = None,
    ) -> None:
        self.name = f"bench{next(_names)}-{os.getpid()}@bench"
        self.app = app
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "-Q",
            queues,
            "-n",
            self.name,
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
        ]
        out = log.open("ab") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60) -> None:
        from controlplane.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"worker {self.name} did not answer a ping in {timeout}s")

    def child_rss_mib(self, *, peak: bool = True) -> float:
        """A prefork child's resident MiB (the median of the children), its peak by default."""
        kids = _children(self.proc.pid) or [self.proc.pid]
        return statistics.median(rss_mib(p, peak=peak) for p in kids)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextmanager
def workers(env: dict[str, str], **kwargs) -> Iterator[Worker]:
    w = Worker(env, **kwargs)
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


def purge(*queues: str) -> None:
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        for q in queues:
            conn.default_channel.queue_purge(q)


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s: {what}")
        time.sleep(0.002)


# --- the saga: throughput and latency --------------------------------------------------------


def _create(n: int, *, prefix: str, faults: dict | None = None) -> list:
    from tenants.services import Actor, create_tenant

    actor = Actor.shell("bench")
    tag = uuid.uuid4().hex[:6]
    return [
        create_tenant(
            slug=f"{prefix}-{tag}-{i}",
            name=f"Bench {i}",
            plan="starter",
            admin_email=f"b{i}@bench.test",
            actor=actor,
            faults=faults,
        )
        for i in range(n)
    ]


def saga_throughput(
    env: dict[str, str], *, tenants: int, concurrency: int = 2, pool: str = "prefork"
) -> tuple[float, float]:
    """Steps/s draining ``tenants`` tenants queued before the worker starts (first step's
    claim to last step's record, from the database's own timestamps); and the worker child's
    peak resident MiB after the drain."""
    from django.db.models import Max, Min

    from provisioning.models import StepExecution
    from tenants.models import Tenant

    purge("celery", "control")
    made = _create(tenants, prefix="tp")
    ids = [t.id for t in made]
    with workers(
        env, app="controlplane", queues="celery,control", concurrency=concurrency, pool=pool
    ) as w:
        _wait(
            lambda: Tenant.objects.filter(pk__in=ids, state="active").count() == len(ids),
            600,
            "every tenant active",
        )
        if Tenant.objects.filter(pk__in=ids, state="failed").exists():
            raise RuntimeError("a tenant failed during the benchmark")
        rss = w.child_rss_mib()
    span = StepExecution.objects.filter(run__tenant_id__in=ids).aggregate(
        a=Min("started_at"), b=Max("finished_at")
    )
    steps = StepExecution.objects.filter(run__tenant_id__in=ids).count()
    return steps / (span["b"] - span["a"]).total_seconds(), rss


def floor_throughput(
    env: dict[str, str], *, chains: int, concurrency: int = 2
) -> tuple[float, float]:
    """Steps/s of the floor: ``chains`` chains of 8 tasks queued, then a floor worker on the
    bare settings (nothing of ours imported) drains them, first write to last; and its child's
    peak resident MiB."""
    from bench import floor_app

    purge("floor")
    base = int(time.time() * 1000) * 1000
    ids = list(range(base, base + chains))
    floor_app.prepare(ids)
    for i in ids:
        floor_app.send(i)
    with workers(
        bare_env(env), app="bench.floor_app", queues="floor", concurrency=concurrency
    ) as w:
        _wait(
            lambda: floor_app.logged(ids)[0] == chains * floor_app.STEPS,
            600,
            "every floor chain done",
        )
        rss = w.child_rss_mib()
    count, first, last = floor_app.logged(ids)
    return count / (last - first), rss


def latencies(env: dict[str, str], *, repeat: int) -> tuple[Sample, Sample]:
    """create → active of one tenant on an idle worker, and the floor's 8-task chain, in ms;
    interleaved, after one unmeasured warm-up each."""

    from bench import floor_app
    from tenants.models import Tenant

    ours, floor = Sample(), Sample()
    purge("celery", "control", "floor")
    base = int(time.time() * 1000) * 1000 + 500_000
    floor_app.prepare(list(range(base, base + repeat + 1)))
    with (
        workers(env, app="controlplane", queues="celery,control", concurrency=2),
        workers(bare_env(env), app="bench.floor_app", queues="floor", concurrency=2),
    ):
        for i in range(repeat + 1):
            start = time.time()
            (tenant,) = _create(1, prefix="lat")
            _wait(
                lambda t=tenant: Tenant.objects.filter(pk=t.id, state="active").exists(),
                60,
                "one tenant active",
            )
            done_at = Tenant.objects.get(pk=tenant.id).activated_at.timestamp()
            chain_id = base + i
            fstart = time.time()
            floor_app.send(chain_id)
            _wait(
                lambda cid=chain_id: floor_app.logged([cid])[0] == floor_app.STEPS,
                60,
                "one floor chain",
            )
            _, _, fdone = floor_app.logged([chain_id])
            if i:
                ours.add((done_at - start) * 1000)
                floor.add((fdone - fstart) * 1000)
    return ours, floor


def statements_per_step() -> dict[str, float]:
    """Statements (BEGIN and COMMIT included) and commits per step, averaged over the eight
    steps of one tenant driven in this process: all of them, and the saga's own (without
    what the stand-in providers, which keep their records in the same database, run during
    their call); and the same for one floor task."""
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench import floor_app
    from provisioning import saga
    from provisioning.models import StepExecution, StepStatus

    provider_sql: list[str] = []
    real_get_provider = saga.get_provider

    class Counted:
        def __init__(self, provider) -> None:
            self.provider = provider

        def allocate(self, spec):
            before = len(connection.queries_log)
            try:
                return self.provider.allocate(spec)
            finally:
                provider_sql.extend(q["sql"] for q in list(connection.queries_log)[before:])

    (tenant,) = _create(1, prefix="sql")
    steps = 0
    driver = 'SELECT "provisioning_stepexecution"."id"'
    with (
        mock.patch.object(saga, "get_provider", lambda kind: Counted(real_get_provider(kind))),
        CaptureQueriesContext(connection) as ours,
    ):
        while True:
            step = StepExecution.objects.filter(
                run_id=tenant.workflow_id, status=StepStatus.DISPATCHED
            ).first()
            if step is None:
                break
            saga.execute_step(step.pk, step.token)
            steps += 1
    # The loop's own "which step is next" query is this driver's, not the saga's.
    sql = [
        q["sql"]
        for q in ours.captured_queries
        if not (q["sql"].startswith(driver) and '"position" ASC LIMIT 1' in q["sql"])
    ]
    chain_id = int(time.time() * 1000) * 1000 + 900_000
    floor_app.prepare([chain_id])
    with CaptureQueriesContext(connection) as fl:
        floor_app.step(chain_id, 0)
    fsql = [q["sql"] for q in fl.captured_queries]
    return {
        "all": len(sql) / steps,
        "all_commits": sql.count("COMMIT") / steps,
        "saga": (len(sql) - len(provider_sql)) / steps,
        "saga_commits": (sql.count("COMMIT") - provider_sql.count("COMMIT")) / steps,
        "floor": float(len(fsql)),
        "floor_commits": float(fsql.count("COMMIT")),
    }


# --- cancel ----------------------------------------------------------------------------------


def _drive_until(run_id, stop_at: str) -> None:
    """Run the run's dispatched steps in this process until ``stop_at`` is the one dispatched."""
    from provisioning import saga
    from provisioning.models import StepExecution, StepStatus

    while True:
        step = StepExecution.objects.filter(run_id=run_id, status=StepStatus.DISPATCHED).first()
        if step is None or step.name == stop_at:
            return
        saga.execute_step(step.pk, step.token)


def _nothing_held_and_pending(tenant_id) -> bool:
    from provisioning import ledger
    from tenants.models import Tenant

    return (
        Tenant.objects.filter(pk=tenant_id, state="pending").exists()
        and not ledger.held_allocations(tenant_id).exists()
        and not ledger.open_intents(tenant_id).exists()
    )


def cancel_latency(env: dict[str, str], *, repeat: int, busy: bool) -> Sample:
    """ms from the cancel call to ``pending`` with nothing held, in the documented layout (one
    worker on ``celery`` with two slots, one on ``control``). The tenant holds storage and
    identity and is in a slow create_database. ``busy``: two other tenants fill both step
    slots with slow steps first, so the tenant's own step waits in the queue."""
    from provisioning import ledger
    from provisioning.models import StepExecution, StepStatus
    from tenants.services import Actor, cancel_provisioning

    actor = Actor.shell("bench")
    slow = {"create_database": "slow:600"}
    sample = Sample()
    purge("celery", "control")
    blockers: list = []
    with (
        workers(env, app="controlplane", queues="celery", concurrency=2),
        workers(env, app="controlplane", queues="control", concurrency=1),
    ):
        try:
            if busy:
                blockers = _create(2, prefix="blk", faults={"validate_request": "slow:600"})
                _wait(
                    lambda: (
                        StepExecution.objects.filter(
                            run__tenant__in=blockers, status=StepStatus.RUNNING
                        ).count()
                        == 2
                    ),
                    60,
                    "both step slots busy",
                )
            for _ in range(repeat):
                (tenant,) = _create(1, prefix="cxl", faults=slow)
                if busy:
                    _drive_until(tenant.workflow_id, "create_database")
                else:
                    _wait(
                        lambda t=tenant: StepExecution.objects.filter(
                            run_id=t.workflow_id, name="create_database", status=StepStatus.RUNNING
                        ).exists(),
                        60,
                        "create_database running",
                    )
                if ledger.held_allocations(tenant.id).count() != 2:
                    raise SystemExit("the cancel bench expected two held allocations")
                start = time.perf_counter()
                cancel_provisioning(tenant_id=tenant.id, actor=actor)
                _wait(
                    lambda t=tenant: _nothing_held_and_pending(t.id),
                    60,
                    "cancelled tenant pending with nothing held",
                )
                sample.add((time.perf_counter() - start) * 1000)
        finally:
            for b in blockers:
                cancel_provisioning(tenant_id=b.id, actor=actor)
            for b in blockers:
                _wait(lambda b=b: _nothing_held_and_pending(b.id), 60, "blockers cancelled")
    return sample


# --- reads over HTTP -------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn with ``workers`` sync workers serving ``app`` (ours: ``controlplane.wsgi`` on
    the environment's settings; the bare project: ``bench.bare.wsgi``), in its own process."""

    def __init__(
        self, env: dict[str, str], *, workers: int = 2, app: str = "controlplane.wsgi"
    ) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                break
            except OSError as exc:
                if getattr(exc, "code", None):  # any HTTP answer: it is up
                    break
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from exc
                time.sleep(0.1)

    def worker_rss_mib(self, *, peak: bool = True) -> float:
        """A worker's resident MiB (the median of the workers), its peak by default."""
        return statistics.median(rss_mib(p, peak=peak) for p in _children(self.proc.pid))

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


def load(url: str, headers: dict[str, str], *, seconds: float, connections: int) -> float:
    """Requests/s at ``connections`` keep-alive connections: wrk when installed, else a small
    Python load generator (threads, http.client). Fails on any answer but 200."""
    import http.client
    import shutil
    from urllib.parse import urlsplit

    # wrk counts a redirect (a 301 to HTTPS, a 302 to the login page) as an answer: make sure
    # the URL answers 200 first.
    parts = urlsplit(url)
    probe = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    probe.request("GET", parts.path, headers=headers)
    answer = probe.getresponse()
    answer.read()
    probe.close()
    if answer.status != 200:
        raise RuntimeError(f"{url} answered {answer.status}, not 200")
    if shutil.which("wrk"):
        cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", url]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out:
            raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return _python_load(url, headers, seconds=seconds, connections=connections)


def _python_load(url: str, headers: dict[str, str], *, seconds: float, connections: int) -> float:
    import http.client
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    counts = [0] * connections
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        while time.monotonic() < stop:
            conn.request("GET", parts.path, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append(str(r.status))
                return
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{url} answered {errors[0]}")
    return sum(counts) / (time.monotonic() - start)


BARE_FLOOR = "bare stack (bench/bare)"
IN_STACK_FLOOR = "in-stack floor (bare view in our stack)"
API_DETAIL = "GET /api/v1/tenants/{id}"
CONSOLE_DETAIL = "console detail page"


def read_targets() -> tuple[str, dict[str, tuple[str, str, dict[str, str]]]]:
    """One active tenant, a viewer's token and session: for each target, which server serves
    it (``bare`` or ``ours``), its path and its headers."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from api.tokens import issue_token

    (tenant,) = _create(1, prefix="read")
    _drive_until(tenant.workflow_id, "")  # to the end: active
    from django.contrib.auth.models import Group

    # A viewer, not a superuser: its permissions are read as a real operator's are.
    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:8]}", "b@bench.test", "pw")
    if not Group.objects.filter(name="viewer").exists():  # a flushed test database
        from django.contrib.auth.models import Permission

        from tenants.roles import sync_roles

        sync_roles(Group, Permission)
    user.groups.add(Group.objects.get(name="viewer"))
    _, token = issue_token(user=user, name=f"bench-{user.username}")
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return str(tenant.id), {
        BARE_FLOOR: ("bare", f"/tenants/{tenant.id}", {}),
        IN_STACK_FLOOR: ("ours", f"/bench/floor/{tenant.id}", {}),
        API_DETAIL: ("ours", f"/api/v1/tenants/{tenant.id}", {"Authorization": f"Bearer {token}"}),
        CONSOLE_DETAIL: ("ours", f"/tenants/{tenant.id}/", {"Cookie": cookie}),
    }


def http_rounds(
    env: dict[str, str],
    *,
    rounds: int,
    seconds: float,
    connections: int = 8,
    targets: dict | None = None,
) -> tuple[dict[str, Sample], dict[str, Sample]]:
    """Requests/s of each target, interleaved ``rounds`` times, each with the load average.

    Two gunicorns with 2 sync workers each, started side by side and serving in turn (one is
    idle while the other is measured): the bare project (``bench.bare.wsgi``, nothing of ours)
    and ours. A round measures every target once, floors and ours alternating; every other
    round runs them in the reverse order, so a machine that grows busier during the run does
    not favour whichever comes first.

    Every target is first served for a second, unmeasured (a worker's first requests import
    the views and open its connection). Memory, peak resident MiB of a worker (the median of
    the two): the bare project's after all the rounds; ours after its warm-up on the in-stack
    floor only (what our process holds having served only a bare view: the in-stack memory
    floor) and after all the rounds.
    """
    if targets is None:
        _, targets = read_targets()
    results = {name: Sample() for name in targets}
    servers: dict[str, Gunicorn] = {}
    rss = {"bare": Sample(), "in-stack": Sample(), "ours": Sample()}
    try:
        servers["bare"] = Gunicorn(bare_env(env), app="bench.bare.wsgi")
        servers["ours"] = Gunicorn(env)
        names = list(targets)

        def url(name: str) -> str:
            where, path, _ = targets[name]
            return f"http://127.0.0.1:{servers[where].port}{path}"

        # Warm-up, unmeasured: a worker's first requests import the views and open its
        # connection. Ours reads its memory having served only the in-stack floor.
        for name in names:
            load(url(name), targets[name][2], seconds=min(1.0, seconds), connections=connections)
            if name == IN_STACK_FLOOR:
                rss["in-stack"].add(servers["ours"].worker_rss_mib())
        for i in range(rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                results[name].add(
                    load(url(name), targets[name][2], seconds=seconds, connections=connections)
                )
        rss["bare"].add(servers["bare"].worker_rss_mib())
        rss["ours"].add(servers["ours"].worker_rss_mib())
    finally:
        for server in servers.values():
            server.stop()
    return results, rss
