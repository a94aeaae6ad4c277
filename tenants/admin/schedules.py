"""The admin's scheduled operations: read only, cancelled through the same service as
``DELETE /schedules/{id}`` (``tenants.schedules``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from controlplane.admin import ReadOnlyAdmin

from .. import schedules
from ..actors import Actor
from ..errors import OperationError
from ..formats import stamp_text
from ..models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    """Scheduled operations, soonest first, read-only. *Cancel* (a bulk action) goes through
    ``tenants.schedules.cancel_schedule``, the service behind ``DELETE /schedules/{id}``: it
    checks the operation's permission and records ``operation.schedule_cancelled``."""

    list_display = (
        "when",
        "what",
        "on",
        "status",
        "actor",
        "reason",
        "outcome_text",
    )
    list_filter = ("status", "operation", "bulk")
    search_fields = ("operation", "actor", "tenant__slug", "reason")
    list_select_related = ("tenant",)
    ordering = ("at", "id")
    readonly_fields = (
        "id",
        "operation",
        "options",
        "tenant",
        "bulk",
        "ids",
        "filter",
        "limit",
        "reason",
        "faults",
        "at",
        "status",
        "actor",
        "outcome",
        "created_at",
        "finished_at",
        "cancelled_by",
    )
    exclude = ("author", "trusted")
    actions = ["cancel_selected"]

    @admin.display(description="at (UTC)", ordering="at")
    def when(self, obj: Schedule) -> str:
        return stamp_text(obj.at)

    @admin.display(description="operation", ordering="operation")
    def what(self, obj: Schedule) -> str:
        return schedules.operation_text(obj)

    @admin.display(description="on")
    def on(self, obj: Schedule) -> str:
        if obj.tenant_id is None:
            return schedules.tenants_of(obj)
        url = reverse("admin:tenants_tenant_change", args=[obj.tenant_id])
        return format_html('<a href="{}">{}</a>', url, schedules.tenants_of(obj))

    @admin.display(description="outcome")
    def outcome_text(self, obj: Schedule) -> str:
        return str((obj.outcome or {}).get("message", ""))

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # Shown to whoever sees the list; the service checks the operation's permission.
        return self.has_view_permission(request)

    @admin.action(description="Cancel the selected schedules", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        actor = Actor.for_user(request.user)
        for pk in queryset.order_by("at", "id").values_list("pk", flat=True):
            try:
                s = schedules.cancel_schedule(pk, actor=actor)
            except OperationError as exc:
                self.message_user(request, f"Not cancelled: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"Cancelled: {schedules.operation_text(s)} of {schedules.tenants_of(s)} at "
                f"{stamp_text(s.at)} will not run.",
            )
