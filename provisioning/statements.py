"""The statements of a step's two transactions: a lock and one write each.

A step runs a claim and a record transaction (see ``provisioning.saga``). Written with the ORM
they took 18 statements, and compiling those queries cost more of a worker's time than
PostgreSQL spent running them. Here each is one statement, compiled once:

- ``lock_step``: the tenant, the step and its run, all three locked, plus the next step's id.
  Locking step and run as well as the tenant is what makes one statement enough: after a lock
  wait, PostgreSQL returns the newest version of every row it locked, so the fence is checked
  against what the transaction that held the lock left, not against the statement's snapshot.
  The tenant is locked first, as every other writer of a run locks it first. It stays a
  statement of its own, before the writes: the statement that reads the ledger must start
  after the lock is held, or its snapshot could miss what the lock's last holder committed.
- ``start_try``: mark the step running and, for a step that allocates, read what the tenant
  already holds of its kind and, when nothing, open the allocation intent.
- ``record_answer``: write the provider's answer on the ledger (unless held already) and resolve
  the intent; given ``advance``, also what ``advance`` writes.
- ``advance``: complete the step, give the next one its try and move the run's current step.

Each of the last three also writes the events recorded so far in the transaction's batch
(``audit.services.carry``: the chain append ``batched`` makes, as CTEs of this statement), so
the claim is ``BEGIN``, lock, start, ``COMMIT`` and the record ``BEGIN``, lock, record,
``COMMIT``.

Every statement after ``lock_step`` is a new statement under the tenant's lock, so what it reads
of the ledger is exact: every ledger write for a tenant holds that lock.

There is one engine (PostgreSQL, embedded or not), so these statements are the only copy of the
hot path. Their text is made at import from the models' ``_meta`` (``Names``): a renamed or
removed field fails the import, and an INSERT names every column of its model or refuses to
build. Status strings are parameters taken from the enums, never literals in the text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import connection
from django.db.models import F, Model
from psycopg import _queries

from audit.services import carry
from controlplane.prepared import prepared_cursor
from tenants.models import Tenant

from .models import Allocation, AllocationIntent, Run, StepExecution, StepStatus

# psycopg parses a query's text for its placeholders and caches the result, but only for a
# text under 4 KiB (``MAX_CACHED_STATEMENT_LENGTH``): the record statement, with the events it
# carries, is about 4.5 KiB, and parsing it again took 0.1-0.25 ms of every step's CPU (3-6 %
# of a step driven in process). Our texts are a handful (about 20), made at import, so the
# cache (an LRU of 128 texts) holds them; the longer limit costs only the memory of other
# long texts it then caches too.
_queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 16 * 1024)


class Names:
    """A model's table and columns, quoted, for SQL text: ``S = Names(StepExecution)``, then
    ``f"UPDATE {S} SET {S.status} = ..."``. An unknown field raises ``FieldDoesNotExist``."""

    def __init__(self, model: type[Model], alias: str = "") -> None:
        self.model = model
        self.alias = alias

    def __str__(self) -> str:
        table = f'"{self.model._meta.db_table}"'
        return f"{table} {self.alias}" if self.alias else table

    def __getattr__(self, field: str) -> str:
        if field.startswith("_"):
            raise AttributeError(field)
        column = f'"{self.model._meta.get_field(field).column}"'
        return f"{self.alias}.{column}" if self.alias else column

    @cached_property
    def columns(self) -> list[str]:
        return [f.column for f in self.model._meta.concrete_fields]

    def select_all(self) -> str:
        prefix = f"{self.alias}." if self.alias else ""
        return ", ".join(f'{prefix}"{c}"' for c in self.columns)

    def insert(self, values: dict[str, str]) -> tuple[str, str]:
        """``(columns, expressions)`` for an INSERT of every concrete field but an automatic
        primary key; refuses to build when ``values`` misses a field or names an unknown one,
        so a field added to the model cannot be silently left to a database default."""
        fields = [
            f
            for f in self.model._meta.concrete_fields
            if not (f.primary_key and f.get_internal_type() in {"AutoField", "BigAutoField"})
        ]
        names = {f.name for f in fields}
        if set(values) != names:
            raise ValueError(
                f"an INSERT into {self.model.__name__} must give every field: missing "
                f"{sorted(names - set(values))}, unknown {sorted(set(values) - names)}"
            )
        return (
            ", ".join(f'"{f.column}"' for f in fields),
            ", ".join(values[f.name] for f in fields),
        )


T, S, R, NXT = (
    Names(Tenant, "t"),
    Names(StepExecution, "s"),
    Names(Run, "r"),
    Names(StepExecution, "nxt"),
)
STEP, RUN, ALLOC, INTENT = (
    Names(StepExecution),
    Names(Run),
    Names(Allocation),
    Names(AllocationIntent),
)

# Statuses and outcomes, passed as parameters with every statement that uses them.
_ENUMS: dict[str, str] = {
    "dispatched": StepStatus.DISPATCHED.value,
    "running": StepStatus.RUNNING.value,
    "completed": StepStatus.COMPLETED.value,
    "open": AllocationIntent.Outcome.OPEN.value,
    "recorded": AllocationIntent.Outcome.RECORDED.value,
}


# --- lock_step ------------------------------------------------------------------------------

_LOCK_SQL = (
    f"SELECT {T.select_all()}, {S.select_all()}, {R.select_all()}, {NXT.id} "  # noqa: S608
    f"FROM {T} JOIN {R} ON {R.tenant} = {T.id} "
    f"JOIN {S} ON {S.run} = {R.id} "
    f"LEFT JOIN {NXT} ON {NXT.run} = {S.run} AND {NXT.position} = {S.position} + 1 "
    f"WHERE {S.id} = %s "
    "FOR UPDATE OF t FOR NO KEY UPDATE OF s, r"
)


def _instance(model: type[Model], values: tuple[Any, ...]) -> Any:
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
    with prepared_cursor() as cursor:
        cursor.execute(_LOCK_SQL, [step_id])
        row = cursor.fetchone()
    if row is None:
        return None
    a = len(T.columns)
    b = a + len(S.columns)
    c = b + len(R.columns)
    tenant = _instance(Tenant, row[:a])
    step = _instance(StepExecution, row[a:b])
    step.run = _instance(Run, row[b:c])
    step.next_id = row[c]
    return tenant, step


# --- start_try ------------------------------------------------------------------------------

_HELD = (
    f"SELECT {ALLOC.id}, {ALLOC.external_id} FROM {ALLOC} "  # noqa: S608
    f"WHERE {ALLOC.tenant} = %(tenant)s AND {ALLOC.kind} = %(kind)s "
    f"AND {ALLOC.released_at} IS NULL "
    f"ORDER BY {ALLOC.allocated_at}, {ALLOC.id} LIMIT 1"
)

_START_SQL = (
    f"UPDATE {STEP} SET {STEP.status} = %(running)s, "  # noqa: S608
    f"{STEP.started_at} = %(started)s, {STEP.heartbeat_at} = %(now)s, {STEP.waiting_for} = '' "
    f"WHERE {STEP.id} = %(step)s"
)

_INTENT_COLUMNS, _INTENT_VALUES = INTENT.insert(
    {
        "tenant": "%(tenant)s",
        "kind": "%(kind)s",
        "run": "%(run)s",
        "created_at": "%(now)s",
        "resolved_at": "NULL",
        "outcome": "%(open)s",
        "external_id": "''",
        "release_error": "''",
    }
)

_START_ALLOCATING_CTES = f"""
held AS ({_HELD}),
running AS ({_START_SQL}),
intent AS (
    INSERT INTO {INTENT} ({_INTENT_COLUMNS})
    SELECT {_INTENT_VALUES}
    WHERE NOT EXISTS (SELECT 1 FROM held)
    ON CONFLICT DO NOTHING
)"""  # noqa: S608 - made of the models' names


def _one_row(
    ctes: str, columns: str, params: dict[str, Any], *, chain: uuid.UUID, source: str = ""
) -> tuple[Any, ...]:
    """``WITH {ctes} SELECT {columns} {source}``, a statement that returns one row, carrying
    the events of the tenant's chain pending in the transaction's batch (``audit.services.
    carry``): the writes and the events that describe them in one round trip."""
    carried = carry(chain)
    if carried is not None:
        ctes = f"{ctes}, {carried.ctes}"
        columns = f"{columns}, {carried.result}"
        params = {**params, **carried.params}
    with prepared_cursor() as cursor:
        cursor.execute(f"WITH {ctes} SELECT {columns} {source}", params)
        row = cursor.fetchone()
    if carried is None:
        return row
    carried.written(row[-1])
    return row[:-1]


def start_try(
    step: StepExecution, *, tenant_id: uuid.UUID, kind: str | None, now: datetime
) -> Allocation | None:
    """Mark the step running (tenant locked, fence checked), with the events recorded so far
    in the batch (``step_started``). For a step that allocates, return the tenant's held
    allocation of its kind, or None after opening the intent that goes on the ledger before
    the provider is called (an intent still open from an earlier try is kept)."""
    params = {**_ENUMS, "step": step.pk, "started": step.started_at, "now": now}
    if kind is None:
        _one_row(f"running AS ({_START_SQL})", "true", params, chain=tenant_id)
        return None
    pk, external_id = _one_row(
        _START_ALLOCATING_CTES,
        f"(SELECT {ALLOC.id} FROM held), (SELECT {ALLOC.external_id} FROM held)",  # noqa: S608
        {**params, "tenant": tenant_id, "kind": kind, "run": step.run_id},
        chain=tenant_id,
    )
    if pk is None:
        return None
    return Allocation(pk=pk, tenant_id=tenant_id, kind=kind, external_id=external_id)


# --- record_answer --------------------------------------------------------------------------

_ALLOC_COLUMNS, _ALLOC_VALUES = ALLOC.insert(
    {
        "tenant": "%(tenant)s",
        "kind": "%(kind)s",
        "external_id": "%(external)s",
        "allocated_by": "%(run)s",
        "released_by": "NULL",
        "allocated_at": "%(now)s",
        "released_at": "NULL",
        "release_attempts": "0",
        "release_error": "''",
    }
)

_RECORD_CTES = f"""
held AS ({_HELD}),
made AS (
    INSERT INTO {ALLOC} ({_ALLOC_COLUMNS})
    SELECT {_ALLOC_VALUES}
    WHERE NOT EXISTS (SELECT 1 FROM held)
    RETURNING {ALLOC.id}, {ALLOC.external_id}
),
resolved AS (
    UPDATE {INTENT}
    SET {INTENT.resolved_at} = %(now)s, {INTENT.outcome} = %(recorded)s,
        {INTENT.external_id} = %(external)s, {INTENT.release_error} = ''
    WHERE {INTENT.tenant} = %(tenant)s AND {INTENT.kind} = %(kind)s
        AND {INTENT.resolved_at} IS NULL
)"""  # noqa: S608 - made of the models' names

_RECORDED = f"""FROM (
    SELECT {ALLOC.id}, {ALLOC.external_id}, false FROM held
    UNION ALL
    SELECT {ALLOC.id}, {ALLOC.external_id}, true FROM made
) AS answer (id, external_id, created)"""  # noqa: S608 - made of the models' names

# Conditions over ``record_answer``'s statement, for the events it carries
# (``audit.services.record_event``'s ``when``): the answer made the allocation; the tenant
# held one already, the very one the provider answered (an idempotent provider's second try).
# When it held another, neither holds and the caller records what it found.
MADE = "NOT EXISTS (SELECT 1 FROM held)"
HELD_AS_ANSWERED = f"EXISTS (SELECT 1 FROM held WHERE {ALLOC.external_id} = %(external)s)"  # noqa: S608


@dataclass(frozen=True)
class Advance:
    """The next step a step's completion dispatches (``advance``), with the try it gets."""

    next_id: int
    next_name: str
    token: uuid.UUID


def record_answer(
    *,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    kind: str,
    external_id: str,
    now: datetime,
    advance: tuple[StepExecution, Advance] | None = None,
) -> tuple[Allocation, bool]:
    """Write a provider's answer on the ledger (tenant locked) and resolve the intent, with the
    events pending in the batch. Returns the tenant's held allocation of ``kind`` and whether
    this call made it; a held one is kept as it is (the caller compares ``external_id``:
    providers are idempotent per tenant, so a different one is a duplicate to release).

    ``advance`` (the fence checked, a next step to dispatch): the same statement completes the
    step, ``reused`` when the tenant held the allocation already, and gives the next step its
    try (``advance``'s writes)."""
    params: dict[str, Any] = {
        **_ENUMS,
        "tenant": tenant_id,
        "kind": kind,
        "external": external_id,
        "run": run_id,
        "now": now,
    }
    ctes = _RECORD_CTES
    if advance is not None:
        step, nxt = advance
        ctes = f"{ctes}, {_ADVANCE_AFTER_RECORD_CTES}"
        params.update(_advance_params(step, nxt))
    pk, held_external_id, created = _one_row(
        ctes,
        "answer.id, answer.external_id, answer.created",
        params,
        chain=tenant_id,
        source=_RECORDED,
    )
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


def new_try(*, token: uuid.UUID, due: datetime, clear_error: bool = False) -> dict[str, Any]:
    """What giving a step a new try writes, as ``update()`` keywords: the one definition, used
    by ``mark_dispatched`` (first try, retry after a backoff), the watchdog's redispatch of a
    try whose worker died, and, as SQL, ``advance``'s next step (``_NEW_TRY_SET``).

    A new token fences off every earlier try; the try counts; the clocks of the last try are
    cleared. ``clear_error``: a lost try left no error of its own, and an empty error is what
    tells "lost" from "retrying" (a retry keeps the failed try's error on show).
    """
    fields: dict[str, Any] = {
        "status": StepStatus.DISPATCHED,
        "token": token,
        "tries": F("tries") + 1,
        "due_at": due,
        "started_at": None,
        "heartbeat_at": None,
        "finished_at": None,
    }
    if clear_error:
        fields["error"] = ""
    return fields


def _new_try_sql() -> str:
    """``new_try`` as a SET clause, with ``%(dispatched)s``, ``%(token)s`` and ``%(now)s`` for
    its values (the statement's parameters)."""
    token, due = uuid.UUID(int=1), datetime(2000, 1, 1)  # noqa: DTZ001 - placeholders only
    parts = []
    for field, value in new_try(token=token, due=due).items():
        column = getattr(STEP, field)
        if value is None:
            parts.append(f"{column} = NULL")
        elif field == "tries":  # F("tries") + 1
            parts.append(f"{column} = {column} + 1")
        elif value is token:
            parts.append(f"{column} = %(token)s")
        elif value is due:
            parts.append(f"{column} = %(now)s")
        elif value == StepStatus.DISPATCHED:
            parts.append(f"{column} = %(dispatched)s")
        else:
            raise ValueError(f"new_try's {field} has no SQL form")
    return ", ".join(parts)


_NEW_TRY_SET = _new_try_sql()


def _advance_ctes(reused: str) -> str:
    """Complete the step (``reused``: a SQL expression), give its run's next step a new try
    and make it the run's current step."""
    return f"""
done AS (
    UPDATE {STEP}
    SET {STEP.status} = %(completed)s, {STEP.reused} = {reused},
        {STEP.finished_at} = %(now)s, {STEP.heartbeat_at} = %(now)s, {STEP.error} = ''
    WHERE {STEP.id} = %(step)s
),
next_try AS (
    UPDATE {STEP}
    SET {_NEW_TRY_SET}
    WHERE {STEP.id} = %(next)s
),
moved_run AS (
    UPDATE {RUN} SET {RUN.current_step} = %(next_name)s, {RUN.heartbeat_at} = %(now)s
    WHERE {RUN.id} = %(run)s
)"""  # noqa: S608 - made of the models' names


_ADVANCE_CTES = _advance_ctes("%(reused)s")
# After ``record_answer``'s CTEs: reused when the tenant held the allocation already.
_ADVANCE_AFTER_RECORD_CTES = _advance_ctes("EXISTS (SELECT 1 FROM held)")


def _advance_params(step: StepExecution, nxt: Advance) -> dict[str, Any]:
    return {
        "step": step.pk,
        "next": nxt.next_id,
        "next_name": nxt.next_name,
        "run": step.run_id,
        "token": nxt.token,
    }


def advance(
    step: StepExecution, nxt: Advance, *, tenant_id: uuid.UUID, reused: bool, now: datetime
) -> None:
    """Complete the step and give its run's next step the try ``nxt.token`` (tenant locked,
    fence checked), with the events pending in the batch (``step_completed``); the caller sends
    the next step's message once this commits."""
    params = {**_ENUMS, **_advance_params(step, nxt), "reused": reused, "now": now}
    _one_row(_ADVANCE_CTES, "true", params, chain=tenant_id)


def mark_dispatched(
    step_id: int, *, run_id: uuid.UUID, name: str, token: uuid.UUID, due: datetime, now: datetime
) -> None:
    """Give a step the try ``token``, due at ``due``, and make it its run's current step."""
    StepExecution.objects.filter(pk=step_id).update(**new_try(token=token, due=due))
    # The run's heartbeat too: its next beat is the step's claim, which writes only the step.
    Run.objects.filter(pk=run_id).update(current_step=name, heartbeat_at=now)
