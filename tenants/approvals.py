"""The approval policy's second half: deciding a waiting request, and its expiry.

``tenants.operations`` opens a request when ``CONTROLPLANE_APPROVAL_REQUIRED`` names the
operation (``tenants.bulk`` when it names ``bulk``). Here a different person with the same
permission approves it (the operation then runs as its author, with the author's permissions
and the tenant's state *then*: a refusal is recorded as ``refused``, never raised), or anyone
with that permission withdraws it, or the periodic pass expires it. Nothing here knows any
operation by name: a row of the table is all it needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, QuerySet, Value, When
from django.utils import timezone

from audit.services import SYSTEM, record_event

from . import services
from .bulk import bulk
from .errors import OperationError
from .models import ApprovalRequest, ApprovalStatus, Tenant
from .operations import (
    BULK,
    OPERATIONS,
    Operation,
    approval_data,
    get_operation,
    own_request_reason,
    perform,
    success_message,
)
from .selectors import find_tenant
from .services import Actor

A = ApprovalStatus


@dataclass(frozen=True)
class Decision:
    """What a person may do with a waiting request: one row each, every door iterates them."""

    name: str
    label: str  # the button's label
    summary: str  # one line for the API document and the command's help
    done: str  # what the doors say; {operation}, {target}, {outcome}


DECISIONS: dict[str, Decision] = {
    d.name: d
    for d in (
        Decision(
            name="approve",
            label="Approve",
            summary="Approve a waiting operation another person asked for (it runs as its author)",
            done="{operation} of {target} approved: {outcome}",
        ),
        Decision(
            name="withdraw",
            label="Withdraw",
            summary="Withdraw a waiting operation (nothing of it is done)",
            done="{operation} of {target} withdrawn; nothing was done.",
        ),
    )
}


def get_decision(name: str) -> Decision:
    try:
        return DECISIONS[name]
    except KeyError:
        raise OperationError(
            "not_found", f"No decision is called {name!r}; use one of {', '.join(DECISIONS)}."
        ) from None


def operation_of(request: ApprovalRequest) -> Operation:
    return get_operation(request.operation)


def decided_message(request: ApprovalRequest) -> str:
    """What the doors say once a request was decided (approved, refused, withdrawn, expired)."""
    op = operation_of(request)
    target = request.target
    if request.status == A.WITHDRAWN:
        return DECISIONS["withdraw"].done.format(operation=op.label, target=target, outcome="")
    if request.status in (A.APPROVED, A.REFUSED):
        return DECISIONS["approve"].done.format(
            operation=op.label, target=target, outcome=request.outcome
        )
    return f"{op.label} of {target}: {request.outcome}"


# --- reading --------------------------------------------------------------------------------


def _bad(field_name: str, message: str) -> OperationError:
    return OperationError("validation_error", message, {field_name: [message]})


def approval_list(
    *, status: str | None = None, operation: str | None = None, tenant: str | None = None
) -> QuerySet[ApprovalRequest]:
    """Requests newest first, waiting ones first of all; filtered, each filter checked."""
    rows = ApprovalRequest.objects.select_related("tenant")
    if status:
        if status not in A.values:
            raise _bad("status", f"status must be one of {', '.join(A.values)}.")
        rows = rows.filter(status=status)
    if operation:
        # A typo is an error, not "nothing waits"; ``bulk`` is every bulk request.
        if operation == BULK:
            rows = rows.filter(tenant__isnull=True)
        elif operation in OPERATIONS:
            rows = rows.filter(operation=operation)
        else:
            raise _bad("operation", f"operation must be one of {', '.join([*OPERATIONS, BULK])}.")
    if tenant:
        try:
            found = find_tenant(tenant)
        except OperationError:
            raise _bad("tenant", f"No tenant has the slug or id {tenant!r}.") from None
        rows = rows.filter(tenant_id=found.pk)
    # Waiting first: it is what the page is for.
    waiting_first = Case(When(status=A.WAITING, then=Value(0)), default=Value(1))
    return rows.order_by(waiting_first, "-requested_at", "-id")


def get_request(approval_id: Any, *, lock: bool = False) -> ApprovalRequest:
    try:
        pk = uuid.UUID(str(approval_id))
    except ValueError:
        raise OperationError(
            "not_found", f"No approval request has the id {approval_id!r}."
        ) from None
    rows = ApprovalRequest.objects.select_for_update() if lock else ApprovalRequest.objects
    found = rows.filter(pk=pk).first()
    if found is None:
        raise OperationError("not_found", f"No approval request has the id {approval_id}.")
    return found


def waiting_for(tenant_id: Any, operation: str) -> ApprovalRequest:
    """The request of ``operation`` waiting for this tenant (the older per-tenant doors)."""
    found = (
        ApprovalRequest.objects.filter(
            tenant_id=services.load_tenant(tenant_id).pk, operation=operation, status=A.WAITING
        )
        .only("id")
        .first()
    )
    if found is None:
        raise OperationError(
            "invalid_state",
            f"No {get_operation(operation).verb} of this tenant waits for approval.",
        )
    return found


def as_dict(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": str(request.id),
        "operation": request.operation,
        "bulk": request.is_bulk,
        "tenant_id": str(request.tenant_id) if request.tenant_id else None,
        "tenant_slug": request.tenant.slug if request.tenant_id else None,
        "selection": request.selection,
        "reason": request.reason,
        "options": request.options,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "expires_at": request.expires_at,
        "status": request.status,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "outcome": request.outcome,
    }


# --- deciding -------------------------------------------------------------------------------


def decide(name: str, approval_id: Any, *, actor: Actor, reason: Any = None) -> ApprovalRequest:
    """The one way every door decides: ``approve`` or ``withdraw`` (see ``DECISIONS``)."""
    get_decision(name)
    if name == "approve":
        return approve(approval_id, actor=actor, reason=reason)
    return withdraw(approval_id, actor=actor, reason=reason)


def approve(approval_id: Any, *, actor: Actor, reason: Any = None) -> ApprovalRequest:
    """A second person approves a waiting request; the operation then runs as its author.

    Steps, under the request's lock: it must be waiting and not past its time; the approver
    needs the operation's permission and must not be its author; the grant is recorded and the
    tenant's waiting mark cleared; then the operation (or the bulk) runs as its author with the
    checks of this moment. A refusal then is recorded (``refused``), not raised.
    """
    reason = services.clean_reason(reason)
    with transaction.atomic():
        request = get_request(approval_id, lock=True)
        op = operation_of(request)
        actor.require(op.permission, f"approve a {op.verb}")
        _require_waiting(request)
        if request.expires_at <= timezone.now():
            _settle(request, A.EXPIRED, by=None, outcome="it expired before it was approved.")
            return request
        if actor.person == request.requested_by:
            raise OperationError("approver_is_author", own_request_reason(op, request.requested_by))
        _settle(request, A.APPROVED, by=actor, outcome="", reason=reason)
        status, outcome = _run_as_author(request, op)
        request.status, request.outcome = status, outcome
        request.save(update_fields=["status", "outcome"])
        if status == A.REFUSED:
            record_event(
                type="operation.approval_refused",
                tenant_id=request.tenant_id,
                actor=request.requested_actor,
                data={**approval_data(request), "error": outcome},
            )
    return request


def withdraw(approval_id: Any, *, actor: Actor, reason: Any = None) -> ApprovalRequest:
    """Its author, or anyone with the operation's permission, drops a waiting request."""
    reason = services.clean_reason(reason)
    with transaction.atomic():
        request = get_request(approval_id, lock=True)
        op = operation_of(request)
        actor.require(op.permission, f"withdraw a {op.verb}")
        _require_waiting(request)
        _settle(request, A.WITHDRAWN, by=actor, outcome="nothing was done.", reason=reason)
    return request


def expire_approvals(now: datetime | None = None) -> int:
    """The periodic pass: every waiting request past its time becomes ``expired`` (once each,
    however many passes run at once: a request is claimed under its lock, skipping locked)."""
    now = now or timezone.now()
    due = list(
        ApprovalRequest.objects.filter(status=A.WAITING, expires_at__lte=now).values_list(
            "id", flat=True
        )[:500]
    )
    expired = 0
    for pk in due:
        with transaction.atomic():
            request = (
                ApprovalRequest.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=A.WAITING)
                .first()
            )
            if request is None:
                continue
            _settle(request, A.EXPIRED, by=None, outcome="it expired: no one approved it in time.")
            expired += 1
    return expired


def _require_waiting(request: ApprovalRequest) -> None:
    if request.status != A.WAITING:
        raise OperationError(
            "invalid_state",
            f"This request is {request.status}; only a waiting request can be decided.",
            {"status": request.status},
        )


PHASE_EVENTS = {
    A.APPROVED: ("operation.approval_granted", "granted"),
    A.WITHDRAWN: ("operation.approval_withdrawn", "withdrawn"),
    A.EXPIRED: ("operation.approval_expired", "expired"),
}


def _settle(
    request: ApprovalRequest, status: str, *, by: Actor | None, outcome: str, reason: str = ""
) -> None:
    """Close the request (it is locked): its status, the tenant's waiting mark (under the
    tenant's lock, which keeps ``awaiting_approval`` exact), and its events."""
    op = operation_of(request)
    request.status = status
    request.decided_by = by.person if by is not None else ""
    request.decided_at = timezone.now()
    request.outcome = outcome
    request.save(update_fields=["status", "decided_by", "decided_at", "outcome"])
    label = by.label if by is not None else SYSTEM
    if request.tenant_id is not None:
        tenant = services.load_tenant(request.tenant_id, lock=True)
        tenant.awaiting_approval = " ".join(
            name for name in tenant.waiting_operations if name != request.operation
        )
        tenant.save(update_fields=["awaiting_approval", "updated_at"])
        request.tenant = tenant
    event, phase = PHASE_EVENTS[status]
    data = approval_data(request)
    if reason:
        data["decision_reason"] = reason
    record_event(type=event, tenant_id=request.tenant_id, actor=label, data=data)
    if request.tenant_id is not None and (alias := op.alias(phase)):
        alias_data: dict[str, Any] = {"requested_by": request.requested_by}
        if reason:
            alias_data["reason"] = reason
        record_event(type=alias, tenant_id=request.tenant_id, actor=label, data=alias_data)


def author_of(request: ApprovalRequest) -> Actor:
    """Who the operation runs as: its author, with the author's permissions *now*."""
    if request.trusted:
        return Actor(label=request.requested_actor)
    user = request.requested_user
    if user is None:
        raise OperationError(
            "permission_denied", f"{request.requested_by}'s account no longer exists."
        )
    return Actor(label=request.requested_actor, user=get_user_model().objects.get(pk=user.pk))


def _run_as_author(request: ApprovalRequest, op: Operation) -> tuple[str, str]:
    try:
        # A savepoint: a refusal rolls back what the operation began, not the decision.
        with transaction.atomic():
            author = author_of(request)
            if request.is_bulk:
                selection = request.selection
                result = bulk(
                    op.name,
                    actor=author,
                    ids=selection.get("ids"),
                    filters=selection.get("filter"),
                    reason=request.reason,
                    limit=selection.get("limit"),
                    approved=True,
                )
                return A.APPROVED, result.tally()
            tenant: Tenant = perform(
                op.name,
                tenant_id=request.tenant_id,
                actor=author,
                reason=request.reason,
                approved=True,
                **request.options,
            )
            return A.APPROVED, success_message(op, tenant)
    except OperationError as exc:
        return A.REFUSED, f"refused: {exc.message}"
