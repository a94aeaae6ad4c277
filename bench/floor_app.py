"""The floor of the saga: a bare Celery chain of 8 tasks, each one UPDATE and one INSERT in a
transaction, on the same PostgreSQL, Redis, Django and Celery as the product.

Its worker runs on the bare project's settings (bench/bare/settings.py: the same database
connection and Celery settings as ours, and no app, signal or module of ours), so both its
throughput and its children's memory are the bare stack's:

    DJANGO_SETTINGS_MODULE=bench.bare.settings celery -A bench.floor_app worker -Q floor -c 2

The bench's own process imports this module too (on ``bench.settings``) to prepare, send and
count the chains: sending needs only the same broker.
"""

from __future__ import annotations

import os

from celery import Celery, chain

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.bare.settings")

app = Celery("floor", set_as_current=False)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "100"))
app.conf.task_default_queue = "floor"
app.conf.task_routes = {}

STEPS = 8
TABLES = [
    "CREATE TABLE IF NOT EXISTS bench_floor_chain (id bigint PRIMARY KEY,"
    " step int NOT NULL, updated_at timestamptz)",
    "CREATE TABLE IF NOT EXISTS bench_floor_log (id bigserial PRIMARY KEY,"
    " chain_id bigint NOT NULL, step int NOT NULL,"
    " at timestamptz NOT NULL DEFAULT clock_timestamp())",
]


@app.task(name="floor.step", acks_late=True, ignore_result=True)
def step(chain_id: int, n: int) -> None:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bench_floor_chain SET step = %s, updated_at = clock_timestamp() WHERE id = %s",
            [n, chain_id],
        )
        cursor.execute(
            "INSERT INTO bench_floor_log (chain_id, step) VALUES (%s, %s)", [chain_id, n]
        )


def prepare(chain_ids: list[int]) -> None:
    """The floor's two tables, and one row per chain (done before any timing)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in TABLES:
            cursor.execute(statement)
        cursor.executemany(
            "INSERT INTO bench_floor_chain (id, step) VALUES (%s, 0) ON CONFLICT DO NOTHING",
            [(i,) for i in chain_ids],
        )


def logged(chain_ids: list[int]) -> tuple[int, float | None, float | None]:
    """How many steps these chains have logged, and the first and last ``at`` (epoch
    seconds)."""
    from django.db import connection

    marks = ", ".join(["%s"] * len(chain_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), extract(epoch FROM min(at)), extract(epoch FROM max(at)) "
            f"FROM bench_floor_log WHERE chain_id IN ({marks})",
            chain_ids,
        )
        count, first, last = cursor.fetchone()
    return count, None if first is None else float(first), None if last is None else float(last)


def send(chain_id: int) -> None:
    chain(*(step.si(chain_id, n) for n in range(STEPS))).apply_async()
