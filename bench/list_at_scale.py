"""Tenant list, counts and search with 100,000 tenants, through the console and the API.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_list \\
    .venv/bin/python bench/list_at_scale.py --tenants 100000 [--repeat 15]

DROPS and recreates the database named by DATABASE_URL. The rows are bulk-inserted (a
benchmark of reads, not of the saga); every page is fetched through Django's test client, so
the time includes the view, the template or the JSON, and the queries. Prints Markdown rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_database  # noqa: E402 - bench/ is the script's own folder


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15, help="fetches of each page")
    args = parser.parse_args()
    fresh_database(ALLOWED_HOSTS="testserver")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from api.tokens import issue_token
    from tenants.models import Tenant

    states = ["active"] * 7 + ["suspended", "failed", "pending", "decommissioned"]
    now = timezone.now()
    batch = []
    start = time.perf_counter()
    for i in range(args.tenants):
        t = Tenant(
            id=uuid.uuid4(),
            slug=f"t-{i:06d}",
            name=f"Customer {i}",
            plan="growth",
            admin_email=f"admin{i}@customer{i}.test",
            last_error="",
        )
        # Bulk rows bypass the transitions on purpose: this measures reads.
        t.__dict__["state"] = states[i % len(states)]
        # Conditions as the saga would leave them: every failed tenant needs attention (about
        # 9%), a few pending ones hold a release that failed, a few provisioning ones stalled.
        t.condition = "failed" if t.state == "failed" else "ok"
        if i % 500 == 3:
            t.__dict__["state"], t.condition = "pending", "release_failed"
        elif i % 700 == 5:
            t.__dict__["state"], t.condition = "provisioning", "stalled"
            t.workflow_id, t.last_error = uuid.uuid4(), "stalled"
        elif i % 300 == 7:
            t.__dict__["state"], t.condition = "provisioning", "progressing"
            t.workflow_id = uuid.uuid4()
        batch.append(t)
        if len(batch) == 5000:
            Tenant.objects.bulk_create(batch)
            batch = []
    Tenant.objects.bulk_create(batch)
    # Spread creation times so keyset pages walk a realistic index.
    with connection.cursor() as c:
        c.execute(
            "UPDATE tenants_tenant SET created_at = %s - (random() * interval '365 days')",
            [now - timedelta(seconds=1)],
        )
    # What autovacuum would have done by the time anyone reads this fleet: statistics for the
    # planner, the visibility map (index-only scans) and the trigram indexes' pending lists
    # merged (a bulk load leaves 100,000 rows in them, read sequentially by every search).
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE tenants_tenant")
    print(f"inserted {args.tenants} tenants in {time.perf_counter() - start:.0f} s")

    user = User.objects.create_superuser("bench", "b@bench.test", "pw")
    _, token = issue_token(user=user, name="bench")
    console = Client()
    console.force_login(user)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def console_page(path: str):
        return lambda: _ok(console.get(path))

    def api_page(path: str):
        return lambda: _ok(api.get(path))

    # A cursor deep in the list: walk 20 pages first.
    deep = "/api/v1/tenants?limit=50"
    for _ in range(20):
        deep_cursor = api.get(deep).json()["next_cursor"]
        deep = f"/api/v1/tenants?limit=50&cursor={deep_cursor}"

    rows = [
        ("console list, first page", console_page("/tenants/")),
        ("console list, state=active", console_page("/tenants/?state=active")),
        ("console list, search 'customer 4242'", console_page("/tenants/?q=customer+4242")),
        ("console list, search 'customer' (in every row)", console_page("/tenants/?q=customer")),
        ("API list, first page (50)", api_page("/api/v1/tenants?limit=50")),
        ("API list, 21st page (50)", api_page(deep)),
        ("API list, state=failed", api_page("/api/v1/tenants?state=failed&limit=50")),
        ("API list, slug=t-099999", api_page("/api/v1/tenants?slug=t-099999")),
        # Conditions (issue 8): the attention chip and filters.
        ("console list, needs attention", console_page("/tenants/?needs_attention=1")),
        ("console list, condition=stalled", console_page("/tenants/?condition=stalled")),
        (
            "console list, poll (htmx)",
            lambda: _ok(console.get("/tenants/", HTTP_HX_REQUEST="true")),
        ),
        ("API list, needs_attention=true", api_page("/api/v1/tenants?needs_attention=true")),
        ("API list, condition=failed", api_page("/api/v1/tenants?condition=failed&limit=50")),
        (
            "API list, condition=stalled,release_failed",
            api_page("/api/v1/tenants?condition=stalled,release_failed&limit=50"),
        ),
        ("API list, q=customer 4242 (pg_trgm)", api_page("/api/v1/tenants?q=customer+4242")),
        (
            "API list, needs_attention + q=customer 42",
            api_page("/api/v1/tenants?needs_attention=true&q=customer+42"),
        ),
    ]
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"| request ({args.tenants:,} tenants) | median | p90 |")
    print("| --- | --- | --- |")
    for label, fn in rows:
        median, p90 = timed(fn, args.repeat)
        print(f"| {label} | {median:.1f} ms | {p90:.1f} ms |")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def _ok(response) -> None:
    if response.status_code not in (200, 286):
        raise SystemExit(f"{response.status_code}: {response.content[:300]!r}")


if __name__ == "__main__":
    main()
