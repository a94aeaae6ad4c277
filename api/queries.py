"""The list reads behind ``GET /tenants``, ``GET /tenants/{id}/events`` and ``GET /audit``.

Pure filters and keyset pages over the models; they decide nothing about tenants. (If the
console and the commands come to need the same filters, these belong in the selectors.)
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Q, QuerySet

from audit.models import Event
from tenants.models import Tenant

from . import pagination


def tenants(
    *, state: str | None, slug: str | None, q: str | None, cursor: str | None, limit: int
) -> tuple[list[Tenant], str | None]:
    qs: QuerySet[Tenant] = Tenant.objects.order_by("-created_at", "-id")
    if state:
        qs = qs.filter(state=state)
    if slug:
        qs = qs.filter(slug=slug)
    if q:
        qs = qs.filter(Q(slug__icontains=q) | Q(name__icontains=q) | Q(admin_email__icontains=q))
    if cursor:
        qs = qs.filter(pagination.tenant_after(cursor))
    rows, more = pagination.page(list(qs[: limit + 1]), limit)
    next_cursor = pagination.tenant_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return rows, next_cursor


def tenant_events(
    tenant_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[Event], str | None]:
    """Oldest first. A tenant's events are appended under a lock on its chain head, so their
    ids grow in commit order and a reader following the cursor never skips one."""
    qs = Event.objects.filter(tenant_id=tenant_id).order_by("id")
    if cursor:
        qs = qs.filter(id__gt=pagination.event_after(cursor, "events"))
    rows, more = pagination.page(list(qs[: limit + 1]), limit)
    next_cursor = pagination.encode("events", i=rows[-1].id) if more else None
    return rows, next_cursor


def audit_feed(
    *,
    type: str | None,
    tenant: uuid.UUID | None,
    since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Event], str | None]:
    """Newest first; ``type`` is a whole type or a dotted prefix of one."""
    qs = Event.objects.order_by("-id")
    if type:
        qs = qs.of_type(type)
    if tenant:
        qs = qs.filter(tenant_id=tenant)
    if since:
        qs = qs.filter(occurred_at__gte=since)
    if cursor:
        qs = qs.filter(id__lt=pagination.event_after(cursor, "audit"))
    rows, more = pagination.page(list(qs[: limit + 1]), limit)
    next_cursor = pagination.encode("audit", i=rows[-1].id) if more else None
    return rows, next_cursor
