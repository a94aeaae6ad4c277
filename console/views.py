"""The operator console: server-rendered pages over the service functions.

Each view parses its input, calls one selector or one service function, and renders. Every
rule about what may happen lives in ``tenants.services`` and the operations table
(``tenants.operations``); the console shows each operation's button or the reason why not, a
confirmation step with the operation's preview, and words a refusal.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from audit import selectors as audit_selectors
from audit.models import Event
from audit.selectors import AUDIT_FILTER_KEYS, AuditFilters
from controlplane.formats import StampJSONEncoder, iso_text
from provisioning.models import STEPS
from tenants import approvals, bulk, operations, schedules, selectors
from tenants.actors import Actor
from tenants.errors import ErrorCode, OperationError
from tenants.models import (
    SLUG_HELP,
    ApprovalStatus,
    Condition,
    Plan,
    Tenant,
    TenantState,
    normalise_slug,
)
from tenants.operations import (
    CREATE,
    OPERATIONS,
    Operation,
    create_tenant,
    permitted_names,
)
from tenants.permission_names import PermissionName

from .auth import login_required, permission_required, refusal
from .pagination import first_page, keyset_page
from .presenters import rows_for, step_rows


class HtmxHttpRequest(HttpRequest):
    """A request as the htmx middleware leaves it (the typing django-htmx's docs suggest)."""

    htmx: HtmxDetails


TENANTS_PER_PAGE = 50
EVENTS_PER_PAGE = 50
TIMELINE_PER_PAGE = 20

# Sort name -> (field, descending). Each is backed by an index so a page is a range scan.
TENANT_SORTS: dict[str, tuple[str, bool, str]] = {
    "newest": ("created_at", True, "Newest first"),
    "oldest": ("created_at", False, "Oldest first"),
    "slug": ("slug", False, "Slug A–Z"),
    "-slug": ("slug", True, "Slug Z–A"),
}


def poll_seconds() -> float:
    """How often a live page asks for news (tests make it shorter)."""
    return float(getattr(settings, "CONSOLE_POLL_SECONDS", 2))


@login_required
def index(request: HtmxHttpRequest) -> HttpResponse:
    return redirect("console:tenant_list")


# --- tenant list ----------------------------------------------------------------------------


@login_required
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def tenant_list(request: HtmxHttpRequest) -> HttpResponse:
    sort = request.GET.get("sort", "newest")
    if sort not in TENANT_SORTS:
        sort = "newest"
    problem = ""
    try:
        tf = selectors.TenantFilters.parse(
            q=request.GET.get("q"),
            state=request.GET.get("state"),
            plan=request.GET.get("plan"),
            condition=request.GET.getlist("condition"),
            # The API's name; `attention` was the console's own until this release (bookmarks).
            needs_attention=request.GET.get("needs_attention", request.GET.get("attention")),
        )
    except OperationError as exc:
        # A hand-edited URL: say what was wrong and show the whole list rather than guess.
        problem = exc.message
        tf = selectors.TenantFilters()
    qs = selectors.tenant_list(tf)
    field, descending, _ = TENANT_SORTS[sort]
    page = keyset_page(
        qs,
        field=field,
        descending=descending,
        cursor=request.GET.get("cursor"),
        limit=TENANTS_PER_PAGE,
    )
    # One read of the fleet's counts (a few dozen delta rows on PostgreSQL, whatever the
    # fleet's size) gives the state chips, the total, the attention chip and "anything live?".
    counts = selectors.fleet_counts()
    allowed = permitted_names(request.user)
    filters = {
        "q": tf.q,
        "state": tf.state,
        "plan": tf.plan,
        "condition": ",".join(tf.conditions),
        "needs_attention": "1" if tf.needs_attention else "",
        "sort": sort,
    }

    def query(**changes: str) -> str:
        return urlencode({k: v for k, v in {**filters, **changes}.items() if v})

    # Anything moving by itself anywhere in the fleet keeps the list refreshing; once nothing
    # moves, the last answer stops the polling.
    live = counts.in_flight
    context = {
        "page": page,
        "filters": filters,
        "problem": problem,
        "state_counts": [
            (s, label, counts.by_state[s], query(state=s)) for s, label in TenantState.choices
        ],
        "all_states_query": query(state="", needs_attention="", condition=""),
        "attention_count": counts.needs_attention,
        "attention_query": query(needs_attention="" if tf.needs_attention else "1", condition=""),
        "base_query": query(),
        "total": counts.total,
        "states": TenantState.choices,
        "plans": Plan.choices,
        "conditions": Condition.choices,
        "sorts": [(k, v[2]) for k, v in TENANT_SORTS.items()],
        "can_create": request.user.has_perm(CREATE.permission),
        # Bulk: the operations this user may apply to selected tenants.
        "operations": [op for op in OPERATIONS.values() if op.name in allowed],
        "live": live,
        "poll_seconds": poll_seconds(),
        "poll_url": request.get_full_path(),
    }
    if request.htmx:
        response = render(request, "tenants/list.html#fleet", context)
        if not live:
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "tenants/list.html", context)


# --- create ---------------------------------------------------------------------------------


@login_required
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def tenant_new(request: HtmxHttpRequest) -> HttpResponse:
    if not request.user.has_perm(CREATE.permission):
        raise refusal(CREATE.permission, "create tenants")
    values = {"slug": "", "name": "", "plan": Plan.STARTER, "admin_email": "", "faults": ""}
    errors: dict[str, list[str]] = {}
    error_message = ""
    start = True
    status = 200
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in values}
        start = request.POST.get("start") == "on"
        # The service reads the one faults syntax (step=fault pairs or a JSON object).
        faults = values["faults"] if values["faults"].strip() else None
        try:
            tenant = create_tenant(
                slug=values["slug"],
                name=values["name"],
                plan=values["plan"],
                admin_email=values["admin_email"],
                actor=Actor.for_user(request.user),
                start=start,
                faults=faults,
            )
        except OperationError as exc:
            if exc.code == ErrorCode.PERMISSION_DENIED:
                raise PermissionDenied(exc.message) from None
            errors = exc.details if isinstance(exc.details, dict) else {}
            error_message = exc.message
            # 422: the submission was understood and refused; the form comes back with reasons.
            status = 422
        else:
            messages.success(request, CREATE.done_message(tenant))
            return redirect("console:tenant_detail", tenant_id=tenant.pk)
    return render(
        request,
        "tenants/new.html",
        {
            "values": values,
            "errors": errors,
            "error_message": error_message,
            "start": start,
            "plans": Plan.choices,
            "fault_injection": settings.CONTROLPLANE_FAULT_INJECTION,
            "steps": STEPS,
            "slug_help": SLUG_HELP,
        },
        status=status,
    )


# --- detail ---------------------------------------------------------------------------------


def _detail_context(
    request: HtmxHttpRequest, tenant_id: uuid.UUID, *, history: bool = False
) -> dict[str, Any]:
    # The timeline pages by event id; it lives in the refreshing part of the page, so its
    # cursor rides along in the URL the poll asks for. Its first page (no cursor: the page as
    # opened, and every poll of it) comes in the detail's one statement, with the earlier
    # attempts when asked for.
    cursor = request.GET.get("events")
    try:
        detail = selectors.tenant_detail(
            tenant_id,
            user=request.user,
            events=0 if cursor else TIMELINE_PER_PAGE + 1,
            history=history,
        )
    except OperationError as exc:
        raise Http404(exc.message) from None
    if detail.events is not None:
        timeline = first_page(detail.events, field="id", limit=TIMELINE_PER_PAGE)
    else:
        timeline = keyset_page(
            selectors.tenant_events(detail.tenant.pk),
            field="id",
            descending=True,
            cursor=cursor,
            limit=TIMELINE_PER_PAGE,
        )
    # One row per operation, in the table's order: a button when it is available and the user
    # may do it, else the reason why not (a viewer sees why; an operator sees why decommission
    # is not theirs).
    # One reversal for every button: the action URL with a marker where the action's name goes.
    marker = "--action--"
    before, after = reverse("console:tenant_action", args=[detail.tenant.pk, marker]).split(marker)
    actions = [
        {
            **state.as_dict(),
            "url": f"{before}{state.name}{after}",
            "danger": OPERATIONS[state.name].releases,
        }
        for state in detail.actions
    ]
    return {
        "detail": detail,
        "tenant": detail.tenant,
        "run": detail.run,
        "steps": step_rows(detail),
        "released": detail.released,
        "timeline": timeline,
        "actions": actions,
        "offered": [a for a in actions if a["available"] and a["permitted"]],
        "recommendation_label": detail.recommendation.action.label,
        "live": not detail.settled,
        "poll_seconds": poll_seconds(),
        "poll_url": request.get_full_path(),
    }


@login_required
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def tenant_detail(request: HtmxHttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    # Earlier attempts (collapsed under the current run) are not part of the refreshing part
    # of the page: they no longer change.
    context = _detail_context(request, tenant_id, history=not request.htmx)
    if request.htmx:
        response = render(request, "tenants/detail.html#progress", context)
        if not context["live"]:
            # 286 tells htmx to swap this last answer in and stop polling: nothing is moving.
            stop = HttpResponseStopPolling(response.content)
            return stop
        return response
    context["history"] = [{"run": r, "steps": rows_for(r.steps)} for r in context["detail"].history]
    return render(request, "tenants/detail.html", context)


@login_required
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def tenant_action(request: HtmxHttpRequest, tenant_id: uuid.UUID, action: str) -> HttpResponse:
    """GET: the confirmation step, with the operation's preview and a reason field.
    POST: perform it (the service checks the permission, the state and the reason)."""
    op = OPERATIONS.get(action)
    if op is None:
        raise Http404("No such action.")
    try:
        tenant = selectors.get_tenant(tenant_id)
    except OperationError as exc:
        raise Http404(exc.message) from None
    detail_url = reverse("console:tenant_detail", args=[tenant.pk])
    actor = Actor.for_user(request.user)
    if request.method == "POST":
        return _perform(request, op, tenant, actor, detail_url)
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    return _confirm_page(request, op, tenant, actor, detail_url)


def _perform(
    request: HtmxHttpRequest, op: Operation, tenant: Tenant, actor: Actor, detail_url: str
) -> HttpResponse:
    label = op.label
    reason = request.POST.get("reason", "")
    if op.confirm_by_slug:
        typed = normalise_slug(request.POST.get("confirm_slug", ""))
        if typed != tenant.slug:
            if not request.user.has_perm(op.permission):
                raise PermissionDenied(f"You do not have permission to {op.verb}.")
            # The confirmation again, with what was typed (the reason above all) kept: 422,
            # the submission was understood and refused.
            return _confirm_page(
                request,
                op,
                tenant,
                actor,
                detail_url,
                status=422,
                reason=reason,
                typed_slug=typed,
                slug_error=(
                    f"Nothing was done: to {op.verb}, type the tenant's slug ({tenant.slug}) "
                    "exactly."
                ),
            )

    at_text = request.POST.get("at", "").strip()
    if at_text:
        return _schedule(request, op, tenant, actor, detail_url, reason, at_text)

    seen_state = request.POST.get("seen_state", "")
    # What the confirmation page listed as released; the saga may have moved on since.
    previewed = request.POST.get("previewed")
    now_releases = _releases_now(op, tenant, actor) if previewed is not None else []
    options = operations.given_options(op, request.POST)
    try:
        done = operations.perform(
            op.name, tenant_id=tenant.pk, actor=actor, reason=reason, options=options
        )
    except OperationError as exc:
        if exc.code == ErrorCode.PERMISSION_DENIED:
            raise PermissionDenied(exc.message) from None
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        if exc.code == ErrorCode.VALIDATION_ERROR and op.options:
            # A bad option (an unknown plan): the confirmation again, saying what is wrong.
            return _confirm_page(
                request,
                op,
                tenant,
                actor,
                detail_url,
                status=422,
                reason=reason,
                options=options,
                option_error=exc.message,
            )
        now = selectors.get_tenant(tenant.pk)
        if seen_state and seen_state != now.state:
            # The page was stale: someone (or the saga) moved the tenant since it loaded.
            messages.warning(
                request,
                f"{label} was not done: the tenant changed since the page loaded (it was "
                f"{seen_state}, it is now {now.state}). {exc.message}",
            )
        else:
            messages.error(request, f"{label} was refused: {exc.message}")
        return redirect(detail_url)
    message = operations.success_message(op, done)
    if previewed is not None and getattr(done, "approval", None) is None:
        message += operations.moved_on_note(set(previewed.split(",")) - {""}, now_releases)
    messages.success(request, message)
    return redirect(detail_url)


def _schedule(
    request: HtmxHttpRequest,
    op: Operation,
    tenant: Tenant,
    actor: Actor,
    detail_url: str,
    reason: str,
    at_text: str,
) -> HttpResponse:
    """The confirmation asked for a time: store the operation to run then (nothing now)."""
    offset = request.POST.get("tz_offset", "")
    # The operation's own arguments (change_plan's plan) are kept with it, checked now.
    options = operations.given_options(op, request.POST)
    try:
        at = schedules.at_from_form(at_text, offset)
        scheduled = schedules.schedule_operation(
            op.name, tenant_id=tenant.pk, actor=actor, at=at, reason=reason, options=options
        )
    except OperationError as exc:
        if exc.code == ErrorCode.PERMISSION_DENIED:
            raise PermissionDenied(exc.message) from None
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        if exc.details and "at" in exc.details:
            return _confirm_page(
                request,
                op,
                tenant,
                actor,
                detail_url,
                status=422,
                reason=reason,
                options=options,
                at=at_text,
                at_error=f"Nothing was scheduled: {exc.message}",
            )
        if exc.code == ErrorCode.VALIDATION_ERROR and op.options:
            # A bad option (an unknown plan): the confirmation again, saying what is wrong.
            return _confirm_page(
                request,
                op,
                tenant,
                actor,
                detail_url,
                status=422,
                reason=reason,
                options=options,
                option_error=f"Nothing was scheduled: {exc.message}",
                at=at_text,
            )
        messages.error(request, f"{op.label} was not scheduled: {exc.message}")
        return redirect(detail_url)
    messages.success(
        request,
        f"{schedules.operation_text(scheduled)} of {tenant.slug} is scheduled for "
        f"{_when(scheduled.at, offset)}. "
        "It runs then as you; cancel it from Schedules until then.",
    )
    return redirect(detail_url)


def _offset(value: Any) -> int | None:
    try:
        minutes = int(str(value))
    except ValueError:
        return None
    return minutes if -16 * 60 <= minutes <= 16 * 60 else None


def _when(moment: Any, offset: Any) -> str:
    """A moment in UTC, and at the operator's offset when the page sent it."""
    text = f"{moment:%Y-%m-%d %H:%M} UTC"
    minutes = _offset(offset)
    if minutes:
        text += f", {schedules.local_text(moment, minutes)} your time"
    return text


def _releases_now(op: Operation, tenant: Tenant, actor: Actor) -> list[Any]:
    """What the operation releases if done now (nothing when it would be refused: the
    operation itself then says why)."""
    if not op.releases:
        return []
    try:
        return operations.preview(op.name, tenant_id=tenant.pk, actor=actor).release
    except OperationError:
        return []


def _confirm_page(
    request: HtmxHttpRequest,
    op: Operation,
    tenant: Tenant,
    actor: Actor,
    detail_url: str,
    *,
    status: int = 200,
    reason: str = "",
    typed_slug: str = "",
    slug_error: str = "",
    options: dict[str, str] | None = None,
    option_error: str = "",
    at: str = "",
    at_error: str = "",
) -> HttpResponse:
    if options is None:
        options = operations.given_options(op, request.GET)
    fields = operations.option_fields(op, tenant, options)
    chosen = {f["name"]: f["value"] for f in fields}
    preview = None
    try:
        preview = operations.preview(op.name, tenant_id=tenant.pk, actor=actor, options=chosen)
    except OperationError as exc:
        if exc.code == ErrorCode.PERMISSION_DENIED:
            raise PermissionDenied(exc.message) from None
        if not (
            op.options and exc.code in (ErrorCode.VALIDATION_ERROR, ErrorCode.INVALID_STATE)
        ) or (op.guard(tenant, operations.handle_run(tenant)) is not None):
            messages.error(request, f"{op.label} is not possible now: {exc.message}")
            return redirect(detail_url)
        # The state allows it; the option chosen does not (the tenant's own plan, say).
        option_error = option_error or exc.message
    return render(
        request,
        "tenants/confirm.html",
        {
            "tenant": tenant,
            "op": op,
            "preview": preview,
            "detail_url": detail_url,
            "previewed": ",".join(str(a.pk) for a in preview.release) if preview else "",
            "reason": reason,
            "typed_slug": typed_slug,
            "slug_error": slug_error,
            "option_fields": fields,
            "option_error": option_error,
            "at": at,
            "at_error": at_error,
            "tz_offset": request.POST.get("tz_offset", ""),
        },
        status=status,
    )


# --- the approval policy -------------------------------------------------------------------

APPROVALS_SHOWN = 100


@login_required
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def approval_list(request: HtmxHttpRequest) -> HttpResponse:
    """Requests waiting for a second person first (with their buttons), then the decided ones."""
    # A NUL byte was refused before the view (RefuseNulMiddleware); an unknown status is
    # refused by ``approval_list`` with the reason, and the whole list is shown.
    status = request.GET.get("status", "").strip()
    problem = ""
    try:
        rows = approvals.approval_list(status=status or None)
    except OperationError as exc:
        problem, status = exc.message, ""
        rows = approvals.approval_list()
    rows = list(rows[:APPROVALS_SHOWN])
    waiting = selectors.waiting_views(
        [r for r in rows if r.status == ApprovalStatus.WAITING], request.user
    )
    return render(
        request,
        "approvals/list.html",
        {
            "waiting": waiting,
            "decided": [r for r in rows if r.status != ApprovalStatus.WAITING],
            "status": status,
            "statuses": ApprovalStatus.choices,
            "problem": problem,
            "ttl_hours": settings.CONTROLPLANE_APPROVAL_TTL / 3600,
            "policy": _policy_words(operations.approval_policy()),
        },
    )


def _policy_words(policy: frozenset[str]) -> str:
    """``Suspend, Decommission and any bulk operation`` (the table's labels, in its order)."""
    words = [op.label for op in OPERATIONS.values() if op.name in policy]
    if operations.BULK in policy:
        words.append("any bulk operation")
    if len(words) > 1:
        return f"{', '.join(words[:-1])} and {words[-1]}"
    return "".join(words)


@login_required
@require_POST
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def approval_decide(
    request: HtmxHttpRequest, approval_id: uuid.UUID, decision: str
) -> HttpResponse:
    """Approve or withdraw a waiting request (``tenants.approvals`` checks who may)."""
    if decision not in approvals.DECISIONS:
        raise Http404("No such decision.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    back = back or reverse("console:approval_list")
    try:
        done = approvals.decide(
            decision,
            approval_id,
            actor=Actor.for_user(request.user),
            reason=request.POST.get("reason", ""),
        )
    except OperationError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        if exc.code == ErrorCode.PERMISSION_DENIED:
            raise PermissionDenied(exc.message) from None
        messages.error(request, exc.message)
        return redirect(back)
    said = approvals.decided_message(done)
    (messages.error if done.status in ("refused", "expired") else messages.success)(request, said)
    return redirect(back)


# --- bulk -----------------------------------------------------------------------------------


@login_required
@require_POST
@permission_required(PermissionName.VIEW_TENANT, "view tenants")
def tenant_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Selected tenants and one operation: first the dry run, then (confirmed) the real thing.

    Both go through the one bulk service; the dry-run page carries the selection and the
    reason on to the confirming POST.
    """
    op = OPERATIONS.get(request.POST.get("action", ""))
    ids = request.POST.getlist("ids")
    back = reverse("console:tenant_list")
    if op is None:
        messages.error(request, "Choose an operation for the selected tenants.")
        return redirect(back)
    if not ids:
        messages.error(request, "Select at least one tenant.")
        return redirect(back)
    confirmed = request.POST.get("confirm") == "yes"
    reason = request.POST.get("reason", "")
    options = operations.given_options(op, request.POST)
    at_text = request.POST.get("at", "").strip()
    if confirmed and at_text:
        offset = request.POST.get("tz_offset", "")
        try:
            scheduled = schedules.schedule_bulk(
                op.name,
                actor=Actor.for_user(request.user),
                at=schedules.at_from_form(at_text, offset),
                ids=ids,
                reason=reason,
                limit=bulk.BULK_MAX_LIMIT,
                options=options,
            )
        except OperationError as exc:
            if exc.code == ErrorCode.PERMISSION_DENIED:
                raise PermissionDenied(exc.message) from None
            messages.error(request, f"{op.label} was not scheduled: {exc.message}")
            return redirect(back)
        messages.success(
            request,
            f"{schedules.operation_text(scheduled)} of {len(ids)} "
            f"tenant{'' if len(ids) == 1 else 's'} is scheduled for "
            f"{_when(scheduled.at, offset)}.",
        )
        return redirect(reverse("console:schedule_list"))
    try:
        result = bulk.bulk(
            op.name,
            actor=Actor.for_user(request.user),
            ids=ids,
            dry_run=not confirmed,
            reason=reason,
            limit=bulk.BULK_MAX_LIMIT,
            options=options,
        )
    except OperationError as exc:
        if exc.code == ErrorCode.PERMISSION_DENIED:
            raise PermissionDenied(exc.message) from None
        messages.error(request, f"{op.label}: {exc.message}")
        return redirect(back)
    if result.approval is not None:
        # The approval policy: nothing was done; the request waits on the approvals page.
        messages.success(request, operations.waiting_message(op, result.approval.target))
        return redirect("console:approval_list")
    return render(
        request,
        "tenants/bulk.html",
        {
            "op": op,
            "result": result,
            "ids": [str(r.id) for r in result.results if r.id and r.outcome == "would_accept"],
            "reason": reason,
            "options": options,
            "would_accept": result.count("would_accept"),
            "question": bulk.question(op, result.count("would_accept")),
            "accepted": result.count("accepted"),
            "refused": result.count("refused"),
        },
    )


# --- scheduled operations -------------------------------------------------------------------

SCHEDULES_PER_PAGE = 100


@login_required
@permission_required(PermissionName.VIEW_SCHEDULE, "view scheduled operations")
def schedule_list(request: HtmxHttpRequest) -> HttpResponse:
    """Scheduled operations, soonest first, each with a cancel button while it waits. Times in
    UTC, and in the operator's own time (console.js writes it from the browser's offset)."""
    status = request.GET.get("status", "").strip() or "scheduled"
    if status == "all":
        status = ""
    try:
        filters = schedules.ScheduleFilters.parse(status=status)
    except OperationError as exc:
        messages.error(request, exc.message)
        filters = schedules.ScheduleFilters(status="scheduled")
    rows = list(schedules.schedule_list(filters)[:SCHEDULES_PER_PAGE])
    allowed = permitted_names(request.user)
    return render(
        request,
        "tenants/schedules.html",
        {
            "rows": [
                {
                    "s": s,
                    "label": schedules.operation_text(s),
                    "on": schedules.tenants_of(s),
                    "may_cancel": s.status == "scheduled" and s.operation in allowed,
                }
                for s in rows
            ],
            "status": filters.status or "all",
            "statuses": ["scheduled", "done", "refused", "cancelled", "all"],
        },
    )


@login_required
@require_POST
@permission_required(PermissionName.VIEW_SCHEDULE, "view scheduled operations")
def schedule_cancel(request: HtmxHttpRequest, schedule_id: uuid.UUID) -> HttpResponse:
    try:
        s = schedules.cancel_schedule(
            schedule_id, actor=Actor.for_user(request.user), reason=request.POST.get("reason")
        )
    except OperationError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        if exc.code == ErrorCode.PERMISSION_DENIED:
            raise PermissionDenied(exc.message) from None
        messages.error(request, f"Not cancelled: {exc.message}")
        return redirect("console:schedule_list")
    messages.success(
        request,
        f"Cancelled: {schedules.operation_text(s)} of {schedules.tenants_of(s)} at "
        f"{s.at:%Y-%m-%d %H:%M} UTC will not run.",
    )
    return redirect("console:schedule_list")


# --- audit feed -----------------------------------------------------------------------------


def _audit_filters(request: HtmxHttpRequest) -> tuple[QuerySet[Event], dict[str, str], str]:
    """The filtered feed (unordered), the filters as given, and any complaint about them: a
    hand-edited URL is told what was wrong and shown the whole feed rather than a guess."""
    given = {key: request.GET.get(key, "") for key in AUDIT_FILTER_KEYS}
    given["hide_steps"] = "1" if given["hide_steps"] else ""
    problem = ""
    try:
        filters = AuditFilters.parse(**given)
    except OperationError as exc:
        problem = exc.message
        filters = AuditFilters()
    return audit_selectors.audit_feed(filters), given, problem


@login_required
@permission_required(PermissionName.VIEW_EVENT, "view the audit feed")
def audit_feed(request: HtmxHttpRequest) -> HttpResponse:
    qs, filters, problem = _audit_filters(request)
    fmt = request.GET.get("format", "")
    if fmt in ("jsonl", "csv"):
        return _download(qs, fmt)
    cursor = request.GET.get("cursor")
    page = keyset_page(qs, field="id", descending=True, cursor=cursor, limit=EVENTS_PER_PAGE)
    # One query for the slugs of the tenants on this page, however many events it shows.
    slugs = dict(
        Tenant.objects.filter(pk__in={e.tenant_id for e in page.items}).values_list("pk", "slug")
    )
    for event in page.items:
        event.tenant_slug = slugs.get(event.tenant_id, "")
    query = {k: v for k, v in filters.items() if v}
    context = {
        "page": page,
        "filters": filters,
        "problem": problem,
        "query": query,
        # Only the newest page follows the feed; an operator reading older pages keeps them.
        "live": not cursor,
        "poll_seconds": poll_seconds(),
        "poll_url": request.get_full_path(),
    }
    if request.htmx:
        return render(request, "audit/feed.html#feed", context)
    return render(request, "audit/feed.html", context)


CSV_COLUMNS = ["id", "type", "occurred_at", "tenant_id", "run_id", "actor", "data"]


def _download(qs: QuerySet[Event], fmt: str) -> StreamingHttpResponse:
    """Stream the filtered feed, newest first, without holding it all in memory."""
    rows = qs.order_by("-id").iterator(chunk_size=2000)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "jsonl":
        body: Iterator[str] = (
            json.dumps(e.as_dict(), cls=StampJSONEncoder, sort_keys=True) + "\n" for e in rows
        )
        response = StreamingHttpResponse(body, content_type="application/x-ndjson")
        name = f"audit-{stamp}.jsonl"
    else:
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
        name = f"audit-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[Event]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for e in rows:
        yield writer.writerow(
            [
                e.id,
                e.type,
                iso_text(e.occurred_at),
                e.tenant_id,
                e.run_id or "",
                e.actor,
                json.dumps(e.data, cls=StampJSONEncoder, sort_keys=True),
            ]
        )
