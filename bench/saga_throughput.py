"""How fast the saga provisions tenants on PostgreSQL + Redis with real worker processes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/saga_throughput.py

Creates a fresh database (it DROPS the one named by DATABASE_URL), starts worker processes,
creates N tenants at once and waits until all are active. Prints a Markdown table row.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_database  # noqa: E402 - bench/ is the script's own folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--db-reuse-max", default="100")
    args = parser.parse_args()

    env = fresh_database(CELERY_DB_REUSE_MAX=args.db_reuse_max, LOG_LEVEL="WARNING")
    subprocess.run(
        ["redis-cli", "-u", env["CELERY_BROKER_URL"], "FLUSHDB"], check=True, capture_output=True
    )
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "worker",
                f"--concurrency={args.concurrency}",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench{i}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(args.workers)
    ]
    from audit.models import Event
    from tenants.models import Tenant
    from tenants.services import Actor, create_tenant

    try:
        time.sleep(3)  # let the workers connect before the clock starts (not a measurement)
        actor = Actor.shell("bench")
        start = time.perf_counter()
        for i in range(args.tenants):
            create_tenant(
                slug=f"bench-{i:05d}",
                name=f"Bench {i}",
                plan="starter",
                admin_email=f"b{i}@bench.test",
                actor=actor,
            )
        created = time.perf_counter() - start
        while Tenant.objects.filter(state="active").count() < args.tenants:
            if Tenant.objects.filter(state="failed").exists():
                raise SystemExit("a tenant failed during the benchmark")
            time.sleep(0.1)
        total = time.perf_counter() - start
        durations = sorted(
            e.data["total_duration_seconds"]
            for e in Event.objects.filter(type="tenant.provisioning.completed")
        )
        steps = [
            e.data["duration_ms"]
            for e in Event.objects.filter(type="tenant.provisioning.step_completed")
        ]
        p95 = durations[int(len(durations) * 0.95) - 1]
        print(
            f"| {args.tenants} | {args.workers}×{args.concurrency} | {args.db_reuse_max} | "
            f"{created:.1f} s | {total:.1f} s | {args.tenants / total:.1f} | "
            f"{statistics.median(durations):.2f} s | {p95:.2f} s | "
            f"{statistics.median(steps):.0f} ms |"
        )
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait()


if __name__ == "__main__":
    main()
