"""Checkpoints: the chain heads, signed, written where the database owner cannot reach.

A keyed chain shows an event changed by someone without the key, but no chain can show by
itself that its last events were removed and its head set back, or that the whole feed was
emptied. So every watchdog pass that finds new events writes a checkpoint: the heads of the
chains that changed since the previous one (every chain, the first time), the number of chains
and of events, signed with the audit key's checkpoint key (``audit/keys.py``, which never
leaves the process). It goes out twice:

- a log line ``audit checkpoint {json}`` (logger ``audit.checkpoint``; in the JSON log, the
  ``message`` of one record), which the log pipeline ships off the machine;
- an ``audit.checkpoint`` event in the feed (the chain of events without a tenant), which the
  webhooks send to every subscription matching ``audit`` or ``audit.checkpoint``: the receiver
  keeps a copy. Recording it as an event is the simplest way through the outbox, which only
  sends events; the copy in the database itself proves nothing, the copies outside do.

``manage.py audit verify --checkpoint FILE`` reads such lines (a log file as written, or the
events' ``data`` one per line) and reports a chain shorter than a checkpoint saw, an event at a
checkpointed position that is missing or different, fewer events or chains than counted, and a
checkpoint whose signature does not hold.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from . import keys
from .events import EventType
from .models import GLOBAL_CHAIN, Event, EventChain
from .services import SYSTEM, record_event

log = logging.getLogger("audit.checkpoint")  # the logger's name, not an event type

CHECKPOINT = EventType.AUDIT_CHECKPOINT
MARK = "audit checkpoint "
# Heads per record: one log line and one event each, whatever the fleet's size.
MAX_HEADS = 1000
VERSION = 1


def _signed_bytes(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def take_checkpoint(now: datetime | None = None) -> list[dict[str, Any]]:
    """Write a checkpoint of the heads that changed since the previous one; none when nothing
    but checkpoints was recorded since. Returns the records written (usually one)."""
    key = keys.current_key()
    previous = (
        Event.objects.filter(type=CHECKPOINT).order_by("-id").values_list("data", flat=True).first()
    )
    since = int(previous.get("last_id", 0)) if isinstance(previous, dict) else 0
    last_id = Event.objects.aggregate(m=Max("id"))["m"] or 0
    changed = set(
        Event.objects.order_by()
        .filter(id__gt=since, id__lte=last_id)
        .exclude(type=CHECKPOINT)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    if previous is not None and not changed:
        return []
    chains = EventChain.objects.order_by("tenant_id")
    if previous is not None:
        chains = chains.filter(tenant_id__in=[GLOBAL_CHAIN if t is None else t for t in changed])
    heads = [(str(c.tenant_id), [c.length, c.head]) for c in chains]
    totals = EventChain.objects.aggregate(chains=Count("pk"), events=Sum("length"))
    at = (now or timezone.now()).isoformat()
    records = []
    for start in range(0, max(len(heads), 1), MAX_HEADS):
        record: dict[str, Any] = {
            "v": VERSION,
            "at": at,
            "key_id": key.key_id,
            "last_id": last_id,
            "chains": totals["chains"] or 0,
            "events": totals["events"] or 0,
            "heads": dict(heads[start : start + MAX_HEADS]),
        }
        record["sig"] = key.sign(_signed_bytes(record))
        records.append(record)
    with transaction.atomic():
        for record in records:
            record_event(type=CHECKPOINT, tenant_id=None, actor=SYSTEM, data=record)
    for record in records:
        log.info("%s%s", MARK, json.dumps(record, sort_keys=True, separators=(",", ":")))
    return records


class CheckpointFileError(ValueError):
    """A line that says it is a checkpoint but is not one."""


def parse(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The checkpoint records in ``lines``: bare records, log lines (plain or JSON) holding
    ``audit checkpoint {...}``; other lines are skipped (a whole log file may be given)."""
    records = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "heads" in obj:
            record = obj
        else:
            text = obj["message"] if isinstance(obj, dict) and "message" in obj else line
            at = str(text).find(MARK)
            if at < 0:
                continue
            try:
                record = json.loads(str(text)[at + len(MARK) :])
            except ValueError:
                raise CheckpointFileError(f"line {number}: not a checkpoint's JSON") from None
        if not _well_formed(record):
            raise CheckpointFileError(f"line {number}: not a checkpoint (fields missing)")
        records.append(record)
    return records


def _well_formed(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("heads"), dict)
        and isinstance(record.get("sig"), str)
        and isinstance(record.get("key_id"), str)
        and isinstance(record.get("at"), str)
        and isinstance(record.get("events"), int)
        and isinstance(record.get("chains"), int)
        and all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
            for v in record["heads"].values()
        )
    )


def verify_checkpoints(records: list[dict[str, Any]]) -> list[str]:
    """What the database no longer holds of what the checkpoints saw; empty when all holds."""
    problems: list[str] = []
    known = keys.known_keys()
    events_now = Event.objects.count()
    chains_now = EventChain.objects.count()
    for record in records:
        at = record["at"]
        key = known.get(record["key_id"])
        if key is None:
            problems.append(
                f"checkpoint at {at}: signed with an unknown audit key {record['key_id']!r} "
                "(add it to CONTROLPLANE_AUDIT_RETIRED_KEYS)"
            )
            continue
        if not _same(key.sign(_signed_bytes(record)), record["sig"]):
            problems.append(f"checkpoint at {at}: its signature does not hold (changed?)")
            continue
        if events_now < record["events"]:
            problems.append(
                f"checkpoint at {at} counted {record['events']} events; "
                f"the feed has {events_now} (events removed)"
            )
        if chains_now < record["chains"]:
            problems.append(
                f"checkpoint at {at} counted {record['chains']} chains; "
                f"there are {chains_now} (chains removed)"
            )
        for chain, (length, head) in record["heads"].items():
            problems += _check_head(at, chain, length, head)
    return problems


def _check_head(at: str, chain: str, length: int, head: str) -> list[str]:
    try:
        chain_id = uuid.UUID(chain)
    except ValueError:
        return [f"checkpoint at {at}: {chain!r} is not a chain id"]
    name = "global chain" if chain_id == GLOBAL_CHAIN else f"tenant {chain_id}"
    if length == 0:
        return []
    events = (
        Event.objects.filter(tenant_id__isnull=True)
        if chain_id == GLOBAL_CHAIN
        else Event.objects.filter(tenant_id=chain_id)
    )
    digest = events.filter(seq=length).values_list("digest", flat=True).first()
    if digest is None:
        now = events.aggregate(n=Max("seq"))["n"] or 0
        return [
            f"{name} event #{length}: missing; the checkpoint at {at} saw {length} events, "
            f"the chain now ends at #{now} (shortened)"
        ]
    if digest != head:
        return [f"{name} event #{length}: differs from the checkpoint at {at} (rewritten)"]
    return []


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
