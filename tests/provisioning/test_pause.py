"""Pause / unpause a live run: the step at work finishes, nothing is dispatched after it until
unpause (exactly once), the watchdog leaves the run alone, cancel and reset still work."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from audit.models import Event
from provisioning.models import Allocation, Run, RunStatus, StepExecution, StepStatus
from provisioning.watchdog import run_watchdog
from tenants.errors import OperationError
from tenants.models import Tenant
from tenants.operations import perform
from tenants.selectors import tenant_detail
from tenants.services import Actor, create_tenant

from .. import factories as f
from ..conftest import drive, wait_for

ACTOR = Actor.shell("pat")


def _steps(run_id):
    return {s.name: s for s in StepExecution.objects.filter(run_id=run_id)}


@pytest.mark.django_db
def test_a_paused_run_dispatches_nothing_and_unpause_sends_the_next_step_once(fast_saga):
    tenant = f.paused_tenant()
    run = Run.objects.get(pk=tenant.workflow_id)
    steps = _steps(run.id)
    # The step at work (allocate_storage) finished and its answer is recorded ...
    assert steps["allocate_storage"].status == StepStatus.COMPLETED
    assert Allocation.objects.filter(tenant=tenant, kind="storage").exists()
    # ... and the next one is current but waits, undispatched.
    assert run.current_step == "allocate_identity"
    assert steps["allocate_identity"].status == StepStatus.WAITING
    assert tenant.condition == "paused"
    assert run.paused_by == "user:tester"
    paused = Event.objects.get(tenant_id=tenant.id, type="tenant.run.paused")
    assert paused.actor == "user:tester"
    # The detail says who paused it and when; the decision panel says unpause.
    detail = tenant_detail(tenant.id)
    assert detail.recommendation.action == "unpause"
    assert "user:tester" in detail.recommendation.reason

    perform("unpause", tenant_id=tenant.id, actor=ACTOR, reason="window open")
    with pytest.raises(OperationError) as refused:
        perform("unpause", tenant_id=tenant.id, actor=ACTOR)
    assert refused.value.code == "invalid_state"
    identity = StepExecution.objects.get(run=run, name="allocate_identity")
    assert identity.status == StepStatus.DISPATCHED and identity.tries == 1
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.run.unpaused")
    assert event.data["reason"] == "window open" and event.data["dispatched"] is True
    assert event.data["paused_by"] == "user:tester"
    drive(run.id)
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


@pytest.mark.django_db
def test_a_try_that_fails_while_paused_waits_for_unpause_to_be_tried_again(fast_saga):
    tenant = f.new_tenant(faults={"validate_request": "fail_once"})
    perform("pause", tenant_id=tenant.id, actor=ACTOR)
    drive(tenant.workflow_id)  # the failed try is recorded; no retry is sent
    step = StepExecution.objects.get(run_id=tenant.workflow_id, name="validate_request")
    assert step.status == StepStatus.WAITING and step.error and step.tries == 1
    assert Tenant.objects.get(pk=tenant.pk).condition == "paused"
    perform("unpause", tenant_id=tenant.id, actor=ACTOR)
    step.refresh_from_db()
    assert step.status == StepStatus.DISPATCHED and step.tries == 2
    assert Tenant.objects.get(pk=tenant.pk).condition == "retrying"
    drive(tenant.workflow_id)
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


@pytest.mark.django_db
def test_pause_is_refused_where_it_does_not_apply(fast_saga):
    active = f.active_tenant()
    with pytest.raises(OperationError) as exc:
        perform("pause", tenant_id=active.id, actor=ACTOR)
    assert exc.value.code == "invalid_state" and "active" in exc.value.message
    paused = f.paused_tenant()
    with pytest.raises(OperationError) as exc:
        perform("pause", tenant_id=paused.id, actor=ACTOR)
    assert "already paused" in exc.value.message


@pytest.mark.django_db
def test_the_watchdog_never_flags_a_paused_run(fast_saga):
    import time_machine

    tenant = f.paused_tenant()
    later = timezone.now() + timezone.timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        report = run_watchdog()
    assert not report.stalled and not report.redispatched and not report.republished
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.condition == "paused" and not tenant.last_error


@pytest.mark.django_db
def test_reset_still_works_on_a_paused_run(fast_saga):
    tenant = f.paused_tenant()
    # A paused run may be reset (abandoned, allocations kept) though it has no recorded error.
    perform("reset", tenant_id=tenant.id, actor=ACTOR)
    t = Tenant.objects.get(pk=tenant.pk)
    assert (t.state, t.condition, t.workflow_id) == ("pending", "ok", None)
    assert Allocation.objects.filter(tenant=tenant, released_at__isnull=True).count() == 1
    stalled = f.stalled_tenant(fast_saga)
    with pytest.raises(OperationError) as exc:
        perform("pause", tenant_id=stalled.id, actor=ACTOR)
    assert "reset" in exc.value.message
    perform("reset", tenant_id=stalled.id, actor=ACTOR)


# --- on a real worker -----------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.worker
def test_paused_on_a_real_worker_nothing_moves_past_the_timeout_then_unpause_completes(
    celery_worker, fast_saga
):
    fast_saga.CONTROLPLANE_HEARTBEAT_TIMEOUT = 0.5
    tenant = create_tenant(
        slug="paused-one",
        name="Paused",
        plan="starter",
        admin_email="ops@paused.test",
        actor=ACTOR,
        faults={"allocate_storage": "slow:0.5"},
    )
    run_id = tenant.workflow_id
    wait_for(
        lambda: (
            StepExecution.objects.get(run_id=run_id, name="allocate_storage").status
            == StepStatus.RUNNING
        ),
        what="allocate_storage at work",
    )
    perform("pause", tenant_id=tenant.id, actor=ACTOR)
    # The step at work finishes and its answer is recorded; the next one is not dispatched.
    wait_for(
        lambda: (
            StepExecution.objects.get(run_id=run_id, name="allocate_storage").status
            == StepStatus.COMPLETED
        ),
        what="allocate_storage recorded",
    )
    assert Allocation.objects.filter(tenant_id=tenant.id, kind="storage").exists()
    quiet_since = time.monotonic()
    # Longer than the heartbeat timeout goes by with nothing dispatched ...
    wait_for(
        lambda: time.monotonic() - quiet_since > 2 * fast_saga.CONTROLPLANE_HEARTBEAT_TIMEOUT,
        what="twice the heartbeat timeout",
    )
    report = run_watchdog()  # ... and the watchdog's pass, run now, flags nothing.
    assert not report.stalled and not report.redispatched and not report.republished
    moving = StepExecution.objects.filter(
        run_id=run_id, status__in=[StepStatus.DISPATCHED, StepStatus.RUNNING]
    )
    assert not moving.exists()
    t = Tenant.objects.get(pk=tenant.pk)
    assert (t.state, t.condition, t.last_error) == ("provisioning", "paused", "")
    assert not Event.objects.filter(tenant_id=tenant.id, type="tenant.provisioning.stalled")

    perform("unpause", tenant_id=tenant.id, actor=ACTOR)
    wait_for(lambda: Tenant.objects.get(pk=tenant.pk).state == "active", what="active")
    identity = StepExecution.objects.get(run_id=run_id, name="allocate_identity")
    assert identity.tries == 1  # dispatched exactly once


@pytest.mark.services
@pytest.mark.worker
def test_cancel_of_a_paused_run_on_a_real_worker_releases_everything(celery_worker, fast_saga):
    tenant = create_tenant(
        slug="paused-two",
        name="Paused",
        plan="starter",
        admin_email="ops@paused.test",
        actor=ACTOR,
        faults={"create_database": "slow:0.5"},
    )
    run_id = tenant.workflow_id
    wait_for(
        lambda: (
            StepExecution.objects.get(run_id=run_id, name="create_database").status
            == StepStatus.RUNNING
        ),
        what="create_database at work",
    )
    perform("pause", tenant_id=tenant.id, actor=ACTOR)
    wait_for(
        lambda: (
            Tenant.objects.get(pk=tenant.pk).condition == "paused"
            and StepExecution.objects.get(run_id=run_id, name="create_database").status
            == StepStatus.COMPLETED
        ),
        what="paused after create_database",
    )
    assert Allocation.objects.filter(tenant_id=tenant.id, released_at__isnull=True).count() == 3
    perform("cancel", tenant_id=tenant.id, actor=ACTOR)
    wait_for(lambda: Run.objects.get(pk=run_id).status == RunStatus.CANCELLED, what="run cancelled")
    t = Tenant.objects.get(pk=tenant.pk)
    assert t.state == "pending"
    assert not Allocation.objects.filter(tenant_id=tenant.id, released_at__isnull=True).exists()
