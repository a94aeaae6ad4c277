"""Chains: a step task executes its tenant's next steps itself, each claimed, worked and
recorded in its own transactions, instead of sending each through the broker; bulk runs,
a chain past its time and a chain turned off go back to the broker."""

from __future__ import annotations

from typing import Any

import pytest

from audit.events import EventType
from audit.models import Event
from provisioning import admission, broker, saga
from provisioning.models import STEPS, StepExecution, StepStatus
from tenants.models import Tenant, TenantState
from tenants.services import cancel_provisioning

from .. import factories as f
from ..conftest import purge_broker

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _empty_broker(fast_saga: Any) -> Any:
    yield
    purge_broker()


def first_step(tenant: Tenant) -> StepExecution:
    """The tenant's first step, its message taken off the broker (as a worker would)."""
    purge_broker()
    return StepExecution.objects.get(run_id=tenant.workflow_id, position=0)


def held() -> set[tuple[int, str]]:
    found = broker.held_step_messages("celery", recent=60)
    assert found is not None
    return found


def test_one_task_provisions_an_interactive_tenant_step_by_step():
    tenant = f.new_tenant(slug="chained")
    first = first_step(tenant)

    assert saga.execute_chain(first.pk, first.token) == len(STEPS)

    assert f.reload(tenant).state == TenantState.ACTIVE
    steps = StepExecution.objects.filter(run_id=tenant.workflow_id).order_by("position")
    assert [(s.name, s.status, s.tries) for s in steps] == [
        (name, StepStatus.COMPLETED, 1) for name in STEPS
    ]
    # Each step was claimed and recorded on its own, in order: its start, then its end.
    trail = [
        (e.type, e.data["step"])
        for e in Event.objects.filter(
            tenant_id=tenant.pk,
            type__in=[EventType.STEP_STARTED, EventType.STEP_COMPLETED],
        ).order_by("seq")
    ]
    started, completed = EventType.STEP_STARTED, EventType.STEP_COMPLETED
    assert trail == [(kind, name) for name in STEPS for kind in (started, completed)]
    # Nothing went through the broker.
    assert held() == set()


def executes_one_step_then_uses_the_broker(tenant: Tenant) -> None:
    """The first step's task executes it alone; the second step waits in the broker."""
    first = first_step(tenant)

    assert saga.execute_chain(first.pk, first.token) == 1

    second = StepExecution.objects.get(run_id=tenant.workflow_id, position=1)
    assert second.status == StepStatus.DISPATCHED
    assert held() == {(second.pk, str(second.token))}


def test_a_bulk_run_sends_its_next_step_through_the_broker():
    with admission.bulk_lane():
        tenant = f.new_tenant(slug="bulk-unchained")
    executes_one_step_then_uses_the_broker(tenant)


def test_chains_turned_off_send_every_step_through_the_broker(settings):
    settings.CONTROLPLANE_CHAIN_SECONDS = 0
    executes_one_step_then_uses_the_broker(f.new_tenant(slug="unchained"))


def test_a_chain_past_its_time_hands_the_next_step_to_the_broker(settings):
    # The first step alone outlasts the chain's time (its delay is slept on its heartbeat).
    settings.CONTROLPLANE_CHAIN_SECONDS = 0.05
    settings.CONTROLPLANE_STEP_DELAY = 0.1
    executes_one_step_then_uses_the_broker(f.new_tenant(slug="chain-timed-out"))


def test_a_step_handed_on_before_an_error_is_published(monkeypatch):
    tenant = f.new_tenant(slug="chain-broken")
    first = first_step(tenant)
    record = saga._record

    def record_then_fail(*args: Any, **kwargs: Any) -> None:
        record(*args, **kwargs)  # committed: the next step is dispatched and handed on
        raise RuntimeError("the worker broke after the record")

    monkeypatch.setattr(saga, "_record", record_then_fail)
    with pytest.raises(RuntimeError):
        saga.execute_chain(first.pk, first.token)

    second = StepExecution.objects.get(run_id=tenant.workflow_id, position=1)
    assert second.status == StepStatus.DISPATCHED
    assert held() == {(second.pk, str(second.token))}


def test_a_cancel_between_two_steps_ends_the_chain(monkeypatch):
    tenant = f.new_tenant(slug="chain-cancelled")
    first = first_step(tenant)
    record = saga._record

    def record_then_cancel(step_id: int, *args: Any, **kwargs: Any) -> None:
        record(step_id, *args, **kwargs)
        if StepExecution.objects.get(pk=step_id).position == 1:
            cancel_provisioning(tenant_id=tenant.pk, actor=f.ACTOR)

    monkeypatch.setattr(saga, "_record", record_then_cancel)
    done = saga.execute_chain(first.pk, first.token)

    # The third step was handed on, then found its run cancelled: it started nothing.
    assert done == 3
    third = StepExecution.objects.get(run_id=tenant.workflow_id, position=2)
    assert third.started_at is None
    assert held() == set()


def test_a_redelivered_message_goes_on_where_its_chain_stopped(settings):
    tenant = f.new_tenant(slug="chain-redelivered")
    first = first_step(tenant)
    settings.CONTROLPLANE_CHAIN_SECONDS = 0
    saga.execute_chain(first.pk, first.token)
    # The chain's worker dies before claiming the second step: its message is the first
    # step's, which the broker delivers again (the second step has no message of its own).
    purge_broker()
    settings.CONTROLPLANE_CHAIN_SECONDS = 5
    second = StepExecution.objects.get(run_id=tenant.workflow_id, position=1)

    # A copy that was not redelivered changes nothing: its step is done.
    saga.execute_chain(first.pk, first.token)
    assert StepExecution.objects.get(pk=second.pk).started_at is None

    saga.execute_chain(first.pk, first.token, redelivered=True)
    assert f.reload(tenant).state == TenantState.ACTIVE
    assert StepExecution.objects.get(pk=second.pk).tries == 1
