"""Webhook subscriptions and the delivery outbox.

A ``Delivery`` row is written in the same transaction as the audit event it carries (see
``webhooks.outbox``), so an event that commits always has its deliveries, and a rolled-back
change sends nothing. Its ``id`` is the ``X-Controlplane-Delivery`` header: a receiver may use
it to drop a duplicate (delivery is at least once).
"""

from __future__ import annotations

import uuid

from django.db import models


def pattern_matches(pattern: str, event_type: str) -> bool:
    """A whole type, or a dotted prefix (``tenant.provisioning`` matches its sub-types)."""
    return event_type == pattern or event_type.startswith(pattern + ".")


class Subscription(models.Model):
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="Event types or dotted prefixes.")
    secret = models.CharField(max_length=200, help_text="Key of the HMAC-SHA256 signature.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.url}"

    def matches(self, event_type: str) -> bool:
        return any(pattern_matches(p, event_type) for p in self.events)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its next try (now or after a backoff)
    SENDING = "sending", "Sending"  # claimed by a worker, request in flight
    DELIVERED = "delivered", "Delivered"  # the receiver answered 2xx
    FAILED = "failed", "Gave up"  # out of tries, or refused by the address guard


class Delivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No database constraint: a process whose cached subscription list is a few seconds old
    # may still write a delivery for a subscription just removed, and a constraint would then
    # fail the event's whole transaction. The sender drops such a delivery.
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False
    )
    # No database constraint either: events are never deleted (the append-only trigger), and a
    # constraint would put referential triggers on the audit table for nothing.
    event = models.ForeignKey(
        "audit.Event", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    event_type = models.CharField(max_length=80)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # When the current try was claimed: a ``sending`` row claimed long ago lost its worker.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    redelivery_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_next_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to #{self.subscription_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One try of a delivery and the receiver's answer, for the admin's delivery log."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"try {self.number}: {self.status_code or self.error}"
