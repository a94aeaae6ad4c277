"""The watchdog: one pass looks after every live run.

Each piece of stale work is claimed with a compare-and-swap UPDATE that only matches the row
as the pass read it; the pass acts only when that UPDATE changed one row, so two watchdogs (or
a watchdog and a late worker) can never both act on the same thing.

A step's try has two clocks here (docs/reliability.md, "Queued is not lost"):

- *queued* (``dispatched``): waiting for a worker. However long, it never spends a try and
  never stalls the run: a backlog is load, not failure. Its message may have been lost,
  though (a broker restart without persistence, a publish that failed after its commit, a
  worker that died holding it), so ``_queued_steps`` publishes it again for the **same** try
  (same token; the first claim wins, a copy changes nothing) when the broker lost its data
  (``broker.broker_lost_its_data``), or when it has waited ``redeliver_after()`` seconds,
  then twice that, four times... and the broker does not visibly hold it
  (``broker.held_step_messages``). A long queue is therefore never filled with copies of its
  own messages: a message still in the queue is never copied.
- *running*: started and heartbeating. When its heartbeat stops for the heartbeat timeout
  (its worker died), ``_dead_tries`` spends a try and sends the step again as a new one; out
  of tries, the run is stalled.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from audit.events import EventType
from audit.models import Event
from audit.services import SYSTEM, record_event
from tenants.models import LIVE_RUN_STATES, Condition, Tenant, TenantState, lock_tenant

from . import admission, broker, compensation, conditions, runs, statements
from .broker import publish_step
from .kinds import WORKING_STATE, kind_of
from .models import Run, RunKind, RunStatus, StepExecution, StepStatus

log = logging.getLogger(__name__)


@dataclass
class WatchdogReport:
    redispatched: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    orphaned_handles: list[str] = field(default_factory=list)
    compensations_resumed: list[str] = field(default_factory=list)
    decommissions_resumed: list[str] = field(default_factory=list)
    woken: int = 0


def redeliver_after() -> float:
    """Seconds a queued step waits before its message is suspected lost (then doubling)."""
    return float(settings.CONTROLPLANE_REDELIVER_AFTER or settings.CONTROLPLANE_HEARTBEAT_TIMEOUT)


# One pass at a time, fleet-wide: a pass that outlasts the interval (a big backlog, a slow
# database) must not be joined by the next beat's, and the next, each doing the same work.
_PASS_LOCK = 0x43505744  # "CPWD"


def run_watchdog(now: datetime | None = None) -> WatchdogReport:
    """One pass, or nothing (an empty report) while another pass, anywhere, is still at work.
    Each action is still claimed by a compare-and-swap: the lock saves work, it is not what
    makes two passes safe."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_PASS_LOCK])
        if not cursor.fetchone()[0]:
            log.info("a watchdog pass is still running elsewhere; this beat's pass is skipped")
            return WatchdogReport()
    try:
        return _pass(now or timezone.now())
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_PASS_LOCK])


def _pass(now: datetime) -> WatchdogReport:
    cutoff = now - timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT)
    report = WatchdogReport()
    _dead_tries(now, cutoff, report)
    _queued_steps(now, report)
    _stopped_compensations(now, cutoff, report)
    _orphaned_handles(now, report)
    _stopped_decommissions(now, cutoff, report)
    # Steps queued behind a provider's limit: as many as may start now (the per-minute budget
    # refills with time, which no step's release signals).
    report.woken = admission.wake_all() if admission.limits() else 0
    return report


def _live_steps() -> QuerySet[StepExecution]:
    # A paused run is left alone: its next step waits for unpause by design, and a try that was
    # at work when it paused is looked after again once it is unpaused.
    return StepExecution.objects.filter(
        run__status=RunStatus.RUNNING,
        run__compensating=False,
        run__stalled_at__isnull=True,
        run__paused_at__isnull=True,
    )


def _dead_tries(now: datetime, cutoff: datetime, report: WatchdogReport) -> None:
    """A started try whose heartbeat stopped (its worker died): spend a try, send a new one."""
    stale = _live_steps().filter(status=StepStatus.RUNNING, heartbeat_at__lt=cutoff)
    for step in stale.select_related("run"):
        with transaction.atomic():
            tenant = lock_tenant(step.run.tenant_id)
            if tenant.workflow_id != step.run_id or tenant.state != WORKING_STATE[step.run.kind]:
                continue
            last = step.heartbeat_at or now
            seconds = round((now - last).total_seconds(), 1)
            if step.tries >= settings.CONTROLPLANE_STEP_MAX_TRIES:
                if _flag_stalled(tenant, step, seconds, now):
                    report.stalled.append(str(step.run_id))
                continue
            new_token = uuid.uuid4()
            claimed = StepExecution.objects.filter(
                pk=step.pk, token=step.token, status=StepStatus.RUNNING, heartbeat_at__lt=cutoff
            ).update(
                # The lost try left no error; an earlier failed try's is in the audit log.
                **statements.new_try(token=new_token, due=now, clear_error=True)
            )
            if not claimed:
                continue
            conditions.set_condition(tenant, Condition.LOST)
            record_event(
                type=EventType.STEP_REDISPATCHED,
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


def republish_due(step: StepExecution, now: datetime, after: float) -> bool:
    """Whether a queued try has waited past its next re-publish point: ``after`` seconds after
    it was due, then ``2 * after``, ``4 * after``... (once per point). Stateless but for
    ``republished_at``, so a new try (a later ``due_at``) starts again from ``after``."""
    if step.due_at is None:
        return True
    waited = (now - step.due_at).total_seconds()
    if waited < after:
        return False
    point = step.due_at + timedelta(seconds=after * 2 ** int(math.log2(waited / after)))
    return step.republished_at is None or step.republished_at < point


def _queued_steps(now: datetime, report: WatchdogReport) -> None:
    """Publish again, for the same try, the queued steps whose message may have been lost."""
    after = redeliver_after()
    # Not the steps waiting for a provider's limit: their message is not in the broker by
    # design, and the limit's waking (provisioning.admission) sends them when they may start.
    queued = (
        _live_steps().filter(status=StepStatus.DISPATCHED, waiting_for="").select_related("run")
    )
    try:
        lost_everything = broker.broker_lost_its_data()
    except Exception as exc:  # noqa: BLE001 - a broker that does not answer: nothing to publish to
        log.warning("the watchdog cannot reach the broker (%s: %s)", type(exc).__name__, exc)
        return
    if lost_everything:
        # Every queued message is gone with the broker's data, however young, and so is every
        # retry's countdown (it is published again with what is left of its countdown).
        suspects = list(queued)
    else:
        suspects = [
            step
            for step in queued.filter(due_at__lt=now - timedelta(seconds=after))
            if republish_due(step, now, after)
        ]
        if suspects:
            try:
                held = broker.held_step_messages(settings.CONTROLPLANE_STEP_QUEUE, recent=after)
            except Exception as exc:  # noqa: BLE001 - gone since the marker: next pass
                log.warning("the watchdog cannot read the broker (%s: %s)", type(exc).__name__, exc)
                return
            if held is not None:
                suspects = [s for s in suspects if (s.pk, str(s.token)) not in held]
    for step in suspects:
        claimed = StepExecution.objects.filter(
            pk=step.pk,
            token=step.token,
            status=StepStatus.DISPATCHED,
            republished=step.republished,
        ).update(republished=step.republished + 1, republished_at=now)
        if not claimed:
            continue  # started meanwhile, or another watchdog took it
        countdown = max(0.0, (step.due_at - now).total_seconds()) if step.due_at else 0.0
        log.info(
            "step %s of run %s re-published for its try %s (%s)",
            step.name,
            step.run_id,
            step.tries,
            "the broker lost its data" if lost_everything else "its message is not in the broker",
        )
        transaction.on_commit(
            lambda n=step.name, s=step.pk, t=step.token, c=countdown, p=step.run.priority: (
                publish_step(n, s, t, c, priority=p)
            ),
            robust=True,
        )
        report.republished.append(f"{step.run_id}:{step.name}")


def _flag_stalled(tenant: Tenant, step: StepExecution, seconds: float, now: datetime) -> bool:
    """Record once that the run is stalled; the recorded error makes reset available."""
    claimed = Run.objects.filter(
        pk=step.run_id, status=RunStatus.RUNNING, stalled_at__isnull=True
    ).update(stalled_at=now)
    if not claimed:
        return False
    saga_kind = kind_of(step.run)
    what = "Provisioning" if saga_kind.name == RunKind.PROVISION else "The plan change"
    tenant.last_error = (
        f"{what} is stalled at {step.name}: no heartbeat for {seconds:g}s after "
        f"{step.tries} tries. {saga_kind.stalled_advice}"
    )
    tenant.condition = Condition.STALLED
    tenant.save(update_fields=["last_error", "condition", "updated_at"])
    record_event(
        type=EventType.PROVISIONING_STALLED,
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
    """A tenant in a state whose run should be live (``LIVE_RUN_STATES``: provisioning, a plan
    change's updating) whose handle names no live run.

    A provisioning tenant gets its error recorded, once: reset is its way out. An updating
    tenant has none (reset applies to provisioning only, cancel needs a live run), so its plan
    change is failed the way a failed step fails it (``_fail_orphaned_change``). Updating
    tenants an earlier version only flagged (their error recorded) are taken up too."""
    live = Run.objects.filter(pk=OuterRef("workflow_id"), status__in=runs.LIVE)
    orphaned = (
        Tenant.objects.filter(state__in=LIVE_RUN_STATES)
        .filter(Q(last_error="") | Q(state=TenantState.UPDATING))
        .exclude(Exists(live))
    )
    for tenant in orphaned:
        with transaction.atomic():
            locked = lock_tenant(tenant.pk)
            if locked.state not in LIVE_RUN_STATES or runs.live_run(locked) is not None:
                continue
            updating = locked.state == TenantState.UPDATING
            if locked.last_error and not updating:
                continue
            if not locked.last_error:
                record_event(
                    type=EventType.ORPHANED_HANDLE,
                    tenant_id=locked.id,
                    run_id=locked.workflow_id,
                    actor=SYSTEM,
                    data={"workflow_id": str(locked.workflow_id) if locked.workflow_id else None},
                )
            if updating:
                _fail_orphaned_change(locked)
            else:
                locked.last_error = (
                    f"The workflow handle {locked.workflow_id} names no live run. "
                    "Reset, then retry."
                )
                locked.condition = Condition.ORPHANED
                locked.save(update_fields=["last_error", "condition", "updated_at"])
            report.orphaned_handles.append(str(locked.id))


def _fail_orphaned_change(tenant: Tenant) -> None:
    """Fail a plan change whose run is gone, as a step out of tries fails it (tenant locked).

    The run the handle names is taken back (a compare-and-swap on its status) as a live run
    rolling back, and ``compensation.begin_compensation`` starts the rollback every failed
    change gets: each change of that run not yet reverted, newest first (the ledger's
    ``AllocationChange`` rows), then the tenant ``active`` on its old plan with
    ``tenant.plan_change.failed``, its error recorded (``change_failed``); a revert that keeps
    failing ends as it does for any failed change (``compensation_failed``, the change kept
    unreverted with its error). While it rolls back the run is live again, so the next pass
    does not come back here, and a compensation whose worker dies is sent again
    (``_stopped_compensations``).

    A handle naming no plan change run at all has nothing on the ledger to revert (a change
    row protects its run from deletion): the change is settled failed at once."""
    handle = tenant.workflow_id
    run = Run.objects.filter(pk=handle, tenant_id=tenant.pk, kind=RunKind.PLAN_CHANGE).first()
    gone = f"the run is {run.status}" if run is not None else "no such plan change run"
    error = (
        f"The workflow handle {handle} names no live run ({gone}): the plan change could "
        "not go on, so it was failed and what it changed reverted, newest first."
    )
    # The watchdog's earlier flag (an older version's) gives way to the change's own error,
    # recorded when it settles.
    tenant.last_error = ""
    tenant.save(update_fields=["last_error", "updated_at"])
    if run is None:
        started = (
            Event.objects.filter(
                tenant_id=tenant.pk, run_id=handle, type=EventType.PLAN_CHANGE_STARTED
            )
            .values_list("data", flat=True)
            .first()
            or {}
        )
        stand_in = Run(
            id=handle,
            tenant_id=tenant.pk,
            kind=RunKind.PLAN_CHANGE,
            params={"from": tenant.plan, "to": started.get("to", "(unknown)")},
            error=error,
        )
        compensation.SETTLE[RunKind.PLAN_CHANGE](
            tenant, stand_in, cancelled=False, failed=False, note=""
        )
        return
    claimed = (
        Run.objects.filter(pk=run.pk, status=run.status)
        .exclude(status__in=runs.LIVE)
        .update(status=RunStatus.RUNNING, finished_at=None)
    )
    if not claimed:
        return
    run.status = RunStatus.RUNNING
    compensation.begin_compensation(
        tenant,
        run,
        actor=SYSTEM,
        # The step at work when the run was lost (none: it had got to its end).
        failed_step=run.current_step or run.failed_step or kind_of(run).steps[-1],
        error=error,
    )


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
