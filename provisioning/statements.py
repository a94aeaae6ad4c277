"""The statements of a step's two transactions, one round trip each on PostgreSQL.

A step runs a claim and a record transaction (see ``provisioning.saga``). Written with the ORM
they took 18 statements, and compiling those queries cost more of a worker's time than
PostgreSQL spent running them. Here each is one hand-written statement on PostgreSQL, compiled
once, with the same effect as the ORM code beside it, which other databases (the embedded
SQLite default) run instead:

- ``lock_step``: the tenant, the step and its run, all three locked, plus the next step's id.
  Locking step and run as well as the tenant is what makes one statement enough: after a lock
  wait, PostgreSQL returns the newest version of every row it locked, so the fence is checked
  against what the transaction that held the lock left, not against the statement's snapshot.
  The tenant is locked first, as every other writer of a run locks it first.
- ``start_try``: mark the step running and, for a step that allocates, read what the tenant
  already holds of its kind and, when nothing, open the allocation intent.
- ``record_answer``: write the provider's answer on the ledger (unless held already) and resolve
  the intent.
- ``advance``: complete the step, give the next one its try and move the run's current step.

Every statement after ``lock_step`` is a new statement under the tenant's lock, so what it reads
of the ledger is exact: every ledger write for a tenant holds that lock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import F, Model

from tenants.models import Tenant

from . import ledger
from .models import Allocation, Run, StepExecution, StepStatus


def _postgres() -> bool:
    return connection.vendor == "postgresql"


# --- lock_step ------------------------------------------------------------------------------


@cache
def _columns(model: type[Model]) -> list[str]:
    return [f.column for f in model._meta.concrete_fields]


@cache
def _lock_sql() -> str:
    def cols(model: type[Model], alias: str) -> str:
        return ", ".join(f'{alias}."{c}"' for c in _columns(model))

    # Made of the models' own column names: no input goes into this text.
    selected = ", ".join([cols(Tenant, "t"), cols(StepExecution, "s"), cols(Run, "r"), "nxt.id"])
    return (
        f"SELECT {selected} FROM tenants_tenant t "  # noqa: S608
        "JOIN provisioning_run r ON r.tenant_id = t.id "
        "JOIN provisioning_stepexecution s ON s.run_id = r.id "
        "LEFT JOIN provisioning_stepexecution nxt "
        "ON nxt.run_id = s.run_id AND nxt.position = s.position + 1 "
        "WHERE s.id = %s "
        "FOR UPDATE OF t FOR NO KEY UPDATE OF s, r"
    )


def _instance(model: type[Model], values: list[Any]) -> Any:
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        for convert in field.get_db_converters(connection):
            value = convert(value, field, connection)
        converted.append(value)
    return model.from_db(connection.alias, None, converted)


def lock_step(step_id: int) -> tuple[Tenant, StepExecution] | None:
    """The step's tenant, locked until the transaction ends, and the step (with ``run`` and
    ``next_id``: its run's following step or None) read once that lock is held. None when there
    is no such step."""
    if not _postgres():
        from . import runs

        tenant = runs.lock_tenant_of_step(step_id)
        if tenant is None:
            return None
        return tenant, runs.load_step_with_next(step_id)
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(), [step_id])
        row = cursor.fetchone()
    if row is None:
        return None
    a = len(_columns(Tenant))
    b = a + len(_columns(StepExecution))
    c = b + len(_columns(Run))
    tenant = _instance(Tenant, row[:a])
    step = _instance(StepExecution, row[a:b])
    step.run = _instance(Run, row[b:c])
    step.next_id = row[c]
    return tenant, step


# --- start_try ------------------------------------------------------------------------------

_HELD = """
SELECT id, external_id FROM provisioning_allocation
WHERE tenant_id = %(tenant)s AND kind = %(kind)s AND released_at IS NULL
ORDER BY allocated_at, id LIMIT 1
"""

_START_SQL = """
UPDATE provisioning_stepexecution
SET status = 'running', started_at = %(started)s, heartbeat_at = %(now)s
WHERE id = %(step)s
"""

_START_ALLOCATING_SQL = f"""
WITH held AS ({_HELD}),
running AS ({_START_SQL}),
intent AS (
    INSERT INTO provisioning_allocationintent
        (tenant_id, kind, run_id, created_at, resolved_at, outcome, external_id, release_error)
    SELECT %(tenant)s, %(kind)s, %(run)s, %(now)s, NULL, '', '', ''
    WHERE NOT EXISTS (SELECT 1 FROM held)
    ON CONFLICT DO NOTHING
)
SELECT id, external_id FROM held
"""  # noqa: S608 - made of constants


def start_try(
    step: StepExecution, *, tenant_id: uuid.UUID, kind: str | None, now: datetime
) -> Allocation | None:
    """Mark the step running (tenant locked, fence checked). For a step that allocates, return
    the tenant's held allocation of its kind, or None after opening the intent that goes on the
    ledger before the provider is called (an intent still open from an earlier try is kept)."""
    params = {"step": step.pk, "started": step.started_at, "now": now}
    if not _postgres():
        StepExecution.objects.filter(pk=step.pk).update(
            status=StepStatus.RUNNING, started_at=step.started_at, heartbeat_at=now
        )
        if kind is None:
            return None
        held = ledger.held_allocations(tenant_id).filter(kind=kind).first()
        if held is None:
            ledger.open_intent(tenant_id=tenant_id, kind=kind, run_id=step.run_id)
        return held
    with connection.cursor() as cursor:
        if kind is None:
            cursor.execute(_START_SQL, params)
            return None
        cursor.execute(
            _START_ALLOCATING_SQL, {**params, "tenant": tenant_id, "kind": kind, "run": step.run_id}
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Allocation(pk=row[0], tenant_id=tenant_id, kind=kind, external_id=row[1])


# --- record_answer --------------------------------------------------------------------------

_RECORD_SQL = f"""
WITH held AS ({_HELD}),
made AS (
    INSERT INTO provisioning_allocation
        (tenant_id, kind, external_id, allocated_by_id, released_by_id, allocated_at,
         released_at, release_attempts, release_error)
    SELECT %(tenant)s, %(kind)s, %(external)s, %(run)s, NULL, %(now)s, NULL, 0, ''
    WHERE NOT EXISTS (SELECT 1 FROM held)
    RETURNING id, external_id
),
resolved AS (
    UPDATE provisioning_allocationintent
    SET resolved_at = %(now)s, outcome = 'recorded', external_id = %(external)s,
        release_error = ''
    WHERE tenant_id = %(tenant)s AND kind = %(kind)s AND resolved_at IS NULL
)
SELECT id, external_id, false FROM held
UNION ALL
SELECT id, external_id, true FROM made
"""  # noqa: S608 - made of constants


def record_answer(
    *, tenant_id: uuid.UUID, run_id: uuid.UUID, kind: str, external_id: str, now: datetime
) -> tuple[Allocation, bool]:
    """Write a provider's answer on the ledger (tenant locked) and resolve the intent. Returns
    the tenant's held allocation of ``kind`` and whether this call made it; a held one is kept
    as it is (the caller compares ``external_id``: providers are idempotent per tenant, so a
    different one is a duplicate to release)."""
    if not _postgres():
        held = ledger.held_allocations(tenant_id).filter(kind=kind).first()
        created = held is None
        if created:
            held = Allocation.objects.create(
                tenant_id=tenant_id, kind=kind, external_id=external_id, allocated_by_id=run_id
            )
        ledger.resolve_intent(tenant_id=tenant_id, kind=kind, external_id=external_id)
        return held, created
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_SQL,
            {"tenant": tenant_id, "kind": kind, "external": external_id, "run": run_id, "now": now},
        )
        pk, held_external_id, created = cursor.fetchone()
    allocation = Allocation(
        pk=pk,
        tenant_id=tenant_id,
        kind=kind,
        external_id=held_external_id,
        allocated_by_id=run_id if created else None,
        allocated_at=now if created else None,
    )
    allocation._state.adding = False
    return allocation, created


# --- advance and dispatch ------------------------------------------------------------------

_ADVANCE_SQL = """
WITH done AS (
    UPDATE provisioning_stepexecution
    SET status = 'completed', reused = %(reused)s, finished_at = %(now)s, heartbeat_at = %(now)s,
        error = ''
    WHERE id = %(step)s
),
next_try AS (
    UPDATE provisioning_stepexecution
    SET status = 'dispatched', token = %(token)s, tries = tries + 1, due_at = %(now)s,
        started_at = NULL, heartbeat_at = NULL, finished_at = NULL
    WHERE id = %(next)s
)
UPDATE provisioning_run SET current_step = %(next_name)s, heartbeat_at = %(now)s
WHERE id = %(run)s
"""


def advance(
    step: StepExecution,
    *,
    next_id: int,
    next_name: str,
    reused: bool,
    token: uuid.UUID,
    now: datetime,
) -> None:
    """Complete the step and give its run's next step the try ``token`` (tenant locked, fence
    checked); the caller sends the next step's message once this commits."""
    if not _postgres():
        StepExecution.objects.filter(pk=step.pk).update(
            status=StepStatus.COMPLETED, reused=reused, finished_at=now, heartbeat_at=now, error=""
        )
        mark_dispatched(next_id, run_id=step.run_id, name=next_name, token=token, due=now, now=now)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _ADVANCE_SQL,
            {
                "step": step.pk,
                "next": next_id,
                "next_name": next_name,
                "run": step.run_id,
                "reused": reused,
                "token": token,
                "now": now,
            },
        )


def mark_dispatched(
    step_id: int, *, run_id: uuid.UUID, name: str, token: uuid.UUID, due: datetime, now: datetime
) -> None:
    """Give a step the try ``token``, due at ``due``, and make it its run's current step."""
    StepExecution.objects.filter(pk=step_id).update(
        status=StepStatus.DISPATCHED,
        token=token,
        tries=F("tries") + 1,
        due_at=due,
        started_at=None,
        heartbeat_at=None,
        finished_at=None,
    )
    # The run's heartbeat too: its next beat is the step's claim, which writes only the step.
    Run.objects.filter(pk=run_id).update(current_step=name, heartbeat_at=now)
