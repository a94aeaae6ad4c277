"""The audit feed in the admin: viewable and filterable, never added to, changed or deleted.

The model refuses changes and deletes too (and PostgreSQL has a trigger); the admin refuses
them first, for everyone including superusers, so no button or URL even pretends to allow it.
This module links to tenants by URL only: ``audit`` imports neither ``tenants`` nor
``provisioning``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from controlplane.admin import ReadOnlyAdmin
from controlplane.errors import OperationError
from controlplane.formats import stamp_text

from .events import EVENT_TYPES
from .models import Event
from .selectors import AuditFilters, audit_feed


def _type_prefixes() -> list[str]:
    """Every dotted prefix of a known type that groups several types (``tenant.provisioning``)."""
    prefixes: set[str] = set()
    for event_type in EVENT_TYPES:
        parts = event_type.split(".")
        prefixes.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(prefixes)


class TypeFilter(admin.SimpleListFilter):
    """A whole type or a dotted prefix, as the API's ``type`` filter matches."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(p, f"{p}.*") for p in _type_prefixes()] + [(t, t) for t in sorted(EVENT_TYPES)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> Any:
        value = self.value()
        if not value:
            return queryset
        # The feed's one parser and selector, as the API's and the console's ``type``.
        try:
            filters = AuditFilters.parse(type=value)
        except OperationError as exc:
            messages.error(request, exc.message)
            return queryset.none()
        return queryset & audit_feed(filters)


class ActorKindFilter(admin.SimpleListFilter):
    title = "actor kind"
    parameter_name = "actor_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("user", "user:…"), ("token", "token:…"), ("system", "system")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> Any:
        value = self.value()
        if value == "system":
            return queryset.filter(actor="system")
        if value in ("user", "token"):
            return queryset.filter(actor__startswith=value + ":")
        return queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "when", "type", "tenant_link", "seq", "actor", "short_run_id"]
    list_filter = [TypeFilter, ActorKindFilter, "actor", "occurred_at"]
    search_fields = ["type", "actor"]
    search_help_text = "Type or actor, or a full tenant or run id."
    date_hierarchy = "occurred_at"
    ordering = ["-id"]
    list_per_page = 100
    # Counting a large feed on every page view is the slow part; the paginator's own count is
    # enough.
    show_full_result_count = False
    fields = [
        "id",
        "type",
        "occurred_at",
        "tenant_link",
        "run_id",
        "actor",
        "pretty_data",
        "seq",
        "digest",
    ]
    readonly_fields = fields

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The tenant page links here with ?tenant_id=<id>.
        if lookup in ("tenant_id", "run_id"):
            return True
        return super().lookup_allowed(lookup, value, request)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        term = search_term.strip()
        try:
            some_id = uuid.UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(tenant_id=some_id) | Q(run_id=some_id)), False

    @admin.display(description="occurred at", ordering="occurred_at")
    def when(self, event: Event) -> str:
        # The one format for people; the list is ordered by id, so events of the same second
        # still read in the order they happened.
        return stamp_text(event.occurred_at)

    @admin.display(description="tenant")
    def tenant_link(self, event: Event) -> str:
        # The short form keeps the list readable; the full id is in the title and the link.
        if event.tenant_id is None:
            return "-"
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            reverse("admin:tenants_tenant_change", args=[event.tenant_id]),
            str(event.tenant_id),
            str(event.tenant_id)[:8],
        )

    @admin.display(description="run")
    def short_run_id(self, event: Event) -> str:
        return str(event.run_id)[:8] if event.run_id else "-"

    @admin.display(description="data")
    def pretty_data(self, event: Event) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(event.data, indent=2, sort_keys=True, default=str)
        )
