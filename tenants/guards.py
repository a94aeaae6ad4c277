"""What an operation's guard reads: one guard per operation of the table (``None`` when the
state and the recorded error allow it, else the sentence an operator reads), the tenant and its
handle run as the guards see them, and the refusal the operations raise from a guard.

Split from ``tenants.services`` by concept; the services and the table import these.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from provisioning import runs
from provisioning.models import Run, RunStatus

from .errors import ErrorCode, OperationError
from .models import Plan, Tenant, TenantState, lock_tenant

S = TenantState


# --- reading the situation ------------------------------------------------------------------
#
# One guard per operation: ``None`` when the state and the recorded error allow it, else the
# sentence an operator reads. The state part of each is the operation's django-fsm transition
# (its ``source``), worded by ``wrong_state``; the rest is what the state machine cannot see
# (a recorded error, a live run, a decommission under way). ``tenants.operations`` names them
# in its table; the operations below refuse with the same guard, so a button shown is an
# operation that will be accepted.


def fsm_sources(transition: str) -> tuple[str, ...]:
    """The states ``Tenant.<transition>`` may leave (its django-fsm ``source``), in order."""
    return tuple(str(state) for state in getattr(Tenant, transition)._django_fsm.transitions)


def wrong_state(tenant: Tenant, *, transition: str, operation: str) -> str | None:
    """The state part of every guard: ``None`` when the tenant's state is a source of the
    operation's django-fsm transition, else the one sentence every door says."""
    sources = fsm_sources(transition)
    if tenant.state in sources:
        return None
    allowed = " or ".join([", ".join(sources[:-1]), sources[-1]] if len(sources) > 1 else sources)
    return (
        f"{operation.replace('_', ' ').capitalize()} applies to {allowed} tenants only; "
        f"this one is {tenant.state}."
    )


def why_not_cancel(tenant: Tenant, run: Run | None) -> str | None:
    if why := wrong_state(tenant, transition="request_cancel", operation="cancel"):
        return why
    if run is None or run.status not in (RunStatus.RUNNING, RunStatus.CANCELLING):
        if tenant.state == S.UPDATING:
            return "There is no live plan change to cancel."
        return "There is no live run to cancel; reset the tenant instead."
    if run.status == RunStatus.CANCELLING:
        if tenant.state == S.UPDATING:
            return "This plan change is already being cancelled."
        return "This provisioning is already being cancelled."
    if run.compensating:
        return "This run failed and is already rolling back."
    return None


def why_not_reset(tenant: Tenant, run: Run | None) -> str | None:
    if tenant.decommission_requested_at:
        return "The tenant is being decommissioned."
    if why := wrong_state(tenant, transition="reset", operation="reset"):
        return why
    paused = run is not None and run.status == RunStatus.RUNNING and run.paused_at is not None
    if not tenant.last_error and not paused:
        return (
            "Reset is for a provisioning with a recorded error (or a paused run); this one has "
            "none. Wait, cancel or retry instead."
        )
    return None


def why_not_retry(tenant: Tenant, run: Run | None) -> str | None:
    if tenant.decommission_requested_at:
        return "The tenant is being decommissioned."
    if why := wrong_state(tenant, transition="retry", operation="retry"):
        return why
    if tenant.state == S.FAILED:
        return None
    if tenant.last_error:
        return "This tenant has a recorded error; reset it first, then retry."
    if run is not None and run.status in runs.LIVE:
        return "A run is still live for this tenant; reset it first."
    return None


def why_not_suspend(tenant: Tenant, run: Run | None) -> str | None:
    if tenant.decommission_requested_at:
        return "The tenant is being decommissioned."
    return wrong_state(tenant, transition="suspend", operation="suspend")


def why_not_resume(tenant: Tenant, run: Run | None) -> str | None:
    if tenant.decommission_requested_at:
        return "The tenant is being decommissioned."
    return wrong_state(tenant, transition="resume", operation="resume")


def why_not_change_plan(tenant: Tenant, run: Run | None) -> str | None:
    if tenant.decommission_requested_at:
        return "The tenant is being decommissioned."
    # Updating is refused here too: a plan change is already under way (cancel it, or wait).
    return wrong_state(tenant, transition="start_change", operation="change_plan")


def clean_plan(plan: Any, tenant: Tenant | None = None) -> str:
    """The plan a change asks for: one of the plans (else ``validation_error``), and not the
    tenant's own (else ``invalid_state``, with the reason)."""
    if not isinstance(plan, str) or plan not in Plan.values:
        shown = "nothing" if plan in (None, "") else repr(plan)
        problem = f"Choose a plan: one of {', '.join(Plan.values)} (got {shown})."
        raise OperationError(ErrorCode.VALIDATION_ERROR, problem, {"plan": [problem]})
    if tenant is not None and plan == tenant.plan:
        raise OperationError(
            ErrorCode.INVALID_STATE,
            f"This tenant is already on the {plan} plan; choose another plan.",
            {"state": tenant.state, "plan": plan},
        )
    return plan


def _why_not_live(tenant: Tenant, run: Run | None, what: str) -> str | None:
    # The state part from the django-fsm transition (its sources: LIVE_RUN_STATES).
    if why := wrong_state(tenant, transition=what.lower(), operation=what.lower()):
        return why
    if run is None or run.status != RunStatus.RUNNING:
        return f"There is no running run to {what.lower()}."
    if run.compensating:
        return "This run failed and is rolling back."
    if tenant.last_error:
        return "This run has a recorded error; reset it instead."
    return None


def why_not_pause(tenant: Tenant, run: Run | None) -> str | None:
    why = _why_not_live(tenant, run, "Pause")
    if why is None and run is not None and run.paused_at is not None:
        return f"This run is already paused (by {run.paused_by})."
    return why


def why_not_unpause(tenant: Tenant, run: Run | None) -> str | None:
    why = _why_not_live(tenant, run, "Unpause")
    if why is None and run is not None and run.paused_at is None:
        return "This run is not paused."
    return why


def why_not_decommission(tenant: Tenant, run: Run | None) -> str | None:
    if why := wrong_state(tenant, transition="decommission", operation="decommission"):
        return why
    if tenant.decommission_requested_at and not tenant.last_error:
        return "Decommission is already in progress."
    return None


def handle_run(tenant: Tenant) -> Run | None:
    """The run the tenant's handle names, or None (one query at most)."""
    if tenant.workflow_id is None:
        return None
    return Run.objects.filter(pk=tenant.workflow_id).first()


def load_tenant(tenant_id: uuid.UUID | str, *, lock: bool = False) -> Tenant:
    """The tenant with this id (locked for update with ``lock``), or ``not_found``."""
    try:
        tid = uuid.UUID(str(tenant_id))
    except ValueError:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the id {tenant_id!r}.") from None
    tenant = lock_tenant(tid, must_exist=False) if lock else Tenant.objects.filter(pk=tid).first()
    if tenant is None:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the id {tenant_id}.")
    return tenant


def locked_tenant(tenant_id: uuid.UUID | str) -> Tenant:
    return load_tenant(tenant_id, lock=True)


def refuse_unless(
    guard: Callable[[Tenant, Run | None], str | None], tenant: Tenant, run: Run | None
) -> None:
    reason = guard(tenant, run)
    if reason is not None:
        raise OperationError(ErrorCode.INVALID_STATE, reason, {"state": tenant.state})
