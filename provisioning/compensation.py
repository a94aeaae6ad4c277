"""Rolling a run back (after a cancel or a step out of tries), and decommissioning.

How a run rolls back is its kind's (``provisioning.kinds``): a provisioning run releases,
newest first, everything the tenant holds; a plan change reverts, newest first, the changes it
made to held allocations. Both call providers outside any transaction and take the tenant's
lock only to record each result and to settle (``SETTLE``, per kind).
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from audit.events import EventType
from audit.services import SYSTEM, record_event
from controlplane.task_names import TaskName
from tenants.models import Condition, Tenant, TenantState

from . import admission, conditions, ledger, runs
from .kinds import WORKING_STATE, kind_of
from .models import (
    AllocationChange,
    Run,
    RunKind,
    RunStatus,
    StepExecution,
    StepStatus,
)
from .runs import LIVE


def begin_compensation(
    tenant: Tenant, run: Run, *, actor: str, failed_step: str = "", error: str = ""
) -> None:
    """Start rolling a run back (tenant locked). A cancel passes no ``failed_step``."""
    now = timezone.now()
    if failed_step:
        Run.objects.filter(pk=run.id).update(
            compensating=True, failed_step=failed_step, error=error, heartbeat_at=now
        )
    else:
        Run.objects.filter(pk=run.id).update(
            status=RunStatus.CANCELLING, cancel_requested_at=now, heartbeat_at=now
        )
    record_event(
        type=EventType.COMPENSATION_STARTED,
        tenant_id=tenant.id,
        run_id=run.id,
        actor=actor,
        data={
            "reason": "failed" if failed_step else "cancelled",
            "held": (
                ledger.held_allocations(tenant.id).count()
                if kind_of(run).rollback == "release"
                else ledger.unreverted_changes(run.id).count()
            ),
        },
    )
    conditions.set_condition(
        tenant, Condition.ROLLING_BACK if failed_step else Condition.CANCELLING
    )
    run_id = run.id
    transaction.on_commit(lambda: publish_compensation(run_id), robust=True)


def publish_compensation(run_id: uuid.UUID) -> None:
    current_app.send_task(
        TaskName.COMPENSATE, args=[str(run_id)], priority=admission.current_priority() or None
    )


def _compensating(tenant: Tenant, run: Run) -> bool:
    return (
        tenant.workflow_id == run.id
        and tenant.state == WORKING_STATE[run.kind]
        and (
            run.status == RunStatus.CANCELLING
            or (run.status == RunStatus.RUNNING and run.compensating)
        )
    )


def compensate_run(run_id: uuid.UUID | str) -> None:
    """Release, newest first, everything the tenant holds; then settle tenant and run.

    Runs for both a cancel and a step out of retries. It reads the ledger again under the lock
    before it settles, so an allocation a late step wrote meanwhile is released too.
    """
    run_id = uuid.UUID(str(run_id))

    def still_ours() -> bool:
        run = Run.objects.filter(pk=run_id).first()
        tenant = Tenant.objects.filter(pk=run.tenant_id).first() if run else None
        return bool(run and tenant and _compensating(tenant, run))

    def beat() -> None:
        Run.objects.filter(pk=run_id, status__in=LIVE).update(heartbeat_at=timezone.now())

    while True:
        if not still_ours():
            return
        run = Run.objects.get(pk=run_id)
        reverting = kind_of(run).rollback == "revert"
        failed: list[Any]
        if reverting:
            failed = ledger.revert_all(
                run_id, actor=SYSTEM, heartbeat=beat, should_stop=lambda: not still_ours()
            )
        else:
            failed = ledger.release_all(
                run.tenant_id,
                run_id=run_id,
                actor=SYSTEM,
                heartbeat=beat,
                should_stop=lambda: not still_ours(),
            )
        with transaction.atomic():
            tenant = runs.lock_tenant(run.tenant_id)
            run = Run.objects.get(pk=run_id)
            if not _compensating(tenant, run):
                return
            if reverting:
                late = ledger.unreverted_changes(run.id).exclude(pk__in=[c.pk for c in failed])
                if late.exists():
                    continue  # a late step applied one: go round again, outside the lock
            elif ledger.outstanding(tenant.id, failed):
                continue  # a late step added one: go round again, outside the lock
            _settle(tenant, run, failed)
            return


def _settle(tenant: Tenant, run: Run, failed: list[Any]) -> None:
    now = timezone.now()
    cancelled = run.status == RunStatus.CANCELLING
    note = ""
    if failed:
        note = _failed_note(failed)
        record_event(
            type=EventType.COMPENSATION_FAILED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=SYSTEM,
            data={
                "failed": [
                    {"kind": a.kind, "external_id": _named(a), "error": _error(a)} for a in failed
                ]
            },
        )
    else:
        record_event(
            type=EventType.COMPENSATION_COMPLETED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=SYSTEM,
            data={},
        )
    Run.objects.filter(pk=run.id).update(
        status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
        finished_at=now,
        heartbeat_at=now,
        compensating=False,
    )
    StepExecution.objects.filter(
        run=run, status__in=[StepStatus.WAITING, StepStatus.DISPATCHED, StepStatus.RUNNING]
    ).update(status=StepStatus.SKIPPED, token=None)
    SETTLE[run.kind](tenant, run, cancelled=cancelled, failed=bool(failed), note=note)


def _named(a: Any) -> str:
    return a.allocation.external_id if isinstance(a, AllocationChange) else a.external_id


def _error(a: Any) -> str:
    return a.revert_error if isinstance(a, AllocationChange) else a.release_error


def _failed_note(failed: list[Any]) -> str:
    if isinstance(failed[0], AllocationChange):
        return "Could not revert: " + "; ".join(
            f"{c.kind} {c.attribute} back to {c.before!r} ({c.revert_error})" for c in failed
        )
    return "Could not release: " + "; ".join(
        f"{a.kind} {a.external_id} ({a.release_error})" for a in failed
    )


def _settle_provision(
    tenant: Tenant, run: Run, *, cancelled: bool, failed: bool, note: str
) -> None:
    """A provisioning run rolled back: pending after a cancel, failed after a failure."""
    if cancelled:
        tenant.finish_cancel()
        tenant.last_error = note
        tenant.failed_activity = ""
        # Nothing else is held now (checked under the lock by the caller) but what failed.
        tenant.condition = Condition.RELEASE_FAILED if failed else Condition.OK
        tenant.save(
            update_fields=["state", "last_error", "failed_activity", "condition", "updated_at"]
        )
        record_event(
            type=EventType.PROVISIONING_CANCELLED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=SYSTEM,
            data={"released_all": not failed},
        )
    else:
        tenant.fail()
        tenant.failed_activity = run.failed_step
        tenant.last_error = run.error + (f"\n{note}" if note else "")
        tenant.condition = Condition.RELEASE_FAILED if failed else Condition.FAILED
        tenant.save(
            update_fields=["state", "last_error", "failed_activity", "condition", "updated_at"]
        )
        record_event(
            type=EventType.PROVISIONING_FAILED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=SYSTEM,
            data={"failed_activity": run.failed_step, "error": run.error},
        )


def _settle_plan_change(
    tenant: Tenant, run: Run, *, cancelled: bool, failed: bool, note: str
) -> None:
    """A plan change rolled back: active on its old plan (``tenant.plan`` never moved). A
    failure, or a revert that failed, leaves its error recorded: ``change_failed``."""
    if cancelled:
        tenant.finish_cancel_change()
        tenant.last_error = note
        tenant.failed_activity = ""
    else:
        tenant.fail_change()
        tenant.failed_activity = run.failed_step
        at = f" at {run.failed_step}" if run.failed_step else ""  # none: its run is gone
        tenant.last_error = (
            f"The change from {run.params.get('from')} to {run.params.get('to')} failed{at}: "
            f"{run.error}" + (f"\n{note}" if note else "")
        )
    tenant.condition = Condition.CHANGE_FAILED if tenant.last_error else Condition.OK
    tenant.save(update_fields=["state", "last_error", "failed_activity", "condition", "updated_at"])
    data: dict[str, Any] = {"from": run.params.get("from"), "to": run.params.get("to")}
    if cancelled:
        data["reverted_all"] = not failed
    else:
        data.update(failed_activity=run.failed_step, error=run.error)
    record_event(
        type=EventType.PLAN_CHANGE_CANCELLED if cancelled else EventType.PLAN_CHANGE_FAILED,
        tenant_id=tenant.id,
        run_id=run.id,
        actor=SYSTEM,
        data=data,
    )


# How a run of each kind settles once rolled back (provisioning.kinds).
SETTLE = {RunKind.PROVISION: _settle_provision, RunKind.PLAN_CHANGE: _settle_plan_change}


# --- decommission ---------------------------------------------------------------------------


def publish_decommission(tenant_id: uuid.UUID) -> None:
    current_app.send_task(
        TaskName.DECOMMISSION,
        args=[str(tenant_id)],
        priority=admission.current_priority() or None,
    )


def decommission_tenant(tenant_id: uuid.UUID | str) -> None:
    """Release everything the tenant holds, then mark it decommissioned (idempotent)."""
    tenant_id = uuid.UUID(str(tenant_id))
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None or tenant.state == TenantState.DECOMMISSIONED:
        return
    if tenant.decommission_requested_at is None:
        return

    def beat() -> None:
        # The watchdog resends a decommission only once this stops (see watchdog.py).
        Tenant.objects.filter(pk=tenant_id).update(decommission_heartbeat_at=timezone.now())

    beat()
    failed = ledger.release_all(tenant_id, run_id=None, actor=SYSTEM, heartbeat=beat)
    with transaction.atomic():
        tenant = runs.lock_tenant(tenant_id)
        if tenant.state == TenantState.DECOMMISSIONED or not tenant.decommission_requested_at:
            return
        if failed or ledger.outstanding(tenant_id, []):
            failed = failed or [
                *ledger.held_allocations(tenant_id),
                *ledger.open_intents(tenant_id),
            ]
            tenant.last_error = "Decommission could not release: " + "; ".join(
                f"{a.kind} {a.external_id} ({a.release_error or 'still held'})" for a in failed
            )
            tenant.condition = Condition.RELEASE_FAILED
            tenant.save(update_fields=["last_error", "condition", "updated_at"])
            return
        live = runs.live_run(tenant)
        if live is not None:
            Run.objects.filter(pk=live.id).update(
                status=RunStatus.ORPHANED, finished_at=timezone.now()
            )
        tenant.decommission()
        tenant.decommissioned_at = timezone.now()
        tenant.last_error = ""
        tenant.condition = Condition.OK
        tenant.save(
            update_fields=["state", "decommissioned_at", "last_error", "condition", "updated_at"]
        )
        record_event(
            type=EventType.TENANT_DECOMMISSIONED,
            tenant_id=tenant.id,
            run_id=None,
            actor=SYSTEM,
            data={},
        )
