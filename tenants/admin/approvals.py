"""The admin's approval requests: the policy's waiting operations, approved or withdrawn
through the same service as every door (``tenants.approvals``)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from controlplane.admin import ReadOnlyAdmin

from .. import approvals, selectors
from ..actors import Actor
from ..errors import OperationError
from ..models import (
    ApprovalRequest,
    ApprovalStatus,
)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """Requests waiting for a second person, and the decided ones. Approve / Withdraw are
    bulk actions here and buttons on the request's page and the tenant's page; all of them
    call ``tenants.approvals.decide``, which checks who may."""

    list_display = (
        "operation",
        "target_link",
        "requested_by",
        "requested_at",
        "expires_at",
        "status",
        "decided_by",
        "outcome",
    )
    list_filter = ("status", "operation")
    search_fields = ("operation", "requested_by", "tenant__slug")
    list_select_related = ("tenant",)
    readonly_fields = (
        "id",
        "operation",
        "tenant",
        "selection",
        "reason",
        "options",
        "requested_by",
        "requested_actor",
        "requested_at",
        "expires_at",
        "status",
        "decided_by",
        "decided_at",
        "outcome",
    )
    exclude = ("requested_user", "trusted")
    change_form_template = "admin/tenants/approvalrequest/change_form.html"
    actions = ["approve_selected", "withdraw_selected"]

    @admin.display(description="of")
    def target_link(self, obj: ApprovalRequest) -> str:
        if obj.tenant_id is None:
            return f"{obj.target} (bulk)"
        url = reverse("admin:tenants_tenant_change", args=[obj.tenant_id])
        return format_html('<a href="{}">{}</a>', url, obj.tenant.slug)

    def has_decide_permission(self, request: HttpRequest) -> bool:
        # Shown to whoever sees the list; the service checks the operation's permission.
        return self.has_view_permission(request)

    def _decide_selected(
        self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], decision: str
    ) -> None:
        actor = Actor.for_user(request.user)
        for pk in queryset.order_by("requested_at").values_list("pk", flat=True):
            self._decide(request, pk, decision, actor)

    @admin.action(description="Approve the selected requests", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide_selected(request, queryset, "approve")

    @admin.action(description="Withdraw the selected requests", permissions=["decide"])
    def withdraw_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide_selected(request, queryset, "withdraw")

    def _decide(self, request: HttpRequest, pk: Any, decision: str, actor: Actor) -> None:
        try:
            done = approvals.decide(
                decision, pk, actor=actor, reason=request.POST.get("reason", "")
            )
        except OperationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        level = messages.SUCCESS if done.status == ApprovalStatus.APPROVED else messages.WARNING
        if done.status == ApprovalStatus.WITHDRAWN:
            level = messages.SUCCESS
        self.message_user(request, approvals.decided_message(done), level)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:approval_id>/decide/<slug:decision>/",
                self.admin_site.admin_view(require_http_methods(["POST"])(self.decide_view)),
                name="tenants_approvalrequest_decide",
            ),
            *super().get_urls(),
        ]

    def decide_view(
        self, request: HttpRequest, approval_id: uuid.UUID, decision: str
    ) -> HttpResponse:
        if decision not in approvals.DECISIONS:
            raise Http404("No such decision.")
        if not self.has_view_permission(request):
            raise PermissionDenied
        self._decide(request, approval_id, decision, Actor.for_user(request.user))
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:tenants_approvalrequest_changelist")
        return HttpResponseRedirect(back)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        try:
            pk = uuid.UUID(str(object_id))
        except ValueError:
            pk = None
        found = (
            ApprovalRequest.objects.select_related("tenant").filter(pk=pk).first() if pk else None
        )
        if found is not None and found.status == ApprovalStatus.WAITING:
            context["waiting"] = selectors.waiting_views([found], request.user)[0]
        return super().change_view(request, object_id, form_url, extra_context=context)
