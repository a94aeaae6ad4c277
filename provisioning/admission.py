"""Admission: which queued step may start now. Provider limits, and the bulk lane.

**Provider limits** (``CONTROLPLANE_PROVIDER_LIMITS``, e.g. ``{"database": {"concurrency": 4,
"per_minute": 120}}``) hold across every worker process on every machine, so they live where
every process already meets: PostgreSQL.

- *concurrency*: a step of a limited kind takes one of the kind's ``concurrency`` slots, a
  session-level advisory lock ``(SLOTS + kind, slot)``, in its claim, and gives it back when its
  provider call is over. A worker that dies gives it back too: its connection closes and
  PostgreSQL drops the lock, so no slot is ever leaked and nothing has to sweep them.
- *per_minute*: each start of a limited kind is a ``ProviderStart`` row; a claim counts the
  kind's rows of the last minute under a transaction-level advisory lock on the kind (claims of
  one kind take turns for a moment; other kinds never wait).

A step that finds no slot or no budget does not start: it stays queued (``dispatched``, no
``started_at``, no try spent, no worker slot held) with ``waiting_for`` saying what it waits
for, and its task ends. Waiters are woken in order (interactive before bulk, then oldest
first): by the step that gives a slot back, by a claim that just wrote itself down as waiting
and finds a slot free after all (this closes the window between the two), and by every
watchdog pass (the per-minute budget refills with time, which no release signals).

**The bulk lane.** Work started by a bulk operation goes to the broker at a lower priority than
work started for one tenant (Redis: kombu keeps one list per priority step and always reads the
higher one first), and a waiting step of a bulk run is woken after the interactive ones. So a
tenant created on its own while a bulk retry of 2,000 fills the queues has its steps taken next,
as soon as a worker slot frees. ``Run.priority`` keeps the lane for every later step of the run.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from .broker import publish_step
from .models import KINDS, STEP_KIND, ProviderStart, Run, StepExecution, StepStatus
from .statements import Names

# Message priorities (Redis: 0 is read first). Interactive work carries none (0).
INTERACTIVE = 0
BULK = 6

# Advisory lock key spaces (the two-integer form): slots of a kind, and a kind's rate counter.
_SLOTS = 0x43500000
_RATE = 0x43510000

_lane: contextvars.ContextVar[int] = contextvars.ContextVar("admission_lane", default=INTERACTIVE)


@contextmanager
def bulk_lane() -> Iterator[None]:
    """Work started inside the block (runs, their compensation) is bulk work."""
    token = _lane.set(BULK)
    try:
        yield
    finally:
        _lane.reset(token)


def current_priority() -> int:
    return _lane.get()


# --- provider limits ------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    concurrency: int | None = None
    per_minute: int | None = None


def parse_limits(raw: str) -> dict[str, Limit]:
    """``CONTROLPLANE_PROVIDER_LIMITS`` read strictly: anything it does not understand is an
    ``ImproperlyConfigured`` naming it, never a limit silently dropped."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"CONTROLPLANE_PROVIDER_LIMITS is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ImproperlyConfigured("CONTROLPLANE_PROVIDER_LIMITS must be a JSON object.")
    limits: dict[str, Limit] = {}
    for kind, spec in data.items():
        if kind not in KINDS:
            raise ImproperlyConfigured(
                f"CONTROLPLANE_PROVIDER_LIMITS names {kind!r}; provider kinds are "
                f"{', '.join(KINDS)}."
            )
        if not isinstance(spec, dict) or not spec or set(spec) - {"concurrency", "per_minute"}:
            raise ImproperlyConfigured(
                f"CONTROLPLANE_PROVIDER_LIMITS[{kind!r}] takes concurrency and/or per_minute."
            )
        for key, value in spec.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ImproperlyConfigured(
                    f"CONTROLPLANE_PROVIDER_LIMITS[{kind!r}][{key!r}] must be a whole number "
                    "of at least 1."
                )
        limits[kind] = Limit(spec.get("concurrency"), spec.get("per_minute"))
    return limits


@cache
def _limits_of(raw: str) -> dict[str, Limit]:
    return parse_limits(raw)


def limits() -> dict[str, Limit]:
    return _limits_of(settings.CONTROLPLANE_PROVIDER_LIMITS)


def _kind_no(kind: str) -> int:
    return KINDS.index(kind)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    slot: int | None = None  # the concurrency slot held (give it back with ``release``)
    waiting_for: str = ""


ADMITTED = Admission(admitted=True)


def admit(kind: str | None, *, now: object = None) -> Admission:
    """Inside a step's claim transaction: may a step of ``kind`` start now? Takes the slot (and
    counts the start) when it may; says what it waits for when it may not."""
    limit = limits().get(kind) if kind else None
    if limit is None:
        return ADMITTED
    with connection.cursor() as cursor:
        if limit.per_minute:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_RATE, _kind_no(kind)])
            started = ProviderStart.objects.filter(
                kind=kind, started_at__gt=timezone.now() - timedelta(minutes=1)
            ).count()
            if started >= limit.per_minute:
                return Admission(
                    admitted=False,
                    waiting_for=f"the {kind} provider's rate limit "
                    f"({started} of {limit.per_minute} a minute started)",
                )
        slot = None
        if limit.concurrency:
            slot = _take_slot(cursor, kind, limit.concurrency)
            if slot is None:
                return Admission(
                    admitted=False,
                    waiting_for=f"a free {kind} provider slot "
                    f"({limit.concurrency} of {limit.concurrency} in use)",
                )
    if limit.per_minute:
        ProviderStart.objects.create(kind=kind)
    return Admission(admitted=True, slot=slot)


# Slots this connection holds. Advisory locks are re-entrant within a session, so PostgreSQL
# would hand a session a slot it already has: it must skip its own (one connection per thread).
_mine = threading.local()


def _held_here(kind: str) -> set[int]:
    held = getattr(_mine, "slots", None)
    if held is None:
        held = _mine.slots = {}
    return held.setdefault(kind, set())


def _take_slot(cursor: object, kind: str, concurrency: int) -> int | None:
    # The scan stops at the first slot it locks (LIMIT 1 over a function scan), so a claim
    # never holds two.
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT s FROM generate_series(0, %s) AS s "
        "WHERE s <> ALL(%s) AND pg_try_advisory_lock(%s + %s, s) LIMIT 1",
        [concurrency - 1, sorted(_held_here(kind)), _SLOTS, _kind_no(kind)],
    )
    row = cursor.fetchone()  # type: ignore[attr-defined]
    if row is None:
        return None
    _held_here(kind).add(row[0])
    return row[0]


def release(kind: str, slot: int | None) -> None:
    """Give a concurrency slot back (after the provider call, whatever its outcome)."""
    if slot is None:
        return
    _held_here(kind).discard(slot)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s + %s, %s)", [_SLOTS, _kind_no(kind), slot])


def slot_free(kind: str) -> bool:
    """Whether a slot of ``kind`` is free right now (taken and given straight back)."""
    limit = limits().get(kind)
    if limit is None or not limit.concurrency:
        return True
    with connection.cursor() as cursor:
        slot = _take_slot(cursor, kind, limit.concurrency)
    release(kind, slot)
    return slot is not None


def slots_in_use() -> dict[str, int]:
    """Concurrency slots held now, per limited kind, across every process (for /metrics)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT classid::bigint - %s, count(*) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND classid::bigint BETWEEN %s AND %s "
            "GROUP BY 1",
            [_SLOTS, _SLOTS, _SLOTS + len(KINDS) - 1],
        )
        held = {KINDS[int(k)]: n for k, n in cursor.fetchall()}
    return {kind: held.get(kind, 0) for kind, limit in limits().items() if limit.concurrency}


# --- waiting and waking ---------------------------------------------------------------------

_STEPS_OF_KIND = {kind: [s for s, k in STEP_KIND.items() if k == kind] for kind in KINDS}
S, R = Names(StepExecution, "s"), Names(Run, "r")

_WAKE_SQL = f"""
UPDATE {Names(StepExecution)} SET "waiting_for" = ''
WHERE "id" IN (
    SELECT {S.id} FROM {S} JOIN {R} ON {R.id} = {S.run}
    WHERE {S.status} = %(dispatched)s AND {S.waiting_for} <> '' AND {S.name} = ANY(%(names)s)
    ORDER BY {R.priority}, {S.due_at}, {S.id}
    LIMIT %(n)s
    FOR UPDATE OF s SKIP LOCKED
)
RETURNING "id", "name", "token", (SELECT {R.priority} FROM {R} WHERE {R.id} = "run_id")
"""  # noqa: S608 - made of the models' names


def mark_waiting(step_id: int, waiting_for: str) -> None:
    """Queue the step again for this same try (a redelivered running try included: it had
    not reached its provider, or its worker died and the slot went with it)."""
    StepExecution.objects.filter(pk=step_id).update(
        status=StepStatus.DISPATCHED,
        started_at=None,
        heartbeat_at=None,
        waiting_for=waiting_for[:200],
    )


def wake(kind: str, n: int = 1) -> int:
    """Send the ``n`` first waiters of ``kind`` to the broker again (same try, same token:
    waiting spent nothing). Returns how many."""
    if n < 1:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _WAKE_SQL,
            {"dispatched": StepStatus.DISPATCHED.value, "names": _STEPS_OF_KIND[kind], "n": n},
        )
        woken = cursor.fetchall()
        for step_id, name, token, priority in woken:
            transaction.on_commit(
                lambda n=name, s=step_id, t=token, p=priority: publish_step(n, s, t, priority=p),
                robust=True,
            )
    return len(woken)


def wake_all() -> int:
    """The watchdog's part: for every limited kind, wake as many waiters as could start now
    (free slots, or what is left of the minute's budget)."""
    woken = 0
    in_use = slots_in_use()
    for kind, limit in limits().items():
        room = []
        if limit.concurrency:
            room.append(limit.concurrency - in_use.get(kind, 0))
        if limit.per_minute:
            started = ProviderStart.objects.filter(
                kind=kind, started_at__gt=timezone.now() - timedelta(minutes=1)
            ).count()
            room.append(limit.per_minute - started)
        woken += wake(kind, min(room))
    # The minute's window is all a start row is kept for.
    ProviderStart.objects.filter(started_at__lt=timezone.now() - timedelta(minutes=2)).delete()
    return woken
