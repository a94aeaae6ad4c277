"""``make bench``: every benchmark of docs/performance.md with its floor, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/run.py [--quick]

DROPS and recreates the database DATABASE_URL names. Prints the machine, the versions and two
Markdown tables. The first: for each figure the floor's and ours (median of the rounds, the
spread, and the 1-minute load average while they were taken), and their ratio; the saga's floor
is a bare Celery chain (bench/floor_app.py) whose worker imports nothing of ours. The second,
reads and memory against two floors: the bare stack (bench/bare, a Django project of its own
with nothing of ours, served by its own gunicorn) and the in-stack floor (the same view inside
our stack); their difference is the cost of our middleware and settings. Floors and ours are
measured interleaved, round by round; the load average is printed at the start and the end.
``--quick`` runs tiny sizes once (a minute or two: a smoke run, not a measurement); ``--only``
picks some.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ALL = ("saga", "latency", "sql", "reads", "cancel", "scale", "memory")


def versions() -> str:
    import celery
    import django
    import psycopg
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SHOW server_version")
        pg = c.fetchone()[0]
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    mem = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    return (
        f"{os.cpu_count()} cores, {mem} GiB, {platform.platform()}; Python "
        f"{platform.python_version()}, Django {django.get_version()}, Celery {celery.__version__}, "
        f"psycopg {psycopg.__version__}, PostgreSQL {pg}, {redis.split(' sha')[0].strip()}"
    )


def show(x: Any, unit: str) -> str:
    """A Sample as "median unit (min–max, n, load)", a plain number as itself, None as —."""
    if x is None:
        return "—"
    if hasattr(x, "values"):
        load = f", {x.load}" if x.loads else ""
        return f"{x.median:.4g} {unit} ({x.spread}, n={len(x.values)}{load})"
    return f"{x:.4g} {unit}"


def med(x: Any) -> float:
    return x.median if hasattr(x, "values") else x


def row(
    figure: str, floor, ours, *, unit: str, higher_is_better: bool, word: str = "slower"
) -> str:
    """A table row; ``floor``/``ours`` are Samples or plain numbers (None: no floor)."""
    ratio = "—"
    if floor is not None and med(floor):
        r = med(ours) / med(floor)
        ratio = f"{r:.2f}× the floor" if higher_is_better else f"{r:.2f}× {word}"
    return f"| {figure} | {show(floor, unit)} | {show(ours, unit)} | {ratio} |"


TWO_FLOORS = (
    "| figure | bare stack | in-stack floor | ours | ours ÷ bare | ours ÷ in-stack "
    "| in-stack ÷ bare: our middleware and settings |\n| --- | --- | --- | --- | --- | --- | --- |"
)


def two_floors_row(
    figure: str, bare: Any, in_stack: Any, ours: Any, *, unit: str, rate: bool
) -> str:
    """A row against both floors. ``rate``: requests/s (the last column also gives what our
    middleware and settings add per request, 1/in-stack − 1/bare, in ms of the server's time);
    otherwise MiB (what they add, in MiB). ``in_stack`` may be None."""

    def ratio(a: Any, b: Any) -> str:
        return "—" if a is None or b is None or not med(b) else f"{med(a) / med(b):.2f}×"

    cost = ratio(in_stack, bare)
    if in_stack is not None and med(in_stack) and med(bare):
        if rate:
            cost += f" ({1000 / med(in_stack) - 1000 / med(bare):+.2f} ms a request)"
        else:
            cost += f" ({med(in_stack) - med(bare):+.1f} MiB)"
    return (
        f"| {figure} | {show(bare, unit)} | {show(in_stack, unit)} | {show(ours, unit)} "
        f"| {ratio(ours, bare)} | {ratio(ours, in_stack)} | {cost} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=ALL, default=list(ALL))
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    tenants = 10 if args.quick else 200
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    from common import fresh_database

    env = fresh_database(
        LOG_LEVEL="WARNING",
        CONTROLPLANE_FAULT_INJECTION="1",
        CONTROLPLANE_STEP_DELAY="0",
        ALLOWED_HOSTS="127.0.0.1,testserver",
        # gunicorn serves plain HTTP here: no redirect to HTTPS, no Secure-only cookies.
        CONTROLPLANE_INSECURE_HTTP="1",
        PYTHONPATH=str(ROOT),
    )
    from bench import suite
    from bench.suite import Sample

    print(f"Machine: {versions()}")
    print(f"Load average (1 minute) at the start: {os.getloadavg()[0]:.1f}")
    print(f"Command: {' '.join(sys.argv)}; rounds: {rounds}\n")
    print("| figure | floor | ours | ratio |")
    print("| --- | --- | --- | --- |")
    mem_floor, mem_ours = Sample(), Sample()
    # Two kinds of providers: the stand-ins (a directory, a Django user, a schema and rows in
    # this database, each with its own statements) and "remote" ones, a cloud API's client as
    # the worker sees it, which do no local work. The floor's task calls no provider at all.
    remote = {**env, "BENCH_PROVIDERS": "remote"}
    if "saga" in args.only or "memory" in args.only:
        floor, ours, ours_remote = Sample(), Sample(), Sample()
        for _ in range(rounds):
            f, frss = suite.floor_throughput(env, chains=tenants)
            floor.add(f)
            mem_floor.add(frss)
            o, orss = suite.saga_throughput(env, tenants=tenants)
            ours.add(o)
            mem_ours.add(orss)
            r, _ = suite.saga_throughput(remote, tenants=tenants)
            ours_remote.add(r)
        for label, sample in (("stand-in providers", ours), ("remote providers", ours_remote)):
            print(
                row(
                    f"saga throughput, {tenants} tenants queued, 1 worker × 2, {label}",
                    floor,
                    sample,
                    unit="steps/s",
                    higher_is_better=True,
                ),
                flush=True,
            )
    if "latency" in args.only:
        repeat = 3 if args.quick else 10 * rounds
        for label, e in (("stand-in providers", env), ("remote providers", remote)):
            ours, floor = suite.latencies(e, repeat=repeat)
            print(
                row(
                    f"one provisioning, create → active, idle worker, {label}",
                    floor,
                    ours,
                    unit="ms",
                    higher_is_better=False,
                ),
                flush=True,
            )
    if "sql" in args.only:
        n = suite.statements_per_step()
        for figure, floor_key, ours_key in (
            (
                "SQL statements per step, the saga's own (BEGIN and COMMIT included)",
                "floor",
                "saga",
            ),
            ("commits per step, the saga's own", "floor_commits", "saga_commits"),
            ("SQL statements per step, with the stand-in providers' own", "floor", "all"),
            ("commits per step, with the stand-in providers' own", "floor_commits", "all_commits"),
        ):
            print(row(figure, n[floor_key], n[ours_key], unit="", higher_is_better=False))
        print(end="", flush=True)
    if "cancel" in args.only:
        n = 3 if args.quick else 10 * rounds
        for busy in (False, True):
            s = suite.cancel_latency(env, repeat=n, busy=busy)
            where = "every step slot busy in slow steps" if busy else "a step slot free"
            print(
                f"| cancel → pending with nothing held, {where} | — | p50 {s.median:.0f} ms, "
                f"p99 {s.pct(99):.0f} ms (n={len(s.values)}, max {max(s.values):.0f} ms, "
                f"{s.load}) | — |",
                flush=True,
            )
    if "scale" in args.only:
        slow = {
            **env,
            "BENCH_PROVIDER_LATENCY": "0.1",
            "DATABASE_POOL": "1",
            "DATABASE_POOL_MAX_SIZE": "16",
        }
        for c in (1, 4) if args.quick else (1, 4, 16, 64):
            s = Sample()
            for _ in range(1 if args.quick else max(1, rounds // 2)):
                rate, _ = suite.saga_throughput(
                    slow, tenants=max(8, 2 * c), concurrency=c, pool="threads"
                )
                s.add(rate)
            print(
                row(
                    f"providers 100 ms: {c} concurrent steps (threads pool, psycopg pool ≤16)",
                    None,
                    s,
                    unit="steps/s",
                    higher_is_better=True,
                ),
                flush=True,
            )

    # Reads and memory against two floors: the bare stack and the in-stack floor.
    reads: dict[str, dict[str, Sample]] = {}
    web_rss: dict[str, dict[str, Sample]] = {}
    if "reads" in args.only or "memory" in args.only:
        _, targets = suite.read_targets()
        seconds = 2 if args.quick else 10
        for label, extra in (("", {}), (" (DATABASE_POOL=1)", {"DATABASE_POOL": "1"})):
            reads[label], web_rss[label] = suite.http_rounds(
                {**env, **extra}, rounds=rounds, seconds=seconds, targets=targets
            )
    if reads or mem_ours.values:
        print(
            "\nReads and memory against two floors: the bare stack (bench/bare: Django with "
            "nothing of ours, its own gunicorn with 2 sync workers; the saga's floor worker for "
            "a Celery child) and the in-stack floor (the same view in our stack: our settings, "
            "middleware and process).\n"
        )
        print(TWO_FLOORS)
    for label, results in reads.items():
        for name in (suite.API_DETAIL, suite.CONSOLE_DETAIL):
            print(
                two_floors_row(
                    f"{name}, gunicorn 2 workers, 8 connections{label}",
                    results[suite.BARE_FLOOR],
                    results[suite.IN_STACK_FLOOR],
                    results[name],
                    unit="req/s",
                    rate=True,
                )
            )
    if "memory" in args.only:
        for label, rss in web_rss.items():
            print(
                two_floors_row(
                    f"peak RSS of a gunicorn worker{label} (in-stack: after the floor only)",
                    rss["bare"],
                    rss["in-stack"],
                    rss["ours"],
                    unit="MiB",
                    rate=False,
                )
            )
        if mem_ours.values:
            print(
                two_floors_row(
                    "peak RSS of a Celery worker's prefork child, after the throughput run",
                    mem_floor,
                    None,
                    mem_ours,
                    unit="MiB",
                    rate=False,
                )
            )
    print(f"\nLoad average (1 minute) at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
