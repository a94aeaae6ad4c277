"""What every part of the saga shares about a run: the live statuses, the tenant's row lock,
the live run, and the fence every worker write checks."""

from __future__ import annotations

import uuid

from tenants.models import Tenant, lock_tenant

__all__ = ["lock_tenant"]  # every write of a run takes it (``tenants.models.lock_tenant``)

from .kinds import WORKING_STATE
from .models import LIVE_RUN_STATUSES, Run, RunStatus, StepExecution, StepStatus

LIVE = LIVE_RUN_STATUSES


def live_run(tenant: Tenant) -> Run | None:
    """The run the tenant's handle names, if it is still live (running or cancelling)."""
    if tenant.workflow_id is None:
        return None
    return Run.objects.filter(pk=tenant.workflow_id, status__in=LIVE).first()


def load_step(step_id: int) -> StepExecution:
    return StepExecution.objects.select_related("run").get(pk=step_id)


def fenced(tenant: Tenant, step: StepExecution, token: uuid.UUID) -> bool:
    """True when this try may still act: the live, running run's current try of the step."""
    run = step.run
    return (
        tenant.workflow_id == run.id
        and tenant.state == WORKING_STATE[run.kind]
        and run.status == RunStatus.RUNNING
        and not run.compensating
        and step.token == token
        and step.status in (StepStatus.DISPATCHED, StepStatus.RUNNING)
    )
