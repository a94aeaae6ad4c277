"""Runs and the allocation ledger in the admin: visible, never changed by hand.

A run's status and the ledger are the fence every worker write checks; an edit here would
bypass the row locks and the audit feed, so nobody (superusers included) may add, change or
delete them. Operators act on tenants instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from controlplane.admin import ReadOnlyAdmin

from .display import released_kinds, step_status
from .models import Allocation, ResourceFinding, Run, StepExecution


def _tenant_link(tenant_id: Any, label: str) -> str:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:tenants_tenant_change", args=[tenant_id]), label
    )


class StepInline(admin.TabularInline):
    model = StepExecution
    fields = [
        "position",
        "name",
        "shown_status",
        "tries",
        "republished",
        "reused",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "error",
    ]
    readonly_fields = fields
    ordering = ["position"]
    extra = 0
    can_delete = False

    @admin.display(description="status")
    def shown_status(self, step: StepExecution) -> str:
        """The one step-status vocabulary every door shows (abandoned, compensated, ...)."""
        return step_status(step, step.run, released_kinds(step.run))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "tenant_link",
        "attempt",
        "kind",
        "status",
        "current_step",
        "started_at",
        "finished_at",
    ]
    list_filter = ["kind", "status", "compensating", "started_at"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "failed_step", "actor"]
    date_hierarchy = "started_at"
    inlines = [StepInline]
    readonly_fields = [
        "id",
        "tenant_link",
        "attempt",
        "kind",
        "params",
        "status",
        "compensating",
        "current_step",
        "faults",
        "actor",
        "error",
        "failed_step",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "cancel_requested_at",
        "stalled_at",
    ]
    fields = readonly_fields

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_link(self, run: Run) -> str:
        return _tenant_link(run.tenant_id, run.tenant.slug)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return super().get_queryset(request).select_related("tenant")


class HeldFilter(admin.SimpleListFilter):
    title = "held"
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Held"), ("no", "Released")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Allocation]) -> Any:
        if self.value() == "yes":
            return queryset.filter(released_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(released_at__isnull=False)
        return queryset


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "tenant_link",
        "kind",
        "external_id",
        "held",
        "allocated_at",
        "released_at",
        "release_error",
    ]
    list_filter = [HeldFilter, "kind", "allocated_at"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "external_id"]
    readonly_fields = [
        "id",
        "tenant_link",
        "kind",
        "external_id",
        "allocated_by",
        "released_by",
        "allocated_at",
        "released_at",
        "release_attempts",
        "release_error",
    ]
    fields = readonly_fields

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_link(self, allocation: Allocation) -> str:
        return _tenant_link(allocation.tenant_id, allocation.tenant.slug)

    @admin.display(description="held", boolean=True)
    def held(self, allocation: Allocation) -> bool:
        return allocation.held

    def get_queryset(self, request: HttpRequest) -> QuerySet[Allocation]:
        return super().get_queryset(request).select_related("tenant")


@admin.register(ResourceFinding)
class ResourceFindingAdmin(ReadOnlyAdmin):
    """What reconciliation found (``manage.py reconcile``, the periodic task): read only;
    ``reconcile --fix`` repairs."""

    list_display = [
        "id",
        "problem",
        "kind",
        "external_id",
        "tenant_id",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "resolution",
    ]
    list_filter = ["problem", "kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["external_id", "tenant_id"]
    readonly_fields = list_display
    fields = readonly_fields
