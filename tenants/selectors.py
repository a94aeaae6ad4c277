"""Reads that several doors need, each with a fixed number of queries."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from provisioning.models import Allocation, Run, RunStatus, StepExecution, StepStatus

from .errors import OperationError
from .models import Tenant, TenantState
from .operations import OPERATIONS, permission_reason, permitted_names
from .services import load_tenant

S = TenantState


@dataclass
class Recommendation:
    action: str  # wait, cancel, reset, retry, decommission, none
    reason: str


@dataclass(frozen=True)
class ActionState:
    """One operation as the asking user sees it (the contract's ``actions`` item)."""

    name: str
    label: str
    available: bool  # what the state and the recorded error allow, whoever asks
    permitted: bool  # whether the asking user (or token) may do it
    reason: str  # why not, when either is false; "" when both are true

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "available": self.available,
            "permitted": self.permitted,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DecommissionRequest:
    """Four eyes: a decommission waiting for a second admin."""

    asked_by: str
    asked_at: datetime | None
    approvers: list[str]  # who may approve: admins other than the one who asked


def action_states(tenant: Tenant, run: Run | None, user: Any = None) -> list[ActionState]:
    """Every operation in the table's order, with whether it is available and permitted.

    ``run`` is the run the tenant's handle names (or None); ``user`` None means a trusted
    caller (the shell). Permissions are read once for all six.
    """
    allowed = permitted_names(user)
    states = []
    for op in OPERATIONS.values():
        why = op.guard(tenant, run)
        permitted = op.name in allowed
        reasons = [why] if why else []
        if not permitted:
            reasons.append(permission_reason(op))
        states.append(
            ActionState(
                name=op.name,
                label=op.label,
                available=why is None,
                permitted=permitted,
                reason=" ".join(reasons),
            )
        )
    return states


def available_actions(tenant: Tenant, run: Run | None) -> list[str]:
    """What the state and recorded error allow, whoever asks (in the table's order)."""
    return [op.name for op in OPERATIONS.values() if op.guard(tenant, run) is None]


def decommission_request(tenant: Tenant) -> DecommissionRequest | None:
    """The waiting four-eyes request and who may approve it (one query), or None."""
    if not tenant.decommission_asked_by or tenant.decommission_requested_at:
        return None
    app_label, codename = OPERATIONS["decommission"].permission.split(".")
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    approvers = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm)
        )
        .exclude(username=tenant.decommission_asked_by)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )
    return DecommissionRequest(
        asked_by=tenant.decommission_asked_by,
        asked_at=tenant.decommission_asked_at,
        approvers=list(approvers),
    )


@dataclass
class TenantDetail:
    tenant: Tenant
    run: Run | None
    steps: list[StepExecution]
    allocations: list[Allocation]
    available_actions: list[str]
    recommendation: Recommendation
    seconds_since_heartbeat: float | None
    actions: list[ActionState] = field(default_factory=list)
    decommission_request: DecommissionRequest | None = None
    heartbeat_timeout: float = field(
        default_factory=lambda: settings.CONTROLPLANE_HEARTBEAT_TIMEOUT
    )

    @property
    def decommissioning(self) -> bool:
        return bool(self.tenant.decommission_requested_at) and (
            self.tenant.state != S.DECOMMISSIONED
        )

    @property
    def settled(self) -> bool:
        """Nothing is moving: no live run and no decommission under way."""
        if self.decommissioning and not self.tenant.last_error:
            return False
        return not (
            self.run is not None
            and self.run.status in (RunStatus.RUNNING, RunStatus.CANCELLING)
            and self.tenant.state == S.PROVISIONING
            and not self.run.stalled_at
        )


def get_tenant(tenant_id: uuid.UUID | str) -> Tenant:
    return load_tenant(tenant_id)


def find_tenant(ref: str) -> Tenant:
    """A tenant named by id or by slug (the live one, else the newest decommissioned)."""
    try:
        return get_tenant(uuid.UUID(ref))
    except (ValueError, OperationError):
        pass
    tenant = (
        Tenant.objects.filter(slug=ref).exclude(state=S.DECOMMISSIONED).first()
        or Tenant.objects.filter(slug=ref).order_by("-created_at").first()
    )
    if tenant is None:
        raise OperationError("not_found", f"No tenant has the slug or id {ref!r}.")
    return tenant


def tenant_detail(
    tenant_id: uuid.UUID | str, *, user: Any = None, now: datetime | None = None
) -> TenantDetail:
    """Everything the detail page and ``GET /tenants/{id}`` show, in four queries.

    With ``user``, each action says whether that user may do it (their permissions read once);
    without, the caller is trusted (the shell). A waiting four-eyes request adds one query.
    """
    now = now or timezone.now()
    tenant = get_tenant(tenant_id)
    run = None
    steps: list[StepExecution] = []
    if tenant.workflow_id is not None:
        run = Run.objects.filter(pk=tenant.workflow_id).first()
    else:
        run = Run.objects.filter(tenant=tenant).order_by("-attempt").first()
    if run is not None:
        steps = list(StepExecution.objects.filter(run=run).order_by("position"))
    allocations = list(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).order_by(
            "allocated_at", "id"
        )
    )
    handle_run = run if run is not None and tenant.workflow_id == run.id else None
    seconds = None
    if run is not None and run.status in (RunStatus.RUNNING, RunStatus.CANCELLING):
        current = next((s for s in steps if s.status == StepStatus.RUNNING), None)
        beat = (current.heartbeat_at if current else None) or run.heartbeat_at
        if beat:
            seconds = max(0.0, (now - beat).total_seconds())
    return TenantDetail(
        tenant=tenant,
        run=run,
        steps=steps,
        allocations=allocations,
        available_actions=available_actions(tenant, handle_run),
        recommendation=recommend(tenant, handle_run, seconds),
        seconds_since_heartbeat=seconds,
        actions=action_states(tenant, handle_run, user),
        decommission_request=decommission_request(tenant),
    )


def recommend(
    tenant: Tenant, run: Run | None, seconds_since_heartbeat: float | None
) -> Recommendation:
    """The decision table of the reset runbook, read off the live situation."""
    timeout = settings.CONTROLPLANE_HEARTBEAT_TIMEOUT
    if tenant.state == S.DECOMMISSIONED:
        return Recommendation("none", "The tenant is decommissioned; its slug is free again.")
    if tenant.decommission_requested_at:
        if tenant.last_error:
            return Recommendation(
                "decommission",
                "Decommission could not release everything; "
                "ask for it again once the cause is fixed.",
            )
        return Recommendation("wait", "Decommission is releasing the tenant's resources.")
    if tenant.state == S.PROVISIONING:
        if tenant.last_error:
            return Recommendation(
                "reset",
                "The run is wedged (a recorded error with the tenant still provisioning): "
                "reset clears it, then retry.",
            )
        if run is None:
            return Recommendation("wait", "The watchdog is checking the workflow handle.")
        if run.status == RunStatus.CANCELLING:
            return Recommendation("wait", "Cancellation is rolling back what was allocated.")
        if run.compensating:
            return Recommendation("wait", f"{run.failed_step} failed; the run is rolling back.")
        if seconds_since_heartbeat is not None and seconds_since_heartbeat > timeout:
            return Recommendation(
                "wait",
                f"No heartbeat for {seconds_since_heartbeat:.0f}s (timeout {timeout:g}s); the "
                "watchdog will dispatch the step again or flag the run as stalled.",
            )
        elapsed = (timezone.now() - run.started_at).total_seconds()
        if elapsed > settings.CONTROLPLANE_STEP_TIMEOUT:
            return Recommendation(
                "cancel",
                f"The run has been going for {elapsed / 60:.0f} minutes while heartbeating; if "
                "you no longer want it, cancel.",
            )
        return Recommendation("wait", f"The saga is making progress ({run.current_step}).")
    if tenant.state == S.PENDING:
        if tenant.last_error:
            return Recommendation("reset", "A recorded error blocks retry: reset, then retry.")
        return Recommendation("retry", "Nothing is running; retry starts provisioning.")
    if tenant.state == S.FAILED:
        failures = tenant.runs.filter(
            status=RunStatus.FAILED, failed_step=tenant.failed_activity
        ).count()
        if failures >= 3:
            return Recommendation(
                "decommission",
                f"{tenant.failed_activity} has failed in {failures} attempts; if you have given "
                "up, decommission.",
            )
        return Recommendation(
            "retry",
            f"{tenant.failed_activity or 'A step'} failed cleanly and "
            "everything was rolled back: retry.",
        )
    return Recommendation("none", "Nothing needs doing.")


def state_counts() -> dict[str, int]:
    rows = Tenant.objects.values("state").annotate(n=Count("id")).order_by()
    counts = {state: 0 for state in S.values}
    counts.update({row["state"]: row["n"] for row in rows})
    return counts


def tenant_events(tenant_id: uuid.UUID) -> QuerySet[Any]:
    from audit.models import Event

    return Event.objects.filter(tenant_id=tenant_id)


def tenant_queryset(filters: dict[str, Any] | None = None) -> QuerySet[Tenant]:
    """Tenants matching ``filters`` (state, plan, q, condition, needs_attention), newest first.

    TODO(merge): the fleet branch adds the one tenant-list selector (conditions, search, keyset
    page); this minimal one is what the bulk service calls, so connect that selector here. Until
    then ``condition`` / ``needs_attention`` filter on a ``condition`` field only if the model
    has one.
    """
    filters = filters or {}
    qs = Tenant.objects.order_by("-created_at", "-id")
    if filters.get("state"):
        qs = qs.filter(state=filters["state"])
    if filters.get("plan"):
        qs = qs.filter(plan=filters["plan"])
    q = (filters.get("q") or "").strip()
    if q:
        match = Q(slug__icontains=q) | Q(name__icontains=q) | Q(admin_email__icontains=q)
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(q))
        qs = qs.filter(match)
    has_condition = any(f.name == "condition" for f in Tenant._meta.get_fields())
    if has_condition and filters.get("condition"):
        qs = qs.filter(condition__in=str(filters["condition"]).split(","))
    if has_condition and filters.get("needs_attention"):
        qs = qs.filter(condition__in=["stalled", "orphaned", "release_failed", "failed"])
    return qs
