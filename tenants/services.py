"""The operator operations. Every door (console, API, admin, commands) calls these and only these.

Split by concept: the guards and what they read are ``tenants.guards``, the checks of what an
operator types ``tenants.inputs``; their names are re-exported here (``X as X``).

Each operation: opens one transaction, locks the tenant row, checks the transition (and the
actor's permission, when the actor is a user), writes the state, records the audit event and
schedules any task on commit. A refusal raises ``OperationError`` and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.events import EventType
from audit.services import record_event
from provisioning import compensation, conditions, runs, saga
from provisioning.models import (
    PLAN_CHANGE_STEPS,
    Run,
    RunKind,
    RunStatus,
    StepExecution,
    StepStatus,
)

from .actors import Actor
from .errors import ErrorCode, OperationError
from .grants import GRANTS
from .guards import (
    clean_plan as clean_plan,
)
from .guards import (
    fsm_sources as fsm_sources,
)
from .guards import (
    handle_run as handle_run,
)
from .guards import (
    load_tenant as load_tenant,
)
from .guards import (
    locked_tenant as locked_tenant,
)
from .guards import (
    refuse_unless as refuse_unless,
)
from .guards import (
    why_not_cancel as why_not_cancel,
)
from .guards import (
    why_not_change_plan as why_not_change_plan,
)
from .guards import (
    why_not_decommission as why_not_decommission,
)
from .guards import (
    why_not_pause as why_not_pause,
)
from .guards import (
    why_not_reset as why_not_reset,
)
from .guards import (
    why_not_resume as why_not_resume,
)
from .guards import (
    why_not_retry as why_not_retry,
)
from .guards import (
    why_not_suspend as why_not_suspend,
)
from .guards import (
    why_not_unpause as why_not_unpause,
)
from .guards import (
    wrong_state as wrong_state,
)
from .inputs import (
    REASON_MAX_LENGTH as REASON_MAX_LENGTH,
)
from .inputs import (
    clean_faults as clean_faults,
)
from .inputs import (
    clean_reason as clean_reason,
)
from .inputs import (
    validate_tenant_fields as validate_tenant_fields,
)
from .models import Condition, Tenant, TenantState

S = TenantState


def _with_reason(data: dict[str, Any], reason: str) -> dict[str, Any]:
    """The first event of an operation carries the operator's reason, when one was given."""
    if reason:
        data["reason"] = reason
    return data


# --- create ---------------------------------------------------------------------------------


def create_tenant(
    *,
    slug: Any,
    name: Any,
    plan: Any,
    admin_email: Any,
    actor: Actor,
    start: bool = True,
    faults: Any = None,
) -> Tenant:
    """Create a tenant; with ``start`` its first run is dispatched when the transaction commits.

    Steps: validate the fields; insert (the database's partial unique index decides a slug race);
    record ``tenant.created``; if starting, move to provisioning, create run 1, record
    ``tenant.provisioning.started`` and dispatch ``validate_request`` on commit.
    """
    actor.require(GRANTS["create"].permission, "create tenants")  # the create row's grant
    # Every bad field at once, faults included, so each door shows the whole list.
    errors: dict[str, Any] = {}
    fields: dict[str, str] = {}
    faults_given: dict[str, str] = {}
    try:
        fields = validate_tenant_fields(slug=slug, name=name, plan=plan, admin_email=admin_email)
    except OperationError as exc:
        errors.update(exc.details)
    try:
        faults_given = clean_faults(faults)
    except OperationError as exc:
        errors.update(exc.details)
    if errors:
        raise OperationError(ErrorCode.VALIDATION_ERROR, "Some fields are not valid.", errors)
    if not isinstance(start, bool):
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            "start must be true or false.",
            {"start": ["Must be true or false."]},
        )
    try:
        with transaction.atomic():
            if Tenant.objects.filter(slug=fields["slug"]).exclude(state=S.DECOMMISSIONED).exists():
                raise _slug_taken(fields["slug"])
            tenant = Tenant.objects.create(**fields)
            record_event(
                type=EventType.TENANT_CREATED,
                tenant_id=tenant.id,
                actor=actor.label,
                data={"slug": tenant.slug, "plan": tenant.plan, "start": start},
            )
            if start:
                tenant.start()
                saga.start_run(tenant, actor=actor.label, faults=faults_given)
                _save_started(tenant)
    except IntegrityError as exc:
        if "slug" in str(exc):
            raise _slug_taken(fields["slug"]) from None
        raise
    return tenant


def _slug_taken(slug: str) -> OperationError:
    return OperationError(
        ErrorCode.SLUG_TAKEN,
        f"The slug '{slug}' is already used by a tenant that is not decommissioned.",
        {"slug": ["This slug is already in use."]},
    )


# --- operator operations --------------------------------------------------------------------
#
# These are the operations themselves; ``tenants.operations.perform`` is the one way the doors
# reach them: it checks the caller's permission (named once, in the operations table) and the
# reason's shape before it calls one of these. Each takes the validated ``reason`` and records
# it as ``data.reason`` on its first event.


def retry_provisioning(
    *, tenant_id: uuid.UUID | str, actor: Actor, faults: Any = None, reason: str = ""
) -> Tenant:
    """Start a new run (attempt + 1) from failed, or from pending with no error and no live run.

    Allocations still held from earlier attempts are reused by the new run's steps.
    """
    reason = clean_reason(reason)
    faults_given = clean_faults(faults)
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        run = handle_run(tenant)
        refuse_unless(why_not_retry, tenant, run)
        tenant.retry()
        record_event(
            type=EventType.PROVISIONING_RETRY_REQUESTED,
            tenant_id=tenant.id,
            run_id=run.id if run else None,
            actor=actor.label,
            data=_with_reason(
                {"from_state": S.FAILED if run and run.status == RunStatus.FAILED else S.PENDING},
                reason,
            ),
        )
        saga.start_run(tenant, actor=actor.label, faults=faults_given)
        _save_started(tenant)
    return tenant


def _save_started(tenant: Tenant) -> None:
    """Save what starting a run changed on the tenant (``saga.start_run``): its state, its
    handle, the error and condition a new try clears."""
    tenant.save(
        update_fields=[
            "state",
            "workflow_id",
            "last_error",
            "failed_activity",
            "condition",
            "updated_at",
        ]
    )


def cancel_provisioning(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Ask the live run to stop and roll back.

    Under the tenant's lock: mark the run ``cancelling`` (which fences out every step still
    queued or working) and record the request; on commit the compensation task releases, newest
    first, everything the tenant holds and then moves it to pending. Racing ``mark_active``
    takes the same lock, so exactly one of the two wins.
    """
    reason = clean_reason(reason)
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        run = handle_run(tenant)
        refuse_unless(why_not_cancel, tenant, run)
        if run is None:  # the guard refuses this; the check keeps the type checker honest
            raise OperationError(ErrorCode.INVALID_STATE, "There is no live run to cancel.")
        tenant.request_cancel()
        record_event(
            type=EventType.CANCEL_REQUESTED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=actor.label,
            data=_with_reason({"step": run.current_step}, reason),
        )
        compensation.begin_compensation(tenant, run, actor=actor.label)
        tenant.save(update_fields=["updated_at"])
    return tenant


def change_plan(
    *,
    tenant_id: uuid.UUID | str,
    actor: Actor,
    plan: Any = None,
    faults: Any = None,
    reason: str = "",
) -> Tenant:
    """Move an active tenant to another plan: a ``plan_change`` run changes, step by step,
    what the plan decides (database size, billing plan) while the tenant is ``updating``.

    Under the tenant's lock: the state must be active and the plan another; the tenant moves
    to updating (clearing a failed change's error), run N+1 of kind ``plan_change`` is created,
    ``tenant.plan_change.started`` (``data.from``, ``data.to``) recorded and its first step
    dispatched on commit. ``tenant.plan`` changes only when the run's last step completes.
    """
    reason = clean_reason(reason)
    plan = clean_plan(plan)
    faults_given = clean_faults(faults, PLAN_CHANGE_STEPS)
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        refuse_unless(why_not_change_plan, tenant, handle_run(tenant))
        clean_plan(plan, tenant)
        old = tenant.plan
        tenant.start_change()
        saga.start_run(
            tenant,
            actor=actor.label,
            faults=faults_given,
            kind=RunKind.PLAN_CHANGE,
            params={"from": old, "to": plan},
            event_data=_with_reason({"from": old, "to": plan}, reason),
        )
        _save_started(tenant)
    return tenant


def reset_provisioning(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Clear a wedged provisioning: orphan the run, clear handle and error, tenant to pending.

    Allocations are kept (the next run reuses them). The orphaned run's tasks that wake later
    can change nothing but the ledger.
    """
    reason = clean_reason(reason)
    try:
        with transaction.atomic():
            tenant = locked_tenant(tenant_id)
            run = handle_run(tenant)
            refuse_unless(why_not_reset, tenant, run)
            old_handle = tenant.workflow_id
            record_event(
                type=EventType.RESET_STARTED,
                tenant_id=tenant.id,
                run_id=old_handle,
                actor=actor.label,
                data=_with_reason({"from_state": tenant.state, "error": tenant.last_error}, reason),
            )
            # Every live run of the tenant, not only the one the handle names: a handle that was
            # wrong must not leave its real run running forever.
            Run.objects.filter(tenant=tenant, status__in=runs.LIVE).update(
                status=RunStatus.ORPHANED, finished_at=timezone.now(), compensating=False
            )
            tenant.reset()
            tenant.save(
                update_fields=[
                    "state",
                    "workflow_id",
                    "last_error",
                    "failed_activity",
                    "updated_at",
                ]
            )
            conditions.refresh_condition(tenant)
            record_event(
                type=EventType.RESET_COMPLETED,
                tenant_id=tenant.id,
                run_id=old_handle,
                actor=actor.label,
                data={"orphaned_run": str(old_handle) if old_handle else None},
            )
    except OperationError:
        raise
    except Exception as exc:
        with transaction.atomic():
            record_event(
                type=EventType.RESET_FAILED,
                tenant_id=uuid.UUID(str(tenant_id)),
                actor=actor.label,
                data={"error": f"{type(exc).__name__}: {exc}"},
            )
        raise OperationError(ErrorCode.RESET_FAILED, f"Reset failed: {exc}") from exc
    return tenant


def suspend_tenant(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Suspend an active tenant: it keeps everything it holds; Resume makes it active again."""
    return _simple_transition(
        tenant_id,
        actor,
        why_not_suspend,
        "suspend",
        EventType.TENANT_SUSPENDED,
        clean_reason(reason),
    )


def resume_tenant(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Resume a suspended tenant: it becomes active again, with what it held."""
    return _simple_transition(
        tenant_id, actor, why_not_resume, "resume", EventType.TENANT_RESUMED, clean_reason(reason)
    )


def _simple_transition(
    tenant_id: uuid.UUID | str,
    actor: Actor,
    guard: Callable[[Tenant, Run | None], str | None],
    transition: str,
    event: str,
    reason: str,
) -> Tenant:
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        refuse_unless(guard, tenant, handle_run(tenant))
        from_state = tenant.state
        getattr(tenant, transition)()
        tenant.save(update_fields=["state", "updated_at"])
        conditions.refresh_condition(tenant)
        record_event(
            type=event,
            tenant_id=tenant.id,
            actor=actor.label,
            data=_with_reason({"from_state": from_state}, reason),
        )
    return tenant


def pause_run(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Pause the tenant's live run at a step boundary.

    Under the tenant's lock (which every step's record phase takes too): mark the run paused.
    The step at work finishes and its answer is recorded, but the saga dispatches no next step
    while the run is paused (``provisioning.saga._complete_step``), and the watchdog leaves it
    alone. Cancel and reset still work.
    """
    reason = clean_reason(reason)
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        run = handle_run(tenant)
        refuse_unless(why_not_pause, tenant, run)
        assert run is not None  # the guard refuses a missing run  # noqa: S101
        tenant.pause()  # the state stays; the transition is the guard's source of states
        now = timezone.now()
        Run.objects.filter(pk=run.pk).update(paused_at=now, paused_by=actor.label)
        run.paused_at, run.paused_by = now, actor.label
        conditions.set_condition(tenant, Condition.PAUSED)
        tenant.save(update_fields=["updated_at"])
        record_event(
            type=EventType.RUN_PAUSED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=actor.label,
            data=_with_reason({"step": run.current_step}, reason),
        )
    return tenant


def unpause_run(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Let a paused run go on: its current step, if it waits undispatched, is sent now.

    Exactly once: the run is unpaused and its waiting step dispatched (a new fenced try) in the
    one transaction that holds the tenant's lock; a second unpause finds the run not paused.
    A step still dispatched or at work when the run was paused is left as it is (the watchdog
    looks after it again from now on).
    """
    reason = clean_reason(reason)
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        run = handle_run(tenant)
        refuse_unless(why_not_unpause, tenant, run)
        assert run is not None  # noqa: S101
        tenant.unpause()
        paused_at, paused_by = run.paused_at, run.paused_by
        Run.objects.filter(pk=run.pk).update(
            paused_at=None, paused_by="", heartbeat_at=timezone.now()
        )
        run.paused_at, run.paused_by = None, ""
        step = StepExecution.objects.filter(run=run, name=run.current_step).first()
        dispatched = step is not None and step.status == StepStatus.WAITING
        if dispatched:
            saga.dispatch_step(step, priority=run.priority)
        conditions.refresh_condition(tenant)
        tenant.save(update_fields=["updated_at"])
        record_event(
            type=EventType.RUN_UNPAUSED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=actor.label,
            data=_with_reason(
                {
                    "step": run.current_step,
                    "paused_by": paused_by,
                    "paused_seconds": round((timezone.now() - paused_at).total_seconds(), 1)
                    if paused_at
                    else None,
                    "dispatched": dispatched,
                },
                reason,
            ),
        )
    return tenant


def decommission_tenant(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Release everything the tenant holds, then mark it decommissioned and free its slug.

    The releases run in a task (provider calls never run under the row lock); until it ends
    the tenant keeps its state with a decommission in progress, and no other operation is
    accepted. If a release fails, the error is recorded and Decommission may be asked again.

    Under the approval policy (``CONTROLPLANE_APPROVAL_REQUIRED``), ``tenants.operations``
    calls this only once a second person approved it; nothing here knows about that.
    """
    reason = clean_reason(reason)
    with transaction.atomic():
        tenant = locked_tenant(tenant_id)
        refuse_unless(why_not_decommission, tenant, handle_run(tenant))
        _start_decommission(
            tenant,
            event=EventType.DECOMMISSION_REQUESTED,
            actor=actor,
            data=_with_reason({"from_state": tenant.state}, reason),
        )
    return tenant


def _start_decommission(tenant: Tenant, *, event: str, actor: Actor, data: dict[str, Any]) -> None:
    """Mark the decommission in progress and send its releases to a worker on commit."""
    tenant.decommission_requested_at = tenant.decommission_requested_at or timezone.now()
    tenant.decommission_heartbeat_at = timezone.now()  # the watchdog waits a timeout first
    tenant.last_error = ""
    tenant.condition = Condition.DECOMMISSIONING
    tenant.save(
        update_fields=[
            "decommission_requested_at",
            "decommission_heartbeat_at",
            "last_error",
            "condition",
            "updated_at",
        ]
    )
    record_event(type=event, tenant_id=tenant.id, actor=actor.label, data=data)
    tid = tenant.id
    transaction.on_commit(lambda: compensation.publish_decommission(tid), robust=True)
