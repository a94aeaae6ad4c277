"""Writing deliveries in the event's transaction, at almost no cost when nobody subscribes.

``on_event_recorded`` receives ``audit.signals.event_recorded`` inside ``record_event``'s
transaction. It matches the event's type against the active subscriptions, which each process
keeps in memory: with no subscription an event costs a clock read and a comparison, no query.

The cache is dropped at once in the process that changes a subscription (``post_save`` /
``post_delete``) and refreshed by every other process after
``CONTROLPLANE_WEBHOOK_CACHE_SECONDS`` (5 s by default): a new subscription receives every
event recorded from then on in the process that made it (the admin's, the command's), and in
all processes within those seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import Event

from .models import Delivery, pattern_matches
from .publish import publish_delivery

_lock = threading.Lock()
# (monotonic time the list expires, [(subscription id, patterns)])
_cache: tuple[float, list[tuple[int, tuple[str, ...]]]] = (0.0, [])


def invalidate(*args: Any, **kwargs: Any) -> None:
    global _cache
    with _lock:
        _cache = (0.0, [])


def active_subscriptions() -> list[tuple[int, tuple[str, ...]]]:
    global _cache
    expires, subs = _cache
    now = time.monotonic()
    if now < expires:
        return subs
    from .models import Subscription

    rows = Subscription.objects.filter(active=True).values_list("id", "events")
    subs = [(pk, tuple(events or ())) for pk, events in rows]
    with _lock:
        _cache = (now + settings.CONTROLPLANE_WEBHOOK_CACHE_SECONDS, subs)
    return subs


def on_event_recorded(sender: Any, event: Event, **kwargs: Any) -> None:
    subs = active_subscriptions()
    if not subs:
        return
    matched = [pk for pk, patterns in subs if any(pattern_matches(p, event.type) for p in patterns)]
    if not matched:
        return
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(subscription_id=pk, event=event, event_type=event.type, next_attempt_at=now)
        for pk in matched
    )
    ids = [str(d.id) for d in deliveries]
    # Sent only once the event commits; a lost publish is found by the sweep.
    transaction.on_commit(lambda: _publish(ids), robust=True)


def _publish(ids: list[str]) -> None:
    for delivery_id in ids:
        publish_delivery(delivery_id)
