"""The Django admin door to tenants: the tenant's pages, its operation buttons and bulk actions.

Like the console, the API and the commands, this door only parses input, calls one service
function and renders. Every change goes through ``tenants.services`` with
``Actor.for_user(request.user)``, so the service checks the user's permission and the audit
feed records ``user:<username>``.

Why not django-fsm-2's ``FSMAdminMixin``: its buttons post through the change form, which
Django refuses to anyone without ``change_tenant`` (no role has it: nobody edits a tenant's
fields), it calls the model's transitions directly (guards only here, no run, no audit event),
and it does not re-check the permission on a plain button POST. The buttons below post to a
small view of their own that calls the service, which checks the permission itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from .. import bulk, operations, schedules, selectors
from ..actors import Actor
from ..errors import ErrorCode, OperationError
from ..formats import queued_text, seconds_text, stamp_text
from ..models import (
    SLUG_HELP,
    Condition,
    Tenant,
)
from ..operations import (
    OPERATIONS,
    Operation,
    create_tenant,
    permitted_names,
)
from ..permission_names import PermissionName
from ..selectors import tenant_detail, tenant_events
from ..vocabulary import StepDisplay

# How many of a tenant's audit events the change page shows (the newest, oldest first).
EVENTS_SHOWN = 100
# How many refusals a bulk action lists one by one before summing up the rest.
REFUSALS_SHOWN = 10


class TenantCreateForm(forms.ModelForm):
    """The add form. The service validates and creates; the model's own checks are skipped.

    ``create_tenant`` checks every field, the slug under the database's partial unique index
    (which decides a race between two creators) and the user's permission, and records
    ``tenant.created``; its refusal becomes form errors here.
    """

    start = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Start provisioning at once. Unticked, the tenant stays pending.",
    )
    request: HttpRequest  # set by TenantAdmin.get_form

    class Meta:
        model = Tenant
        fields = ["slug", "name", "plan", "admin_email"]
        help_texts = {"slug": SLUG_HELP}

    def _post_clean(self) -> None:
        # The ModelForm would validate an unsaved instance against the constraints; the service
        # does that (and more) authoritatively, inside the admin view's transaction.
        if self.errors:
            return
        try:
            self.instance = create_tenant(
                slug=self.cleaned_data["slug"],
                name=self.cleaned_data["name"],
                plan=self.cleaned_data["plan"],
                admin_email=self.cleaned_data["admin_email"],
                start=bool(self.cleaned_data.get("start")),
                actor=Actor.for_user(self.request.user),
            )
        except OperationError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            placed = False
            for field, field_messages in details.items():
                if field in self.fields:
                    self.add_error(field, list(field_messages))
                    placed = True
            if not placed:
                self.add_error(None, exc.message)


class ConditionFilter(admin.SimpleListFilter):
    """The contract's conditions, with "needs attention" (the four an operator must act on)."""

    title = "condition"
    parameter_name = "condition"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("attention", "Needs attention"), *Condition.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        value = self.value()
        if not value:
            return queryset
        try:
            if value == "attention":
                filters = selectors.TenantFilters.parse(needs_attention=True)
            else:
                filters = selectors.TenantFilters.parse(condition=value)
        except OperationError as exc:
            messages.error(request, exc.message)
            return queryset.none()
        return queryset.filter(pk__in=selectors.tenant_list(filters).values("pk"))


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "plan",
        "state_badge",
        "condition",
        "email",
        "created",
    ]
    list_filter = ["state", ConditionFilter, "plan", "created_at"]
    search_fields = ["slug", "name", "admin_email"]
    search_help_text = "A phrase in the slug, name or admin e-mail, or a tenant's full id."
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    list_per_page = 50

    class Media:
        # The list's columns fit a desktop's width (tenant-list rules in the same file).
        css = {"all": ["admin-tenant.css"]}

    # One bulk action per operation of the table (added below the class).
    actions: list[Any] = []

    add_fieldsets = ((None, {"fields": ["slug", "name", "plan", "admin_email", "start"]}),)
    # The change page is read-only. The state, condition, recorded error and the operations
    # are the Situation box above the fields (templates/admin/tenants/tenant/change_form.html),
    # so they are not repeated here as raw field values.
    fieldsets = (
        ("Tenant", {"fields": ["slug", "name", "plan", "admin_email", "id"]}),
        ("Provisioning", {"fields": ["workflow_handle", "failed_activity"]}),
        (
            "Timestamps (UTC)",
            {
                "fields": [
                    "created",
                    "updated",
                    "activated",
                    "decommission_requested",
                    "decommissioned",
                ]
            },
        ),
    )

    # --- permissions ----------------------------------------------------------------------
    # Nobody edits a tenant through a form: name, plan and e-mail have no service to change
    # them (a change would bypass the audit feed), and the state moves only through the
    # operations. Nobody deletes one either: decommission is how a tenant goes away.

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # --- list -------------------------------------------------------------------------------

    @admin.display(description="state", ordering="state")
    def state_badge(self, tenant: Tenant) -> str:
        if tenant.decommission_requested_at and tenant.state != "decommissioned":
            return f"{tenant.state} (decommissioning)"
        return tenant.state

    @admin.display(description="created", ordering="created_at")
    def created(self, tenant: Tenant) -> str:
        return stamp_text(tenant.created_at)

    @admin.display(description="admin e-mail", ordering="admin_email")
    def email(self, tenant: Tenant) -> str:
        # Whole, never cut: it may wrap after its @ and its dots (<wbr>), nowhere else.
        return format_html(
            "{}",
            mark_safe(  # noqa: S308 - each part is escaped
                "<wbr>".join(
                    conditional_escape(p) for p in re.split(r"(?<=[@.])", tenant.admin_email) if p
                )
            ),
        )

    # --- the change page's read-only values, in the one format every door writes ------------

    @admin.display(description="workflow handle")
    def workflow_handle(self, tenant: Tenant) -> str:
        return str(tenant.workflow_id) if tenant.workflow_id else "—"

    @admin.display(description="updated")
    def updated(self, tenant: Tenant) -> str:
        return stamp_text(tenant.updated_at)

    @admin.display(description="activated")
    def activated(self, tenant: Tenant) -> str:
        return stamp_text(tenant.activated_at)

    @admin.display(description="decommission requested")
    def decommission_requested(self, tenant: Tenant) -> str:
        return stamp_text(tenant.decommission_requested_at)

    @admin.display(description="decommissioned")
    def decommissioned(self, tenant: Tenant) -> str:
        return stamp_text(tenant.decommissioned_at)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Tenant], search_term: str
    ) -> tuple[QuerySet[Tenant], bool]:
        # The tenant list's one ``q``: the phrase in slug, name or admin e-mail, or a full id
        # (Django's own search would split words, so "corp acme" found "Acme Corp" here only).
        try:
            filters = selectors.TenantFilters.parse(q=search_term)
        except OperationError as exc:
            messages.error(request, exc.message)
            return queryset.none(), False
        if not filters.q:
            return queryset, False
        return queryset.filter(pk__in=selectors.tenant_list(filters).values("pk")), False

    # --- add (through create_tenant) ----------------------------------------------------------

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # One way out of the add form: create. "Save and continue editing" would land on a page
        # that edits nothing, "Save and add another" would hide the provisioning just started.
        context = {
            **(extra_context or {}),
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().add_view(request, form_url, extra_context=context)

    def get_fieldsets(self, request: HttpRequest, obj: Tenant | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> Any:
        if obj is None:
            return []
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    def get_form(
        self, request: HttpRequest, obj: Tenant | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = TenantCreateForm
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            # A class made for this request, so the request never leaks into another one.
            form = type("TenantCreateForm", (form,), {"request": request})
        return form

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        # Nothing to save: TenantCreateForm created the tenant through create_tenant.
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass

    def response_post_save_add(self, request: HttpRequest, obj: Tenant) -> HttpResponse:
        # Straight to the new tenant's page, where its provisioning can be watched.
        return HttpResponseRedirect(reverse("admin:tenants_tenant_change", args=[obj.pk]))

    # --- the change page: situation, buttons, run, allocations, events ------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        try:
            detail = tenant_detail(object_id, user=request.user)
        except OperationError:
            detail = None  # the admin's own "does not exist" handling takes over
        if detail is not None and self.has_view_permission(request, detail.tenant):
            events = list(tenant_events(detail.tenant.id).order_by("-seq")[: EVENTS_SHOWN + 1])
            buttons = [_button(detail.tenant, action) for action in detail.actions]
            context.update(
                detail=detail,
                heartbeat_text=_heartbeat_text(detail),
                # What the user may do now, then what not and why, each in the table's order.
                tenant_actions=[b for b in buttons if b.offered],
                unavailable_actions=[b for b in buttons if not b.offered],
                console_url=reverse("console:tenant_detail", args=[detail.tenant.id]),
                tenant_events=[
                    (event, _data_summary(event.data)) for event in reversed(events[:EVENTS_SHOWN])
                ],
                more_events=len(events) > EVENTS_SHOWN,
                events_url=(
                    reverse("admin:audit_event_changelist") + f"?tenant_id={detail.tenant.id}"
                ),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/action/<str:action>/",
                self.admin_site.admin_view(require_http_methods(["GET", "POST"])(self.action_view)),
                name="tenants_tenant_action",
            ),
            *super().get_urls(),
        ]

    def action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """One operation on one tenant, from a button on its change page.

        GET shows the confirmation with the operation's preview (what is released, what kept,
        the resulting state), a reason field and an optional time; POST performs it, or with a
        time schedules it (``tenants.schedules``, the time read by ``parse_at`` as every door
        reads it). The service checks the user's permission and the state under the row lock;
        a refusal is shown as a message and changes nothing; a bad time (or plan) comes back
        on the confirmation, 422, with what was typed.
        """
        op = OPERATIONS.get(action)
        if op is None:
            raise Http404("No such operation.")
        tenant = self.get_object(request, object_id)
        if tenant is None:
            raise Http404("No such tenant.")
        if not self.has_view_permission(request, tenant):
            raise PermissionDenied
        change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
        actor = Actor.for_user(request.user)
        reason = request.POST.get("reason", "")
        given = operations.given_options(op, request.POST if request.method == "POST" else {})
        if request.method == "GET":
            given = operations.given_options(op, request.GET)
            return self._confirm(request, op, tenant, actor, change_url, given)
        at_text = request.POST.get("at", "").strip()
        if at_text:
            return self._schedule(request, op, tenant, actor, change_url, given, at_text)
        try:
            done = operations.perform(
                op.name, tenant_id=tenant.pk, actor=actor, reason=reason, options=given
            )
        except OperationError as exc:
            self.message_user(request, f"{op.label}: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, operations.success_message(op, done))
        return HttpResponseRedirect(change_url)

    def _confirm(
        self,
        request: HttpRequest,
        op: Operation,
        tenant: Tenant,
        actor: Actor,
        change_url: str,
        given: dict[str, str],
        *,
        status: int = 200,
        error: str = "",
        error_field: str = "",
    ) -> HttpResponse:
        """The confirmation page (again, with what was typed and the error, after a refusal of
        the time or the plan)."""
        fields = operations.option_fields(op, tenant, given)
        chosen = {f["name"]: f["value"] for f in fields}
        try:
            preview = operations.preview(op.name, tenant_id=tenant.pk, actor=actor, options=chosen)
        except OperationError as exc:
            if error_field != "option":
                self.message_user(request, f"{op.label}: {exc.message}", messages.ERROR)
                return HttpResponseRedirect(change_url)
            preview = None  # the plan typed is the error: said beside its field
        return TemplateResponse(
            request,
            "admin/tenants/tenant/action_confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"{op.label}: {tenant.slug}",
                "tenant": tenant,
                "op": op,
                "preview": preview,
                "change_url": change_url,
                "option_fields": fields,
                "reason": request.POST.get("reason", ""),
                "at": request.POST.get("at", ""),
                "at_error": error if error_field == "at" else "",
                "option_error": error if error_field == "option" else "",
            },
            status=status,
        )

    def _schedule(
        self,
        request: HttpRequest,
        op: Operation,
        tenant: Tenant,
        actor: Actor,
        change_url: str,
        given: dict[str, str],
        at_text: str,
    ) -> HttpResponse:
        """The confirmation asked for a time: store the operation to run then (nothing now)."""
        try:
            scheduled = schedules.schedule_operation(
                op.name,
                tenant_id=tenant.pk,
                actor=actor,
                at=at_text,
                reason=request.POST.get("reason", ""),
                options=given,
            )
        except OperationError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            where = "at" if "at" in details else ""
            if any(name in details for name in op.options):
                where = "option"  # change_plan's plan: said beside its field
            if exc.code == ErrorCode.VALIDATION_ERROR and where:
                message = f"Nothing was scheduled: {exc.message}"
                return self._confirm(
                    request,
                    op,
                    tenant,
                    actor,
                    change_url,
                    given,
                    status=422,
                    error=message,
                    error_field=where,
                )
            self.message_user(
                request, f"{op.label} was not scheduled: {exc.message}", messages.ERROR
            )
            return HttpResponseRedirect(change_url)
        self.message_user(
            request,
            f"{schedules.operation_text(scheduled)} of {tenant.slug} is scheduled for "
            f"{stamp_text(scheduled.at)}. It runs then as you; cancel it from Schedules until "
            "then.",
        )
        return HttpResponseRedirect(change_url)

    # --- bulk actions -------------------------------------------------------------------------

    def bulk_action(
        self, request: HttpRequest, queryset: QuerySet[Tenant], op: Operation
    ) -> HttpResponse | None:
        """One operation on the selected tenants, through the one bulk service.

        First a confirmation page with the dry run of every selected tenant and a reason field
        (like Django's own delete confirmation); confirmed, each tenant is handled in its own
        transaction and each refusal reported, the others going ahead. An operation with
        arguments of its own (change_plan's plan), which Django's action menu cannot ask for,
        first asks for them on that page; the dry run and the confirmation carry them.
        """
        ids = [str(pk) for pk in queryset.order_by("slug").values_list("pk", flat=True)]
        confirmed = request.POST.get("post") == "yes"
        given = operations.given_options(op, request.POST)
        page = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "op": op,
            "action_name": f"{op.name}_selected",
            "ids": ids,
            "option_fields": operations.bulk_option_fields(op, given),
            "options": given,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        if op.options and not given and not confirmed:
            # Chosen from the action menu: ask for the plan before any dry run.
            page["title"] = f"{op.label}: choose"
            return TemplateResponse(request, "admin/tenants/tenant/bulk_confirm.html", page)
        try:
            result = bulk.bulk(
                op.name,
                actor=Actor.for_user(request.user),
                ids=ids,
                dry_run=not confirmed,
                reason=request.POST.get("reason", ""),
                limit=bulk.BULK_MAX_LIMIT,
                options=given,
            )
        except OperationError as exc:
            self.message_user(request, f"{op.label}: {exc.message}", messages.ERROR)
            return None
        if not confirmed:
            return TemplateResponse(
                request,
                "admin/tenants/tenant/bulk_confirm.html",
                {
                    **page,
                    "title": f"{op.label}: dry run",
                    "result": result,
                    "would_accept": result.count("would_accept"),
                    "question": bulk.question(op, result.count("would_accept")),
                },
            )
        if result.approval is not None:
            self.message_user(request, operations.waiting_message(op, result.approval.target))
            return None
        done = [r.slug for r in result.results if r.outcome == "accepted"]
        refused = [f"{r.slug}: {r.message}" for r in result.results if r.outcome == "refused"]
        if done:
            self.message_user(request, f"{op.label}: accepted for {', '.join(done)}.")
        for line in refused[:REFUSALS_SHOWN]:
            self.message_user(request, f"{op.label} refused for {line}", messages.ERROR)
        if len(refused) > REFUSALS_SHOWN:
            self.message_user(
                request,
                f"{op.label} refused for {len(refused) - REFUSALS_SHOWN} more tenants.",
                messages.ERROR,
            )
        return None


def _bulk_admin_action(op: Operation) -> Any:
    def action(
        modeladmin: TenantAdmin, request: HttpRequest, queryset: QuerySet[Tenant]
    ) -> HttpResponse | None:
        return modeladmin.bulk_action(request, queryset, op)

    action.__name__ = action.__qualname__ = f"{op.name}_selected"
    return admin.action(description=f"{op.label}: the selected tenants", permissions=[op.name])(
        action
    )


def _has_permission(op: Operation) -> Any:
    # Named by the bulk action's ``permissions``: the permission the operation's row names.
    def check(self: TenantAdmin, request: HttpRequest) -> bool:
        return op.name in permitted_names(request.user)

    return check


for _op in OPERATIONS.values():
    setattr(TenantAdmin, f"has_{_op.name}_permission", _has_permission(_op))
    # An operation with arguments of its own (change_plan's plan) asks for them on the
    # action's intermediate page (``bulk_action``).
    TenantAdmin.actions.append(_bulk_admin_action(_op))


@dataclass(frozen=True)
class OperationButton:
    """One operation on the change page: its button, what it does, or why it is not offered."""

    name: str
    label: str
    summary: str
    danger: bool  # it releases what the tenant holds
    url: str
    offered: bool  # the state allows it and the user may do it
    reason: str  # why not, when not offered


def _button(tenant: Tenant, action: selectors.ActionState) -> OperationButton:
    op = OPERATIONS[action.name]
    return OperationButton(
        name=op.name,
        label=op.label,
        summary=op.summary,
        danger=op.releases,
        url=reverse("admin:tenants_tenant_action", args=[tenant.pk, op.name]),
        offered=action.available and action.permitted,
        reason=action.reason,
    )


def _data_summary(data: dict[str, Any]) -> str:
    """An event's data on one line, for the change page's table: strings as they are, other
    values as JSON (``start=true``, ``faults={"dns": "fail"}``), never Python's spelling."""
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, default=str)}"
        for key, value in sorted(data.items())
    )


def _heartbeat_text(detail: selectors.TenantDetail) -> str:
    """The live step's heartbeat, or how long it has waited when no worker has taken it."""
    seconds = detail.seconds_since_heartbeat
    run = detail.run
    if seconds is None or run is None:
        return ""
    current = next((v for v in detail.step_views if v.name == run.current_step), None)
    if current is not None and current.status == StepDisplay.DISPATCHED:
        return queued_text(current.queued_seconds)
    return f"last heartbeat {seconds_text(seconds)} ago"


def _may_use_admin(request: HttpRequest) -> bool:
    """Staff, or anyone in a role (viewer, operator, admin) — not only ``is_staff``.

    Each admin page still checks its own model permission, and every transition goes through
    the services, which check the operation's permission again.
    """
    user = request.user
    return bool(user.is_active and (user.is_staff or user.has_perm(PermissionName.VIEW_TENANT)))


admin.site.has_permission = _may_use_admin
