"""The JSON API (``/api/v1``): parse, call one service or selector, render.

No rule of the contract lives here. The operation routes (single and bulk) are built from the
table in ``tenants.operations``, whose ``perform`` / ``preview`` / ``bulk`` check the caller's
permission and the state; reads check the view permission, then ask the selectors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Status

from audit.selectors import AuditFilters
from tenants import approvals, bulk, operations, schedules, selectors
from tenants.models import NEEDS_ATTENTION, Condition, Plan, Tenant, TenantState
from tenants.operations import OPERATIONS, Operation
from tenants.permission_names import PermissionName
from tenants.serializers import detail_dict

from . import errors, queries
from .auth import SessionAuth, TokenAuth, caller, require_read
from .base import ApiJSONEncoder, ControlPlaneAPI, OptionalBody
from .docs import OfflineSwagger
from .idempotency import MAX_KEY_LENGTH, run_once
from .pagination import DEFAULT_LIMIT, MAX_LIMIT
from .schemas import (
    ActionIn,
    ApprovalIn,
    ApprovalList,
    ApprovalOut,
    BulkChangePlanIn,
    BulkIn,
    BulkOut,
    ChangePlanIn,
    ErrorOut,
    EventPage,
    PreviewOut,
    RetryIn,
    RunList,
    ScheduledOut,
    SchedulePage,
    TenantCreateIn,
    TenantDetailOut,
    TenantOut,
    TenantPage,
    Text,
)

api = ControlPlaneAPI(
    title="Tenant provisioning control plane",
    version="1",
    description=(
        "Create tenants and watch or steer their provisioning. Authenticate with "
        "`Authorization: Bearer <token>` (`manage.py create_api_token`) or a logged-in browser "
        "session (send the CSRF token in `X-CSRFToken` on POST). Every error answers "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    urls_namespace="api",
    auth=[TokenAuth(), SessionAuth()],
    docs=OfflineSwagger(),
)
errors.install(api)

E = ErrorOut
READ_ERRORS: dict[int, Any] = {401: E, 403: E, 422: E}
WRITE_ERRORS: dict[int, Any] = {
    400: E,
    401: E,
    403: E,
    404: E,
    409: E,
    413: E,
    415: E,
    422: E,
}

IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    max_length=MAX_KEY_LENGTH,
    description="Send the same key again with the same body within 24 hours to get the first "
    "answer without the operation running twice.",
)
Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"1 to {MAX_LIMIT}")
Cursor = Query(None, max_length=500, description="next_cursor of the previous page")
ApprovalStatusFilter = Query(None, description="waiting, approved, withdrawn, expired or refused")
ApprovalOperationFilter = Query(None, description="an operation's name, or bulk")
ApprovalTenantFilter = Query(None, description="a tenant's slug or id")
# The list filters are taken as text and checked by the one parser every door uses
# (``TenantFilters.parse``, ``AuditFilters.parse``): a bad state, a too-long ``q`` or an unknown
# tenant gets the same message here as in the console, the admin and the commands.
StateFilter = Query(None, description="one state or a comma list: " + ", ".join(TenantState.values))
PlanFilter = Query(None, description="one of " + ", ".join(Plan.values))
SlugFilter = Query(None, description="exact slug (at most 63 characters)")
TextFilter = Query(
    None, description="the phrase, in slug, name or admin e-mail (at most 200 characters)"
)
TypeFilter = Query(None, description="a whole type, or a dotted prefix: tenant.provisioning")
TenantFilter = Query(None, description="a tenant id or slug")
ActorFilter = Query(None, description="user:<name>, token:<name>, system, or a bare name")
HideStepsFilter = Query(
    None, description="true hides step-level chatter (step and resource events)"
)
ConditionFilter = Query(
    None, description="one condition or a comma list: " + ", ".join(Condition.values)
)
AttentionFilter = Query(
    None, description="true: only tenants needing an operator (" + ", ".join(NEEDS_ATTENTION) + ")"
)
SinceFilter = Query(None, description="ISO 8601 (UTC when no zone); events at or after")
ScheduleStatusFilter = Query(
    None, max_length=20, description="scheduled, done, refused or cancelled"
)
OperationFilter = Query(None, max_length=40, description="an operation's name")


def as_json(schema: type[Any], obj: Any) -> dict[str, Any]:
    """Render through the response schema and the renderer's encoder, so a stored answer
    (idempotency) is byte for byte the answer given the first time."""
    data = schema.from_orm(obj).model_dump()
    return json.loads(json.dumps(data, cls=ApiJSONEncoder))  # type: ignore[no-any-return]


def encoded(data: dict[str, Any], status: int = 200) -> HttpResponse:
    """An answer encoded as ninja's renderer encodes one, for a view that skips validation."""
    renderer = api.renderer
    return HttpResponse(
        json.dumps(data, cls=ApiJSONEncoder),
        status=status,
        content_type=f"{renderer.media_type}; charset={renderer.charset}",
    )


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return as_json(TenantOut, tenant)


def answer(
    request: HttpRequest,
    response: HttpResponse,
    *,
    key: str | None,
    body: Any,
    operation: Callable[[], tuple[int, dict[str, Any]]],
) -> Status[Any]:
    (status, data), replayed = run_once(request, key=key, body=body, operation=operation)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(status, data)


# --- tenants --------------------------------------------------------------------------------


@api.post(
    "/tenants",
    response={201: TenantOut, **WRITE_ERRORS},
    tags=["tenants"],
    summary="Create a tenant",
    operation_id="create_tenant",
)
def create_tenant(
    request: HttpRequest,
    response: HttpResponse,
    payload: TenantCreateIn,
    idempotency_key: str | None = IdempotencyKey,
) -> Status[Any]:
    fields = payload.model_dump(exclude_unset=True)

    def operation() -> tuple[int, dict[str, Any]]:
        tenant = operations.create_tenant(actor=caller(request).actor, **fields)
        return 201, tenant_json(tenant)

    return answer(request, response, key=idempotency_key, body=fields, operation=operation)


@api.get(
    "/tenants",
    response={200: TenantPage, **READ_ERRORS},
    tags=["tenants"],
    summary="List tenants, newest first",
    operation_id="list_tenants",
)
def list_tenants(
    request: HttpRequest,
    state: str | None = StateFilter,
    plan: str | None = PlanFilter,
    condition: str | None = ConditionFilter,
    needs_attention: str | None = AttentionFilter,
    slug: str | None = SlugFilter,
    q: str | None = TextFilter,
    limit: int = Limit,
    cursor: Text | None = Cursor,
) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_TENANT, "view tenants")
    filters = selectors.TenantFilters.parse(
        state=state,
        plan=plan,
        condition=condition,
        needs_attention=needs_attention,
        slug=slug,
        q=q,
    )
    rows, next_cursor = queries.tenants(filters, cursor=cursor, limit=limit)
    return {"items": rows, "next_cursor": next_cursor}


@api.get(
    "/tenants/{tenant_id}",
    response={200: TenantDetailOut, 404: E, **READ_ERRORS},
    tags=["tenants"],
    summary="A tenant with its run, allocations and what can be done",
    operation_id="get_tenant",
)
def get_tenant(request: HttpRequest, tenant_id: str) -> HttpResponse:
    require_read(request, PermissionName.VIEW_TENANT, "view tenants")
    detail = selectors.tenant_detail(tenant_id, user=caller(request).user)
    # The one detail shape (``tenant show --json`` gives the same keys), encoded as ninja would
    # after validating it against TenantDetailOut, without the validation: ninja was 17 % of
    # the fleet's most frequent read, validating and dumping this shape again included
    # (docs/performance.md). The schema still documents it, and
    # tests/api/test_detail_shape.py holds the two byte for byte equal.
    return encoded(detail_dict(detail))


@api.get(
    "/tenants/{tenant_id}/runs",
    response={200: RunList, 404: E, **READ_ERRORS},
    tags=["tenants"],
    summary="Every run of a tenant, newest first, with steps and what each allocated and released",
    operation_id="tenant_runs",
)
def tenant_runs(request: HttpRequest, tenant_id: str) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_TENANT, "view tenants")
    runs = selectors.tenant_runs(tenant_id)
    return {
        "items": [
            {
                **{
                    f: getattr(r.run, f)
                    for f in (
                        "id",
                        "attempt",
                        "kind",
                        "params",
                        "status",
                        "actor",
                        "started_at",
                        "finished_at",
                        "stalled_at",
                        "failed_step",
                        "error",
                    )
                },
                "steps": r.steps,
                "allocated": r.allocated,
                "released": r.released,
            }
            for r in runs
        ]
    }


def _operate(
    request: HttpRequest,
    response: HttpResponse,
    action: str,
    tenant_id: str,
    payload: ActionIn | None,
    key: str | None,
) -> Status[Any]:
    fields = payload.model_dump(exclude_unset=True) if payload is not None else {}
    dry_run = fields.pop("dry_run", False)
    # The row's own arguments (Operation.options: change_plan's plan) travel as ``options``.
    op = OPERATIONS[action]
    body = dict(fields)
    options = {name: fields.pop(name) for name in op.options if name in fields}
    at = fields.pop("at", None)

    def operation() -> tuple[int, dict[str, Any]]:
        actor = caller(request).actor
        if at is not None and not dry_run:
            scheduled = schedules.schedule_operation(
                action, tenant_id=tenant_id, actor=actor, at=at, options=options, **fields
            )
            return 202, {"schedule": schedules.schedule_json(scheduled)}
        if at is not None:
            schedules.parse_at(at)  # a preview of a schedule refuses a bad time too
        if dry_run:
            return 200, operations.preview(
                action, tenant_id=tenant_id, actor=actor, options=options, **fields
            ).as_dict()
        tenant = operations.perform(
            action, tenant_id=tenant_id, actor=actor, options=options, **fields
        )
        return 202, tenant_json(tenant)

    if dry_run:
        # A preview writes nothing, not even an idempotency record.
        status, data = run_once(request, key=None, body=body, operation=operation)[0]
        return Status(status, data)
    return answer(request, response, key=key, body=body, operation=operation)


ACTION_RESPONSES: dict[int, Any] = {
    200: PreviewOut,
    202: TenantOut | ScheduledOut,
    **WRITE_ERRORS,
}
BULK_RESPONSES: dict[int, Any] = {200: BulkOut, 202: ScheduledOut, **WRITE_ERRORS}


def _action_view(op: Operation) -> Callable[..., Status[Any]]:
    # Only an operation that takes faults (retry) has them in its body schema, and only one
    # with options (change_plan) has those. (Separate functions: ninja reads the annotations
    # by name, so the body type cannot be a local variable.)
    if op.options:

        def view(
            request: HttpRequest,
            response: HttpResponse,
            tenant_id: str,
            payload: ChangePlanIn = OptionalBody,
            idempotency_key: str | None = IdempotencyKey,
        ) -> Status[Any]:
            return _operate(request, response, op.name, tenant_id, payload, idempotency_key)

    elif op.takes_faults:

        def view(
            request: HttpRequest,
            response: HttpResponse,
            tenant_id: str,
            payload: RetryIn = OptionalBody,
            idempotency_key: str | None = IdempotencyKey,
        ) -> Status[Any]:
            return _operate(request, response, op.name, tenant_id, payload, idempotency_key)

    else:

        def view(
            request: HttpRequest,
            response: HttpResponse,
            tenant_id: str,
            payload: ActionIn = OptionalBody,
            idempotency_key: str | None = IdempotencyKey,
        ) -> Status[Any]:
            return _operate(request, response, op.name, tenant_id, payload, idempotency_key)

    view.__name__ = view.__qualname__ = op.name
    return view


def _bulk_view(op: Operation) -> Callable[..., Status[Any]]:
    def view(
        request: HttpRequest,
        response: HttpResponse,
        payload: BulkIn,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Status[Any]:
        return _bulk(request, response, op, payload, idempotency_key)

    def view_with_options(
        request: HttpRequest,
        response: HttpResponse,
        payload: BulkChangePlanIn,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Status[Any]:
        return _bulk(request, response, op, payload, idempotency_key)

    chosen = view_with_options if op.options else view
    chosen.__name__ = chosen.__qualname__ = f"bulk_{op.name}"
    return chosen


def _bulk(
    request: HttpRequest,
    response: HttpResponse,
    op: Operation,
    payload: BulkIn,
    idempotency_key: str | None,
) -> Status[Any]:
    fields = payload.model_dump(exclude_unset=True)
    if "filter" in fields and fields["filter"] is not None:
        fields["filter"] = {k: v for k, v in fields["filter"].items() if v is not None}

    def operation() -> tuple[int, dict[str, Any]]:
        at = fields.get("at")
        if at is not None and not fields.get("dry_run", False):
            scheduled = schedules.schedule_bulk(
                op.name,
                actor=caller(request).actor,
                at=at,
                ids=fields.get("ids"),
                filters=fields.get("filter"),
                reason=fields.get("reason"),
                limit=fields.get("limit"),
                options={name: fields[name] for name in op.options if name in fields},
            )
            return 202, {"schedule": schedules.schedule_json(scheduled)}
        if at is not None:
            schedules.parse_at(at)  # a preview of a schedule refuses a bad time too
        result = bulk.bulk(
            op.name,
            actor=caller(request).actor,
            ids=fields.get("ids"),
            filters=fields.get("filter"),
            dry_run=fields.get("dry_run", False),
            reason=fields.get("reason"),
            limit=fields.get("limit"),
            options={name: fields[name] for name in op.options if name in fields},
        )
        return 200, result.as_dict()

    return answer(request, response, key=idempotency_key, body=fields, operation=operation)


# The bulk routes come first: /tenants/bulk/cancel must not be read as a tenant called "bulk".
for _op in OPERATIONS.values():
    api.post(
        f"/tenants/bulk/{_op.name}",
        response=BULK_RESPONSES,
        tags=["bulk"],
        summary=f"Bulk: {_op.summary}",
        operation_id=f"bulk_{_op.service.__name__}",
    )(_bulk_view(_op))

# One endpoint per operation, each with its own path and operation id in the OpenAPI document.
for _op in OPERATIONS.values():
    api.post(
        f"/tenants/{{tenant_id}}/{_op.name}",
        response=ACTION_RESPONSES,
        tags=["operations"],
        summary=_op.summary,
        operation_id=_op.service.__name__,
    )(_action_view(_op))


# --- the approval policy -------------------------------------------------------------------


@api.get(
    "/approvals",
    response={200: ApprovalList, **READ_ERRORS},
    tags=["approvals"],
    summary="Operations waiting for a second person's approval (first), then decided ones",
    operation_id="list_approvals",
)
def list_approvals(
    request: HttpRequest,
    status: Text | None = ApprovalStatusFilter,
    operation: Text | None = ApprovalOperationFilter,
    tenant: Text | None = ApprovalTenantFilter,
    limit: int = Limit,
) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_TENANT, "view tenants")
    rows = approvals.approval_list(status=status, operation=operation, tenant=tenant)[:limit]
    return {"items": [approvals.as_dict(r) for r in rows]}


def _decision_view(decision: approvals.Decision) -> Callable[..., Status[Any]]:
    def view(
        request: HttpRequest,
        response: HttpResponse,
        approval_id: str,
        payload: ApprovalIn = OptionalBody,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Status[Any]:
        fields = payload.model_dump(exclude_unset=True) if payload is not None else {}

        def operation() -> tuple[int, dict[str, Any]]:
            done = approvals.decide(
                decision.name, approval_id, actor=caller(request).actor, **fields
            )
            return 200, as_json(ApprovalOut, approvals.as_dict(done))

        return answer(request, response, key=idempotency_key, body=fields, operation=operation)

    view.__name__ = view.__qualname__ = f"{decision.name}_approval"
    return view


def _alias_view(op: Operation, decision: approvals.Decision) -> Callable[..., Status[Any]]:
    # The older per-tenant door of a row that keeps one (decommission's four eyes): the same
    # decision on the tenant's waiting request of that operation.
    def view(
        request: HttpRequest,
        response: HttpResponse,
        tenant_id: str,
        payload: ApprovalIn = OptionalBody,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Status[Any]:
        fields = payload.model_dump(exclude_unset=True) if payload is not None else {}

        def operation() -> tuple[int, dict[str, Any]]:
            actor = caller(request).actor
            actor.require(op.permission, f"{decision.name} a {op.verb}")
            waiting = approvals.waiting_for(tenant_id, op.name)
            approvals.decide(decision.name, waiting.pk, actor=actor, **fields)
            return 202, tenant_json(selectors.get_tenant(tenant_id))

        return answer(request, response, key=idempotency_key, body=fields, operation=operation)

    view.__name__ = view.__qualname__ = f"{decision.name}_{op.name}"
    return view


for _decision in approvals.DECISIONS.values():
    api.post(
        f"/approvals/{{approval_id}}/{_decision.name}",
        response={200: ApprovalOut, **WRITE_ERRORS},
        tags=["approvals"],
        summary=_decision.summary,
        operation_id=f"{_decision.name}_approval",
    )(_decision_view(_decision))
    for _op in OPERATIONS.values():
        if _op.approval_aliases:
            api.post(
                f"/tenants/{{tenant_id}}/{_op.name}/{_decision.name}",
                response={202: TenantOut, **WRITE_ERRORS},
                tags=["operations"],
                summary=f"{_decision.summary} — the {_op.verb} waiting for this tenant",
                operation_id=f"{_decision.name}_{_op.name}",
            )(_alias_view(_op, _decision))


# --- scheduled operations -------------------------------------------------------------------


@api.get(
    "/schedules",
    response={200: SchedulePage, **READ_ERRORS},
    tags=["schedules"],
    summary="Scheduled operations, soonest first",
    operation_id="list_schedules",
)
def list_schedules(
    request: HttpRequest,
    status: Text | None = ScheduleStatusFilter,
    operation: Text | None = OperationFilter,
    tenant: Text | None = TenantFilter,
    limit: int = Limit,
    cursor: Text | None = Cursor,
) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_SCHEDULE, "view scheduled operations")
    filters = schedules.ScheduleFilters.parse(status=status, operation=operation, tenant=tenant)
    rows, next_cursor = queries.schedules(filters, cursor=cursor, limit=limit)
    return {"items": [schedules.schedule_json(s) for s in rows], "next_cursor": next_cursor}


@api.get(
    "/schedules/{schedule_id}",
    response={200: ScheduledOut, 404: E, **READ_ERRORS},
    tags=["schedules"],
    summary="One scheduled operation",
    operation_id="get_schedule",
)
def get_schedule(request: HttpRequest, schedule_id: str) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_SCHEDULE, "view scheduled operations")
    return {"schedule": schedules.schedule_json(schedules.get_schedule(schedule_id))}


@api.delete(
    "/schedules/{schedule_id}",
    response={200: ScheduledOut, **WRITE_ERRORS},
    tags=["schedules"],
    summary="Cancel a scheduled operation before it runs (409 once it ran)",
    operation_id="cancel_schedule",
)
def cancel_schedule(request: HttpRequest, schedule_id: str) -> dict[str, Any]:
    # Who may not see schedules learns nothing of one (not even that it exists).
    require_read(request, PermissionName.VIEW_SCHEDULE, "view scheduled operations")
    s = schedules.cancel_schedule(schedule_id, actor=caller(request).actor)
    return {"schedule": schedules.schedule_json(s)}


# --- audit ----------------------------------------------------------------------------------


@api.get(
    "/tenants/{tenant_id}/events",
    response={200: EventPage, 404: E, **READ_ERRORS},
    tags=["audit"],
    summary="A tenant's audit events, oldest first",
    operation_id="tenant_events",
)
def tenant_events(
    request: HttpRequest, tenant_id: str, limit: int = Limit, cursor: Text | None = Cursor
) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_TENANT, "view tenants")
    require_read(request, PermissionName.VIEW_EVENT, "view audit events")
    tenant = selectors.get_tenant(tenant_id)
    rows, next_cursor = queries.tenant_events(tenant.id, cursor=cursor, limit=limit)
    return {"items": [e.as_dict() for e in rows], "next_cursor": next_cursor}


@api.get(
    "/audit",
    response={200: EventPage, **READ_ERRORS},
    tags=["audit"],
    summary="The whole audit feed, newest first",
    operation_id="audit_feed",
)
def audit_feed(
    request: HttpRequest,
    type: str | None = TypeFilter,
    tenant: str | None = TenantFilter,
    actor: str | None = ActorFilter,
    hide_steps: str | None = HideStepsFilter,
    since: str | None = SinceFilter,
    limit: int = Limit,
    cursor: Text | None = Cursor,
) -> dict[str, Any]:
    require_read(request, PermissionName.VIEW_EVENT, "view audit events")
    filters = AuditFilters.parse(
        type=type, tenant=tenant, actor=actor, since=since, hide_steps=hide_steps
    )
    rows, next_cursor = queries.audit_feed(filters, cursor=cursor, limit=limit)
    return {"items": [e.as_dict() for e in rows], "next_cursor": next_cursor}
