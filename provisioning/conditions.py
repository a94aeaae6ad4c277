"""A tenant's condition: what it needs from an operator, derived in one place.

``derive_condition`` is the rule (the contract's "Conditions" table), a pure function of the
tenant, the run its handle names, that run's current step and whether a held allocation
carries a release error. The result is stored on ``Tenant.condition`` so the fleet can be
filtered by it with an index; the transactions that change an input keep it exact by calling,
at their end and with the tenant row locked, either

- ``set_condition(tenant, value)`` where the new value is known without reading anything
  (a step claimed: progressing; a try failed with tries left: retrying; ...), or
- ``refresh_condition(tenant)``, which reads the inputs again and derives it.

Both write only when the value changes, so the common path of a saga step costs nothing.
Every call site is listed in ``docs/architecture.md`` ("Conditions").

One input is time: a step whose heartbeat went stale is still ``progressing`` here until the
watchdog acts on it (within one watchdog interval), because nothing else writes then.
"""

from __future__ import annotations

from django.db.models import Q

from tenants.models import Condition, Tenant, TenantState

from .models import LIVE_RUN_STATUSES, Allocation, Run, RunStatus, StepExecution, StepStatus

C = Condition
S = TenantState


def step_condition(step: StepExecution | None) -> str:
    """Progressing, retrying or lost: what the live run's current step is doing."""
    if step is None or step.status != StepStatus.DISPATCHED or step.tries <= 1:
        return C.PROGRESSING
    # A try that failed leaves its error on the row and waits out its backoff (retrying);
    # a try the watchdog found lost is sent again with the error cleared (lost).
    return C.RETRYING if step.error else C.LOST


def derive_condition(
    tenant: Tenant,
    run: Run | None,
    step: StepExecution | None,
    *,
    release_failed: bool,
) -> str:
    """The contract's condition. ``run`` is the run the handle names (or None), ``step`` its
    current step, ``release_failed`` whether a held allocation has a release error."""
    if tenant.state == S.DECOMMISSIONED:
        return C.OK
    if tenant.decommission_requested_at is not None and not tenant.last_error:
        return C.DECOMMISSIONING
    if tenant.state in (S.PROVISIONING, S.UPDATING):
        if tenant.last_error:
            # The watchdog records an error on a provisioning tenant for two reasons only.
            if run is not None and run.stalled_at is not None and run.status in LIVE_RUN_STATUSES:
                return C.STALLED
            return C.ORPHANED
        if run is not None and run.status == RunStatus.CANCELLING:
            return C.CANCELLING
        if run is not None and run.status == RunStatus.RUNNING:
            if run.compensating:
                return C.ROLLING_BACK
            return C.PAUSED if run.paused_at is not None else step_condition(step)
        # A handle naming no live run, not yet flagged by the watchdog: it will be.
        return C.PROGRESSING
    if release_failed or tenant.decommission_requested_at is not None:
        # Something is still held with its error (after a rollback, or a decommission that
        # could not release everything).
        return C.RELEASE_FAILED
    if tenant.state == S.FAILED:
        return C.FAILED
    if tenant.state == S.ACTIVE and tenant.last_error:
        # Only a plan change that failed (or could not revert) leaves an error on an active
        # tenant; the next change clears it.
        return C.CHANGE_FAILED
    return C.OK


def compute_condition(tenant: Tenant) -> str:
    """Read the inputs of ``derive_condition`` for one tenant (at most three queries)."""
    run = step = None
    working = tenant.state in (S.PROVISIONING, S.UPDATING)
    if working and tenant.workflow_id is not None:
        run = Run.objects.filter(pk=tenant.workflow_id).first()
        if run is not None and run.current_step:
            step = StepExecution.objects.filter(run=run, name=run.current_step).first()
    release_failed = False
    if not working:
        release_failed = (
            Allocation.objects.filter(tenant_id=tenant.pk, released_at__isnull=True)
            .exclude(release_error="")
            .exists()
        )
    return derive_condition(tenant, run, step, release_failed=release_failed)


def set_condition(tenant: Tenant, value: str) -> None:
    """Store a condition the caller knows (tenant row locked); no write when unchanged."""
    if tenant.condition != value:
        Tenant.objects.filter(pk=tenant.pk).update(condition=value)
        tenant.condition = value


def refresh_condition(tenant: Tenant) -> str:
    """Derive the condition again from the rows and store it (tenant row locked)."""
    value = compute_condition(tenant)
    set_condition(tenant, value)
    return value


def drifted() -> list[tuple[str, str, str]]:
    """Tenants whose stored condition differs from the derived one: ``(slug, stored, derived)``.

    For tests and ``manage.py tenant conditions --check``; reads every tenant, so not for a
    request path.
    """
    out = []
    for tenant in Tenant.objects.filter(~Q(state=S.DECOMMISSIONED) | ~Q(condition=C.OK)):
        value = compute_condition(tenant)
        if value != tenant.condition:
            out.append((tenant.slug, tenant.condition, value))
    return out
