"""Chaos: ~30 tenants driven by concurrent operator actions while the harness SIGKILLs worker
processes, restarts Redis and terminates the workers' PostgreSQL backends; then, once
everything has settled, the invariants of the contract.

The Redis it restarts is a Valkey of its own, from the embedded engine's package; so the suite
runs the same on a laptop as in CI.

Bounded for ``make test`` (``CONTROLPLANE_CHAOS_SECONDS``, default 60s of chaos plus settling);
a soak is the same test with a longer time, e.g.
``CONTROLPLANE_CHAOS_SECONDS=600 CONTROLPLANE_CHAOS_TENANTS=60 pytest -m chaos -s``.
Random choices come from ``CONTROLPLANE_CHAOS_SEED`` (fixed by default; printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import Event
from audit.services import verify_chains
from provisioning import reconcile
from provisioning.models import (
    KINDS,
    PLAN_CHANGE_STEPS,
    STEPS,
    Allocation,
    AllocationChange,
    AllocationIntent,
    Run,
    RunStatus,
    StepExecution,
)
from provisioning.providers import get_provider
from provisioning.watchdog import run_watchdog
from tenants import schedules
from tenants.errors import OperationError
from tenants.models import PLAN_DATABASE_GB, Schedule, Tenant
from tenants.services import (
    Actor,
    cancel_provisioning,
    change_plan,
    create_tenant,
    decommission_tenant,
    pause_run,
    reset_provisioning,
    resume_tenant,
    retry_provisioning,
    suspend_tenant,
    unpause_run,
)

from ..conftest import close_other_sessions, subprocess_env
from .harness import (
    OwnRedis,
    Tally,
    Workers,
    mark_harness_connections,
    point_celery_at,
    terminate_worker_backends,
    unmark_harness_connections,
)

SECONDS = float(os.environ.get("CONTROLPLANE_CHAOS_SECONDS", "60"))
TENANTS = int(os.environ.get("CONTROLPLANE_CHAOS_TENANTS", "30"))
SEED = int(os.environ.get("CONTROLPLANE_CHAOS_SEED", "20261121"))
SETTLE_SECONDS = float(os.environ.get("CONTROLPLANE_CHAOS_SETTLE_SECONDS", "150"))
REPORT = os.environ.get("CONTROLPLANE_CHAOS_REPORT", "")
HEARTBEAT_TIMEOUT = float(os.environ.get("CONTROLPLANE_CHAOS_HEARTBEAT_TIMEOUT", "10"))
# Tenants created in all: the population is kept at TENANTS while decommissioned ones are
# replaced, up to this many.
CREATE_CAP = int(TENANTS * max(4, SECONDS / 15))

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(int(SECONDS + SETTLE_SECONDS + 240)),
]

ACTOR = Actor.shell("chaos")
# The states an operation is tried on (it may still be refused: a recorded error, a race).
CANDIDATES = {
    "cancel": {"provisioning", "updating"},
    "reset": {"provisioning", "pending"},
    "retry": {"failed", "pending"},
    "decommission": {"active", "failed", "pending", "suspended"},
    "suspend": {"active"},
    "resume": {"suspended"},
    "change_plan": {"active"},
    "pause": {"provisioning"},
    "unpause": {"provisioning"},
    # A scheduled operation: asked now for a tenant in any state, run a few seconds later by
    # the schedule passes (two of them, racing), against the state then.
    "schedule": {"provisioning", "active", "suspended", "failed", "pending"},
}
# What a scheduled operation may be, and the event that opens each (it carries data.schedule).
SCHEDULABLE = {
    "cancel": "tenant.provisioning.cancel_requested",
    "retry": "tenant.provisioning.retry_requested",
    "suspend": "tenant.suspended",
    "resume": "tenant.resumed",
    "decommission": "tenant.decommission_requested",
    "pause": "tenant.run.paused",
    "unpause": "tenant.run.unpaused",
    # With its plan (``Schedule.options``): refused then if the tenant is on it by then.
    "change_plan": "tenant.plan_change.started",
}
PLANS = ["starter", "growth", "enterprise"]
SETTLED = {"active", "suspended", "decommissioned", "failed", "pending"}
# Faults a new run may carry: mostly none; ``stall`` is the only one allowed to end in a stall.
FAULTS = [None] * 6 + ["fail_once", "fail", "slow:1", "stall"]


def drop_tenant_schemas() -> None:
    for _, name in get_provider("database").inventory():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def chaos_world(fast_saga: Any, tmp_path: Path, admin_user: Any) -> Any:
    # Timings: short enough to play out in seconds, long enough that a busy shared machine
    # does not look like a dead worker; more tries, as faults here come every few seconds
    # (in production they are hours apart).
    fast_saga.CONTROLPLANE_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT
    fast_saga.CONTROLPLANE_HEARTBEAT_INTERVAL = HEARTBEAT_TIMEOUT / 10
    fast_saga.CONTROLPLANE_STEP_MAX_TRIES = 5
    fast_saga.CONTROLPLANE_RELEASE_MAX_TRIES = 3
    drop_tenant_schemas()
    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    old_broker = point_celery_at(redis.url)
    fast_saga.CELERY_BROKER_URL = redis.url
    env = subprocess_env(
        fast_saga,
        CELERY_BROKER_URL=redis.url,
        CONTROLPLANE_STEP_MAX_TRIES="5",
        CONTROLPLANE_RELEASE_MAX_TRIES="3",
        CELERY_DB_REUSE_MAX="100",
    )
    workers = Workers(env, tmp_path, size=2, concurrency=2)
    mark_harness_connections()
    world = {"redis": redis, "workers": workers, "admin": admin_user}
    try:
        yield world
    finally:
        workers.stop()
        redis.stop()
        point_celery_at(old_broker)
        unmark_harness_connections()
        drop_tenant_schemas()
        close_other_sessions()


class Operator:
    """Fires operations from its own thread (its own database connection): through the
    services as a shell actor, or through the JSON API with the Django test client."""

    def __init__(self, rng: random.Random, tally: Tally, admin: Any, http: bool) -> None:
        self.rng = rng
        self.tally = tally
        self.http = http
        self.client = Client() if http else None
        if self.client is not None:
            self.client.force_login(admin)

    def pick(self, states: set[str]) -> Tenant | None:
        ids = list(Tenant.objects.filter(state__in=states).values_list("id", flat=True))
        return Tenant.objects.get(pk=self.rng.choice(ids)) if ids else None

    def act(self, created: list[str], stall_runs: set[str]) -> None:
        roll = self.rng.random()
        alive = Tenant.objects.exclude(state="decommissioned").count()
        if alive < TENANTS and len(created) < CREATE_CAP and roll < 0.35:
            self.create(created)
            return
        for _ in range(4):  # an operation some tenant's state may allow
            op = self.rng.choice(
                [
                    "cancel",
                    "reset",
                    "retry",
                    "retry",
                    "decommission",
                    "suspend",
                    "resume",
                    "change_plan",
                    "change_plan",
                    "pause",
                    "unpause",
                    "schedule",
                ]
            )
            tenant = self.pick(CANDIDATES[op])
            if tenant is not None:
                break
        else:
            return
        if op == "schedule":
            self.schedule(tenant)
            return
        steps = PLAN_CHANGE_STEPS[:-1] if op == "change_plan" else STEPS[1:-1]
        faults = self.faults(steps) if op in ("retry", "change_plan") else None
        self.operate(op, tenant, faults)

    def schedule(self, tenant: Tenant) -> None:
        op = self.rng.choice(sorted(SCHEDULABLE))
        at = timezone.now() + timezone.timedelta(seconds=self.rng.uniform(0.5, 4))
        options = (
            {"plan": self.rng.choice([p for p in PLANS if p != tenant.plan])}
            if op == "change_plan"
            else {}
        )
        try:
            if self.client is not None:
                response = self.client.post(
                    f"/api/v1/tenants/{tenant.id}/{op}",
                    data=json.dumps({"at": at.isoformat(), **options}),
                    content_type="application/json",
                )
                outcome = (
                    "scheduled" if response.status_code == 202 else f"http_{response.status_code}"
                )
                if response.status_code >= 500:
                    self.tally.server_errors.append(f"http schedule {op}: {response.status_code}")
            else:
                schedules.schedule_operation(
                    op, tenant_id=tenant.id, actor=ACTOR, at=at, options=options or None
                )
                outcome = "scheduled"
            self.tally.count(f"schedule:{op}", outcome)
        except OperationError as exc:
            self.tally.count(f"schedule:{op}", f"refused:{exc.code}")
        except Exception as exc:  # noqa: BLE001 - counted as a server error
            self.tally.count(f"schedule:{op}", "server_error")
            self.tally.server_errors.append(f"schedule {op}: {type(exc).__name__}: {exc}")

    def faults(self, steps: tuple[str, ...] = STEPS[1:-1]) -> dict[str, str] | None:
        fault = self.rng.choice(FAULTS)
        if fault is None:
            return None
        return {self.rng.choice(steps): fault}

    def create(self, created: list[str]) -> None:
        with self.tally.lock:
            n = len(created)
            slug = f"chaos-{n:03d}"
            created.append(slug)
        try:
            create_tenant(
                actor=ACTOR,
                slug=slug,
                name=f"Chaos {n}",
                plan=self.rng.choice(["starter", "growth", "enterprise"]),
                admin_email=f"{slug}@example.test",
                start=True,
                faults=self.faults(),
            )
            self.tally.count("create", "accepted")
        except OperationError as exc:
            self.tally.count("create", f"refused:{exc.code}")
        except Exception as exc:  # noqa: BLE001 - counted as a server error
            self.tally.count("create", "server_error")
            self.tally.server_errors.append(f"create {slug}: {type(exc).__name__}: {exc}")

    def operate(self, op: str, tenant: Tenant, faults: dict[str, str] | None) -> None:
        plan = self.rng.choice([p for p in PLANS if p != tenant.plan])
        if self.client is not None:
            body: dict[str, Any] = {"faults": faults} if faults else {}
            if op == "change_plan":
                body["plan"] = plan
            response = self.client.post(
                f"/api/v1/tenants/{tenant.id}/{op}",
                data=json.dumps(body),
                content_type="application/json",
            )
            with self.tally.lock:
                self.tally.http_status[response.status_code] += 1
            outcome = {202: "accepted", 409: "refused:invalid_state"}.get(
                response.status_code, f"http_{response.status_code}"
            )
            self.tally.count(op, outcome)
            if response.status_code >= 500:
                self.tally.server_errors.append(f"http {op} {tenant.slug}: {response.status_code}")
            return
        service = {
            "cancel": cancel_provisioning,
            "reset": reset_provisioning,
            "retry": retry_provisioning,
            "decommission": decommission_tenant,
            "suspend": suspend_tenant,
            "resume": resume_tenant,
            "change_plan": change_plan,
            "pause": pause_run,
            "unpause": unpause_run,
        }[op]
        kwargs: dict[str, Any] = {"tenant_id": tenant.id, "actor": ACTOR}
        if op in ("retry", "change_plan") and faults:
            kwargs["faults"] = faults
        if op == "change_plan":
            kwargs["plan"] = plan
        try:
            service(**kwargs)
            self.tally.count(op, "accepted")
        except OperationError as exc:
            self.tally.count(op, f"refused:{exc.code}")
        except Exception as exc:  # noqa: BLE001 - counted as a server error
            self.tally.count(op, "server_error")
            self.tally.server_errors.append(f"{op} {tenant.slug}: {type(exc).__name__}: {exc}")


def unpause_all() -> None:
    """Settling: an operator unpauses what was left paused (a paused run never settles)."""
    for tenant in Tenant.objects.filter(condition="paused"):
        # Refused when it moved on meanwhile (cancelled, failed, completed).
        with contextlib.suppress(OperationError):
            unpause_run(tenant_id=tenant.id, actor=ACTOR)


def moving() -> list[str]:
    """What is still in flight: live runs nobody flagged, decommissions under way, schedules
    not yet run."""
    busy = [
        f"schedule {i}: not run yet"
        for i in Schedule.objects.filter(status="scheduled").values_list("id", flat=True)
    ]
    for tenant in Tenant.objects.all():
        if tenant.last_error:
            continue
        if tenant.state in ("provisioning", "updating"):
            busy.append(f"{tenant.slug}: {tenant.state}")
        elif tenant.decommission_requested_at and tenant.state != "decommissioned":
            busy.append(f"{tenant.slug}: decommissioning")
    return busy


def check_invariants(tally: Tally) -> list[str]:
    bad: list[str] = []
    tenants = list(Tenant.objects.all())
    tally.final_states = Counter(t.state for t in tenants)
    for tenant in tenants:
        name = tenant.slug
        held = list(Allocation.objects.filter(tenant=tenant, released_at__isnull=True))
        kinds = Counter(a.kind for a in held)
        runs = list(Run.objects.filter(tenant=tenant).order_by("attempt"))
        latest = runs[-1] if runs else None
        live = [r for r in runs if r.status in (RunStatus.RUNNING, RunStatus.CANCELLING)]
        # Nothing stuck: settled, or an error an operator can act on.
        if tenant.state not in SETTLED and not tenant.last_error:
            bad.append(f"{name}: stuck in {tenant.state} with no error")
        if tenant.state in SETTLED and tenant.state != "pending" and live:
            bad.append(f"{name}: {tenant.state} with a live run")
        decommissioning = tenant.decommission_requested_at and tenant.state != "decommissioned"
        if decommissioning and not tenant.last_error:
            bad.append(f"{name}: decommission never finished")
        # No duplicate live allocation.
        if any(n > 1 for n in kinds.values()):
            bad.append(f"{name}: duplicate held allocations {kinds}")
        # Allocations match states.
        unreleasable = [a for a in held if a.release_error]
        releases_all = tenant.state in ("failed", "decommissioned") or (
            tenant.state == "pending" and (latest is None or latest.status == RunStatus.CANCELLED)
        )
        if tenant.state in ("active", "suspended"):
            # A decommission that could not release everything keeps the state and records
            # the error (Decommission may be asked again): what is left has its release error.
            partly = tenant.decommission_requested_at and tenant.last_error
            if partly and len(unreleasable) != len(held):
                bad.append(f"{name}: {tenant.state}, decommission failed, holding {sorted(kinds)}")
            elif not partly and (sorted(kinds) != sorted(KINDS) or len(held) != 6):
                bad.append(
                    f"{name}: {tenant.state} holding {sorted(kinds)} "
                    f"(last error: {tenant.last_error!r})"
                )
        elif releases_all and len(held) != len(unreleasable):
            bad.append(f"{name}: {tenant.state} still holding {sorted(kinds)}")
        # A plan change cancelled or failed leaves the old plan's allocations exactly: the same
        # rows (above) with the plan's values, every change of those runs reverted.
        unreverted = AllocationChange.objects.filter(
            tenant=tenant, run__status__in=[RunStatus.CANCELLED, RunStatus.FAILED]
        ).exclude(status=AllocationChange.Status.REVERTED)
        if unreverted.filter(revert_error="").exists():
            bad.append(f"{name}: a cancelled or failed plan change left a change unreverted")
        by_kind = {a.kind: a.external_id for a in held}
        if (
            tenant.state in ("active", "suspended")
            and "database" in by_kind
            and "billing" in by_kind
            and not unreverted.exists()
        ):
            size = get_provider("database").read(tenant.id, by_kind["database"], "size_gb")
            billing = get_provider("billing").read(tenant.id, by_kind["billing"], "plan")
            if (size, billing) != (PLAN_DATABASE_GB[tenant.plan], tenant.plan):
                bad.append(f"{name}: on {tenant.plan} with database {size} GB, billing {billing}")
        open_intents = AllocationIntent.objects.filter(tenant=tenant, resolved_at__isnull=True)
        if tenant.state in ("failed", "decommissioned") and open_intents.exists():
            bad.append(f"{name}: {tenant.state} with open intents")
        # Every transition has its events.
        types = Counter(Event.objects.filter(tenant_id=tenant.id).values_list("type", flat=True))
        if not types["tenant.created"]:
            bad.append(f"{name}: no tenant.created")
        for run in runs:
            run_types = set(
                Event.objects.filter(tenant_id=tenant.id, run_id=run.id).values_list(
                    "type", flat=True
                )
            )
            prefix = "tenant.plan_change" if run.kind == "plan_change" else "tenant.provisioning"
            need = {f"{prefix}.started"}
            need |= {
                RunStatus.COMPLETED: {f"{prefix}.completed"},
                RunStatus.CANCELLED: {f"{prefix}.cancelled"},
                RunStatus.FAILED: {f"{prefix}.failed"},
            }.get(run.status, set())
            if run.stalled_at:
                need.add("tenant.provisioning.stalled")
            if need - run_types:
                bad.append(f"{name}: run {run.attempt} ({run.status}) lacks {need - run_types}")
        if tenant.state == "decommissioned" and not types["tenant.decommissioned"]:
            bad.append(f"{name}: decommissioned without its event")
        if tenant.state == "active" and not types["tenant.provisioning.completed"]:
            bad.append(f"{name}: active without a completed run")
        if tenant.state == "suspended" and not types["tenant.suspended"]:
            bad.append(f"{name}: suspended without its event")
        allocated = Counter(
            e["external_id"]
            for e in Event.objects.filter(
                tenant_id=tenant.id, type="tenant.resource.allocated"
            ).values_list("data", flat=True)
        )
        for a in Allocation.objects.filter(tenant=tenant):
            if not allocated[a.external_id]:
                bad.append(f"{name}: allocation {a.kind} without an allocated event")
        # No stall from load or from an infrastructure fault alone.
        for run in runs:
            if not run.stalled_at:
                continue
            step = StepExecution.objects.filter(run=run, name=run.current_step).first()
            if step is not None and step.started_at is None:
                # Its try never started: it waited in a queue (or its message was lost), which
                # must never spend a try, let alone stall the run, whatever the run's faults.
                tally.load_stalls += 1
                tally.infra_stall_steps[run.current_step or "?"] += 1
                bad.append(f"{name}: run {run.attempt} stalled while queued (load)")
            elif (run.faults or {}).get(run.current_step) in ("stall", "fail"):
                # An injected fault on the stalled step spent its tries (``stall``: every try
                # vanished; ``fail``: every try failed but the last, whose worker was killed
                # as it started): the infrastructure alone did not.
                tally.fault_stalls += 1
            else:
                tally.infra_stalls += 1
                tally.infra_stall_steps[run.current_step or "?"] += 1
                bad.append(f"{name}: run {run.attempt} stalled with no stall fault")
        if types["tenant.provisioning.orphaned_handle"]:
            bad.append(f"{name}: an orphaned handle")
    # A schedule runs at most once (and a done one exactly once); a refused one says so.
    for sched in Schedule.objects.all():
        ran = Event.objects.filter(
            tenant_id=sched.tenant_id,
            type=SCHEDULABLE[sched.operation],
            data__schedule=str(sched.id),
        ).count()
        tally.count(f"schedule_{sched.status}:{sched.operation}", sched.status)
        if sched.status == "scheduled":
            bad.append(f"schedule {sched.id}: never ran")
        if ran > 1 or (sched.status == "done") != (ran == 1):
            bad.append(f"schedule {sched.id} ({sched.operation}, {sched.status}) ran {ran} times")
        refused = Event.objects.filter(
            type="operation.schedule_refused", data__schedule=str(sched.id)
        ).count()
        if refused != (sched.status == "refused"):
            bad.append(f"schedule {sched.id}: {sched.status} with {refused} refusal events")
    # Held external ids are unique across tenants.
    ids = Counter(
        Allocation.objects.filter(released_at__isnull=True).values_list("kind", "external_id")
    )
    bad += [f"{kind} {ext} held twice" for (kind, ext), n in ids.items() if n > 1]
    # Ledger matches reality both ways.
    drift = reconcile.find_drift()
    tally.leaked = sum(f.problem == "leaked" for f in drift)
    tally.missing = sum(f.problem == "missing" for f in drift)
    bad += [f"{f.problem} {f.kind} {f.external_id} (tenant {f.tenant_id})" for f in drift]
    # The audit chain is intact.
    _, problems = verify_chains()
    bad += [f"audit: {p}" for p in problems]
    return bad


def timelines(violations: list[str], limit: int = 3) -> list[str]:
    """The audit timelines of the first tenants named by a violation (the database is
    flushed after the test, so this is the only record of what happened to them)."""
    slugs = []
    for v in violations:
        slug = v.split(":")[0]
        if slug.startswith("chaos-") and slug not in slugs:
            slugs.append(slug)
    lines = []
    for slug in slugs[:limit]:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            continue
        attempts = dict(Run.objects.filter(tenant=tenant).values_list("id", "attempt"))
        lines.append(f"  timeline of {slug}:")
        for e in Event.objects.filter(tenant_id=tenant.id).order_by("seq"):
            detail = {
                k: e.data[k] for k in ("step", "kind", "attempt", "reason", "error") if k in e.data
            }
            lines.append(
                f"    {e.occurred_at:%H:%M:%S.%f} run {attempts.get(e.run_id, '-')} "
                f"{e.actor} {e.type} {detail}"
            )
    return lines


def test_chaos(chaos_world: Any, capsys: Any):
    rng = random.Random(SEED)
    tally = Tally(seed=SEED)
    redis: OwnRedis = chaos_world["redis"]
    workers: Workers = chaos_world["workers"]
    with capsys.disabled():
        print(
            f"\nchaos: seed {SEED}, {SECONDS:g}s, {TENANTS} tenants",
            flush=True,
        )
    workers.fill()

    created: list[str] = []
    stall_runs: set[str] = set()
    stop = threading.Event()
    errors: list[BaseException] = []

    def operator_loop(index: int) -> None:
        op = Operator(
            random.Random(SEED * 10 + index), tally, chaos_world["admin"], http=index == 1
        )
        try:
            while not stop.is_set():
                op.act(created, stall_runs)
                if index == 0:
                    schedules.run_due()  # a second schedule pass, racing the harness's
                stop.wait(op.rng.uniform(0.05, 0.4))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=operator_loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    next_kill = started + rng.uniform(2, 6)
    next_redis = started + rng.uniform(8, 15)
    next_terminate = started + rng.uniform(3, 8)
    next_watchdog = started
    try:
        while time.monotonic() - started < SECONDS:
            now = time.monotonic()
            if now >= next_kill:
                workers.kill_one(rng)
                next_kill = now + rng.uniform(3, 8)
            if now >= next_redis:
                redis.stop()
                time.sleep(rng.uniform(0.2, 1.5))  # Redis stays down a moment, as it does
                redis.start()
                tally.redis_restarts += 1
                next_redis = now + rng.uniform(12, 20)
            if now >= next_terminate:
                tally.backend_terminations += 1
                tally.backends_terminated += terminate_worker_backends()
                next_terminate = now + rng.uniform(4, 9)
            if now >= next_watchdog:
                run_watchdog()
                schedules.run_due()
                tally.watchdog_passes += 1
                next_watchdog = now + 1.0
            workers.fill()  # the supervisor: a worker that died is replaced
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    tally.seconds = time.monotonic() - started
    assert not errors, errors
    tally.tenants = Tenant.objects.count()

    # Settle: workers and Redis up, watchdog passes until nothing moves (bounded).
    settle_start = time.monotonic()
    quiet = 0
    busy: list[str] = []
    while time.monotonic() - settle_start < SETTLE_SECONDS:
        workers.fill()
        run_watchdog()
        schedules.run_due()
        unpause_all()
        tally.watchdog_passes += 1
        busy = moving()
        quiet = quiet + 1 if not busy else 0
        if quiet >= 3:
            break
        time.sleep(1.0)
    tally.settle_seconds = time.monotonic() - settle_start
    tally.workers_killed = workers.killed
    tally.workers_died = workers.died
    tally.workers_started = workers.started

    violations = [f"still moving after settling: {b}" for b in busy] + check_invariants(tally)
    violations += [f"server error: {e}" for e in tally.server_errors]
    tally.violations = violations
    summary = tally.summary()
    with capsys.disabled():
        print("chaos summary: " + json.dumps(summary, indent=1), flush=True)
        for v in violations[:50]:
            print("  violation: " + v, flush=True)
        for line in timelines(violations):
            print(line, flush=True)
    if REPORT:
        Path(REPORT).write_text(json.dumps({**summary, "violations_list": violations}, indent=2))
    assert tally.redis_restarts >= 1 and tally.workers_killed >= 1
    assert tally.backend_terminations >= 1
    assert violations == []
