"""Where a saga step's time goes: CPU a step by process (the worker's children, its main
process, PostgreSQL, Redis) while one worker drains queued tenants, and optionally a py-spy
profile of the worker with idle samples (docs/performance.md, "Chains").

    .venv/bin/pip install py-spy             # into the .venv; not a dependency
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/profile_saga.py \\
        [--tenants 300] [--spy /tmp/saga.raw]

DROPS and recreates the database DATABASE_URL names. Creates the tenants first (their first
steps queued), starts one worker (prefork, 2 children, the bench's remote providers: no work
of their own), and reads every process's CPU time from /proc before and after the drain. With
``--spy``, py-spy samples the worker and its children (``--idle``: waits count) into a raw file
and the children's samples are summed by where their main thread was.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Where a child's main thread was, innermost first: the first of these on its stack names it.
PLACES = (
    ("lock_step", "lock and read"),
    ("start_try", "start statement"),
    ("record_answer", "record statement"),
    ("publish_step", "publish the next step"),
    ("_work", "provider call and heartbeat"),
    ("_claim", "claim: BEGIN, COMMIT, the rest"),
    ("_record", "record: BEGIN, COMMIT, the rest"),
    ("execute_step", "the rest of the step"),
    ("execute_chain", "the chain, between steps"),
    ("trace_task", "Celery around the task"),
)


def cpu_by_process() -> dict[str, float]:
    """Seconds of CPU so far of every PostgreSQL, Redis and Celery worker process, by kind."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = collections.defaultdict(float)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            comm = (proc / "comm").read_text().strip()
            cmd = (proc / "cmdline").read_text().replace("\0", " ")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(stat[11]) + int(stat[12])) / tick
        if comm.startswith("postgres"):
            out["postgres"] += seconds
        elif comm.startswith("redis-server"):
            out["redis"] += seconds
        elif "celery" in cmd and " worker" in cmd:
            try:
                parent = Path(f"/proc/{stat[1]}/cmdline").read_text()
            except OSError:
                parent = ""
            out["worker child" if "celery" in parent else "worker main"] += seconds
    return out


def where_children_were(raw: Path, worker_pid: int) -> list[tuple[str, float]]:
    """Share of the children's main-thread samples by place (PLACES), idle included."""
    places: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \(.*", "", f) for f in stack.split(";")]
        if len(frames) < 3 or not frames[1].startswith("process "):
            continue  # the worker's main process, or a child's other threads
        if frames[1].startswith(f"process {worker_pid}:") or not frames[2].startswith("_run"):
            continue
        names = {name.rsplit(".", 1)[-1] for name in frames}
        place = next((label for fn, label in PLACES if fn in names), "the pool: waiting for a task")
        places[place] += int(count)
    total = sum(places.values()) or 1
    return [(place, n / total) for place, n in places.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--spy", type=Path, help="write py-spy's raw samples here")
    args = parser.parse_args()

    from common import fresh_database

    env = fresh_database(
        CELERY_DB_REUSE_MAX="100",
        LOG_LEVEL="WARNING",
        BENCH_PROVIDERS="remote",
        DJANGO_SETTINGS_MODULE="bench.settings",
    )
    from django.db.models import Max, Min

    from bench import suite
    from provisioning.models import StepExecution
    from tenants.models import Tenant

    suite.purge("celery", "control")
    ids = [t.id for t in suite._create(args.tenants, prefix="prof")]
    spy = None
    with suite.workers(env, app="controlplane", queues="celery,control", concurrency=2) as w:
        before = cpu_by_process()
        if args.spy:
            spy = subprocess.Popen(
                ["py-spy", "record", "-s", "--idle", "-r", "200", "-f", "raw"]
                + ["-o", str(args.spy), "-p", str(w.proc.pid)],
                env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        suite._wait(
            lambda: Tenant.objects.filter(pk__in=ids, state="active").count() == len(ids),
            600,
            "every tenant active",
        )
        after = cpu_by_process()
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
        worker_pid = w.proc.pid
    steps = StepExecution.objects.filter(run__tenant_id__in=ids)
    span = steps.aggregate(a=Min("started_at"), b=Max("finished_at"))
    count = steps.count()
    seconds = (span["b"] - span["a"]).total_seconds()
    rate, load = count / seconds, os.getloadavg()[0]
    print(f"{count} steps in {seconds:.2f} s: {rate:.1f} steps/s (load {load:.1f})")
    print("| process | CPU, ms a step |\n| --- | --- |")
    for kind in sorted(after):
        print(f"| {kind} | {(after[kind] - before.get(kind, 0)) / count * 1000:.3f} |")
    if args.spy:
        print("\n| where a child's main thread was | share of its samples |\n| --- | --- |")
        for place, share in where_children_were(args.spy, worker_pid):
            print(f"| {place} | {share:.1%} |")


if __name__ == "__main__":
    main()
