"""Sending deliveries: claim, POST, record, and retry with backoff; the sweep for lost ones.

A delivery is claimed with a compare-and-swap (``pending`` and due -> ``sending``) before the
request, so two workers (a redelivered message, the sweep's republish) never send the same try
twice at once. The request goes out with no transaction open. A worker that dies mid-request
leaves the row ``sending``; the sweep puts it back to ``pending`` once its claim is older than
``STALE_AFTER_TIMEOUTS`` request timeouts (again with a compare-and-swap) and sends it again:
delivery is at least once, and the ``X-Controlplane-Delivery`` id lets a receiver drop the
duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from observability.logs import bound

from .guard import AddressRefused, Target, resolve
from .models import Delivery, DeliveryAttempt, DeliveryStatus, Subscription
from .publish import publish_delivery

log = logging.getLogger(__name__)

RESPONSE_EXCERPT = 500
STALE_AFTER_TIMEOUTS = 3
USER_AGENT = "controlplane-webhooks/1"
_random = secrets.SystemRandom()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(tries_done: int) -> float:
    """Seconds to wait after the ``tries_done``-th failed try: base doubling, plus 0-25%.

    The jitter only lengthens the wait, so the documented minimum total holds; it spreads a
    receiver's backlog when it comes back after an outage.
    """
    base = settings.CONTROLPLANE_WEBHOOK_RETRY_BASE * 2 ** (tries_done - 1)
    return base * (1 + _random.uniform(0, 0.25))


def body_of(delivery: Delivery) -> bytes:
    return json.dumps(
        delivery.event.as_dict(), cls=DjangoJSONEncoder, separators=(",", ":")
    ).encode()


@dataclass
class Answer:
    status_code: int | None
    body: str
    error: str


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address the guard checked, whatever the name resolves to now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Certificate checked against the host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(4096).decode("utf-8", "replace")[:RESPONSE_EXCERPT]
        return Answer(response.status, text, "")
    # Anything at all: a URL http.client cannot encode (UnicodeEncodeError, InvalidURL, a
    # ValueError) once escaped here, left the row `sending`, and the sweep re-queued it forever
    # (issue 23). Every failure is a try that counts towards the limit.
    except Exception as exc:  # noqa: BLE001 - reported on the delivery, never lost
        return Answer(None, "", f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT])
    finally:
        conn.close()


def _claim(delivery_id: str, now: datetime) -> bool:
    claimed = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(status=DeliveryStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    return bool(claimed)


def deliver(delivery_id: str | uuid.UUID) -> str:
    """One try of one delivery (the body of the ``webhooks.deliver`` task); returns its status."""
    now = timezone.now()
    if not _claim(str(delivery_id), now):
        return "not due"  # already sent, being sent, or waiting for its backoff
    delivery = Delivery.objects.select_related("event").get(pk=delivery_id)
    subscription = Subscription.objects.filter(pk=delivery.subscription_id).first()
    with bound(delivery_id=str(delivery.id), tenant_id=delivery.event.tenant_id):
        if subscription is None or not subscription.active:
            return _finish(
                delivery,
                now,
                Answer(None, "", "the subscription was removed or deactivated"),
                give_up=True,
            )
        try:
            target = resolve(subscription.url)
        except AddressRefused as exc:
            return _finish(delivery, now, Answer(None, "", str(exc)), give_up=True)
        except Exception as exc:  # noqa: BLE001 - a try that counts, as in post()
            return _finish(delivery, now, Answer(None, "", f"{type(exc).__name__}: {exc}"))
        body = body_of(delivery)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Controlplane-Event": delivery.event_type,
            "X-Controlplane-Delivery": str(delivery.id),
            "X-Controlplane-Signature": sign(subscription.secret, body),
        }
        started = time.monotonic()
        answer = post(target, body, headers, settings.CONTROLPLANE_WEBHOOK_TIMEOUT)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return _finish(delivery, now, answer, duration_ms=elapsed_ms)


def _finish(
    delivery: Delivery,
    now: datetime,
    answer: Answer,
    *,
    give_up: bool = False,
    duration_ms: int = 0,
) -> str:
    ok = answer.status_code is not None and 200 <= answer.status_code < 300
    tries = delivery.attempts
    finished = timezone.now()
    if ok:
        status, next_at = DeliveryStatus.DELIVERED, delivery.next_attempt_at
    elif give_up or tries >= settings.CONTROLPLANE_WEBHOOK_MAX_TRIES:
        status, next_at = DeliveryStatus.FAILED, delivery.next_attempt_at
    else:
        wait = backoff(tries)
        status, next_at = DeliveryStatus.PENDING, finished + timedelta(seconds=wait)
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=tries,
            at=now,
            status_code=answer.status_code,
            response=answer.body,
            error=answer.error,
            duration_ms=duration_ms,
        )
        # Fenced on our own claim: if the sweep took the row back meanwhile (we were too slow
        # and presumed dead), its new try owns it and this answer is only logged.
        updated = Delivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.SENDING, claimed_at=delivery.claimed_at
        ).update(
            status=status,
            next_attempt_at=next_at,
            last_status_code=answer.status_code,
            last_response=answer.body,
            last_error=answer.error,
            delivered_at=finished if ok else None,
        )
        if updated and status == DeliveryStatus.PENDING:
            delay = max(0.0, (next_at - finished).total_seconds())
            pk = str(delivery.pk)
            transaction.on_commit(lambda: publish_delivery(pk, delay), robust=True)
    if ok:
        log.info("webhook delivered", extra={"delivery_id": str(delivery.pk)})
    else:
        log.warning(
            "webhook try %s failed: %s",
            tries,
            answer.status_code or answer.error,
            extra={"delivery_id": str(delivery.pk)},
        )
    return status


@dataclass
class SweepReport:
    reclaimed: list[str]
    republished: list[str]


def sweep(now: datetime | None = None) -> SweepReport:
    """Find deliveries whose worker died or whose message was lost, and send them again.

    - ``sending`` with a claim older than a few request timeouts: the worker died mid-request.
      Put back to ``pending`` (compare-and-swap on the claim) and publish.
    - ``pending`` and overdue by more than a sweep interval: the publish (or its countdown
      message) was lost. Bump ``next_attempt_at`` (compare-and-swap) and publish.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.CONTROLPLANE_WEBHOOK_TIMEOUT * STALE_AFTER_TIMEOUTS)
    overdue = now - timedelta(seconds=settings.CONTROLPLANE_WEBHOOK_SWEEP_INTERVAL)
    report = SweepReport(reclaimed=[], republished=[])
    rows = Delivery.objects.filter(
        Q(status=DeliveryStatus.SENDING, claimed_at__lt=stale)
        | Q(status=DeliveryStatus.PENDING, next_attempt_at__lt=overdue)
    ).values_list("pk", "status", "claimed_at", "next_attempt_at", "attempts")[:1000]
    for pk, status, claimed_at, next_attempt_at, attempts in rows:
        if status == DeliveryStatus.SENDING and attempts >= settings.CONTROLPLANE_WEBHOOK_MAX_TRIES:
            # Its last try never finished (the worker died in it every time): give up rather
            # than send it again without limit.
            Delivery.objects.filter(
                pk=pk, status=DeliveryStatus.SENDING, claimed_at=claimed_at
            ).update(status=DeliveryStatus.FAILED, last_error="the last try never finished")
            continue
        if status == DeliveryStatus.SENDING:
            claimed = Delivery.objects.filter(
                pk=pk, status=DeliveryStatus.SENDING, claimed_at=claimed_at
            ).update(status=DeliveryStatus.PENDING, next_attempt_at=now)
            if claimed:
                report.reclaimed.append(str(pk))
        else:
            claimed = Delivery.objects.filter(
                pk=pk, status=DeliveryStatus.PENDING, next_attempt_at=next_attempt_at
            ).update(next_attempt_at=now)
            if claimed:
                report.republished.append(str(pk))
        if claimed:
            publish_delivery(str(pk))
    return report
