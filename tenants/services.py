"""The operator operations. Every door (console, API, admin, commands) calls these and only these.

Each operation: opens one transaction, locks the tenant row, checks the transition (and the
actor's permission, when the actor is a user), writes the state, records the audit event and
schedules any task on commit. A refusal raises ``OperationError`` and changes nothing.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.events import EventType
from audit.services import record_event
from provisioning import compensation, conditions, runs, saga
from provisioning.faults import parse_faults, validate_faults
from provisioning.models import (
    PLAN_CHANGE_STEPS,
    STEPS,
    Run,
    RunKind,
    RunStatus,
    StepExecution,
    StepStatus,
)

from .actors import Actor
from .errors import ErrorCode, OperationError
from .grants import GRANTS
from .models import Condition, Plan, Tenant, TenantState, lock_tenant, normalise_slug, validate_slug

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
    return _handle_run(tenant)


def _handle_run(tenant: Tenant) -> Run | None:
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


def _locked(tenant_id: uuid.UUID | str) -> Tenant:
    return load_tenant(tenant_id, lock=True)


def _refuse_unless(
    guard: Callable[[Tenant, Run | None], str | None], tenant: Tenant, run: Run | None
) -> None:
    reason = guard(tenant, run)
    if reason is not None:
        raise OperationError(ErrorCode.INVALID_STATE, reason, {"state": tenant.state})


REASON_MAX_LENGTH = 500


def clean_reason(reason: Any) -> str:
    """An operator's reason for an operation: optional text, at most 500 characters.

    Trimmed; line breaks and tabs are kept, other control characters refused (a NUL cannot be
    stored, and a terminal escape in the audit feed is never meant).
    """
    if reason is None:
        return ""
    problem = ""
    if not isinstance(reason, str):
        problem = "The reason must be text."
    else:
        reason = reason.strip()
        if len(reason) > REASON_MAX_LENGTH:
            problem = f"A reason has at most {REASON_MAX_LENGTH} characters."
        elif any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t\r" for ch in reason):
            problem = "Control characters are not allowed in a reason."
    if problem:
        raise OperationError(ErrorCode.VALIDATION_ERROR, problem, {"reason": [problem]})
    return str(reason)


def _with_reason(data: dict[str, Any], reason: str) -> dict[str, Any]:
    """The first event of an operation carries the operator's reason, when one was given."""
    if reason:
        data["reason"] = reason
    return data


# --- create ---------------------------------------------------------------------------------


def validate_tenant_fields(*, slug: Any, name: Any, plan: Any, admin_email: Any) -> dict[str, str]:
    """Check and normalise the fields of a new tenant; raise with a message per bad field."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, str] = {}
    for key, value in (
        ("slug", slug),
        ("name", name),
        ("plan", plan),
        ("admin_email", admin_email),
    ):
        if not isinstance(value, str):
            errors.setdefault(key, []).append("This field is required and must be text.")
        elif any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
            # NUL and other control characters (or lone surrogates) are never meant, and
            # PostgreSQL refuses NUL: say so here rather than fail at the database.
            errors.setdefault(key, []).append("Control characters are not allowed.")
        elif any(unicodedata.category(ch) == "Cf" for ch in value):
            # Bidi overrides and zero-width characters (Unicode "format" characters) make a
            # name display as something else than it is ("Trojan Source"): one tenant could
            # look like another in every list. They are never needed in a name.
            errors.setdefault(key, []).append(
                "Invisible formatting characters (bidi controls such as U+202E, zero-width "
                "characters such as U+200B) are not allowed."
            )
    if not errors.get("slug"):
        slug = normalise_slug(slug)
        try:
            validate_slug(slug)
            clean["slug"] = slug
        except ValidationError as exc:
            errors["slug"] = list(exc.messages)
    if not errors.get("name"):
        trimmed = name.strip()
        if not 1 <= len(trimmed) <= 200:
            errors["name"] = ["A name has 1 to 200 characters (after trimming spaces)."]
        else:
            clean["name"] = trimmed
    if not errors.get("plan"):
        if plan not in Plan.values:
            errors["plan"] = [f"Choose one of {', '.join(Plan.values)}."]
        else:
            clean["plan"] = plan
    if not errors.get("admin_email"):
        email = admin_email.strip().lower()
        try:
            if len(email) > 254:
                raise ValidationError("too long")
            validate_email(email)
            clean["admin_email"] = email
        except ValidationError:
            errors["admin_email"] = ["Enter a valid e-mail address."]
    if errors:
        raise OperationError(ErrorCode.VALIDATION_ERROR, "Some fields are not valid.", errors)
    return clean


def clean_faults(faults: Any, steps: tuple[str, ...] = STEPS) -> dict[str, str]:
    # Text in the one syntax every door takes (step=fault pairs or a JSON object).
    try:
        faults = parse_faults(faults)
    except ValueError as exc:
        raise OperationError(ErrorCode.VALIDATION_ERROR, str(exc), {"faults": [str(exc)]}) from None
    if not faults:
        return {}
    if not settings.CONTROLPLANE_FAULT_INJECTION:
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            "Fault injection is off (CONTROLPLANE_FAULT_INJECTION).",
            {
                "faults": [
                    "Fault injection is not enabled on this control plane "
                    "(CONTROLPLANE_FAULT_INJECTION)."
                ]
            },
        )
    if not isinstance(faults, dict):
        try:
            return validate_faults(faults, steps)
        except ValueError as exc:
            raise OperationError(
                ErrorCode.VALIDATION_ERROR, str(exc), {"faults": [str(exc)]}
            ) from None
    # Every bad step at once, not the first one only.
    problems: list[str] = []
    clean: dict[str, str] = {}
    for step, fault in faults.items():
        try:
            clean.update(validate_faults({step: fault}, steps))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise OperationError(ErrorCode.VALIDATION_ERROR, "; ".join(problems), {"faults": problems})
    return clean


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
                tenant.save(update_fields=["state", "workflow_id", "condition", "updated_at"])
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
        tenant = _locked(tenant_id)
        run = _handle_run(tenant)
        _refuse_unless(why_not_retry, tenant, run)
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
    return tenant


def cancel_provisioning(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Ask the live run to stop and roll back.

    Under the tenant's lock: mark the run ``cancelling`` (which fences out every step still
    queued or working) and record the request; on commit the compensation task releases, newest
    first, everything the tenant holds and then moves it to pending. Racing ``mark_active``
    takes the same lock, so exactly one of the two wins.
    """
    reason = clean_reason(reason)
    with transaction.atomic():
        tenant = _locked(tenant_id)
        run = _handle_run(tenant)
        _refuse_unless(why_not_cancel, tenant, run)
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
        tenant = _locked(tenant_id)
        _refuse_unless(why_not_change_plan, tenant, _handle_run(tenant))
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
    return tenant


def reset_provisioning(*, tenant_id: uuid.UUID | str, actor: Actor, reason: str = "") -> Tenant:
    """Clear a wedged provisioning: orphan the run, clear handle and error, tenant to pending.

    Allocations are kept (the next run reuses them). The orphaned run's tasks that wake later
    can change nothing but the ledger.
    """
    reason = clean_reason(reason)
    try:
        with transaction.atomic():
            tenant = _locked(tenant_id)
            run = _handle_run(tenant)
            _refuse_unless(why_not_reset, tenant, run)
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
        tenant = _locked(tenant_id)
        _refuse_unless(guard, tenant, _handle_run(tenant))
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
        tenant = _locked(tenant_id)
        run = _handle_run(tenant)
        _refuse_unless(why_not_pause, tenant, run)
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
        tenant = _locked(tenant_id)
        run = _handle_run(tenant)
        _refuse_unless(why_not_unpause, tenant, run)
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
        tenant = _locked(tenant_id)
        _refuse_unless(why_not_decommission, tenant, _handle_run(tenant))
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
