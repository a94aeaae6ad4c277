"""The provisioning saga: starting a run and executing its steps (rolling back is in
``provisioning.compensation``).

The database is the authority, not Celery. A run is a sequence of step tasks where each step,
once its work is recorded, dispatches the next one in the same transaction (on commit: to the
broker, or to the task that is running, ``execute_chain``). Every
write a worker makes is fenced: it happens under the tenant's row lock and only while the run
is still the tenant's live run and the step's ``token`` is the try being answered. So a
cancelled, orphaned or superseded run, a redelivered message, or a try the watchdog gave up on
can change nothing but the ledger.

Execution of one step has three phases:

1. *claim* (transaction, tenant locked): check the fence, mark the step running, or finish it
   at once when the tenant already holds an allocation of its kind;
2. *work* (no transaction): the provider call, with a heartbeat thread beating;
3. *record* (transaction, tenant locked): write the allocation to the ledger whatever the run
   has become, then, if the fence still holds, complete the step and dispatch the next.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.events import EventType
from audit.services import SYSTEM, batched, record_event
from observability.logs import bound
from tenants.models import Condition, Tenant, TenantState

from . import admission, compensation, conditions, ledger, runs, statements
from .broker import publish_step
from .faults import apply_fault
from .heartbeat import Aborted, Heartbeat
from .kinds import KINDS, STEP_ALLOCATES, STEP_CHANGES, Change, kind_of
from .models import (
    Allocation,
    AllocationChange,
    Run,
    RunKind,
    RunStatus,
    StepExecution,
    StepStatus,
)
from .providers import ProviderError, TenantSpec, get_provider

log = logging.getLogger(__name__)

# --- starting and dispatching ---------------------------------------------------------------


def start_run(
    tenant: Tenant,
    *,
    actor: str,
    faults: dict[str, str] | None = None,
    kind: str = RunKind.PROVISION,
    params: dict[str, Any] | None = None,
    event_data: dict[str, Any] | None = None,
) -> Run:
    """Create a run of ``kind`` for a tenant just moved to the kind's working state
    (provisioning, updating) and dispatch its first step.

    Called inside the transaction that holds the tenant's row lock and moved it, which is also
    the one that writes ``workflow_id``: a tenant at work always has its handle. Records
    ``<kind's prefix>.started`` with ``data.attempt`` and ``event_data``.
    """
    saga_kind = KINDS[kind]
    steps = saga_kind.steps
    attempt = (Run.objects.filter(tenant=tenant).aggregate(m=Max("attempt"))["m"] or 0) + 1
    now = timezone.now()
    run = Run.objects.create(
        tenant=tenant,
        attempt=attempt,
        kind=kind,
        params=params or {},
        actor=actor,
        faults=faults or {},
        current_step=steps[0],
        heartbeat_at=now,
        priority=admission.current_priority(),
    )
    StepExecution.objects.bulk_create(
        StepExecution(run=run, name=name, position=i) for i, name in enumerate(steps)
    )
    # Both saved by the caller, in the save that moves the tenant to its working state.
    tenant.workflow_id = run.id
    tenant.condition = Condition.PROGRESSING
    record_event(
        type=saga_kind.started_event,
        tenant_id=tenant.id,
        run_id=run.id,
        actor=actor,
        data={**(event_data or {}), "attempt": attempt},
    )
    first = StepExecution.objects.get(run=run, name=steps[0])
    dispatch_step(first, priority=run.priority)
    return run


def dispatch_step(step: StepExecution, *, priority: int, countdown: float = 0) -> uuid.UUID:
    """Give the step a new try and send its message once the transaction commits.

    If the publish is lost (broker down at that moment, a crash), the step stays
    ``dispatched`` and the watchdog sends it again after the heartbeat timeout.
    """
    token = uuid.uuid4()
    now = timezone.now()
    statements.mark_dispatched(
        step.pk,
        run_id=step.run_id,
        name=step.name,
        token=token,
        due=now + timedelta(seconds=countdown),
        now=now,
    )
    _publish_on_commit(step.name, step.pk, token, countdown, priority=priority)
    return token


def _publish_on_commit(
    name: str, step_id: int, token: uuid.UUID, countdown: float = 0, *, priority: int
) -> None:
    transaction.on_commit(
        lambda: publish_step(name, step_id, token, countdown, priority=priority), robust=True
    )


# --- handing the next step on: to this task's chain, or to the broker -----------------------


class _Chain(threading.local):
    """The chain of steps the task on this thread is executing (``execute_chain``)."""

    until: float | None = None  # time.monotonic() after which nothing more is taken on
    handed: tuple[str, int, uuid.UUID, int] | None = None  # (name, step id, token, priority)


_chain = _Chain()


def _hand_on(nxt: statements.Advance, *, priority: int) -> None:
    """Once the transaction commits, the step it dispatched goes to the task's chain (executed
    next by this same task) when the chain is open and still young and the run is interactive
    (not the bulk lane); otherwise it is published to the broker, as every other dispatch is.

    Either way the step is ``dispatched`` with its try's token, committed: if this process dies
    before the chain claims it, it is a queued step whose message was lost, and the watchdog
    publishes it again after ``redeliver_after()`` (docs/architecture.md, "Chains")."""

    def hand_on() -> None:
        until = _chain.until
        if (
            until is not None
            and _chain.handed is None
            and priority == admission.INTERACTIVE
            and time.monotonic() < until
        ):
            _chain.handed = (nxt.next_name, nxt.next_id, nxt.token, priority)
        else:
            publish_step(nxt.next_name, nxt.next_id, nxt.token, priority=priority)

    transaction.on_commit(hand_on, robust=True)


def execute_chain(step_id: int, token: str | uuid.UUID, *, redelivered: bool = False) -> int:
    """The body of every step task: execute the step and then, while the chain is open, each
    step the last one handed on (``_hand_on``). Returns how many steps it executed.

    A step's message costs a publish, the worker's acknowledgement and a fetch from the broker
    before its claim: a third of a short step's time. A tenant's next step has nothing to
    wait for once its predecessor's record commits, so the task that recorded it takes it on
    for up to ``CONTROLPLANE_CHAIN_SECONDS`` (0: every step through the broker). Each step is
    still claimed, worked and recorded in its own transactions, with its intent committed
    before its provider is called; the chain only skips the trip through the broker. Bulk
    runs never chain: their steps go back to the broker, behind interactive work.

    A message ``redelivered`` (its worker died) goes to the try its chain had reached: the
    run's current step, when that is a later one (``_chain_reached``), is executed as a copy
    of its own message would be.
    """
    if redelivered:
        reached = _chain_reached(step_id)
        if reached is not None:
            log.info("redelivered step %s goes on where its chain stopped: step %s", *reached[:2])
            _, step_id, token = reached
    seconds = settings.CONTROLPLANE_CHAIN_SECONDS
    _chain.until = time.monotonic() + seconds if seconds > 0 else None
    _chain.handed = None
    done = 0
    try:
        execute_step(step_id, token)
        done += 1
        while _chain.handed is not None:
            name, step_id, token, _ = _chain.handed
            _chain.handed = None
            with bound(step=name, step_id=step_id):
                began = time.monotonic()
                execute_step(step_id, token)
                # What Celery logs of a task, for each step its chain executes.
                log.info("step %s executed in the chain in %.3fs", name, time.monotonic() - began)
            done += 1
        return done
    finally:
        _chain.until = None
        handed, _chain.handed = _chain.handed, None
        if handed is not None:
            # Handed on by a step whose execution then raised: to the broker after all.
            name, step_id, token, priority = handed
            try:
                publish_step(name, step_id, token, priority=priority)
            except Exception:  # noqa: BLE001 - the watchdog publishes it again
                log.exception("step %s could not be published; the watchdog will", name)


def _chain_reached(step_id: int) -> tuple[int, int, uuid.UUID] | None:
    """(head, step id, token) of the step a chain begun by ``step_id`` had reached: its run's
    current step, when that is later than ``step_id`` and dispatched or running."""
    head = (
        StepExecution.objects.filter(pk=step_id)
        .values("run_id", "position", "run__current_step")
        .first()
    )
    if head is None:
        return None
    reached = (
        StepExecution.objects.filter(
            run_id=head["run_id"],
            name=head["run__current_step"],
            position__gt=head["position"],
            status__in=(StepStatus.DISPATCHED, StepStatus.RUNNING),
        )
        .values_list("pk", "token")
        .first()
    )
    if reached is None or reached[1] is None:
        return None
    return step_id, reached[0], reached[1]


def _spec(tenant: Tenant) -> TenantSpec:
    return TenantSpec(
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        plan=tenant.plan,
        admin_email=tenant.admin_email,
    )


# --- executing a step -----------------------------------------------------------------------


@dataclass
class _Claim:
    step_id: int
    run_id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    tries: int
    fault: str
    spec: TenantSpec
    slot: int | None = None  # the provider slot this try holds (provisioning.admission)
    # A step that changes a held allocation (provisioning.kinds.Change): the ledger's record
    # of the change (its intent, written by the claim) and what it changes.
    change_id: int | None = None
    change_external_id: str = ""
    change_value: Any = None
    params: dict[str, Any] | None = None


@dataclass
class _Waiting:
    """The step may not start yet (a provider's limit): it is queued again, spending nothing."""

    kind: str


def execute_step(step_id: int, token: str | uuid.UUID) -> None:
    """Run one try of one step (the body of every step task)."""
    token = uuid.UUID(str(token))
    claim = _claim(step_id, token)
    if isinstance(claim, _Waiting):
        # Written down as waiting (committed). Had the slot it waited for been given back in
        # the meantime, its giver found no waiter to wake: look once more, now.
        if admission.slot_free(claim.kind):
            admission.wake(claim.kind)
        return
    if claim is None:
        return
    if claim.fault == "stall":
        # As if the worker vanished: no work, no heartbeat, no answer. The watchdog notices.
        log.info("step %s stalls (fault injection)", claim.name)
        return
    external_id: str | None = None
    kind = STEP_ALLOCATES.get(claim.name)
    try:
        outcome = _work(claim, token, kind)
        if outcome is None:
            return
        failed, external_id = outcome
        if failed is not None:
            _step_failed(step_id, token, failed.message, permanent=failed.permanent)
        elif claim.change_id is not None:
            _record_change(step_id, token, claim.change_id, external_id)
        else:
            _record(step_id, token, kind, external_id)
    finally:
        if claim.slot is not None and kind is not None:
            # The step is over, its answer recorded: its slot goes to the first waiter. (Held
            # through the record phase, so two steps of one slot never overlap, even by the
            # milliseconds of a commit.)
            admission.release(kind, claim.slot)
            admission.wake(kind)


@dataclass
class _Failure:
    message: str
    permanent: bool


def _work(
    claim: _Claim, token: uuid.UUID, kind: str | None
) -> tuple[_Failure | None, str | None] | None:
    """The try's work, outside any transaction: the provider call with a heartbeat beating.
    None when the run stopped being live meanwhile; else the failure or the provider's id."""
    step_id = claim.step_id
    external_id: str | None = None
    try:
        with Heartbeat(step_id, claim.run_id, token) as hb:
            if settings.CONTROLPLANE_STEP_DELAY:
                hb.sleep(settings.CONTROLPLANE_STEP_DELAY)
            apply_fault(claim.fault, step=claim.name, tries=claim.tries, hb=hb)
            hb.check()
            if kind is not None:
                external_id = get_provider(kind).allocate(claim.spec)
            elif claim.change_id is not None:
                change = STEP_CHANGES[claim.name]
                before = get_provider(change.kind).change(
                    claim.tenant_id, claim.change_external_id, change.attribute, claim.change_value
                )
                # Carried back to the record as text: what the allocation held before.
                external_id = json.dumps(before)
            elif claim.name in _CHECKS:
                _CHECKS[claim.name](claim.spec, claim.params or {})
    except Aborted:
        log.info("step %s of run %s stopped: the run is no longer live", claim.name, claim.run_id)
        return None
    except ProviderError as exc:
        return _Failure(str(exc), exc.permanent), None
    except Exception as exc:  # noqa: BLE001 - a crash in a provider is a failed try, not a loss
        log.exception("step %s crashed", claim.name)
        return _Failure(f"{type(exc).__name__}: {exc}", False), None
    return None, external_id


def _validate_request(spec: TenantSpec, params: dict[str, Any]) -> None:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from tenants.models import Plan, validate_slug

    try:
        validate_slug(spec.slug)
        validate_email(spec.admin_email)
    except ValidationError as exc:
        raise ProviderError("; ".join(exc.messages), permanent=True) from exc
    if spec.plan not in Plan.values:
        raise ProviderError(f"unknown plan {spec.plan!r}", permanent=True)


def _validate_change(spec: TenantSpec, params: dict[str, Any]) -> None:
    from tenants.models import Plan

    old, new = params.get("from"), params.get("to")
    if new not in Plan.values:
        raise ProviderError(f"unknown plan {new!r}", permanent=True)
    if old != spec.plan:
        raise ProviderError(
            f"the tenant is on {spec.plan!r}, not {old!r}: the change is out of date",
            permanent=True,
        )
    if new == old:
        raise ProviderError(f"the tenant is already on {new!r}", permanent=True)


# The read-only checks of every kind, by step name (provisioning.kinds: ``checks``).
_CHECKS = {"validate_request": _validate_request, "validate_change": _validate_change}


def _claim(step_id: int, token: uuid.UUID) -> _Claim | _Waiting | None:
    slot: int | None = None
    kind: str | None = None
    try:
        with transaction.atomic(), batched():  # its events in one statement
            locked = statements.lock_step(step_id)
            if locked is None:
                return None
            tenant, step = locked
            if not runs.fenced(tenant, step, token):
                log.info("step %s try %s is stale; nothing to do", step.name, token)
                return None
            now = timezone.now()
            if step.status == StepStatus.RUNNING and _alive(step, now):
                # A copy of a try that is at work (the watchdog re-published a message it could
                # not see in the broker, or the broker redelivered the message of a worker that
                # died a moment ago): change nothing now. Look again once the heartbeat would be
                # stale, so that a dead worker's redelivered try still runs (the same try).
                _look_again(step, token, now)
                return None
            kind = STEP_ALLOCATES.get(step.name)
            if kind in admission.limits() and not ledger.holds(tenant.id, kind):
                # A provider with limits: start only with a slot and within the rate; else
                # stay queued (this try, spending nothing) until woken.
                admitted = admission.admit(kind)
                if not admitted.admitted:
                    admission.mark_waiting(step.pk, admitted.waiting_for)
                    return _Waiting(kind)
                slot = admitted.slot
            claim = _start_claimed(tenant, step)
    except BaseException:
        if slot is not None and kind is not None:
            admission.release(kind, slot)  # a session lock outlives a rolled-back transaction
        raise
    if claim is not None:
        claim.slot = slot
    elif slot is not None and kind is not None:
        admission.release(kind, slot)
    return claim


def _start_claimed(tenant: Tenant, step: StepExecution) -> _Claim | None:
    """The claim's writes (tenant locked, fence checked, admitted): mark the try running,
    open the intent, record ``step_started``; or, the tenant holding an allocation of the
    step's kind already, reuse it and complete the step at once (None)."""
    run = step.run
    now = timezone.now()
    redelivered = step.status == StepStatus.RUNNING
    if not redelivered:
        step.started_at = now
    step.status = StepStatus.RUNNING
    kind = STEP_ALLOCATES.get(step.name)
    if not redelivered:
        # Recorded first, so that the start's statement writes it (the claim's batch).
        record_event(
            type=EventType.STEP_STARTED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=SYSTEM,
            data={"step": step.name, "attempt": step.tries},
        )
    # For a step that allocates: what the tenant holds of its kind, or (nothing held) the
    # intent is on the ledger before the provider is called, so that if this worker dies
    # after the call and before its answer is recorded, a rollback still finds what it made.
    # It commits (with ``step_started``) before the provider is called: the claim's commit.
    held = statements.start_try(step, tenant_id=tenant.id, kind=kind, now=now)
    # A try picked up: no longer retrying or lost (no write when already progressing).
    conditions.set_condition(
        tenant, Condition.PAUSED if run.paused_at is not None else Condition.PROGRESSING
    )
    if held is not None:
        # Left by an earlier attempt, a reset or a redelivered try: reuse it.
        _record_resource(EventType.RESOURCE_REUSED, tenant, run, kind, held.external_id)
        _complete_step(tenant, step, reused=True, now=now)
        return None
    claim = _Claim(
        step_id=step.pk,
        run_id=run.id,
        tenant_id=tenant.id,
        name=step.name,
        tries=step.tries,
        fault=str(run.faults.get(step.name, "")),
        spec=_spec(tenant),
        params=run.params,
    )
    change = STEP_CHANGES.get(step.name)
    if change is not None:
        return _claim_change(claim, tenant, run, step, change, now)
    return claim


def _claim_change(
    claim: _Claim,
    tenant: Tenant,
    run: Run,
    step: StepExecution,
    change: Change,
    now: datetime,
) -> _Claim | None:
    """A step that changes a held allocation: its intent goes on the ledger before the
    provider is called (kept as it is when an earlier try of the step wrote it)."""
    allocation = ledger.held_allocations(tenant.id).filter(kind=change.kind).first()
    if allocation is None:
        # Nothing to change: a permanent failure, rolled back like any other.
        transaction.on_commit(
            lambda: _step_failed(
                step.pk,
                step.token,
                f"the tenant holds no {change.kind} allocation to change",
                permanent=True,
            ),
            robust=True,
        )
        return None
    record, _ = AllocationChange.objects.get_or_create(
        run=run,
        step=step.name,
        defaults={
            "tenant_id": tenant.id,
            "allocation": allocation,
            "kind": change.kind,
            "attribute": change.attribute,
            "before": change.before(run.params),
            "after": change.value(run.params),
        },
    )
    claim.change_id = record.pk
    claim.change_external_id = allocation.external_id
    claim.change_value = record.after
    return claim


def _alive(step: StepExecution, now: datetime) -> bool:
    """A running try whose heartbeat is fresh: its worker is at work."""
    timeout = timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT)
    return step.heartbeat_at is not None and now - step.heartbeat_at < timeout


def _look_again(step: StepExecution, token: uuid.UUID, now: datetime) -> None:
    """Send the copy again for when the try's heartbeat would be stale (it is fresh now)."""
    beat = step.heartbeat_at or now
    stale_in = settings.CONTROLPLANE_HEARTBEAT_TIMEOUT - (now - beat).total_seconds()
    countdown = max(0.0, stale_in) + settings.CONTROLPLANE_HEARTBEAT_INTERVAL
    _publish_on_commit(step.name, step.pk, token, countdown, priority=step.run.priority)


def _record(step_id: int, token: uuid.UUID, kind: str | None, external_id: str | None) -> None:
    release_after: int | None = None
    with transaction.atomic(), batched():  # its events in one statement
        locked = statements.lock_step(step_id)
        if locked is None:
            return
        tenant, step = locked
        run = step.run
        now = timezone.now()
        fenced = runs.fenced(tenant, step, token)
        nxt = _next_step(step) if fenced else None
        if kind is not None and external_id is not None and nxt is not None:
            # The common answer: recorded, described and the next step given its try in one
            # statement (``_record_and_advance``).
            _record_and_advance(tenant, step, kind, external_id, nxt, now)
            return
        created = False
        allocation: Allocation | None = None
        if kind is not None and external_id is not None:
            # The ledger is written first, whatever the run has become: nothing is forgotten.
            allocation, created = statements.record_answer(
                tenant_id=tenant.id, run_id=run.id, kind=kind, external_id=external_id, now=now
            )
            if created:
                _record_resource(EventType.RESOURCE_ALLOCATED, tenant, run, kind, external_id)
            elif allocation.external_id != external_id:
                # A provider that is not idempotent made a second thing: keep the first,
                # release this one once the transaction commits.
                tid = tenant.id
                transaction.on_commit(
                    lambda: _release_duplicate(tid, kind, external_id), robust=True
                )
        if not fenced:
            if created and allocation is not None and _late_allocation_is_unwanted(tenant, run):
                release_after = allocation.pk
            log.info(
                "late answer from step %s of run %s recorded in the ledger only", step.name, run.id
            )
        elif step.name == "mark_active":
            _complete_step(tenant, step, reused=False, now=now)
        else:
            if allocation is not None and not created:
                _record_resource(
                    EventType.RESOURCE_REUSED, tenant, run, kind, allocation.external_id
                )
            reused = bool(allocation is not None and not created)
            _complete_step(tenant, step, reused=reused, now=now)
    if release_after is not None:
        ledger.release_allocation(release_after, run_id=run.id, actor=SYSTEM)


def _record_and_advance(
    tenant: Tenant,
    step: StepExecution,
    kind: str,
    external_id: str,
    nxt: statements.Advance,
    now: datetime,
) -> None:
    """Record a provider's answer when the fence holds and a next step follows, in one
    statement (``statements.record_answer`` with ``advance``): the answer on the ledger, the
    intent resolved, the step completed, the next step given its try, and the events.

    Which events depends on what the ledger held, and only that statement reads the ledger
    under the tenant's lock; so both outcomes are recorded, each with the condition under
    which the statement writes it (the ones not written take no place in the chain): made,
    ``resource.allocated`` then ``step_completed``; held already as the provider answered
    (an idempotent provider's second try), ``resource.reused`` then ``step_completed``
    (reused). Held as something else, the statement writes neither, and they are recorded
    here, naming what is held (one more statement: a provider that is not idempotent)."""
    run = step.run
    for made, when in ((True, statements.MADE), (False, statements.HELD_AS_ANSWERED)):
        resource = EventType.RESOURCE_ALLOCATED if made else EventType.RESOURCE_REUSED
        _record_resource(resource, tenant, run, kind, external_id, when=when)
    for made, when in ((True, statements.MADE), (False, statements.HELD_AS_ANSWERED)):
        _record_completed(tenant, step, reused=not made, now=now, when=when)
    allocation, created = statements.record_answer(
        tenant_id=tenant.id,
        run_id=run.id,
        kind=kind,
        external_id=external_id,
        now=now,
        advance=(step, nxt),
    )
    if not created and allocation.external_id != external_id:
        # A provider that is not idempotent made a second thing: keep the first, release
        # this one once the transaction commits.
        tid = tenant.id
        transaction.on_commit(lambda: _release_duplicate(tid, kind, external_id), robust=True)
        _record_resource(EventType.RESOURCE_REUSED, tenant, run, kind, allocation.external_id)
        _record_completed(tenant, step, reused=True, now=now)
    _hand_on(nxt, priority=run.priority)


def _late_allocation_is_unwanted(tenant: Tenant, run: Run) -> bool:
    """Whether a late step's new allocation should be released at once.

    Kept when a live run may reuse it or when the run was orphaned by a reset (reset keeps
    what was made). Released when the run's rollback already finished (cancelled, failed) and
    no live run followed, or when the tenant is going away. A run still rolling back reads the
    ledger again before it finishes, so it catches the allocation itself.
    """
    if tenant.state == TenantState.DECOMMISSIONED or tenant.decommission_requested_at:
        return True
    if run.status == RunStatus.CANCELLING or run.compensating:
        return False
    if runs.live_run(tenant) is not None:
        return False
    return run.status in (RunStatus.CANCELLED, RunStatus.FAILED)


def _release_duplicate(tenant_id: uuid.UUID, kind: str, external_id: str) -> None:
    try:
        get_provider(kind).release(tenant_id, external_id)
    except ProviderError:
        log.exception("could not release duplicate %s %s", kind, external_id)


def _record_resource(
    type: EventType,
    tenant: Tenant,
    run: Run,
    kind: str,
    external_id: str,
    *,
    when: str | None = None,
) -> None:
    """``tenant.resource.allocated`` (the provider made it) or ``.reused`` (the step found it
    held already: an earlier try, a reset, a redelivery)."""
    record_event(
        type=type,
        tenant_id=tenant.id,
        run_id=run.id,
        actor=SYSTEM,
        data={"kind": kind, "external_id": external_id},
        when=when,
    )


def _record_completed(
    tenant: Tenant, step: StepExecution, *, reused: bool, now: datetime, when: str | None = None
) -> None:
    """``tenant.provisioning.step_completed``, with how long the step took."""
    started = step.started_at or now
    duration_ms = int((now - started).total_seconds() * 1000)
    record_event(
        type=EventType.STEP_COMPLETED,
        tenant_id=tenant.id,
        run_id=step.run.id,
        actor=SYSTEM,
        data={"step": step.name, "reused": reused, "duration_ms": duration_ms},
        when=when,
    )


def _next_step(step: StepExecution) -> statements.Advance | None:
    """The try completing this step gives the next one, or None when completing it dispatches
    nothing: the last step, or a paused run (its next step waits, undispatched)."""
    steps = kind_of(step.run).steps
    if step.position + 1 >= len(steps) or step.run.paused_at is not None:
        return None
    return statements.Advance(
        next_id=step.next_id, next_name=steps[step.position + 1], token=uuid.uuid4()
    )


def _complete_step(tenant: Tenant, step: StepExecution, *, reused: bool, now: datetime) -> None:
    """Finish the step (tenant locked, fence checked) and dispatch the next, or finish the run."""
    run = step.run
    _record_completed(tenant, step, reused=reused, now=now)
    nxt = _next_step(step)
    if nxt is not None:
        # One statement with the events recorded so far (``step_completed``).
        statements.advance(step, nxt, tenant_id=tenant.id, reused=reused, now=now)
        _hand_on(nxt, priority=run.priority)
        return
    saga_kind = kind_of(run)
    last = step.position + 1 >= len(saga_kind.steps)
    if not last:
        # Paused: this step's answer is recorded, the next one becomes current but waits,
        # undispatched, until unpause sends it (tenants.services.unpause_run).
        StepExecution.objects.filter(pk=step.pk).update(
            status=StepStatus.COMPLETED, reused=reused, finished_at=now, heartbeat_at=now, error=""
        )
        Run.objects.filter(pk=run.id).update(
            current_step=saga_kind.steps[step.position + 1], heartbeat_at=now
        )
        conditions.set_condition(tenant, Condition.PAUSED)
        return
    StepExecution.objects.filter(pk=step.pk).update(
        status=StepStatus.COMPLETED, reused=reused, finished_at=now, heartbeat_at=now, error=""
    )
    FINISH[run.kind](tenant, run, now)


def _finish_provision(tenant: Tenant, run: Run, now: datetime) -> None:
    """The last step of a provisioning run: the tenant is active."""
    tenant.complete()
    tenant.activated_at = now
    tenant.last_error = ""
    tenant.failed_activity = ""
    tenant.condition = Condition.OK
    tenant.save(
        update_fields=[
            "state",
            "activated_at",
            "last_error",
            "failed_activity",
            "condition",
            "updated_at",
        ]
    )
    Run.objects.filter(pk=run.id).update(
        status=RunStatus.COMPLETED, finished_at=now, heartbeat_at=now, current_step=""
    )
    record_event(
        type=EventType.PROVISIONING_COMPLETED,
        tenant_id=tenant.id,
        run_id=run.id,
        actor=SYSTEM,
        data={"total_duration_seconds": round((now - run.started_at).total_seconds(), 3)},
    )


def _step_failed(step_id: int, token: uuid.UUID, error: str, *, permanent: bool) -> None:
    with transaction.atomic():
        step = runs.load_step(step_id)
        tenant = runs.lock_tenant(step.run.tenant_id)
        step = runs.load_step(step_id)
        if not runs.fenced(tenant, step, token):
            return
        run = step.run
        record_event(
            type=EventType.STEP_FAILED,
            tenant_id=tenant.id,
            run_id=run.id,
            actor=SYSTEM,
            data={"step": step.name, "error": error, "attempt": step.tries},
        )
        if not permanent and step.tries < settings.CONTROLPLANE_STEP_MAX_TRIES:
            if run.paused_at is not None:
                # Paused: the failed try is recorded; its next try waits for unpause.
                StepExecution.objects.filter(pk=step.pk).update(
                    error=error, status=StepStatus.WAITING, heartbeat_at=None
                )
                conditions.set_condition(tenant, Condition.PAUSED)
                return
            StepExecution.objects.filter(pk=step.pk).update(error=error)
            backoff = settings.CONTROLPLANE_RETRY_BACKOFF * 2 ** (step.tries - 1)
            dispatch_step(step, countdown=backoff, priority=run.priority)
            conditions.set_condition(tenant, Condition.RETRYING)
            return
        now = timezone.now()
        StepExecution.objects.filter(pk=step.pk).update(
            status=StepStatus.FAILED, error=error, finished_at=now
        )
        compensation.begin_compensation(
            tenant, run, actor=SYSTEM, failed_step=step.name, error=error
        )


def _finish_plan_change(tenant: Tenant, run: Run, now: datetime) -> None:
    """The last step of a plan change: the tenant is active on its new plan."""
    tenant.complete_change()
    tenant.plan = run.params["to"]
    tenant.last_error = ""
    tenant.failed_activity = ""
    tenant.condition = Condition.OK
    tenant.save(
        update_fields=["state", "plan", "last_error", "failed_activity", "condition", "updated_at"]
    )
    Run.objects.filter(pk=run.id).update(
        status=RunStatus.COMPLETED, finished_at=now, heartbeat_at=now, current_step=""
    )
    record_event(
        type=EventType.PLAN_CHANGE_COMPLETED,
        tenant_id=tenant.id,
        run_id=run.id,
        actor=SYSTEM,
        data={
            "from": run.params.get("from"),
            "to": run.params.get("to"),
            "total_duration_seconds": round((now - run.started_at).total_seconds(), 3),
        },
    )


# How a run of each kind ends once its last step is done (provisioning.kinds).
FINISH = {RunKind.PROVISION: _finish_provision, RunKind.PLAN_CHANGE: _finish_plan_change}


def _record_change(step_id: int, token: uuid.UUID, change_id: int, answer: str | None) -> None:
    """Record a change step's answer: the change is applied (whatever the run has become:
    the ledger first), then, if the fence still holds, the step completes. A run whose
    rollback already finished gets this late change reverted at once."""
    revert_after = False
    with transaction.atomic(), batched():
        locked = statements.lock_step(step_id)
        if locked is None:
            return
        tenant, step = locked
        run = step.run
        now = timezone.now()
        record = AllocationChange.objects.select_related("allocation").get(pk=change_id)
        first_before = record.status == AllocationChange.Status.INTENDED
        updates: dict[str, Any] = {"status": AllocationChange.Status.APPLIED, "applied_at": now}
        if first_before and answer is not None:
            # What the provider said it held before the first applied try: what a revert puts
            # back (a later try of the same step would read the new value).
            updates["before"] = json.loads(answer)
        if record.status != AllocationChange.Status.APPLIED:
            AllocationChange.objects.filter(pk=change_id).update(**updates)
            record_event(
                type=EventType.RESOURCE_CHANGED,
                tenant_id=tenant.id,
                run_id=run.id,
                actor=SYSTEM,
                data={
                    "kind": record.kind,
                    "external_id": record.allocation.external_id,
                    "attribute": record.attribute,
                    "from": updates.get("before", record.before),
                    "to": record.after,
                },
            )
        if runs.fenced(tenant, step, token):
            _complete_step(tenant, step, reused=False, now=now)
        else:
            # A run still rolling back reads the ledger again before it settles; a live run's
            # newer try applies the change itself. Only a finished run leaves it to us.
            revert_after = run.status in (
                RunStatus.CANCELLED,
                RunStatus.FAILED,
                RunStatus.ORPHANED,
            )
            log.info("late answer from step %s of run %s: change recorded", step.name, run.id)
    if revert_after:
        ledger.revert_change(change_id, run_id=run.id, actor=SYSTEM)
