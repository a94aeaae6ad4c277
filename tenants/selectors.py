"""Reads that several doors need, each with a fixed number of queries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone

from provisioning.models import (
    Allocation,
    ResourceFinding,
    Run,
    RunStatus,
    StepExecution,
    StepStatus,
)

from .errors import OperationError
from .models import Tenant, TenantState
from .services import available_actions

S = TenantState


@dataclass
class Recommendation:
    action: str  # wait, cancel, reset, retry, decommission, none
    reason: str


@dataclass
class TenantDetail:
    tenant: Tenant
    run: Run | None
    steps: list[StepExecution]
    allocations: list[Allocation]
    available_actions: list[str]
    recommendation: Recommendation
    seconds_since_heartbeat: float | None
    heartbeat_timeout: float = field(
        default_factory=lambda: settings.CONTROLPLANE_HEARTBEAT_TIMEOUT
    )
    # Reconciliation's open findings for this tenant (leaked / missing resources).
    drift: list[ResourceFinding] = field(default_factory=list)

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
    try:
        tid = uuid.UUID(str(tenant_id))
    except ValueError:
        raise OperationError("not_found", f"No tenant has the id {tenant_id!r}.") from None
    tenant = Tenant.objects.filter(pk=tid).first()
    if tenant is None:
        raise OperationError("not_found", f"No tenant has the id {tenant_id}.")
    return tenant


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


def tenant_detail(tenant_id: uuid.UUID | str, *, now: datetime | None = None) -> TenantDetail:
    """Everything the detail page and ``GET /tenants/{id}`` show, in five queries."""
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
        drift=list(
            ResourceFinding.objects.filter(tenant_id=tenant.id, resolved_at__isnull=True)
        ),
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
