"""The list reads behind ``GET /tenants``, ``GET /tenants/{id}/events`` and ``GET /audit``.

Pure filters and keyset pages over the models; they decide nothing about tenants. (If the
console and the commands come to need the same filters, these belong in the selectors.)
"""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from audit import selectors as audit_selectors
from audit.models import Event
from tenants import schedules as schedule_reads
from tenants import selectors
from tenants.models import Schedule, Tenant

from . import pagination


def tenants(
    filters: selectors.TenantFilters, *, cursor: str | None, limit: int
) -> tuple[list[Tenant], str | None]:
    qs: QuerySet[Tenant] = selectors.tenant_list(filters).order_by("-created_at", "-id")
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
    filters: audit_selectors.AuditFilters, *, cursor: str | None, limit: int
) -> tuple[list[Event], str | None]:
    """Newest first; the filters mean what ``audit.selectors.audit_feed`` says."""
    qs = audit_selectors.audit_feed(filters).order_by("-id")
    if cursor:
        qs = qs.filter(id__lt=pagination.event_after(cursor, "audit"))
    rows, more = pagination.page(list(qs[: limit + 1]), limit)
    next_cursor = pagination.encode("audit", i=rows[-1].id) if more else None
    return rows, next_cursor


def schedules(
    filters: schedule_reads.ScheduleFilters, *, cursor: str | None, limit: int
) -> tuple[list[Schedule], str | None]:
    """Soonest first (at, id ascending)."""
    qs = schedule_reads.schedule_list(filters)
    if cursor:
        qs = qs.filter(pagination.schedule_after(cursor))
    rows, more = pagination.page(list(qs[: limit + 1]), limit)
    next_cursor = pagination.schedule_cursor(rows[-1].at, rows[-1].id) if more else None
    return rows, next_cursor
