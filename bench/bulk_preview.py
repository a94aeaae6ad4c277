"""Bulk preview of 1,000 tenants on PostgreSQL: the bulk service and the API endpoint.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_bulk \\
    .venv/bin/python bench/bulk_preview.py --tenants 1000

DROPS and recreates the database named by DATABASE_URL. The tenants (active, suspended, failed,
pending) and their six held allocations each are bulk-inserted (a benchmark of the preview, not
of the saga). Then ``decommission`` is previewed (``dry_run``) for all of them by ids, through
``tenants.bulk.bulk`` and through ``POST /api/v1/tenants/bulk/decommission`` with a bearer
token; the target is under 2 s. Prints Markdown rows (median and worst of the runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_database  # noqa: E402 - bench/ is the script's own folder

KINDS = ["storage", "identity", "database", "dns", "billing", "invite"]


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    fresh_database(ALLOWED_HOSTS="testserver")
    from django.contrib.auth.models import Group, Permission, User
    from django.db import connection
    from django.test import Client

    from api.tokens import issue_token
    from provisioning.models import Allocation, Run
    from tenants import bulk
    from tenants.models import Tenant
    from tenants.roles import sync_roles
    from tenants.services import Actor

    states = ["active"] * 7 + ["suspended", "failed", "pending"]
    tenants = [
        Tenant(
            id=uuid.uuid4(),
            slug=f"b-{i:05d}",
            name=f"Customer {i}",
            plan="growth",
            admin_email=f"admin{i}@customer{i}.test",
            state=states[i % len(states)],
        )
        for i in range(args.tenants)
    ]
    Tenant.objects.bulk_create(tenants, batch_size=2000)
    # Each tenant that ran holds a handle to its (completed or failed) run, as in production, so
    # the preview reads the handle runs too.
    runs = [
        Run(
            tenant_id=t.id,
            attempt=1,
            status="failed" if t.state == "failed" else "completed",
            actor="user:bench",
        )
        for t in tenants
        if t.state != "pending"
    ]
    Run.objects.bulk_create(runs, batch_size=2000)
    for t, r in zip([t for t in tenants if t.state != "pending"], runs, strict=True):
        t.workflow_id = r.id
    Tenant.objects.bulk_update(tenants, ["workflow_id"], batch_size=2000)
    Allocation.objects.bulk_create(
        [
            Allocation(tenant_id=t.id, kind=kind, external_id=f"{kind}-{t.slug}")
            for t in tenants
            if t.state != "pending"
            for kind in KINDS
        ],
        batch_size=5000,
    )
    sync_roles(Group, Permission)
    admin = User.objects.create_user("bench-admin")
    admin.groups.add(Group.objects.get(name="admin"))
    _, raw = issue_token(user=admin, name="bench")
    ids = [str(t.id) for t in tenants]
    actor = Actor.for_user(admin)

    def service() -> None:
        result = bulk.bulk(
            "decommission", actor=actor, ids=ids, dry_run=True, limit=bulk.BULK_MAX_LIMIT
        )
        if len(result.results) != args.tenants:
            raise SystemExit(f"expected {args.tenants} results, got {len(result.results)}")

    client = Client()
    body = json.dumps({"ids": ids, "dry_run": True, "limit": 1000})

    def api() -> None:
        response = client.post(
            "/api/v1/tenants/bulk/decommission",
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {raw}"},
        )
        if response.status_code != 200 or len(response.json()["results"]) != args.tenants:
            raise SystemExit(f"unexpected answer {response.status_code}: {response.content[:300]}")

    service()
    api()  # warm up (connection, templates, token cache)
    statements: list[str] = []

    def count(execute, sql, params, many, context):  # noqa: ANN001 - Django's wrapper signature
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        service()
    rows = [
        ("bulk service, dry run", *timed(service, args.repeat)),
        ("POST /api/v1/tenants/bulk/decommission, dry run", *timed(api, args.repeat)),
    ]
    print(f"{args.tenants} tenants, {len(statements)} queries per service call\n")
    print("| what | median ms | worst ms |")
    print("| --- | ---: | ---: |")
    for what, median, worst in rows:
        print(f"| {what} | {median:.0f} | {worst:.0f} |")


if __name__ == "__main__":
    main()
