"""The cost of one ``/metrics`` scrape as history grows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_metrics \\
    .venv/bin/python bench/metrics_at_scale.py --tenants 20000

DROPS and recreates the database named by DATABASE_URL. Each tenant gets one completed run
(eight completed step executions) and the events a scrape reads (created, provisioning
started/completed, eight step_completed, and a failed try on one tenant in ten), bulk-inserted
(a benchmark of the scrape, not of the saga). Prints a Markdown row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_database  # noqa: E402 - bench/ is the script's own folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=20_000)
    args = parser.parse_args()
    fresh_database(ALLOWED_HOSTS="testserver", CONTROLPLANE_METRICS_PUBLIC="1")
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from audit.models import Event
    from provisioning.models import STEPS, Run, StepExecution
    from tenants.models import Tenant

    now = timezone.now()
    start = time.perf_counter()
    tenants, runs, steps, events = [], [], [], []

    def flush(final: bool = False) -> None:
        if len(steps) >= 40_000 or final:
            Tenant.objects.bulk_create(tenants)
            Run.objects.bulk_create(runs)
            StepExecution.objects.bulk_create(steps)
            Event.objects.bulk_create(events)
            for rows in (tenants, runs, steps, events):
                rows.clear()

    for i in range(args.tenants):
        tenant = Tenant(
            id=uuid.uuid4(),
            slug=f"t-{i:06d}",
            name=f"C {i}",
            plan="growth",
            admin_email=f"a{i}@c.test",
        )
        tenant.__dict__["state"] = "active"  # bulk rows bypass the transitions: reads only
        run = Run(id=uuid.uuid4(), tenant=tenant, attempt=1, actor="system", status="completed")
        tenants.append(tenant)
        runs.append(run)
        kinds: list[tuple[str, dict[str, object]]] = [
            ("tenant.created", {}),
            ("tenant.provisioning.started", {"attempt": 1}),
        ]
        for pos, name in enumerate(STEPS):
            took = timedelta(milliseconds=5 + (i * 7 + pos * 13) % 3000)
            steps.append(
                StepExecution(
                    run=run,
                    name=name,
                    position=pos,
                    status="completed",
                    tries=1,
                    started_at=now - took,
                    finished_at=now,
                )
            )
            if i % 10 == 0 and pos == 3:
                kinds.append(("tenant.provisioning.step_failed", {"step": name, "attempt": 1}))
            ms = int(took.total_seconds() * 1000)
            kinds.append(("tenant.provisioning.step_completed", {"step": name, "duration_ms": ms}))
        kinds.append(("tenant.provisioning.completed", {"total_duration_seconds": 1.0}))
        events.extend(
            Event(
                type=type_,
                occurred_at=now,
                tenant_id=tenant.id,
                run_id=run.id,
                actor="system",
                data=data,
                seq=seq,
                digest="bench",
            )
            for seq, (type_, data) in enumerate(kinds, start=1)
        )
        flush()
    flush(final=True)
    with connection.cursor() as c:
        c.execute("ANALYZE")
    total_events = Event.objects.count()
    print(
        f"inserted {args.tenants} tenants, {total_events} events in "
        f"{time.perf_counter() - start:.0f} s"
    )

    client = Client()
    samples = []
    for _ in range(15):
        t0 = time.perf_counter()
        response = client.get("/metrics")
        samples.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"/metrics answered {response.status_code}")
    samples.sort()
    print("| scrape | tenants | step executions | events | median | p90 |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| /metrics | {args.tenants:,} | {args.tenants * 8:,} | {total_events:,} | "
        f"{statistics.median(samples):.0f} ms | {samples[int(len(samples) * 0.9) - 1]:.0f} ms |"
    )


if __name__ == "__main__":
    main()
