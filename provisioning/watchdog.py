"""The watchdog: one pass looks after every live run.

Each piece of stale work is claimed with a compare-and-swap UPDATE that only matches the row
as the pass read it; the pass acts only when that UPDATE changed one row, so two watchdogs (or
a watchdog and a late worker) can never both act on the same thing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.services import SYSTEM, record_event
from tenants.models import Condition, Tenant, TenantState

from . import admission, compensation, conditions, runs
from .broker import publish_step
from .models import Run, RunStatus, StepExecution, StepStatus

log = logging.getLogger(__name__)


@dataclass
class WatchdogReport:
    redispatched: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    orphaned_handles: list[str] = field(default_factory=list)
    compensations_resumed: list[str] = field(default_factory=list)
    decommissions_resumed: list[str] = field(default_factory=list)
    woken: int = 0


def run_watchdog(now: datetime | None = None) -> WatchdogReport:
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT)
    report = WatchdogReport()
    _lost_steps(now, cutoff, report)
    _stopped_compensations(now, cutoff, report)
    _orphaned_handles(now, report)
    _stopped_decommissions(now, cutoff, report)
    # Steps queued behind a provider's limit: as many as may start now (the per-minute budget
    # refills with time, which no step's release signals).
    report.woken = admission.wake_all() if admission.limits() else 0
    return report


def _stale_step_q(cutoff: datetime) -> Q:
    # Lost message: dispatched and due, never started. Dead worker: started, no heartbeat.
    return Q(status=StepStatus.DISPATCHED, due_at__lt=cutoff) | Q(
        status=StepStatus.RUNNING, heartbeat_at__lt=cutoff
    )


def _lost_steps(now: datetime, cutoff: datetime, report: WatchdogReport) -> None:
    stale = (
        StepExecution.objects.filter(
            run__status=RunStatus.RUNNING, run__compensating=False, run__stalled_at__isnull=True
        )
        .filter(_stale_step_q(cutoff))
        .select_related("run")
    )
    for step in stale:
        with transaction.atomic():
            tenant = Tenant.objects.select_for_update().get(pk=step.run.tenant_id)
            if tenant.workflow_id != step.run_id or tenant.state != TenantState.PROVISIONING:
                continue
            last = step.heartbeat_at or step.due_at or now
            seconds = round((now - last).total_seconds(), 1)
            if step.tries >= settings.CONTROLPLANE_STEP_MAX_TRIES:
                if _flag_stalled(tenant, step, seconds, now):
                    report.stalled.append(str(step.run_id))
                continue
            new_token = uuid.uuid4()
            claimed = (
                StepExecution.objects.filter(pk=step.pk, token=step.token, status=step.status)
                .filter(_stale_step_q(cutoff))
                .update(
                    token=new_token,
                    tries=step.tries + 1,
                    status=StepStatus.DISPATCHED,
                    due_at=now,
                    started_at=None,
                    heartbeat_at=None,
                    # The lost try left no error; an earlier failed try's is in the audit
                    # log. An empty error is what tells "lost" from "retrying".
                    error="",
                )
            )
            if not claimed:
                continue
            conditions.set_condition(tenant, Condition.LOST)
            record_event(
                type="tenant.provisioning.step_redispatched",
                tenant_id=tenant.id,
                run_id=step.run_id,
                actor=SYSTEM,
                data={
                    "step": step.name,
                    "attempt": step.tries + 1,
                    "seconds_since_heartbeat": seconds,
                },
            )
            name, step_id = step.name, step.pk
            transaction.on_commit(
                lambda n=name, s=step_id, t=new_token, p=step.run.priority: publish_step(
                    n, s, t, priority=p
                ),
                robust=True,
            )
            report.redispatched.append(f"{step.run_id}:{step.name}")


def _flag_stalled(tenant: Tenant, step: StepExecution, seconds: float, now: datetime) -> bool:
    """Record once that the run is stalled; the recorded error makes reset available."""
    claimed = Run.objects.filter(
        pk=step.run_id, status=RunStatus.RUNNING, stalled_at__isnull=True
    ).update(stalled_at=now)
    if not claimed:
        return False
    tenant.last_error = (
        f"Provisioning is stalled at {step.name}: no heartbeat for {seconds:g}s after "
        f"{step.tries} tries. Reset, then retry."
    )
    tenant.condition = Condition.STALLED
    tenant.save(update_fields=["last_error", "condition", "updated_at"])
    record_event(
        type="tenant.provisioning.stalled",
        tenant_id=tenant.id,
        run_id=step.run_id,
        actor=SYSTEM,
        data={"step": step.name, "seconds_since_heartbeat": seconds, "tries": step.tries},
    )
    return True


def _stopped_compensations(now: datetime, cutoff: datetime, report: WatchdogReport) -> None:
    stopped = Run.objects.filter(
        Q(status=RunStatus.CANCELLING) | Q(status=RunStatus.RUNNING, compensating=True),
        heartbeat_at__lt=cutoff,
    )
    for run in stopped:
        claimed = Run.objects.filter(pk=run.pk, heartbeat_at=run.heartbeat_at).update(
            heartbeat_at=now
        )
        if claimed:
            compensation.publish_compensation(run.pk)
            report.compensations_resumed.append(str(run.pk))


def _orphaned_handles(now: datetime, report: WatchdogReport) -> None:
    live = Run.objects.filter(pk=OuterRef("workflow_id"), status__in=runs.LIVE)
    orphaned = Tenant.objects.filter(state=TenantState.PROVISIONING, last_error="").exclude(
        Exists(live)
    )
    for tenant in orphaned:
        with transaction.atomic():
            locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
            if locked.state != TenantState.PROVISIONING or locked.last_error:
                continue
            if runs.live_run(locked) is not None:
                continue
            locked.last_error = (
                f"The workflow handle {locked.workflow_id} names no live run. Reset, then retry."
            )
            locked.condition = Condition.ORPHANED
            locked.save(update_fields=["last_error", "condition", "updated_at"])
            record_event(
                type="tenant.provisioning.orphaned_handle",
                tenant_id=locked.id,
                run_id=locked.workflow_id,
                actor=SYSTEM,
                data={"workflow_id": str(locked.workflow_id) if locked.workflow_id else None},
            )
            report.orphaned_handles.append(str(locked.id))


def _stopped_decommissions(now: datetime, cutoff: datetime, report: WatchdogReport) -> None:
    """A decommission whose task stopped beating (or never started: the request counts as
    the first beat) is sent again, once per heartbeat timeout, claimed by a compare-and-swap
    on ``decommission_heartbeat_at``."""
    stuck = (
        Tenant.objects.filter(decommission_requested_at__lt=cutoff, last_error="")
        .exclude(state=TenantState.DECOMMISSIONED)
        .filter(Q(decommission_heartbeat_at__isnull=True) | Q(decommission_heartbeat_at__lt=cutoff))
    )
    for tenant in stuck.only("id", "decommission_heartbeat_at"):
        claimed = (
            Tenant.objects.filter(
                pk=tenant.pk,
                decommission_heartbeat_at=tenant.decommission_heartbeat_at,
                decommissioned_at__isnull=True,
            )
            if tenant.decommission_heartbeat_at is not None
            else Tenant.objects.filter(pk=tenant.pk, decommission_heartbeat_at__isnull=True)
        ).update(decommission_heartbeat_at=now)
        if claimed:
            compensation.publish_decommission(tenant.id)
            report.decommissions_resumed.append(str(tenant.id))
