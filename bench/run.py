"""``make bench``: every benchmark of docs/performance.md with its floor, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/run.py [--quick]

DROPS and recreates the database DATABASE_URL names. Prints the machine, the versions and a
Markdown table: for each figure the floor's and ours (median of the rounds, and the spread),
and their ratio. ``--quick`` runs tiny sizes once (a minute or two); ``--only`` picks some.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

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
        f"psycopg {psycopg.__version__}, PostgreSQL {pg}, {redis.split(' sha')[0].strip()}; "
        f"load average at the start {os.getloadavg()[0]:.1f} (the machine is shared)"
    )


def row(
    figure: str, floor, ours, *, unit: str, higher_is_better: bool, word: str = "slower"
) -> str:
    """A table row; ``floor``/``ours`` are Samples or plain numbers (None: no floor)."""

    def show(x) -> str:
        if x is None:
            return "—"
        if hasattr(x, "values"):
            return f"{x.median:.4g} {unit} ({x.spread}, n={len(x.values)})"
        return f"{x:.4g} {unit}"

    def med(x):
        return x.median if hasattr(x, "values") else x

    ratio = "—"
    if floor is not None and med(floor):
        r = med(ours) / med(floor)
        ratio = f"{r:.2f}× the floor" if higher_is_better else f"{r:.2f}× {word}"
    return f"| {figure} | {show(floor)} | {show(ours)} | {ratio} |"


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
            o, orss = suite.saga_throughput(env, tenants=tenants)
            r, _ = suite.saga_throughput(remote, tenants=tenants)
            floor.values.append(f)
            ours.values.append(o)
            ours_remote.values.append(r)
            mem_floor.values.append(frss)
            mem_ours.values.append(orss)
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
        print(
            row(
                "SQL statements per step, the saga's own (BEGIN and COMMIT included)",
                n["floor"],
                n["saga"],
                unit="",
                higher_is_better=False,
            )
        )
        print(
            row(
                "commits per step, the saga's own",
                n["floor_commits"],
                n["saga_commits"],
                unit="",
                higher_is_better=False,
            )
        )
        print(
            row(
                "SQL statements per step, with the stand-in providers' own",
                n["floor"],
                n["all"],
                unit="",
                higher_is_better=False,
            )
        )
        print(
            row(
                "commits per step, with the stand-in providers' own",
                n["floor_commits"],
                n["all_commits"],
                unit="",
                higher_is_better=False,
            ),
            flush=True,
        )
    web_rss: dict[str, Sample] = {}
    web_floor_rss: dict[str, Sample] = {}
    if "reads" in args.only or "memory" in args.only:
        _, targets = suite.read_targets()
        seconds = 2 if args.quick else 10
        for label, extra in (("", {}), (" (DATABASE_POOL=1)", {"DATABASE_POOL": "1"})):
            results, rss = suite.http_rounds(
                {**env, **extra}, rounds=rounds, seconds=seconds, targets=targets
            )
            floor = results.pop("floor (bare JSON view)")
            for name, sample in results.items():
                print(
                    row(
                        f"{name}, gunicorn 2 workers, 8 connections{label}",
                        floor,
                        sample,
                        unit="req/s",
                        higher_is_better=True,
                    )
                )
            web_rss.setdefault(label, Sample()).values.append(rss["gunicorn worker"])
            web_floor_rss.setdefault(label, Sample()).values.append(rss["after the floor only"])
        print(flush=True)
    if "cancel" in args.only:
        n = 3 if args.quick else 10 * rounds
        for busy in (False, True):
            s = suite.cancel_latency(env, repeat=n, busy=busy)
            where = "every step slot busy in slow steps" if busy else "a step slot free"
            print(
                f"| cancel → pending with nothing held, {where} | — | p50 {s.median:.0f} ms, "
                f"p99 {s.pct(99):.0f} ms (n={len(s.values)}, max {max(s.values):.0f} ms) | — |",
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
                s.values.append(rate)
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
    if "memory" in args.only and mem_ours.values:
        print(
            row(
                "resident memory of a worker process (prefork child)",
                mem_floor,
                mem_ours,
                unit="MiB",
                higher_is_better=False,
                word="the floor's",
            )
        )
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")
    for label, s in web_rss.items():
        print(
            row(
                f"resident memory of a gunicorn worker{label}",
                web_floor_rss[label],
                s,
                unit="MiB",
                higher_is_better=False,
                word="the floor's",
            )
        )


if __name__ == "__main__":
    main()
