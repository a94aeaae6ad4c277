"""The append-only audit feed.

Every event belongs to one tenant and carries its place in that tenant's hash chain: ``seq``
counts the tenant's events from 1 with no gap, and ``digest`` is the HMAC-SHA256, under the
audit key named by ``key_id`` (``audit/keys.py``; never in the database), of the previous
event's digest and this event's content. Events with an empty ``key_id`` were chained before
keys existed, with plain SHA-256. ``manage.py audit verify`` recomputes the chains, so an
event that went missing, was rewritten or was inserted out of turn is found. The chain head per
tenant (``EventChain``) is locked while an event is appended, which orders a tenant's events
without a global lock.

Events that concern no tenant (a failed login) have no ``tenant_id`` and share one chain of
their own, whose head is kept under ``GLOBAL_CHAIN`` (a fixed id no tenant can have).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models

# The chain key of the events without a tenant (the nil UUID: never a tenant's uuid4).
GLOBAL_CHAIN = uuid.UUID(int=0)


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


class EventQuerySet(models.QuerySet["Event"]):
    def of_type(self, type_or_prefix: str) -> EventQuerySet:
        """A whole type, or a dotted prefix of types: ``tenant.provisioning`` matches
        ``tenant.provisioning.started`` but not ``tenant.provisioningx``."""
        prefix = type_or_prefix.strip().rstrip(".")
        if not prefix:
            return self
        return self.filter(models.Q(type=prefix) | models.Q(type__startswith=prefix + "."))

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted")


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=80, db_index=True)
    occurred_at = models.DateTimeField(db_index=True)
    tenant_id = models.UUIDField(null=True, blank=True)
    run_id = models.UUIDField(null=True, blank=True)
    actor = models.CharField(max_length=200)
    data = models.JSONField(default=dict, blank=True)
    seq = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)
    # The id (a fingerprint, not the key) of the audit key the digest was made with.
    key_id = models.CharField(max_length=32, default="", blank=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "seq"], name="audit_event_tenant_seq"),
            models.UniqueConstraint(
                fields=["seq"],
                condition=models.Q(tenant_id__isnull=True),
                name="audit_event_global_seq",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant_id", "id"], name="audit_event_tenant_id"),
            models.Index(fields=["type", "id"], name="audit_event_type_id"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.tenant_id} #{self.seq}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "actor": self.actor,
            "data": self.data,
        }


class EventChain(models.Model):
    """The head of one tenant's chain (or, under ``GLOBAL_CHAIN``, of the events without a
    tenant): how many events it has and the last digest."""

    tenant_id = models.UUIDField(primary_key=True)
    length = models.PositiveIntegerField(default=0)
    head = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.length}"
