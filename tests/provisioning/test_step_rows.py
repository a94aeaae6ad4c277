"""The rows the saga's hot path writes, read back after a real worker provisioned a tenant, and
checked field by field against the contract.

The step's statements are hand-written SQL made from the models' ``_meta``
(``provisioning.statements``); the budget tests count them, this test checks what they wrote:
a column written wrong (or not at all) would pass a count and fail here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from audit.models import Event
from provisioning.models import (
    STEP_KIND,
    STEPS,
    Allocation,
    AllocationIntent,
    Run,
    RunStatus,
    StepExecution,
    StepStatus,
)
from provisioning.providers import get_provider
from provisioning.statements import STEP, Names
from tenants.models import Condition, Tenant, TenantState
from tenants.services import Actor, create_tenant

from ..conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker]


def test_a_provisioning_writes_exactly_the_rows_the_contract_describes(celery_worker):
    tenant = create_tenant(
        slug="rows-checked",
        name="Rows Checked",
        plan="growth",
        admin_email="ops@rows.test",
        actor=Actor.shell("tester"),
    )
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).state == TenantState.ACTIVE,
        what="the tenant to be active",
    )
    tenant = Tenant.objects.get(pk=tenant.pk)
    run = Run.objects.get(pk=tenant.workflow_id)

    # The tenant: active, nothing wrong, its handle naming the run that made it so.
    assert tenant.condition == Condition.OK
    assert tenant.last_error == tenant.failed_activity == ""
    assert tenant.activated_at is not None

    # The run: completed, one attempt, no step current any more.
    assert (run.status, run.attempt, run.current_step) == (RunStatus.COMPLETED, 1, "")
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert not run.compensating and run.stalled_at is None

    # Every step: done on its first try, timed, its try's token kept, no error.
    steps = list(StepExecution.objects.filter(run=run).order_by("position"))
    assert [s.name for s in steps] == list(STEPS)
    for step in steps:
        assert step.status == StepStatus.COMPLETED, step.name
        assert step.tries == 1, step.name
        assert step.token is not None, step.name
        assert step.error == "" and step.reused is False, step.name
        assert step.due_at is not None and step.started_at is not None, step.name
        assert step.due_at <= step.started_at <= step.finished_at, step.name
        assert step.heartbeat_at == step.finished_at, step.name
    for earlier, later in zip(steps, steps[1:], strict=False):
        assert earlier.finished_at <= later.started_at, (earlier.name, later.name)

    # The ledger: one held allocation per kind, made by this run, naming a real resource.
    held = {a.kind: a for a in Allocation.objects.filter(tenant=tenant, released_at__isnull=True)}
    assert set(held) == set(STEP_KIND.values())
    for kind, allocation in held.items():
        assert allocation.allocated_by_id == run.id, kind
        assert allocation.released_by_id is None and allocation.release_attempts == 0, kind
        assert allocation.release_error == "", kind
        assert get_provider(kind).exists(allocation.external_id), kind
    assert Path(held["storage"].external_id).is_dir()
    assert Group.objects.filter(name=held["identity"].external_id).exists()
    assert held["database"].external_id == f"tenant_{tenant.id.hex}"
    assert Allocation.objects.filter(tenant=tenant).count() == len(held)

    # The intents: opened before each provider call, closed by the answer they led to.
    intents = {i.kind: i for i in AllocationIntent.objects.filter(tenant=tenant)}
    assert set(intents) == set(held)
    for kind, intent in intents.items():
        assert intent.run_id == run.id, kind
        assert intent.outcome == AllocationIntent.Outcome.RECORDED, kind
        assert intent.external_id == held[kind].external_id, kind
        assert intent.resolved_at is not None and intent.release_error == "", kind
        assert intent.created_at <= intent.resolved_at, kind

    # The audit feed: the run's events in the contract's order, with the contract's data.
    events = list(Event.objects.filter(tenant_id=tenant.id, run_id=run.id).order_by("seq"))
    expected = ["tenant.provisioning.started"]
    for name in STEPS:
        expected.append("tenant.provisioning.step_started")
        if name in STEP_KIND:
            expected.append("tenant.resource.allocated")
        expected.append("tenant.provisioning.step_completed")
    expected.append("tenant.provisioning.completed")
    assert [e.type for e in events] == expected
    assert events[0].data == {"attempt": 1}
    by_step = iter(STEPS)
    current = ""
    for event in events[1:-1]:
        assert event.actor == "system"
        if event.type == "tenant.provisioning.step_started":
            current = next(by_step)
            assert event.data == {"step": current, "attempt": 1}
        elif event.type == "tenant.resource.allocated":
            kind = STEP_KIND[current]
            assert event.data == {"kind": kind, "external_id": held[kind].external_id}
        else:
            assert event.data["step"] == current
            assert event.data["reused"] is False
            assert isinstance(event.data["duration_ms"], int) and event.data["duration_ms"] >= 0
    assert events[-1].data["total_duration_seconds"] >= 0


def test_the_hot_paths_sql_is_made_of_the_models_names():
    """A renamed field fails the import; an INSERT that forgets a field refuses to build."""
    assert STEP.status == f'"{StepExecution._meta.get_field("status").column}"'
    assert str(STEP) == f'"{StepExecution._meta.db_table}"'
    with pytest.raises(Exception, match="no field named 'stauts'"):
        _ = STEP.stauts
    with pytest.raises(ValueError, match="missing"):
        Names(Allocation).insert({"tenant": "%(tenant)s"})
