"""Building tenants in every state through the services (never by hand-set fields)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import factory

from provisioning import compensation, saga
from provisioning.models import StepExecution, StepStatus
from provisioning.watchdog import run_watchdog
from tenants.models import Tenant
from tenants.services import (
    Actor,
    cancel_provisioning,
    create_tenant,
    decommission_tenant,
    reset_provisioning,
    suspend_tenant,
)

from .conftest import drive, drive_compensation

ACTOR = Actor.shell("tester")
_counter = itertools.count(1)


class TenantFields(factory.DictFactory):
    slug = factory.Sequence(lambda n: f"tenant-{n:05d}")
    name = factory.Faker("company")
    plan = factory.Iterator(["starter", "growth", "enterprise"])
    admin_email = factory.Sequence(lambda n: f"admin{n}@example.test")


def new_tenant(
    *, start: bool = True, faults: dict[str, str] | None = None, **fields: Any
) -> Tenant:
    data = TenantFields(**fields)
    return create_tenant(actor=ACTOR, start=start, faults=faults, **data)


def reload(tenant: Tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


def active_tenant(**fields: Any) -> Tenant:
    tenant = new_tenant(**fields)
    drive(tenant.workflow_id)
    tenant = reload(tenant)
    assert tenant.state == "active", tenant.last_error
    return tenant


def failed_tenant(step: str = "create_database", **fields: Any) -> Tenant:
    tenant = new_tenant(faults={step: "fail"}, **fields)
    run_until_compensation(tenant)
    tenant = reload(tenant)
    assert tenant.state == "failed"
    return tenant


def run_until_compensation(tenant: Tenant) -> None:
    """Drive a run whose steps retry (backoff countdowns are ignored inline)."""
    drive(tenant.workflow_id)
    drive_compensation(tenant.workflow_id)


def provisioning_tenant(**fields: Any) -> Tenant:
    """Provisioning, with the first steps done and allocate_identity dispatched."""
    tenant = new_tenant(**fields)
    _drive_until(tenant, "allocate_identity")
    return reload(tenant)


def _drive_until(tenant: Tenant, stop_at: str) -> None:
    for _ in range(20):
        step = StepExecution.objects.filter(
            run_id=tenant.workflow_id, status=StepStatus.DISPATCHED
        ).first()
        if step is None or step.name == stop_at:
            return
        saga.execute_step(step.pk, step.token)


def paused_tenant(**fields: Any) -> Tenant:
    """Provisioning, its run paused after validate_request and allocate_storage were dispatched
    (allocate_identity waits, undispatched, for unpause)."""
    from tenants.services import pause_run

    tenant = new_tenant(**fields)
    _drive_until(tenant, "allocate_storage")
    pause_run(tenant_id=tenant.id, actor=ACTOR)
    _drive_until(tenant, "no step")  # the step at work finishes; nothing is dispatched after
    return reload(tenant)


def stalled_tenant(settings: Any, step: str = "create_database", **fields: Any) -> Tenant:
    """Provisioning with a recorded error: the step stalled on every try, watchdog flagged it."""
    import time_machine
    from django.utils import timezone

    tenant = new_tenant(faults={step: "stall"}, **fields)
    for _ in range(settings.CONTROLPLANE_STEP_MAX_TRIES + 1):
        drive(tenant.workflow_id)
        later = timezone.now() + timezone.timedelta(
            seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT * 2
        )
        with time_machine.travel(later, tick=False):
            run_watchdog()
    tenant = reload(tenant)
    assert tenant.state == "provisioning" and tenant.last_error, tenant.last_error
    return tenant


def cancelled_tenant(**fields: Any) -> Tenant:
    tenant = provisioning_tenant(**fields)
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive_compensation(tenant.workflow_id)
    tenant = reload(tenant)
    assert tenant.state == "pending"
    return tenant


def pending_tenant(**fields: Any) -> Tenant:
    return new_tenant(start=False, **fields)


def pending_with_error(settings: Any, **fields: Any) -> Tenant:
    """Pending with a recorded error: what a cancel leaves when a release keeps failing."""
    providers = dict(settings.CONTROLPLANE_PROVIDERS)
    settings.CONTROLPLANE_PROVIDERS = {**providers, "dns": "tests.providers.DnsThatWillNotRelease"}
    settings.CONTROLPLANE_RELEASE_MAX_TRIES = 1
    try:
        tenant = new_tenant(**fields)
        _drive_until(tenant, "setup_billing")
        cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
        drive_compensation(tenant.workflow_id)
    finally:
        settings.CONTROLPLANE_PROVIDERS = providers
    tenant = reload(tenant)
    assert tenant.state == "pending" and tenant.last_error
    return tenant


def suspended_tenant(**fields: Any) -> Tenant:
    tenant = active_tenant(**fields)
    return suspend_tenant(tenant_id=tenant.id, actor=ACTOR)


def decommissioned_tenant(**fields: Any) -> Tenant:
    tenant = active_tenant(**fields)
    decommission_tenant(tenant_id=tenant.id, actor=ACTOR)
    compensation.decommission_tenant(tenant.id)
    return reload(tenant)


def decommissioning_tenant(**fields: Any) -> Tenant:
    """Decommission asked for, its releases not yet run."""
    tenant = active_tenant(**fields)
    return decommission_tenant(tenant_id=tenant.id, actor=ACTOR)


def reset_tenant(settings: Any, **fields: Any) -> Tenant:
    tenant = stalled_tenant(settings, **fields)
    return reset_provisioning(tenant_id=tenant.id, actor=ACTOR)


# Every situation an operator meets, built through the services, and what the contract allows
# in each: shared by the service, API and console tests so they check one table.
SITUATIONS: dict[str, Callable[[Any], Tenant]] = {
    "pending": lambda s: pending_tenant(),
    "pending_with_error": lambda s: pending_with_error(s),
    "provisioning": lambda s: provisioning_tenant(),
    "provisioning_stalled": lambda s: stalled_tenant(s),
    "paused": lambda s: paused_tenant(),
    "active": lambda s: active_tenant(),
    "failed": lambda s: failed_tenant(),
    "suspended": lambda s: suspended_tenant(),
    "decommissioned": lambda s: decommissioned_tenant(),
    "cancelled": lambda s: cancelled_tenant(),
    "decommissioning": lambda s: decommissioning_tenant(),
    "updating": lambda s: updating_tenant(),
    "change_failed": lambda s: change_failed_tenant(),
}
ALLOWED_ACTIONS: dict[str, set[str]] = {
    "pending": {"retry", "decommission"},
    "pending_with_error": {"reset", "decommission"},
    "provisioning": {"cancel", "pause"},
    "paused": {"cancel", "unpause", "reset"},
    "provisioning_stalled": {"cancel", "reset"},
    "active": {"suspend", "decommission", "change_plan"},
    "failed": {"retry", "decommission"},
    "suspended": {"resume", "decommission"},
    "decommissioned": set(),
    "cancelled": {"retry", "decommission"},
    "decommissioning": set(),
    "updating": {"cancel", "pause"},
    "change_failed": {"suspend", "decommission", "change_plan"},
}
# The console tests' make_state names some situations differently.
CONSOLE_KINDS = {"pending_error": "pending_with_error", "stalled": "provisioning_stalled"}


def updating_tenant(plan: str = "growth", faults: Any = None, **fields: Any) -> Tenant:
    """An active tenant whose plan change (to ``plan``) has started and not run a step yet."""
    from tenants.services import change_plan

    fields.setdefault("plan", "starter" if plan != "starter" else "growth")
    tenant = active_tenant(**fields)
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan=plan, faults=faults)
    return reload(tenant)


def change_failed_tenant(plan: str = "growth", **fields: Any) -> Tenant:
    """Active on its old plan after a plan change that failed at ``change_billing_plan``."""
    tenant = updating_tenant(plan=plan, faults={"change_billing_plan": "fail"}, **fields)
    run_until_compensation(tenant)
    return reload(tenant)


def options_for(action: str, tenant: Tenant) -> dict[str, str]:
    """The arguments an operation's row declares (``Operation.options``), filled for
    ``tenant``: change_plan gets a plan other than the tenant's own."""
    if action != "change_plan":
        return {}
    return {"plan": "enterprise" if tenant.plan != "enterprise" else "starter"}
