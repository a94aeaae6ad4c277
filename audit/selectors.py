"""The audit feed: one selector every door asks (the API's ``/audit``, the console's feed,
``manage.py audit tail`` and the admin's filters), so a filter means the same in each and a bad
one is refused with the same message (``controlplane.filters``).

``audit`` imports no other app of ours. A filter's ``tenant`` (an id or a slug) is turned into
tenant ids by the directory the tenants app plugs in when it starts (``TenantDirectory``; see
``tenants/apps.py``): the dependency points from tenants to audit, never back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from controlplane.filters import Problems, boolean, filter_error, text

from .events import EventType
from .models import Event

# Step-level chatter: what a saga does many times per run. Hidden on request in the feed.
STEP_CHATTER: tuple[str, ...] = (
    EventType.STEP_STARTED,
    EventType.STEP_COMPLETED,
    EventType.RESOURCE_ALLOCATED,
    EventType.RESOURCE_REUSED,
    EventType.RESOURCE_RELEASED,
)

AUDIT_FILTER_KEYS = ("type", "tenant", "actor", "since", "hide_steps")


class TenantDirectory:
    """What the audit app may ask about tenants, answered by the tenants app, which plugs its
    own in when it starts (``tenants/apps.py``). This default (never used in the project)
    knows ids only."""

    def ids_for(self, ref: str) -> list[uuid.UUID]:
        """The tenants ``ref`` (an id or a slug) names, newest first; [] when none."""
        try:
            return [uuid.UUID(ref)]
        except ValueError:
            return []

    def slugs(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        return {}

    def all_ids(self) -> QuerySet[Any]:
        """Every tenant's id (a flat values queryset, with the tenant's id as ``pk``)."""
        return Event.objects.none().values_list("pk", flat=True)


_DIRECTORY: list[TenantDirectory] = [TenantDirectory()]


def use_tenant_directory(directory: TenantDirectory) -> None:
    _DIRECTORY.append(directory)


def tenant_directory() -> TenantDirectory:
    return _DIRECTORY[-1]


@dataclass(frozen=True)
class AuditFilters:
    type: str = ""
    tenant: str = ""  # an id or a slug, as given
    tenant_ids: tuple[uuid.UUID, ...] = ()  # the tenants it names
    actor: str = ""
    since: datetime | None = None
    hide_steps: bool = False

    @classmethod
    def parse(
        cls,
        *,
        type: Any = None,
        tenant: Any = None,
        actor: Any = None,
        since: Any = None,
        hide_steps: Any = None,
    ) -> AuditFilters:
        """Check the feed's filters at once; raise one ``validation_error`` naming each bad
        one. ``type`` is a whole type or a dotted prefix; ``tenant`` must name a tenant
        (an empty page would read as "nothing happened to it"); ``since`` is ISO 8601 (UTC when
        it names no zone)."""
        problems: Problems = {}
        # A type no event has (yet) is not refused: it matches nothing, in every door.
        type_ = text(type, "type", 80, problems).rstrip(".")
        ref = text(tenant, "tenant", 100, problems)
        ids: list[uuid.UUID] = []
        if ref:
            ids = tenant_directory().ids_for(ref)
            if not ids:
                problems["tenant"] = [f"No tenant has the slug or id {ref!r}."]
        parsed = cls(
            type=type_,
            tenant=ref,
            tenant_ids=tuple(ids),
            actor=text(actor, "actor", 200, problems),
            since=_moment(since, problems),
            hide_steps=boolean(hide_steps, "hide_steps", problems),
        )
        if problems:
            raise filter_error(problems)
        return parsed

    @property
    def active(self) -> bool:
        return bool(self.type or self.tenant or self.actor or self.since or self.hide_steps)


def _moment(since: Any, problems: Problems) -> datetime | None:
    moment: datetime | None = None
    if isinstance(since, datetime):
        moment = since
    else:
        given = text(since, "since", 40, problems)
        if given:
            try:
                moment = parse_datetime(given)
            except ValueError:  # well-formed but impossible, like month 13
                moment = None
            if moment is None:
                problems["since"] = [
                    f"since {given!r} is not an ISO 8601 date-time; use e.g. 2026-05-17T09:30:00Z."
                ]
                return None
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past what a datetime holds in UTC
        problems["since"] = ["since is out of range."]
        return None


def audit_feed(filters: AuditFilters | None = None) -> QuerySet[Event]:
    """The audit feed matching ``filters`` (unordered; the doors page it newest first).

    ``type`` is a whole type or a dotted prefix; ``tenant`` an id or a slug (every tenant that
    ever had it); ``actor`` an exact actor (``user:ada``) or, without a colon, a name under any
    prefix (``ada`` finds ``user:ada`` and ``token:ada``).
    """
    filters = filters or AuditFilters()
    qs = Event.objects.all()
    if filters.type:
        qs = qs.of_type(filters.type)
    if filters.tenant:
        qs = qs.filter(tenant_id__in=filters.tenant_ids)
    if filters.actor:
        if ":" in filters.actor or filters.actor == "system":
            qs = qs.filter(actor=filters.actor)
        else:
            qs = qs.filter(actor__in=[f"user:{filters.actor}", f"token:{filters.actor}"])
    if filters.since is not None:
        qs = qs.filter(occurred_at__gte=filters.since)
    if filters.hide_steps:
        qs = qs.exclude(type__in=STEP_CHATTER)
    return qs
