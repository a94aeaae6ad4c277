"""Subscribing, unsubscribing and redelivering: what the command and the admin call."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import EVENT_TYPES
from tenants.errors import ErrorCode

from .guard import AddressRefused, normalise, resolve
from .models import Delivery, DeliveryStatus, Subscription, pattern_matches
from .publish import publish_delivery

PATTERN_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
MAX_PATTERNS = 50


class WebhookError(Exception):
    """A refused webhook request; ``message`` is one sentence for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def parse_patterns(raw: str | Iterable[str]) -> list[str]:
    """``tenant.provisioning,tenant.created`` -> a clean list; each must name known events."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    patterns: list[str] = []
    for item in items:
        pattern = str(item).strip()
        if not pattern:
            continue
        if not PATTERN_RE.match(pattern):
            raise WebhookError(
                ErrorCode.INVALID_PATTERN,
                f"{pattern!r} is not an event type or a dotted prefix (like tenant.provisioning).",
            )
        if not any(pattern_matches(pattern, t) for t in EVENT_TYPES):
            raise WebhookError(
                ErrorCode.INVALID_PATTERN,
                f"{pattern!r} matches no audit event type (see docs/api.md).",
            )
        if pattern not in patterns:
            patterns.append(pattern)
    if not patterns:
        raise WebhookError(ErrorCode.INVALID_PATTERN, "Name at least one event type or prefix.")
    if len(patterns) > MAX_PATTERNS:
        raise WebhookError(ErrorCode.INVALID_PATTERN, f"At most {MAX_PATTERNS} patterns.")
    return patterns


def check_url(url: str) -> str:
    """The URL, checked by the address guard; raise ``WebhookError`` when refused."""
    url = (url or "").strip()
    if len(url) > 2000:
        raise WebhookError(ErrorCode.INVALID_URL, "A webhook URL has at most 2000 characters.")
    try:
        url = normalise(url)
        resolve(url)
    except AddressRefused as exc:
        raise WebhookError(ErrorCode.INVALID_URL, str(exc)) from None
    return url


def check_secret(secret: str | None) -> str:
    if secret is None or secret == "":
        return new_secret()
    if len(secret) < 16 or len(secret) > 200 or not secret.isprintable():
        raise WebhookError(ErrorCode.INVALID_SECRET, "A secret has 16 to 200 printable characters.")
    return secret


def add_subscription(
    *, url: str, events: str | Iterable[str], secret: str | None = None
) -> Subscription:
    """Check the URL (address guard) and the patterns, then subscribe; nothing is written on
    a refusal. Without a secret one is generated (read it from the returned subscription)."""
    subscription = Subscription(
        url=check_url(url), events=parse_patterns(events), secret=check_secret(secret)
    )
    subscription.save()
    return subscription


def remove_subscription(*, subscription_id: int | str) -> Subscription:
    """Delete the subscription and its delivery log; deliveries in flight are dropped."""
    subscription = find_subscription(subscription_id)
    removed_id = subscription.pk
    subscription.delete()
    subscription.pk = removed_id
    return subscription


def find_subscription(subscription_id: int | str) -> Subscription:
    try:
        pk = int(str(subscription_id).lstrip("#"))
    except ValueError:
        raise WebhookError(
            ErrorCode.NOT_FOUND, f"No webhook subscription #{subscription_id}."
        ) from None
    found = Subscription.objects.filter(pk=pk).first()
    if found is None:
        raise WebhookError(ErrorCode.NOT_FOUND, f"No webhook subscription #{pk}.")
    return found


def subscription_list() -> QuerySet[Subscription]:
    return Subscription.objects.order_by("id")


def redeliver(*, delivery_id: uuid.UUID | str) -> Delivery:
    """Send the delivery's event again as a new delivery (a new id, a fresh set of tries)."""
    original = Delivery.objects.filter(pk=delivery_id).first()
    if original is None:
        raise WebhookError(ErrorCode.NOT_FOUND, f"No delivery {delivery_id}.")
    with transaction.atomic():
        copy = Delivery.objects.create(
            subscription_id=original.subscription_id,
            event_id=original.event_id,
            event_type=original.event_type,
            status=DeliveryStatus.PENDING,
            next_attempt_at=timezone.now(),
            redelivery_of=original,
        )
        delivery_id = str(copy.id)
        transaction.on_commit(lambda: publish_delivery(delivery_id), robust=True)
    return copy
