"""Conditions: one rule (``derive_condition``), stored on the tenant and kept exact by every
transaction that changes an input. Each test walks a situation through the real services and
saga and checks the stored value against the rule read afresh from the rows (``drifted``)."""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone

from provisioning import compensation, saga
from provisioning.conditions import compute_condition, drifted
from provisioning.models import Run, StepExecution
from provisioning.watchdog import run_watchdog
from tenants.models import NEEDS_ATTENTION, Condition
from tenants.services import cancel_provisioning, decommission_tenant, reset_provisioning

from .. import factories as f
from ..conftest import drive, drive_compensation

pytestmark = pytest.mark.django_db

EXPECTED = {
    "pending": "ok",
    "pending_with_error": "release_failed",
    "provisioning": "progressing",
    "provisioning_stalled": "stalled",
    "active": "ok",
    "failed": "failed",
    "suspended": "ok",
    "decommissioned": "ok",
    "cancelled": "ok",
    "decommissioning": "decommissioning",
    "updating": "progressing",
    "change_failed": "change_failed",
    "paused": "paused",
}


def condition(tenant) -> str:
    return f.reload(tenant).condition


def exact() -> None:
    assert drifted() == []


def test_the_table_covers_every_situation():
    assert set(EXPECTED) == set(f.SITUATIONS)


@pytest.mark.parametrize("situation", sorted(EXPECTED))
def test_each_situation_has_its_condition(situation, fast_saga):
    tenant = f.SITUATIONS[situation](fast_saga)
    assert condition(tenant) == EXPECTED[situation]
    assert f.reload(tenant).needs_attention == (EXPECTED[situation] in NEEDS_ATTENTION)
    exact()


def _step(tenant, name: str) -> StepExecution:
    return StepExecution.objects.get(run_id=f.reload(tenant).workflow_id, name=name)


def _past_timeout(settings) -> timezone.datetime:
    return timezone.now() + timezone.timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT * 2)


def test_a_lost_try_reads_lost_until_the_next_try_is_picked_up(fast_saga):
    tenant = f.new_tenant(faults={"allocate_storage": "stall"})
    drive(tenant.workflow_id)  # validate_request done; allocate_storage claimed, then vanishes
    assert condition(tenant) == "progressing"
    with time_machine.travel(_past_timeout(fast_saga), tick=False):
        report = run_watchdog()
    assert report.redispatched
    assert condition(tenant) == "lost"
    exact()
    step = _step(tenant, "allocate_storage")
    assert (step.status, step.tries, step.error) == ("dispatched", 2, "")
    saga.execute_step(step.pk, step.token)  # the second try is picked up (and stalls again)
    assert condition(tenant) == "progressing"
    exact()


def test_a_failed_try_reads_retrying_until_the_next_try_runs(fast_saga):
    tenant = f.new_tenant(faults={"allocate_storage": "fail_once"})
    drive(tenant.workflow_id, max_steps=2)  # validate_request; allocate_storage fails once
    assert condition(tenant) == "retrying"
    exact()
    drive(tenant.workflow_id)
    assert condition(tenant) == "ok"
    assert f.reload(tenant).state == "active"
    exact()


def test_cancel_reads_cancelling_then_ok(fast_saga):
    tenant = f.provisioning_tenant()
    cancel_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    assert condition(tenant) == "cancelling"
    exact()
    drive_compensation(tenant.workflow_id)
    assert condition(tenant) == "ok"
    exact()


def test_a_failing_run_reads_rolling_back_then_failed(fast_saga):
    tenant = f.new_tenant(faults={"create_database": "fail"})
    drive(tenant.workflow_id)
    assert Run.objects.get(pk=tenant.workflow_id).compensating
    assert condition(tenant) == "rolling_back"
    exact()
    drive_compensation(tenant.workflow_id)
    assert condition(tenant) == "failed"
    exact()


def test_an_orphaned_handle_reads_orphaned_and_reset_clears_it(fast_saga):
    tenant = f.provisioning_tenant()
    Run.objects.filter(pk=tenant.workflow_id).update(status="orphaned")
    run_watchdog()
    assert condition(tenant) == "orphaned"
    exact()
    reset_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    assert condition(tenant) == "ok"
    exact()


def test_decommission_reads_decommissioning_then_ok(fast_saga):
    tenant = f.active_tenant()
    decommission_tenant(tenant_id=tenant.id, actor=f.ACTOR)
    assert condition(tenant) == "decommissioning"
    exact()
    compensation.decommission_tenant(tenant.id)
    assert condition(tenant) == "ok"
    exact()


def test_a_decommission_that_cannot_release_reads_release_failed(fast_saga):
    tenant = f.active_tenant()
    providers = dict(fast_saga.CONTROLPLANE_PROVIDERS)
    fast_saga.CONTROLPLANE_PROVIDERS = {
        **providers,
        "dns": "tests.providers.DnsThatWillNotRelease",
    }
    fast_saga.CONTROLPLANE_RELEASE_MAX_TRIES = 1
    decommission_tenant(tenant_id=tenant.id, actor=f.ACTOR)
    compensation.decommission_tenant(tenant.id)
    assert condition(tenant) == "release_failed"
    exact()
    # Once the service answers again, asking again finishes it.
    fast_saga.CONTROLPLANE_PROVIDERS = providers
    decommission_tenant(tenant_id=tenant.id, actor=f.ACTOR)
    assert condition(tenant) == "decommissioning"
    compensation.decommission_tenant(tenant.id)
    assert condition(tenant) == "ok"
    assert f.reload(tenant).state == "decommissioned"
    exact()


def test_a_stalled_run_reads_stalled_and_reset_clears_it(fast_saga):
    tenant = f.stalled_tenant(fast_saga)
    assert condition(tenant) == "stalled"
    reset_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    assert condition(tenant) == "ok"
    exact()


def test_compute_reads_the_same_rule_as_what_is_stored(fast_saga):
    tenants = [f.SITUATIONS[s](fast_saga) for s in sorted(EXPECTED)]
    for tenant in tenants:
        fresh = f.reload(tenant)
        assert compute_condition(fresh) == fresh.condition


def test_claiming_a_step_writes_nothing_more_for_the_condition(
    fast_saga, django_assert_num_queries
):
    """The common path of a step (already progressing) costs no statement for the condition."""
    tenant = f.new_tenant()
    drive(tenant.workflow_id, max_steps=1)
    step = _step(tenant, "allocate_storage")
    # The step's whole budget (8, test_saga_logic): nothing in it writes the condition.
    with django_assert_num_queries(8) as captured:
        saga.execute_step(step.pk, step.token)
    writes = [q["sql"] for q in captured.captured_queries if "condition" in q["sql"]]
    assert not [w for w in writes if w.startswith("UPDATE")], writes
    assert condition(tenant) == Condition.PROGRESSING


def test_a_plan_change_keeps_the_condition_exact(fast_saga):
    """Updating: progressing, rolling back after a failure, change_failed once reverted, and
    back to ok when the next change completes."""
    tenant = f.updating_tenant(faults={"change_billing_plan": "fail"})
    assert condition(tenant) == "progressing"
    exact()
    run_id = f.reload(tenant).workflow_id
    drive(run_id)
    assert condition(tenant) == "rolling_back"
    exact()
    drive_compensation(run_id)
    assert condition(tenant) == "change_failed"
    assert f.reload(tenant).needs_attention
    exact()
    from tenants.services import change_plan

    change_plan(tenant_id=tenant.id, actor=f.ACTOR, plan="growth")
    assert condition(tenant) == "progressing"
    drive(f.reload(tenant).workflow_id)
    assert condition(tenant) == "ok"
    exact()
