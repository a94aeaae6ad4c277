"""The plan change saga called directly, in this process: its steps, the ledger's record of
each change, cancel and failure reverting newest first, fencing, refusals."""

from __future__ import annotations

import pytest

from audit.models import Event
from provisioning import ledger
from provisioning.models import Allocation, AllocationChange, Run, StepExecution
from provisioning.providers import get_provider
from provisioning.watchdog import run_watchdog
from tenants.errors import OperationError
from tenants.models import Tenant
from tenants.services import Actor, cancel_provisioning, change_plan

from .. import factories as f
from ..conftest import drive, drive_compensation

pytestmark = pytest.mark.django_db
ACTOR = Actor.shell("tester")


def types(tenant) -> list[str]:
    return list(
        Event.objects.filter(tenant_id=tenant.id).order_by("id").values_list("type", flat=True)
    )


def snapshot(tenant: Tenant) -> dict:
    """Every held allocation (row id, kind, external id) and what a plan decides of them, as
    the providers report it."""
    held = {
        a.kind: (a.pk, a.external_id)
        for a in Allocation.objects.filter(tenant=tenant, released_at__isnull=True)
    }
    db = held["database"][1]
    billing = held["billing"][1]
    return {
        "held": held,
        "size_gb": get_provider("database").read(tenant.id, db, "size_gb"),
        "billing_plan": get_provider("billing").read(tenant.id, billing, "plan"),
        "released": Allocation.objects.filter(tenant=tenant, released_at__isnull=False).count(),
    }


def test_a_change_completes_active_on_the_new_plan(fast_saga):
    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="growth", reason="bigger")
    tenant = f.reload(tenant)
    assert tenant.state == "updating"
    assert tenant.plan == "starter"
    run = Run.objects.get(pk=tenant.workflow_id)
    assert run.kind == "plan_change"
    assert run.params == {"from": "starter", "to": "growth"}
    assert drive(run.id) == 4
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "growth", "ok")
    after = snapshot(tenant)
    assert after["held"] == before["held"]  # the same allocations, changed in place
    assert (after["size_gb"], after["billing_plan"]) == (10, "growth")
    evs = [
        e
        for e in types(tenant)[types(tenant).index("tenant.plan_change.started") :]
        if e.startswith("tenant.plan_change") or e.startswith("tenant.resource")
    ]
    assert evs == [
        "tenant.plan_change.started",
        "tenant.resource.changed",
        "tenant.resource.changed",
        "tenant.plan_change.completed",
    ]
    started = Event.objects.get(tenant_id=tenant.id, type="tenant.plan_change.started")
    assert started.data["from"] == "starter"
    assert started.data["to"] == "growth"
    assert started.data["reason"] == "bigger"
    changes = AllocationChange.objects.filter(run=run).order_by("id")
    assert [(c.kind, c.attribute, c.before, c.after, c.status) for c in changes] == [
        ("database", "size_gb", 1, 10, "applied"),
        ("billing", "plan", "starter", "growth", "applied"),
    ]
    # A second change goes on from there, and back.
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="enterprise")
    drive(f.reload(tenant).workflow_id)
    assert snapshot(tenant)["size_gb"] == 100
    assert f.reload(tenant).plan == "enterprise"


def test_a_failed_change_reverts_and_needs_attention(fast_saga):
    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    change_plan(
        tenant_id=tenant.id, actor=ACTOR, plan="growth", faults={"change_billing_plan": "fail"}
    )
    run_id = f.reload(tenant).workflow_id
    drive(run_id)
    drive_compensation(run_id)
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan) == ("active", "starter")
    assert tenant.condition == "change_failed"
    assert tenant.needs_attention
    assert "injected failure" in tenant.last_error
    assert tenant.failed_activity == "change_billing_plan"
    assert snapshot(tenant) == before
    assert Run.objects.get(pk=run_id).status == "failed"
    assert not ledger.unreverted_changes(run_id).exists()
    failed = Event.objects.get(tenant_id=tenant.id, type="tenant.plan_change.failed")
    assert failed.data["error"] == "injected failure in change_billing_plan"
    assert types(tenant)[-1] == "tenant.plan_change.failed"
    # The next change clears it, whether or not it succeeds later.
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="growth")
    tenant = f.reload(tenant)
    assert (tenant.last_error, tenant.condition) == ("", "progressing")
    drive(tenant.workflow_id)
    assert f.reload(tenant).condition == "ok"


def test_a_cancel_mid_way_reverts_newest_first(fast_saga):
    tenant = f.active_tenant(plan="growth")
    before = snapshot(tenant)
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="enterprise")
    run_id = f.reload(tenant).workflow_id
    drive(run_id, max_steps=3)  # validate, resize, billing: apply_plan is dispatched
    assert snapshot(tenant)["size_gb"] == 100
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR, reason="not today")
    assert f.reload(tenant).condition == "cancelling"
    # The cancelled run's queued step can do nothing now.
    step = StepExecution.objects.get(run_id=run_id, name="apply_plan")
    from provisioning import saga

    saga.execute_step(step.pk, step.token)
    drive_compensation(run_id)
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "growth", "ok")
    assert snapshot(tenant) == before
    reverted = list(
        Event.objects.filter(tenant_id=tenant.id, type="tenant.resource.change_reverted")
        .order_by("id")
        .values_list("data__kind", flat=True)
    )
    assert reverted == ["billing", "database"]
    assert types(tenant)[-1] == "tenant.plan_change.cancelled"
    assert Run.objects.get(pk=run_id).status == "cancelled"


def test_a_late_change_after_the_rollback_is_reverted_too(fast_saga):
    """A resize whose worker answers after the cancel's rollback finished: reverted at once."""
    from provisioning import saga

    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="growth")
    run_id = f.reload(tenant).workflow_id
    drive(run_id, max_steps=1)
    step = StepExecution.objects.get(run_id=run_id, name="resize_database")
    claim = saga._claim(step.pk, step.token)  # claimed: the intent is on the ledger
    assert AllocationChange.objects.get(run_id=run_id).status == "intended"
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive_compensation(run_id)
    assert f.reload(tenant).state == "active"
    outcome = saga._work(claim, step.token, None)  # the provider call lands late
    saga._record_change(step.pk, step.token, claim.change_id, outcome[1])
    assert snapshot(tenant) == before
    assert not ledger.unreverted_changes(run_id).exists()


def test_refusals_change_nothing(fast_saga):
    tenant = f.active_tenant(plan="starter")
    n = Event.objects.count()
    with pytest.raises(OperationError) as same:
        change_plan(tenant_id=tenant.id, actor=ACTOR, plan="starter")
    assert same.value.code == "invalid_state"
    assert "already on the starter plan" in same.value.message
    with pytest.raises(OperationError) as bad:
        change_plan(tenant_id=tenant.id, actor=ACTOR, plan="platinum")
    assert bad.value.code == "validation_error"
    with pytest.raises(OperationError) as bad_fault:
        change_plan(
            tenant_id=tenant.id, actor=ACTOR, plan="growth", faults={"create_database": "fail"}
        )
    assert bad_fault.value.code == "validation_error"
    suspended = f.suspended_tenant()
    with pytest.raises(OperationError) as wrong:
        change_plan(tenant_id=suspended.id, actor=ACTOR, plan="growth")
    assert wrong.value.code == "invalid_state"
    updating = f.updating_tenant()
    n = Event.objects.count()
    with pytest.raises(OperationError) as twice:
        change_plan(tenant_id=updating.id, actor=ACTOR, plan="enterprise")
    assert "applies to active tenants only; this one is updating" in twice.value.message
    assert Event.objects.count() == n
    assert f.reload(tenant).state == "active"
    assert Run.objects.filter(tenant=tenant).count() == 1


def test_a_stalled_change_is_flagged_and_cancel_gets_it_out(fast_saga):
    import time_machine
    from django.utils import timezone

    tenant = f.updating_tenant(faults={"resize_database": "stall"})
    run_id = tenant.workflow_id
    before_resize = StepExecution.objects.get(run_id=run_id, name="validate_change")
    drive(run_id)
    assert before_resize.pk
    later = timezone.now()
    for _ in range(5):
        later += timezone.timedelta(seconds=5)
        with time_machine.travel(later, tick=False):
            run_watchdog()
        drive(run_id)
    tenant = f.reload(tenant)
    assert tenant.condition == "stalled"
    assert "Cancel it to revert" in tenant.last_error
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive_compensation(run_id)
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "starter", "ok")


# --- an orphaned handle while updating: the watchdog fails the change ------------------------


def lose_the_run_mid_change(tenant: Tenant) -> Run:
    """A change from starter to growth with both changes applied (apply_plan dispatched), whose
    run the workflow engine then lost (cluster reset, manual cleanup): its handle names no live
    run."""
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="growth")
    run_id = f.reload(tenant).workflow_id
    drive(run_id, max_steps=3)  # validate, resize, billing
    assert (snapshot(tenant)["size_gb"], snapshot(tenant)["billing_plan"]) == (10, "growth")
    Run.objects.filter(pk=run_id).update(status="orphaned")
    return Run.objects.get(pk=run_id)


def test_an_orphaned_change_is_failed_by_the_watchdog_and_reverted_newest_first(fast_saga):
    from provisioning import conditions, saga
    from tenants.selectors import tenant_detail

    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    run = lose_the_run_mid_change(tenant)
    report = run_watchdog()
    assert report.orphaned_handles == [str(tenant.id)]
    # Taken back as a failed run rolling back: the next pass finds a live run, nothing to do.
    assert run_watchdog().orphaned_handles == []
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.condition, tenant.last_error) == ("updating", "rolling_back", "")
    detail = tenant_detail(tenant.id)
    assert detail.recommendation.action == "wait"
    assert conditions.drifted() == []
    row = Run.objects.get(pk=run.id)
    assert (row.status, row.compensating, row.failed_step) == ("running", True, "apply_plan")
    # The lost run's queued step can do nothing now.
    step = StepExecution.objects.get(run_id=run.id, name="apply_plan")
    saga.execute_step(step.pk, step.token)
    drive_compensation(run.id)  # the compensation task the watchdog sent on its commit

    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "starter", "change_failed")
    assert tenant.needs_attention
    assert tenant.failed_activity == "apply_plan"
    assert tenant.last_error.startswith("The change from starter to growth failed at apply_plan:")
    assert f"The workflow handle {run.id} names no live run (the run is orphaned)" in (
        tenant.last_error
    )
    assert snapshot(tenant) == before  # same rows, the old plan's sizes
    assert Run.objects.get(pk=run.id).status == "failed"
    assert not ledger.unreverted_changes(run.id).exists()
    reverted = Event.objects.filter(
        tenant_id=tenant.id, type="tenant.resource.change_reverted"
    ).order_by("id")
    assert [(e.data["kind"], e.data["to"]) for e in reverted] == [
        ("billing", "starter"),
        ("database", 1),
    ]
    feed = types(tenant)
    assert feed[feed.index("tenant.provisioning.orphaned_handle") :] == [
        "tenant.provisioning.orphaned_handle",
        "tenant.provisioning.compensation_started",
        "tenant.resource.change_reverted",
        "tenant.resource.change_reverted",
        "tenant.provisioning.compensation_completed",
        "tenant.plan_change.failed",
    ]
    failed = Event.objects.get(tenant_id=tenant.id, type="tenant.plan_change.failed")
    assert (failed.data["from"], failed.data["to"]) == ("starter", "growth")
    assert failed.data["failed_activity"] == "apply_plan"
    assert "names no live run" in failed.data["error"]
    assert conditions.drifted() == []
    # The operator's way out is the usual one: the table says change plan, and it works.
    detail = tenant_detail(tenant.id)
    assert detail.recommendation.action == "change_plan"
    assert "change_plan" in detail.available_actions
    change_plan(tenant_id=tenant.id, actor=ACTOR, plan="growth")
    drive(f.reload(tenant).workflow_id)
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "growth", "ok")
    assert snapshot(tenant)["size_gb"] == 10


def test_an_orphaned_change_whose_revert_keeps_failing_ends_as_a_failed_revert(fast_saga):
    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    run = lose_the_run_mid_change(tenant)
    run_watchdog()
    providers = dict(fast_saga.CONTROLPLANE_PROVIDERS)
    fast_saga.CONTROLPLANE_PROVIDERS = {
        **providers,
        "billing": "tests.providers.BillingThatWillNotChange",
    }
    fast_saga.CONTROLPLANE_RELEASE_MAX_TRIES = 1
    drive_compensation(run.id)
    fast_saga.CONTROLPLANE_PROVIDERS = providers
    tenant = f.reload(tenant)
    # As any plan change whose revert failed: active on the old plan, the error and what could
    # not be reverted recorded (change_failed), the change kept unreverted with its error.
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "starter", "change_failed")
    assert "names no live run" in tenant.last_error
    assert "Could not revert: billing plan back to 'starter' (billing API answered 503" in (
        tenant.last_error
    )
    after = snapshot(tenant)
    assert after["held"] == before["held"]
    assert (after["size_gb"], after["billing_plan"]) == (1, "growth")  # shown as it is
    assert Run.objects.get(pk=run.id).status == "failed"
    left = ledger.unreverted_changes(run.id).get()
    assert (left.kind, left.status, left.before) == ("billing", "applied", "starter")
    assert "503" in left.revert_error
    compensation_failed = Event.objects.get(
        tenant_id=tenant.id, type="tenant.provisioning.compensation_failed"
    )
    assert [x["kind"] for x in compensation_failed.data["failed"]] == ["billing"]
    assert types(tenant)[-1] == "tenant.plan_change.failed"
    assert run_watchdog().orphaned_handles == []


def test_a_handle_naming_no_run_at_all_fails_the_change_at_once(fast_saga):
    """The run row itself is gone (deleted by hand before any change was made: a change row
    protects its run): nothing on the ledger to revert, so the change is failed at once."""
    tenant = f.updating_tenant(plan="growth")  # starter -> growth, validate_change dispatched
    before = snapshot(tenant)
    run_id = tenant.workflow_id
    Run.objects.filter(pk=run_id).delete()
    assert run_watchdog().orphaned_handles == [str(tenant.id)]
    assert run_watchdog().orphaned_handles == []
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "starter", "change_failed")
    assert tenant.last_error.startswith(
        f"The change from starter to growth failed: The workflow handle {run_id} names no live "
        "run (no such plan change run)"
    )
    assert snapshot(tenant) == before
    assert not AllocationChange.objects.filter(tenant=tenant).exists()
    assert types(tenant)[-2:] == [
        "tenant.provisioning.orphaned_handle",
        "tenant.plan_change.failed",
    ]
    failed = Event.objects.get(tenant_id=tenant.id, type="tenant.plan_change.failed")
    assert (failed.run_id, failed.data["from"], failed.data["to"]) == (run_id, "starter", "growth")


def test_an_updating_tenant_flagged_before_is_taken_up_too(fast_saga):
    """A tenant an earlier version only flagged (its error recorded, condition orphaned, no way
    out) is failed and reverted by the next pass; its orphaned handle is not recorded twice."""
    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    run = lose_the_run_mid_change(tenant)
    Tenant.objects.filter(pk=tenant.pk).update(
        last_error=f"The workflow handle {run.id} names no live run. The plan change can "
        "neither go on nor be cancelled.",
        condition="orphaned",
    )
    assert run_watchdog().orphaned_handles == [str(tenant.id)]
    assert f.reload(tenant).condition == "rolling_back"
    drive_compensation(run.id)
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "starter", "change_failed")
    assert snapshot(tenant) == before
    assert "tenant.provisioning.orphaned_handle" not in types(tenant)
    assert types(tenant)[-1] == "tenant.plan_change.failed"
