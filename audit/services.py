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

from .models import Event, EventChain

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
        "tenant.resource.leaked",
        "tenant.resource.missing",
    }
)

SYSTEM = "system"


def _digest(
    previous: str,
    *,
    type: str,
    occurred_at: datetime,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID | None,
    actor: str,
    data: dict[str, Any],
    seq: int,
) -> str:
    body = json.dumps(
        {
            "type": type,
            "occurred_at": occurred_at.isoformat(),
            "tenant_id": str(tenant_id),
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
    tenant_id: uuid.UUID,
    actor: str,
    run_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one event in the caller's transaction.

    The event commits or rolls back with the change it describes, so the feed never shows a
    change that did not happen nor misses one that did.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown audit event type {type!r}")
    # Round-trip through JSON so what is hashed is exactly what is stored and read back.
    clean = json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))
    occurred_at = timezone.now()
    with transaction.atomic():
        chain = EventChain.objects.select_for_update().filter(tenant_id=tenant_id).first()
        if chain is None:
            try:
                with transaction.atomic():
                    chain = EventChain.objects.create(tenant_id=tenant_id)
            except IntegrityError:
                chain = EventChain.objects.select_for_update().get(tenant_id=tenant_id)
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
        EventChain.objects.filter(tenant_id=tenant_id).update(length=seq, head=digest)
    return event


@dataclass(frozen=True)
class ChainProblem:
    tenant_id: uuid.UUID
    seq: int
    message: str


def verify_chains(*, tenant_id: uuid.UUID | None = None) -> tuple[int, list[ChainProblem]]:
    """Recompute every tenant's chain; return how many events were checked and what is wrong."""
    problems: list[ChainProblem] = []
    checked = 0
    heads = EventChain.objects.all()
    if tenant_id is not None:
        heads = heads.filter(tenant_id=tenant_id)
    for chain in heads.iterator():
        previous = ""
        expected_seq = 1
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
