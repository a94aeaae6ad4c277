"""Recording and verifying audit events."""

from __future__ import annotations

import contextvars
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from controlplane.prepared import prepared_cursor

from . import keys
from .events import (
    EVENT_TYPES,
    TENANTLESS_EVENT_TYPES,
    EventType,
)
from .models import GLOBAL_CHAIN, Event, EventChain
from .signals import event_recorded

# The vocabulary lives in ``audit/events.py`` (EVENT_TYPES, GLOBAL_EVENT_TYPES re-exported here).

SYSTEM = "system"


def _digest(
    previous: str,
    *,
    key_id: str,
    type: str,
    occurred_at: datetime,
    tenant_id: uuid.UUID | None,
    run_id: uuid.UUID | None,
    actor: str,
    data: dict[str, Any],
    seq: int,
) -> str | None:
    """The digest an event must have: HMAC-SHA256 under the key ``key_id`` names (plain SHA-256
    for the events chained before keys), or None when no known key has that id."""
    body = json.dumps(
        {
            "type": type,
            "occurred_at": occurred_at.isoformat(),
            "tenant_id": str(tenant_id) if tenant_id else None,
            "run_id": str(run_id) if run_id else None,
            "actor": actor,
            "data": data,
            "seq": seq,
        },
        sort_keys=True,
        cls=DjangoJSONEncoder,
    )
    if key_id == keys.UNKEYED:
        return keys.unkeyed_digest(previous + body)
    key = keys.known_keys().get(key_id)
    return None if key is None else key.chain_digest(previous + body)


# HMAC-SHA256 of a text, computed by PostgreSQL's built-in sha256() from the key's pads
# (``AuditKey.pads``): exactly ``hmac.new(chain_key, text, sha256).hexdigest()``.
def _hmac_sql(text_sql: str, ipad: str = "%(ipad)s", opad: str = "%(opad)s") -> str:
    return (
        f"encode(sha256({opad}::bytea || sha256({ipad}::bytea || convert_to({text_sql}, 'UTF8'))),"
        " 'hex')"
    )


def record_event(
    *,
    type: str,
    tenant_id: uuid.UUID | None,
    actor: str,
    run_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    when: str | None = None,
) -> Event:
    """Append one event in the caller's transaction.

    The event commits or rolls back with the change it describes, so the feed never shows a
    change that did not happen nor misses one that did. ``tenant_id=None`` (only for the
    ``auth.*`` types, which concern no tenant) appends to the global chain.

    ``when``, inside ``batched()`` only: a SQL condition over the statement that carries the
    batch (``carry``); the event is written, and takes its place in the chain, only if it holds
    there. For an event that depends on what only that statement reads (the ledger under the
    tenant's lock); the returned event has no ``id`` until it is written, nor ever if not.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown audit event type {type!r}")
    type = EventType(type).value  # stored and hashed as the plain string
    extra = _annotations.get()
    if extra:
        data = {**extra, **(data or {})}
    # Round-trip through JSON so what is hashed is exactly what is stored and read back.
    clean = json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))
    if tenant_id is None and type not in TENANTLESS_EVENT_TYPES:
        raise ValueError(f"a {type!r} event needs a tenant_id")
    chain_key = tenant_id if tenant_id is not None else GLOBAL_CHAIN
    occurred_at = timezone.now()
    before, after = _body_around_seq(
        type=type,
        occurred_at=occurred_at,
        tenant_id=tenant_id,
        run_id=run_id,
        actor=actor,
        data=clean,
    )
    fields = {"type": type, "occurred_at": occurred_at, "run_id": run_id, "actor": actor}
    pending = _batch.get()
    if pending is not None:
        # Written with the batch's other events when it closes (see ``batched``), or by the
        # statement that carries them (``carry``).
        event = Event(tenant_id=tenant_id, data=clean, **fields)
        pending.append(_Pending(chain_key, before, after, event, when))
        return event
    if when is not None:
        raise ValueError("an event with a condition is written only inside batched()")
    # No savepoint: inside the caller's transaction this adds no statement; the webhooks'
    # outbox (``event_recorded``) is written in the same transaction as the event.
    with transaction.atomic(savepoint=False):
        # One statement (see ``_append``).
        event = _append(chain_key, tenant_id, before, after, data=clean, **fields)
        event_recorded.send(sender=Event, event=event)
    return event


@dataclass
class _Pending:
    """An event recorded inside ``batched()``, not written yet: its chain, the hashed body
    split around the ``seq`` it will get, and its condition (``record_event``'s ``when``)."""

    chain_key: uuid.UUID
    before: str
    after: str
    event: Event
    when: str | None = None


_batch: contextvars.ContextVar[list[_Pending] | None] = contextvars.ContextVar(
    "audit_batch", default=None
)
_annotations: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "audit_annotations", default=None
)


@contextmanager
def annotated(**data: Any) -> Iterator[None]:
    """Every event recorded inside carries ``data`` too (a scheduled operation's events carry
    ``data.schedule``, whichever service records them)."""
    token = _annotations.set({**(_annotations.get() or {}), **data})
    try:
        yield
    finally:
        _annotations.reset(token)


@contextmanager
def batched() -> Iterator[None]:
    """Write the events recorded inside the block together when it ends, in one statement per
    chain (``Appended``), in the order they were recorded; a chain's very first event
    one by one, as ``record_event`` does. For a transaction
    that records several events: use it inside the transaction, around code that does not
    read back the events it records (they are rows only once the block ends). A statement
    of the block may write the events pending so far itself (``carry``)."""
    if _batch.get() is not None:  # already batching: the outer block writes them
        yield
        return
    pending: list = []
    reset = _batch.set(pending)
    try:
        yield
    finally:
        _batch.reset(reset)
    if pending:
        _flush(pending)


def _flush(pending: list[_Pending]) -> None:
    if any(item.when is not None for item in pending):
        raise ValueError("an event with a condition needs a statement to carry it (carry)")
    by_chain: dict[uuid.UUID, list[_Pending]] = {}
    for item in pending:
        by_chain.setdefault(item.chain_key, []).append(item)
    with transaction.atomic(savepoint=False):
        for chain_key, items in by_chain.items():
            appended = Appended.of(chain_key, items)
            with prepared_cursor() as cursor:
                # Its text is made of placeholders and numbers only: every value is a parameter.
                cursor.execute(f"WITH {appended.ctes} SELECT {appended.result}", appended.params)
                (result,) = cursor.fetchone()
            appended.written(result)


def _saved(event: Event) -> None:
    event._state.adding = False
    event._state.db = connection.alias


def carry(chain_key: uuid.UUID) -> Appended | None:
    """Take the events of one chain pending in the current batch, for the caller's next
    statement to write: it puts ``ctes`` after its own (``WITH its own, {ctes}``), selects
    ``result`` beside its own columns (one row), and hands that value to ``written``. None when
    not batching or nothing of that chain is pending. So a transaction's writes and the events
    that describe them are one round trip, with the append the batch would have made."""
    pending = _batch.get()
    if not pending:
        return None
    items = [item for item in pending if item.chain_key == chain_key]
    if not items:
        return None
    pending[:] = [item for item in pending if item.chain_key != chain_key]
    return Appended.of(chain_key, items)


@dataclass
class Appended:
    """The append of several events of one chain, as CTEs of one statement (``_flush``'s own,
    or another's: ``carry``). The chain's head is locked (``SELECT … FOR UPDATE``, which
    returns its newest version after any wait), each event's digest is hashed onto the one
    before exactly as ``_digest`` does (an event whose ``when`` does not hold is skipped: no
    ``seq``, no digest), the head moves to the last, and the events are inserted in their
    order. A chain that does not exist yet gets nothing from the statement: ``written`` then
    appends the events one by one (the first creates the chain)."""

    chain_key: uuid.UUID
    items: list[_Pending]
    key_id: str
    ctes: str
    params: dict[str, Any]
    # A JSON value: whether the chain exists and ``[n, id, seq, digest]`` of each event written.
    result: str

    @classmethod
    def of(cls, chain_key: uuid.UUID, items: list[_Pending]) -> Appended:
        key = keys.current_key()
        ipad, opad = key.pads
        params: dict[str, Any] = {
            "ev_chain": chain_key,
            "ev_ipad": ipad,
            "ev_opad": opad,
            "ev_key_id": key.key_id,
        }
        links = [
            "ev_h0 AS (SELECT length AS seq, head AS digest FROM audit_eventchain "
            "WHERE tenant_id = %(ev_chain)s FOR UPDATE)"
        ]
        rows = []
        for i, item in enumerate(items, start=1):
            event = item.event
            params.update(
                {
                    f"ev_before{i}": item.before,
                    f"ev_after{i}": item.after,
                    f"ev_type{i}": event.type,
                    f"ev_at{i}": event.occurred_at,
                    f"ev_tenant{i}": event.tenant_id,
                    f"ev_run{i}": event.run_id,
                    f"ev_actor{i}": event.actor,
                    f"ev_data{i}": json.dumps(event.data),
                }
            )
            message = f"digest || %(ev_before{i})s || (seq + 1)::text || %(ev_after{i})s"
            digest = _hmac_sql(message, "%(ev_ipad)s", "%(ev_opad)s")
            if item.when is None:
                links.append(
                    f"ev_h{i} AS (SELECT seq + 1 AS seq, {digest} AS digest, true AS kept "  # noqa: S608
                    f"FROM ev_h{i - 1})"
                )
            else:
                links.append(
                    f"ev_h{i} AS (SELECT CASE WHEN kept THEN seq + 1 ELSE seq END AS seq, "  # noqa: S608
                    f"CASE WHEN kept THEN {digest} ELSE digest END AS digest, kept "
                    f"FROM (SELECT seq, digest, ({item.when}) AS kept FROM ev_h{i - 1}) AS link)"
                )
            rows.append(
                f"SELECT {i}, %(ev_type{i})s, %(ev_at{i})s::timestamptz, "  # noqa: S608
                f"%(ev_tenant{i})s::uuid, %(ev_run{i})s::uuid, %(ev_actor{i})s, "
                f"%(ev_data{i})s::jsonb, seq, digest FROM ev_h{i} WHERE kept"
            )
        last = len(items)
        ctes = (
            ", ".join(links)  # noqa: S608 - placeholders, numbers and our own SQL only
            + ", ev_rows (n, type, at, tenant, run, actor, data, seq, digest) AS ("
            + " UNION ALL ".join(rows)
            + f"), ev_moved AS (UPDATE audit_eventchain SET length = ev_h{last}.seq, "  # noqa: S608
            f"head = ev_h{last}.digest FROM ev_h{last} WHERE tenant_id = %(ev_chain)s), "
            "ev_made AS (INSERT INTO audit_event "
            "(type, occurred_at, tenant_id, run_id, actor, data, seq, digest, key_id) "
            "SELECT type, at, tenant, run, actor, data, seq, digest, %(ev_key_id)s "
            "FROM ev_rows ORDER BY n RETURNING id, seq)"
        )
        result = (
            "(SELECT json_build_object('chain', EXISTS (SELECT 1 FROM ev_h0), 'rows', "
            "coalesce(json_agg(json_build_array(r.n, m.id, r.seq, r.digest) ORDER BY r.n), "
            "'[]'::json)) FROM ev_made m JOIN ev_rows r ON r.seq = m.seq)"
        )
        return cls(chain_key, items, key.key_id, ctes, params, result)

    def written(self, result: dict[str, Any]) -> None:
        """Take the statement's ``result``: the events it wrote get their id, ``seq`` and
        digest, and go to ``event_recorded`` (the webhooks' outbox, same transaction)."""
        written: list[Event] = []
        if result["chain"]:
            for n, pk, seq, digest in result["rows"]:
                event = self.items[n - 1].event
                event.id, event.seq, event.digest, event.key_id = pk, seq, digest, self.key_id
                _saved(event)
                written.append(event)
        else:
            # A new chain: its first event creates it (``_append``), one by one.
            if any(item.when is not None for item in self.items):
                raise RuntimeError(f"events with a condition on a new chain {self.chain_key}")
            for item in self.items:
                event = item.event
                made = _append(
                    self.chain_key,
                    event.tenant_id,
                    item.before,
                    item.after,
                    data=event.data,
                    type=event.type,
                    occurred_at=event.occurred_at,
                    run_id=event.run_id,
                    actor=event.actor,
                )
                event.id, event.seq, event.digest = made.id, made.seq, made.digest
                event.key_id = made.key_id
                _saved(event)
                written.append(event)
        for event in written:
            event_recorded.send(sender=Event, event=event)


# Where ``seq`` goes in the hashed body (``_digest`` with a stand-in value split around it).
_SEQ_MARK = 987654321987654321


def _body_around_seq(**fields: Any) -> tuple[str, str]:
    """The JSON body ``_digest`` hashes, split where the (not yet known) ``seq`` goes."""
    body = json.dumps(
        {
            "type": fields["type"],
            "occurred_at": fields["occurred_at"].isoformat(),
            "tenant_id": str(fields["tenant_id"]) if fields["tenant_id"] else None,
            "run_id": str(fields["run_id"]) if fields["run_id"] else None,
            "actor": fields["actor"],
            "data": fields["data"],
            "seq": _SEQ_MARK,
        },
        sort_keys=True,
        cls=DjangoJSONEncoder,
    )
    # ``"seq": `` is a key at the top level; sort_keys puts it after "run_id", before
    # "tenant_id", so the last occurrence of the mark is the value (``data`` comes earlier).
    before, _, after = body.rpartition(f'"seq": {_SEQ_MARK}')
    return before + '"seq": ', after


# The digest is an HMAC computed here, by PostgreSQL, while it holds the head's row lock: the
# append stays one statement (the step budgets count it), and no read of the head goes back to
# Python first. So the chain key reaches the server as this statement's parameters (its HMAC
# pads), never stored. Computing in Python would keep it off the server, at one more statement
# and a round trip per append; what the pads let a database owner who logs statements do, and
# why the checkpoints (signed with a key that stays here) still hold, is in docs/security.md.
_APPEND_SQL = f"""
WITH link AS (
    INSERT INTO audit_eventchain AS chain (tenant_id, length, head)
    VALUES (%(chain)s, 1, {_hmac_sql("%(before)s || '1' || %(after)s")})
    ON CONFLICT (tenant_id) DO UPDATE SET
        length = chain.length + 1,
        head = {_hmac_sql("chain.head || %(before)s || (chain.length + 1)::text || %(after)s")}
    RETURNING length, head
)
INSERT INTO audit_event (type, occurred_at, tenant_id, run_id, actor, data, seq, digest, key_id)
SELECT %(type)s, %(occurred_at)s, %(tenant)s, %(run)s, %(actor)s, %(data)s::jsonb,
       link.length, link.head, %(key_id)s
FROM link
RETURNING id, seq, digest
"""  # noqa: S608 - placeholders and our own SQL only


def _append(
    chain_key: uuid.UUID,
    tenant_id: uuid.UUID | None,
    before: str,
    after: str,
    *,
    data: dict[str, Any],
    **fields: Any,
) -> Event:
    """One statement on PostgreSQL: advance the tenant's chain head (created with its first
    event) and insert the event. PostgreSQL computes the digest, SHA-256 of the previous head
    and the body exactly as ``_digest`` does, while it holds the head's row lock; so the
    events of one tenant are ordered with no separate ``SELECT … FOR UPDATE`` and no
    savepoint."""
    key = keys.current_key()
    ipad, opad = key.pads
    params = {
        "chain": chain_key,
        "ipad": ipad,
        "opad": opad,
        "key_id": key.key_id,
        "tenant": tenant_id,
        "before": before,
        "after": after,
        "type": fields["type"],
        "occurred_at": fields["occurred_at"],
        "run": fields["run_id"],
        "actor": fields["actor"],
        "data": json.dumps(data),
    }
    with prepared_cursor() as cursor:
        cursor.execute(_APPEND_SQL, params)
        pk, seq, digest = cursor.fetchone()
    event = Event(
        id=pk, tenant_id=tenant_id, data=data, seq=seq, digest=digest, key_id=key.key_id, **fields
    )
    event._state.adding = False
    event._state.db = connection.alias
    return event


@dataclass(frozen=True)
class ChainProblem:
    tenant_id: uuid.UUID
    seq: int
    message: str


def verify_chains(*, tenant_id: uuid.UUID | None = None) -> tuple[int, list[ChainProblem]]:
    """Recompute every tenant's chain (and the global one, which ``tenant_id=GLOBAL_CHAIN``
    selects); return how many events were checked and what is wrong.

    Each digest is recomputed with the key its event names (``audit/keys.py``): an event changed
    by someone without the key, and every digest after it recomputed, still fails here. What
    no chain can show by itself (its last events removed and its head set back) needs a
    checkpoint: ``verify_checkpoints``.
    """
    problems: list[ChainProblem] = []
    checked = 0
    heads = EventChain.objects.all()
    if tenant_id is not None:
        heads = heads.filter(tenant_id=tenant_id)
    seen: set[uuid.UUID] = set()
    for chain in heads.iterator():
        seen.add(chain.tenant_id)
        n, found = _verify_chain(chain)
        checked += n
        problems += found
    # Events whose chain head is gone (deleted with the triggers off).
    events = Event.objects.order_by()
    if tenant_id == GLOBAL_CHAIN:
        events = events.filter(tenant_id__isnull=True)
    elif tenant_id is not None:
        events = events.filter(tenant_id=tenant_id)
    for key in events.values_list("tenant_id", flat=True).distinct():
        chain_key = GLOBAL_CHAIN if key is None else key
        if chain_key not in seen:
            problems.append(ChainProblem(chain_key, 0, "events without a chain head"))
    return checked, problems


def _verify_chain(chain: EventChain) -> tuple[int, list[ChainProblem]]:
    problems: list[ChainProblem] = []
    checked = 0
    previous = ""
    expected_seq = 1
    keyed_seen = False
    if chain.tenant_id == GLOBAL_CHAIN:
        events = Event.objects.filter(tenant_id__isnull=True).order_by("seq")
    else:
        events = Event.objects.filter(tenant_id=chain.tenant_id).order_by("seq")
    for event in events.iterator(chunk_size=2000):
        checked += 1
        if event.seq != expected_seq:
            problems.append(
                ChainProblem(chain.tenant_id, expected_seq, f"event #{expected_seq} is missing")
            )
            expected_seq = event.seq
        if event.key_id == keys.UNKEYED and keyed_seen:
            # Unkeyed events only ever come first (chained before keys existed): one after a
            # keyed event was rewritten by someone without the key.
            problems.append(
                ChainProblem(
                    chain.tenant_id,
                    event.seq,
                    f"event #{event.seq} ({event.type}) has no key id after keyed events",
                )
            )
        keyed_seen = keyed_seen or event.key_id != keys.UNKEYED
        digest = _digest(
            previous,
            key_id=event.key_id,
            type=event.type,
            occurred_at=event.occurred_at,
            tenant_id=event.tenant_id,
            run_id=event.run_id,
            actor=event.actor,
            data=event.data,
            seq=event.seq,
        )
        if digest is None:
            problems.append(
                ChainProblem(
                    chain.tenant_id,
                    event.seq,
                    f"event #{event.seq} was chained with an unknown audit key "
                    f"{event.key_id!r} (add it to CONTROLPLANE_AUDIT_RETIRED_KEYS)",
                )
            )
        elif digest != event.digest:
            problems.append(
                ChainProblem(
                    chain.tenant_id, event.seq, f"event #{event.seq} ({event.type}) was altered"
                )
            )
        previous = event.digest
        expected_seq += 1
    if expected_seq - 1 != chain.length:
        problems.append(
            ChainProblem(
                chain.tenant_id,
                chain.length,
                f"chain says {chain.length} events, found {expected_seq - 1}",
            )
        )
    elif previous != chain.head:
        problems.append(
            ChainProblem(
                chain.tenant_id, chain.length, "the last event does not match the chain head"
            )
        )
    return checked, problems


def unkeyed_events() -> int:
    """Events chained before audit keys existed (plain SHA-256: anyone can recompute them)."""
    return Event.objects.filter(key_id=keys.UNKEYED).count()
