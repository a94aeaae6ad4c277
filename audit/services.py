"""Recording and verifying audit events."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import GLOBAL_CHAIN, Event, EventChain
from .signals import event_recorded

EVENT_TYPES = frozenset(
    {
        "tenant.created",
        "tenant.provisioning.started",
        "tenant.provisioning.retry_requested",
        "tenant.provisioning.step_started",
        "tenant.provisioning.step_completed",
        "tenant.provisioning.step_failed",
        "tenant.resource.allocated",
        "tenant.resource.reused",
        "tenant.resource.released",
        "tenant.provisioning.compensation_started",
        "tenant.provisioning.compensation_completed",
        "tenant.provisioning.compensation_failed",
        "tenant.provisioning.completed",
        "tenant.provisioning.failed",
        "tenant.provisioning.cancel_requested",
        "tenant.provisioning.cancelled",
        "tenant.provisioning.reset_started",
        "tenant.provisioning.reset_completed",
        "tenant.provisioning.reset_failed",
        "tenant.provisioning.step_redispatched",
        "tenant.provisioning.stalled",
        "tenant.provisioning.orphaned_handle",
        "tenant.suspended",
        "tenant.resumed",
        "tenant.decommission_requested",
        "tenant.decommissioned",
        # Four eyes (CONTROLPLANE_DECOMMISSION_APPROVAL): a second admin approves or withdraws.
        "tenant.decommission_approved",
        "tenant.decommission_withdrawn",
        "tenant.resource.leaked",
        "tenant.resource.missing",
    }
)
# Events about no tenant (their own chain, GLOBAL_CHAIN): failed and refused logins.
GLOBAL_EVENT_TYPES = frozenset({"auth.login_failed", "auth.locked_out"})
EVENT_TYPES = EVENT_TYPES | GLOBAL_EVENT_TYPES

SYSTEM = "system"


def _digest(
    previous: str,
    *,
    type: str,
    occurred_at: datetime,
    tenant_id: uuid.UUID | None,
    run_id: uuid.UUID | None,
    actor: str,
    data: dict[str, Any],
    seq: int,
) -> str:
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
    return hashlib.sha256((previous + body).encode()).hexdigest()


def record_event(
    *,
    type: str,
    tenant_id: uuid.UUID | None,
    actor: str,
    run_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one event in the caller's transaction.

    The event commits or rolls back with the change it describes, so the feed never shows a
    change that did not happen nor misses one that did. ``tenant_id=None`` (only for the
    ``auth.*`` types, which concern no tenant) appends to the global chain.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown audit event type {type!r}")
    # Round-trip through JSON so what is hashed is exactly what is stored and read back.
    clean = json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))
    if tenant_id is None and type not in GLOBAL_EVENT_TYPES:
        raise ValueError(f"a {type!r} event needs a tenant_id")
    chain_key = tenant_id if tenant_id is not None else GLOBAL_CHAIN
    occurred_at = timezone.now()
    with transaction.atomic():
        chain = EventChain.objects.select_for_update().filter(tenant_id=chain_key).first()
        if chain is None:
            try:
                with transaction.atomic():
                    chain = EventChain.objects.create(tenant_id=chain_key)
            except IntegrityError:
                chain = EventChain.objects.select_for_update().get(tenant_id=chain_key)
        seq = chain.length + 1
        digest = _digest(
            chain.head,
            type=type,
            occurred_at=occurred_at,
            tenant_id=tenant_id,
            run_id=run_id,
            actor=actor,
            data=clean,
            seq=seq,
        )
        event = Event.objects.create(
            type=type,
            occurred_at=occurred_at,
            tenant_id=tenant_id,
            run_id=run_id,
            actor=actor,
            data=clean,
            seq=seq,
            digest=digest,
        )
        EventChain.objects.filter(tenant_id=chain_key).update(length=seq, head=digest)
        event_recorded.send(sender=Event, event=event)  # webhooks' outbox, same transaction
    return event


@dataclass(frozen=True)
class ChainProblem:
    tenant_id: uuid.UUID
    seq: int
    message: str


def verify_chains(*, tenant_id: uuid.UUID | None = None) -> tuple[int, list[ChainProblem]]:
    """Recompute every tenant's chain (and the global one, which ``tenant_id=GLOBAL_CHAIN``
    selects); return how many events were checked and what is wrong."""
    problems: list[ChainProblem] = []
    checked = 0
    heads = EventChain.objects.all()
    if tenant_id is not None:
        heads = heads.filter(tenant_id=tenant_id)
    for chain in heads.iterator():
        previous = ""
        expected_seq = 1
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
            digest = _digest(
                previous,
                type=event.type,
                occurred_at=event.occurred_at,
                tenant_id=event.tenant_id,
                run_id=event.run_id,
                actor=event.actor,
                data=event.data,
                seq=event.seq,
            )
            if digest != event.digest:
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
