"""The fleet at scale: 2,000 tenants through a provider outage, then one bulk retry, on 1, 2 and
4 worker processes (issue 19; results in docs/performance.md and docs/reliability.md).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_fleet \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/11 .venv/bin/python bench/fleet.py [--quick]

DROPS and recreates the database DATABASE_URL names, once per worker count. Per worker count:

1. *The outage*: every tenant is created while the storage provider, the first the saga calls,
   is down (a ``fail`` fault on ``allocate_storage``, which applies to that run only): each fails
   after its tries, holding nothing, and is ``failed``.
2. *The bulk retry*: one ``tenant bulk retry`` over all of them (in chunks of the bulk limit),
   at the bulk lane's priority. Providers answer in 50-500 ms and enforce their own limits
   (bench/fleet_providers.py); the control plane's CONTROLPLANE_PROVIDER_LIMITS stay just under
   them. Workers are plain ``celery -A controlplane worker`` processes (no ``-Q``), with beat.
3. *Meanwhile*, a probe tenant is created on its own every few seconds (its time to first step:
   created to its first step started) and another is cancelled mid-provisioning (the time from
   the cancel to the tenant back in ``pending``).

Printed: throughput (tenants/s, steps/s), the probes' p50/p99, stalls, steps that spent more than
one try, re-published copies of queued messages, the providers' refusals, leaks (a held
allocation of a tenant that is not active, an open intent), and every tenant active.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROVIDER_LIMITS = {"database": {"concurrency": 8, "per_minute": 1200}, "dns": {"per_minute": 1200}}
# Ours, just under the providers' own: a start admitted at the end of one of our minutes may
# reach the provider in its next.
OUR_LIMITS = {"database": {"concurrency": 8, "per_minute": 1140}, "dns": {"per_minute": 1140}}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait(predicate, timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s: {what}")
        time.sleep(every)


def one_round(args: argparse.Namespace, workers: int, logdir: Path) -> dict[str, object]:
    from common import fresh_database

    env = fresh_database(
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_PROVIDERS="fleet",
        CONTROLPLANE_FAULT_INJECTION="1",
        CONTROLPLANE_PROVIDER_LIMITS=json.dumps(OUR_LIMITS),
        BENCH_FLEET_PROVIDER_LIMITS=json.dumps(PROVIDER_LIMITS),
        BENCH_FLEET_LATENCY=args.latency,
        CONTROLPLANE_HEARTBEAT_TIMEOUT=str(args.heartbeat_timeout),
        CONTROLPLANE_WATCHDOG_INTERVAL="2",
        CONTROLPLANE_RETRY_BACKOFF="0.2",
        CONTROLPLANE_LOG_FORMAT="plain",
        LOG_LEVEL="WARNING",
    )
    import fleet_providers

    from audit.models import Event
    from controlplane.celery import app
    from provisioning.models import Allocation, AllocationIntent, StepExecution
    from tenants.bulk import bulk
    from tenants.models import Tenant
    from tenants.services import Actor, cancel_provisioning, create_tenant

    fleet_providers.reset()
    with app.connection_for_write() as conn:
        for queue in ("celery", "control"):
            conn.default_channel.queue_purge(queue)
    actor = Actor.shell("fleet-bench")
    procs = [
        start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "worker",
                f"--concurrency={args.concurrency}",
                "--loglevel=WARNING",
                "-n",
                f"fleet{i}@%h",
            ],
            env,
            logdir / f"worker-{workers}-{i}.log",
        )
        for i in range(workers)
    ]
    procs.append(
        start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "beat",
                "--loglevel=WARNING",
                f"--schedule={logdir / f'beat-{workers}'}",
            ],
            env,
            logdir / f"beat-{workers}.log",
        )
    )
    try:
        # 1. the outage
        t = time.monotonic()
        for i in range(args.tenants):
            create_tenant(
                slug=f"fleet-{i:05d}",
                name=f"Fleet {i}",
                plan="growth",
                admin_email=f"ops{i}@fleet.test",
                actor=actor,
                faults={"allocate_storage": "fail"},
            )
        wait(
            lambda: Tenant.objects.filter(state="failed").count() == args.tenants,
            timeout=args.tenants * 2,
            what="every tenant failed by the outage",
            every=2,
        )
        outage_seconds = time.monotonic() - t
        # What autovacuum would have done by now on a server that runs it (this machine's
        # system PostgreSQL does not): without statistics the planner takes a 2,000-run table
        # for an empty one.
        from django.db import connection as db

        with db.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        # 2. the bulk retry, with probes meanwhile
        steps_before = StepExecution.objects.count()
        first_step: list[float] = []
        cancels: list[float] = []
        stop_probes = threading.Event()

        def probe() -> None:
            from django.db import connection

            n = 0
            while not stop_probes.is_set():
                n += 1
                tenant = create_tenant(
                    slug=f"probe-{n:04d}",
                    name=f"Probe {n}",
                    plan="starter",
                    admin_email=f"probe{n}@fleet.test",
                    actor=actor,
                )
                victim = create_tenant(
                    slug=f"victim-{n:04d}",
                    name=f"Victim {n}",
                    plan="starter",
                    admin_email=f"victim{n}@fleet.test",
                    actor=actor,
                    faults={"allocate_identity": "slow:3"},
                )
                try:
                    wait(
                        lambda v=victim: StepExecution.objects.filter(
                            run_id=v.workflow_id, name="allocate_identity", status="running"
                        ).exists(),
                        timeout=60,
                        what="the victim mid-provisioning",
                        every=0.05,
                    )
                    asked = time.monotonic()
                    cancel_provisioning(tenant_id=victim.pk, actor=actor)
                    wait(
                        lambda v=victim: Tenant.objects.get(pk=v.pk).state == "pending",
                        timeout=120,
                        what="the cancel to finish",
                        every=0.05,
                    )
                    cancels.append(time.monotonic() - asked)
                except RuntimeError as exc:
                    print(f"  probe {n}: {exc}", flush=True)
                wait(
                    lambda p=tenant: StepExecution.objects.filter(
                        run_id=p.workflow_id, started_at__isnull=False
                    ).exists(),
                    timeout=120,
                    what="the probe's first step",
                    every=0.05,
                )
                step = (
                    StepExecution.objects.filter(run_id=tenant.workflow_id)
                    .exclude(started_at=None)
                    .order_by("started_at")
                    .first()
                )
                first_step.append((step.started_at - tenant.created_at).total_seconds())
                stop_probes.wait(args.probe_every)
            connection.close()

        t = time.monotonic()
        failed = list(Tenant.objects.filter(state="failed").values_list("pk", flat=True))
        for chunk in range(0, len(failed), 1000):
            result = bulk(
                "retry", actor=actor, ids=[str(i) for i in failed[chunk : chunk + 1000]], limit=1000
            )
            if result.count("accepted") != len(failed[chunk : chunk + 1000]):
                raise RuntimeError(f"the bulk retry refused some: {result.as_dict()}")
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        fleet = Tenant.objects.filter(slug__startswith="fleet-")
        wait(
            lambda: fleet.filter(state="active").count() == args.tenants,
            timeout=args.tenants * 4,
            what="every tenant active after the bulk retry",
            every=1,
        )
        bulk_seconds = time.monotonic() - t
        stop_probes.set()
        prober.join(timeout=180)
        steps = StepExecution.objects.count() - steps_before

        # The last probes settle first: a tenant still provisioning holds what it holds.
        wait(
            lambda: not Tenant.objects.filter(state="provisioning").exists(),
            timeout=120,
            what="the last probes to settle",
        )
        active = set(Tenant.objects.filter(state="active").values_list("pk", flat=True))
        leaks = (
            Allocation.objects.filter(released_at__isnull=True)
            .exclude(tenant_id__in=active)
            .count()
            + AllocationIntent.objects.filter(resolved_at__isnull=True).count()
        )
        providers = fleet_providers.counters()
        return {
            "workers": workers,
            "tenants": args.tenants,
            "outage_seconds": round(outage_seconds, 1),
            "bulk_seconds": round(bulk_seconds, 1),
            "tenants_per_second": round(args.tenants / bulk_seconds, 2),
            "steps_per_second": round(steps / bulk_seconds, 1),
            "first_step_p50": round(pct(first_step, 50), 2),
            "first_step_p99": round(pct(first_step, 99), 2),
            "probes": len(first_step),
            "cancel_p50": round(pct(cancels, 50), 2),
            "cancel_p99": round(pct(cancels, 99), 2),
            "cancels": len(cancels),
            "stalls": Event.objects.filter(type="tenant.provisioning.stalled").count(),
            "redispatched": Event.objects.filter(
                type="tenant.provisioning.step_redispatched"
            ).count(),
            "steps_over_one_try": StepExecution.objects.filter(
                run__tenant__slug__startswith="fleet-", run__attempt=2, tries__gt=1
            ).count(),
            "republished": sum(
                StepExecution.objects.filter(run__attempt=2).values_list("republished", flat=True)
            )
            if hasattr(StepExecution, "republished")
            else None,
            "provider_calls": {k: v for k, v in providers.items() if k.endswith(":calls")},
            "provider_refusals": sum(v for k, v in providers.items() if ":refused" in k),
            "leaks": leaks,
            "all_active": len(active & set(fleet.values_list("pk", flat=True))) == args.tenants,
            "load_average_end": round(os.getloadavg()[0], 1),
        }
    finally:
        for proc in procs:
            stop(proc)
        from django.db import connections

        connections.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", default="0.05:0.5")
    parser.add_argument("--heartbeat-timeout", type=float, default=30)
    parser.add_argument("--probe-every", type=float, default=3)
    parser.add_argument("--quick", action="store_true", help="100 tenants on 1 worker")
    parser.add_argument("--out", default="", help="append each round's JSON line to this file")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.workers = 100, "1"
    logdir = Path("/tmp/cp-fleet-logs")
    logdir.mkdir(exist_ok=True)
    print(
        f"fleet: {args.tenants} tenants, workers {args.workers} x {args.concurrency}, providers "
        f"{args.latency} s with limits {json.dumps(PROVIDER_LIMITS)} (ours "
        f"{json.dumps(OUR_LIMITS)}); load average at the start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows = []
    for n in [int(w) for w in args.workers.split(",")]:
        row = one_round(args, n, logdir)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as out:
                out.write(json.dumps(row) + "\n")
    print(
        "\n| workers | tenants/s | steps/s | first step p50 / p99 | cancel p50 / p99 | stalls "
        "| >1 try | refusals | leaks | all active |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['workers']} | {r['tenants_per_second']} | {r['steps_per_second']} | "
            f"{r['first_step_p50']} / {r['first_step_p99']} s | {r['cancel_p50']} / "
            f"{r['cancel_p99']} s | {r['stalls']} | {r['steps_over_one_try']} | "
            f"{r['provider_refusals']} | {r['leaks']} | {r['all_active']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
