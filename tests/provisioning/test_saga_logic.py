"""The saga called directly, in this process: steps, retries, compensation, fencing, watchdog."""

from __future__ import annotations

from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from audit.models import Event
from provisioning import compensation, saga
from provisioning.models import Allocation, Run, StepExecution
from provisioning.providers import get_provider
from provisioning.watchdog import run_watchdog
from tenants.services import Actor, cancel_provisioning, reset_provisioning, retry_provisioning

from .. import factories as f
from ..conftest import drive, drive_compensation

pytestmark = pytest.mark.django_db
ACTOR = Actor.shell("tester")


def types(tenant) -> list[str]:
    return list(
        Event.objects.filter(tenant_id=tenant.id).order_by("id").values_list("type", flat=True)
    )


def held(tenant) -> dict[str, str]:
    return dict(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).values_list(
            "kind", "external_id"
        )
    )


def exists(kind: str, external_id: str) -> bool:
    return get_provider(kind).exists(external_id)


def test_happy_path_allocates_every_kind_for_real(fast_saga):
    tenant = f.active_tenant(slug="happy")
    allocations = held(tenant)
    assert set(allocations) == {"storage", "identity", "database", "dns", "billing", "invite"}
    assert Path(allocations["storage"]).is_dir()
    assert (
        Path(allocations["storage"]).parent
        == (fast_saga.CONTROLPLANE_DATA_ROOT / "tenants").resolve()
    )
    assert Group.objects.filter(name=allocations["identity"]).exists()
    for kind, external_id in allocations.items():
        assert exists(kind, external_id), kind
    assert allocations["database"] == f"tenant_{tenant.id.hex}"
    assert tenant.activated_at is not None
    run = Run.objects.get(pk=tenant.workflow_id)
    assert run.status == "completed"
    assert [s.status for s in run.steps.order_by("position")] == ["completed"] * 8
    evs = types(tenant)
    assert evs.count("tenant.provisioning.step_started") == 8
    assert evs.count("tenant.provisioning.step_completed") == 8
    assert evs.count("tenant.resource.allocated") == 6
    assert evs[-1] == "tenant.provisioning.completed"
    completed = Event.objects.filter(
        tenant_id=tenant.id, type="tenant.provisioning.step_completed"
    ).first()
    assert set(completed.data) == {"step", "reused", "duration_ms"}


def test_fail_once_is_absorbed_by_a_step_retry(fast_saga):
    tenant = f.new_tenant(faults={"configure_dns": "fail_once"})
    drive(tenant.workflow_id)
    tenant = f.reload(tenant)
    assert tenant.state == "active"
    failed = Event.objects.get(tenant_id=tenant.id, type="tenant.provisioning.step_failed")
    assert failed.data["step"] == "configure_dns"
    assert failed.data["attempt"] == 1
    assert "injected" in failed.data["error"]
    assert StepExecution.objects.get(run_id=tenant.workflow_id, name="configure_dns").tries == 2


def test_a_step_out_of_retries_compensates_in_reverse_and_fails(fast_saga):
    tenant = f.new_tenant(faults={"setup_billing": "fail"})
    drive(tenant.workflow_id)
    made = {a.kind: a.external_id for a in Allocation.objects.filter(tenant=tenant)}
    assert set(made) == {"storage", "identity", "database", "dns"}
    drive_compensation(tenant.workflow_id)
    tenant = f.reload(tenant)
    assert tenant.state == "failed"
    assert tenant.failed_activity == "setup_billing"
    assert "injected failure" in tenant.last_error
    assert held(tenant) == {}
    for kind, external_id in made.items():
        assert not exists(kind, external_id), kind
    released = list(
        Event.objects.filter(tenant_id=tenant.id, type="tenant.resource.released")
        .order_by("id")
        .values_list("data__kind", flat=True)
    )
    assert released == ["dns", "database", "identity", "storage"]
    failures = Event.objects.filter(tenant_id=tenant.id, type="tenant.provisioning.step_failed")
    assert failures.count() == fast_saga.CONTROLPLANE_STEP_MAX_TRIES
    final = Event.objects.get(tenant_id=tenant.id, type="tenant.provisioning.failed")
    assert final.data["failed_activity"] == "setup_billing"
    assert Run.objects.get(pk=tenant.workflow_id).status == "failed"


def test_a_permanent_failure_does_not_retry(fast_saga):
    tenant = f.new_tenant(start=False)
    # validate_request re-checks the row; an address that no longer parses fails for good.
    from tenants.models import Tenant

    Tenant.objects.filter(pk=tenant.pk).update(admin_email="broken")
    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    tenant = f.reload(tenant)
    drive(tenant.workflow_id)
    drive_compensation(tenant.workflow_id)
    tenant = f.reload(tenant)
    assert tenant.state == "failed"
    assert tenant.failed_activity == "validate_request"
    assert (
        Event.objects.filter(tenant_id=tenant.id, type="tenant.provisioning.step_failed").count()
        == 1
    )


def test_retry_after_failure_reaches_active(fast_saga):
    tenant = f.failed_tenant("invite_admin")
    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive(f.reload(tenant).workflow_id)
    tenant = f.reload(tenant)
    assert tenant.state == "active"
    assert len(held(tenant)) == 6


def test_queued_steps_of_a_cancelled_run_do_nothing(fast_saga):
    tenant = f.provisioning_tenant()
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    before = Event.objects.count()
    saga.execute_step(step.pk, step.token)  # the message was already in the queue
    assert Event.objects.count() == before
    assert held(tenant).keys() == {"storage"}
    drive_compensation(tenant.workflow_id)
    assert held(tenant) == {}


def test_cancel_and_mark_active_have_one_winner(fast_saga):
    # mark_active first: cancel is refused.
    tenant = f.new_tenant()
    drive(tenant.workflow_id)
    from tenants.errors import OperationError

    with pytest.raises(OperationError):
        cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    assert f.reload(tenant).state == "active"
    # cancel first: mark_active's try is fenced out.
    tenant = f.new_tenant()
    for _ in range(7):
        step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
        saga.execute_step(step.pk, step.token)
    mark = StepExecution.objects.get(run_id=tenant.workflow_id, name="mark_active")
    assert mark.status == "dispatched"
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    saga.execute_step(mark.pk, mark.token)
    assert f.reload(tenant).state == "provisioning"
    drive_compensation(tenant.workflow_id)
    tenant = f.reload(tenant)
    assert tenant.state == "pending"
    assert tenant.activated_at is None
    assert held(tenant) == {}


def later(settings, factor: float = 2.0):
    return time_machine.travel(
        timezone.now()
        + timezone.timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT * factor),
        tick=False,
    )


def test_watchdog_redispatches_a_try_whose_worker_died(fast_saga):
    tenant = f.new_tenant(faults={"validate_request": "stall"})
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    saga.execute_step(step.pk, step.token)  # started, then its worker vanished
    assert StepExecution.objects.get(pk=step.pk).status == "running"
    Run.objects.filter(pk=tenant.workflow_id).update(faults={})
    with later(fast_saga):
        report = run_watchdog()
    assert report.redispatched == [f"{tenant.workflow_id}:validate_request"]
    again = StepExecution.objects.get(pk=step.pk)
    assert again.tries == 2 and again.token != step.token
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.provisioning.step_redispatched")
    assert event.data["step"] == "validate_request" and event.data["attempt"] == 2
    # The lost try's message turns up late: it is not the current try, it does nothing.
    saga.execute_step(step.pk, step.token)
    assert StepExecution.objects.get(pk=step.pk).status == "dispatched"
    drive(tenant.workflow_id)
    assert f.reload(tenant).state == "active"


def test_a_queued_step_is_not_a_lost_try(fast_saga):
    tenant = f.new_tenant()
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    with later(fast_saga, 50):
        report = run_watchdog()
    assert report.redispatched == [] and report.stalled == []
    again = StepExecution.objects.get(pk=step.pk)
    assert (again.tries, again.token, again.status) == (1, step.token, "dispatched")


def test_a_second_watchdog_pass_does_not_act_twice(fast_saga):
    tenant = f.new_tenant(faults={"validate_request": "stall"})
    drive(tenant.workflow_id, max_steps=1)
    with later(fast_saga):
        first = run_watchdog()
        second = run_watchdog()
    assert len(first.redispatched) == 1
    assert second.redispatched == []
    assert (
        Event.objects.filter(
            tenant_id=tenant.id, type="tenant.provisioning.step_redispatched"
        ).count()
        == 1
    )


def test_stall_is_flagged_once_then_reset_and_retry_reuse_allocations(fast_saga):
    tenant = f.stalled_tenant(fast_saga, "create_database")
    old_run = tenant.workflow_id
    stalled = Event.objects.filter(tenant_id=tenant.id, type="tenant.provisioning.stalled")
    assert stalled.count() == 1
    assert stalled.get().data["step"] == "create_database"
    assert "stalled" in tenant.last_error
    with later(fast_saga, 4):
        run_watchdog()
    assert stalled.count() == 1  # once
    kept = held(tenant)
    assert set(kept) == {"storage", "identity"}
    stuck = StepExecution.objects.get(run_id=old_run, name="create_database")

    reset_provisioning(tenant_id=tenant.id, actor=ACTOR)
    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    tenant = f.reload(tenant)
    new_run = tenant.workflow_id
    assert new_run != old_run

    # The old run's late answer changes nothing but the ledger.
    before = (
        Event.objects.filter(tenant_id=tenant.id)
        .exclude(type__startswith="tenant.resource")
        .count(),
        f.reload(tenant).state,
    )
    saga.execute_step(stuck.pk, stuck.token)
    assert (
        Event.objects.filter(tenant_id=tenant.id)
        .exclude(type__startswith="tenant.resource")
        .count(),
        f.reload(tenant).state,
    ) == before

    drive(new_run)
    tenant = f.reload(tenant)
    assert tenant.state == "active"
    assert held(tenant)["storage"] == kept["storage"]
    reused = Event.objects.filter(
        tenant_id=tenant.id, run_id=new_run, type="tenant.resource.reused"
    )
    assert {e.data["kind"] for e in reused} == {"storage", "identity"}
    assert Allocation.objects.filter(tenant=tenant).count() == 6  # nothing made twice


def test_an_orphaned_runs_late_allocation_is_kept_for_the_next_run(fast_saga):
    tenant = f.stalled_tenant(fast_saga, "create_database")
    # A worker of the old run was only slow: its answer arrives after the reset.
    stuck = StepExecution.objects.get(run_id=tenant.workflow_id, name="create_database")
    reset_provisioning(tenant_id=tenant.id, actor=ACTOR)
    Run.objects.filter(pk=stuck.run_id).update(faults={})
    saga._record(
        stuck.pk,
        stuck.token,
        "database",
        get_provider("database").allocate(saga._spec(f.reload(tenant))),
    )
    assert "database" in held(tenant)
    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive(f.reload(tenant).workflow_id)
    assert f.reload(tenant).state == "active"
    assert Allocation.objects.filter(tenant=tenant, kind="database").count() == 1


def test_a_late_allocation_after_a_finished_cancel_is_released(fast_saga):
    tenant = f.provisioning_tenant()
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    claim = saga._claim(step.pk, step.token)  # the worker starts allocate_identity ...
    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive_compensation(tenant.workflow_id)
    assert f.reload(tenant).state == "pending"
    external_id = get_provider("identity").allocate(claim.spec)  # ... and answers late
    saga._record(step.pk, step.token, "identity", external_id)
    assert held(tenant) == {}
    assert not Group.objects.filter(name=external_id).exists()
    row = Allocation.objects.get(tenant=tenant, kind="identity")
    assert row.released_at is not None  # in the ledger all the same


def test_orphaned_handle_is_flagged_once(fast_saga):
    tenant = f.provisioning_tenant()
    # The workflow engine lost the run (cluster reset, manual cleanup).
    Run.objects.filter(pk=tenant.workflow_id).update(status="orphaned")
    report = run_watchdog()
    assert report.orphaned_handles == [str(tenant.id)]
    assert run_watchdog().orphaned_handles == []
    tenant = f.reload(tenant)
    assert "names no live run" in tenant.last_error
    assert (
        Event.objects.filter(
            tenant_id=tenant.id, type="tenant.provisioning.orphaned_handle"
        ).count()
        == 1
    )
    reset_provisioning(tenant_id=tenant.id, actor=ACTOR)
    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    drive(f.reload(tenant).workflow_id)
    assert f.reload(tenant).state == "active"


def test_a_release_that_keeps_failing_is_marked_and_shown_not_dropped(fast_saga):
    tenant = f.pending_with_error(fast_saga)
    dns = Allocation.objects.get(tenant=tenant, kind="dns")
    assert dns.held
    assert "503" in dns.release_error
    assert "Could not release" in tenant.last_error
    assert Event.objects.filter(
        tenant_id=tenant.id, type="tenant.provisioning.compensation_failed"
    ).exists()
    # Everything else was released.
    assert set(held(tenant)) == {"dns"}
    # Decommission, once the service works again, releases it.
    from tenants.services import decommission_tenant

    decommission_tenant(tenant_id=tenant.id, actor=ACTOR)
    compensation.decommission_tenant(tenant.id)
    tenant = f.reload(tenant)
    assert tenant.state == "decommissioned"
    assert held(tenant) == {}


def test_step_counts_its_queries(fast_saga, django_assert_num_queries):
    tenant = f.new_tenant()
    drive(tenant.workflow_id, max_steps=1)
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    # The claim (lock; start the try, its intent and step_started) and the record (lock; the
    # answer, its events and the advance) with their transactions: a step's whole budget.
    with django_assert_num_queries(8):
        saga.execute_step(step.pk, step.token)
    assert held(tenant).keys() == {"storage"}


@pytest.mark.django_db(transaction=True)
def test_a_step_has_a_budget_of_statements_and_two_commits(fast_saga):
    """A middle step with a real provider (storage, on disk): claim, work, record, dispatch.

    Counted as Django logs them: every statement, BEGIN and COMMIT included (so the floor, one
    UPDATE and one INSERT in a transaction, is 4). Was 36.5, then 18 with the ORM, then 11 with
    the step's hand-written statements (``provisioning.statements``); 8 now, each transaction
    a lock and one statement that writes, its events included (see docs/performance.md).
    """
    from django.test.utils import CaptureQueriesContext

    tenant = f.new_tenant()
    drive(tenant.workflow_id, max_steps=1)
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    assert step.name == "allocate_storage"
    with CaptureQueriesContext(connection) as queries:
        saga.execute_step(step.pk, step.token)
    sql = [q["sql"] for q in queries]
    commits = [s for s in sql if s == "COMMIT"]
    assert len(sql) == 8, f"{len(sql)} statements:\n" + "\n".join(sql)
    assert len(commits) == 2, "\n".join(sql)
    assert not any("SAVEPOINT" in s for s in sql)
    assert held(tenant).keys() == {"storage"}
    assert [e.type for e in Event.objects.filter(tenant_id=tenant.id).order_by("-seq")[:3]] == [
        "tenant.provisioning.step_completed",
        "tenant.resource.allocated",
        "tenant.provisioning.step_started",
    ]
    from audit.services import verify_chains

    assert verify_chains(tenant_id=tenant.id)[1] == []
    nxt = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    assert nxt.name == "allocate_identity"


@pytest.mark.parametrize("earlier", ["as-answered", "something-else"])
def test_an_answer_the_ledger_holds_already_is_reused_and_described(
    fast_saga, earlier, django_capture_on_commit_callbacks
):
    """The record's one statement reads the ledger under the lock and writes the events that
    fit what it found: here an earlier try's answer is on the ledger already, the very one
    the provider gives again (idempotent) or another (a duplicate, released after commit)."""
    from django.db import transaction

    from audit.services import verify_chains
    from provisioning import statements

    tenant = f.new_tenant()
    drive(tenant.workflow_id, max_steps=1)
    step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    assert step.name == "allocate_storage"
    assert saga._claim(step.pk, step.token) is not None
    held_id = "storage-answer" if earlier == "as-answered" else "storage-earlier"
    with transaction.atomic():
        statements.record_answer(
            tenant_id=tenant.id,
            run_id=tenant.workflow_id,
            kind="storage",
            external_id=held_id,
            now=timezone.now(),
        )
    seq = Event.objects.filter(tenant_id=tenant.id).count()
    with django_capture_on_commit_callbacks() as callbacks:
        saga._record(step.pk, step.token, "storage", "storage-answer")
    # The next step's message, and for a duplicate its release.
    assert len(callbacks) == (1 if earlier == "as-answered" else 2)
    new = list(
        Event.objects.filter(tenant_id=tenant.id, seq__gt=seq)
        .order_by("seq")
        .values_list("type", "data")
    )
    assert [t for t, _ in new] == [
        "tenant.resource.reused",
        "tenant.provisioning.step_completed",
    ]
    assert new[0][1] == {"kind": "storage", "external_id": held_id}
    assert new[1][1]["reused"] is True
    assert StepExecution.objects.get(pk=step.pk).reused is True
    assert held(tenant) == {"storage": held_id}
    nxt = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
    assert nxt.name == "allocate_identity"
    assert Run.objects.get(pk=tenant.workflow_id).current_step == "allocate_identity"
    assert verify_chains(tenant_id=tenant.id)[1] == []
