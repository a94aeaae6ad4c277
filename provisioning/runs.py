"""What every part of the saga shares about a run: the live statuses, the tenant's row lock,
the live run, and the fence every worker write checks."""

from __future__ import annotations

import uuid

from django.db.models import Case, CharField, OuterRef, Subquery, Value, When

from tenants.models import Tenant, TenantState

from .models import (
    LIVE_RUN_STATUSES,
    STEP_KIND,
    Allocation,
    Run,
    RunStatus,
    StepExecution,
    StepStatus,
)

LIVE = LIVE_RUN_STATUSES


def live_run(tenant: Tenant) -> Run | None:
    """The run the tenant's handle names, if it is still live (running or cancelling)."""
    if tenant.workflow_id is None:
        return None
    return Run.objects.filter(pk=tenant.workflow_id, status__in=LIVE).first()


def lock_tenant(tenant_id: uuid.UUID) -> Tenant:
    """The tenant's row, locked until the transaction ends: every write of a run takes it."""
    return Tenant.objects.select_for_update().get(pk=tenant_id)


def load_step(step_id: int) -> StepExecution:
    return StepExecution.objects.select_related("run").get(pk=step_id)


def lock_tenant_of_step(step_id: int) -> Tenant | None:
    """The tenant of the step's run, locked, in one statement (None when there is no such
    step). Read the step after this, not before: what was read before the lock may be stale."""
    tenant_id = StepExecution.objects.filter(pk=step_id).values("run__tenant_id")[:1]
    return Tenant.objects.select_for_update().filter(pk=Subquery(tenant_id)).first()


_KIND_OF_STEP = Case(
    *[When(name=name, then=Value(kind)) for name, kind in STEP_KIND.items()],
    default=Value(""),
    output_field=CharField(),
)


def load_step_with_next(step_id: int) -> StepExecution:
    """The step and its run in one statement, with ``next_id`` (the run's following step, or
    None) and, for a step that allocates, ``held``: the tenant's held allocation of its kind
    (or None). Call it with the tenant locked: then ``held`` is what the ledger holds."""
    following = StepExecution.objects.filter(
        run_id=OuterRef("run_id"), position=OuterRef("position") + 1
    ).values("pk")[:1]
    held = Allocation.objects.filter(
        tenant_id=OuterRef("run__tenant_id"), kind=OuterRef("step_kind"), released_at__isnull=True
    ).order_by("allocated_at", "id")[:1]
    step = (
        StepExecution.objects.select_related("run")
        .annotate(
            next_id=Subquery(following),
            step_kind=_KIND_OF_STEP,
            held_id=Subquery(held.values("pk")),
            held_external_id=Subquery(held.values("external_id")),
        )
        .get(pk=step_id)
    )
    step.held = (
        None
        if step.held_id is None
        else Allocation(
            pk=step.held_id,
            tenant_id=step.run.tenant_id,
            kind=step.step_kind,
            external_id=step.held_external_id,
        )
    )
    return step


def fenced(tenant: Tenant, step: StepExecution, token: uuid.UUID) -> bool:
    """True when this try may still act: the live, running run's current try of the step."""
    run = step.run
    return (
        tenant.workflow_id == run.id
        and tenant.state == TenantState.PROVISIONING
        and run.status == RunStatus.RUNNING
        and not run.compensating
        and step.token == token
        and step.status in (StepStatus.DISPATCHED, StepStatus.RUNNING)
    )
