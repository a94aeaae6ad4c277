"""The heartbeat of steps at work: one thread per process beats for every step working in it
(several at once in a thread pool), stops a step whose run stopped being live, and enforces the
step timeout. In process, on the real database (the beats use their own connection)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from provisioning import saga
from provisioning.heartbeat import Aborted, Heartbeat, StepTimedOut
from provisioning.models import StepExecution
from tenants.services import cancel_provisioning

from .. import factories as f
from ..conftest import purge_broker, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def working_step(slug: str) -> StepExecution:
    """The first step of a new tenant's run, claimed: running, as a worker leaves it while the
    provider works."""
    tenant = f.new_tenant(slug=slug)
    step = StepExecution.objects.get(run_id=tenant.workflow_id, position=0)
    assert saga._claim(step.pk, step.token) is not None
    step.refresh_from_db()
    assert step.status == "running"
    return step


def beats_of(step: StepExecution) -> Any:
    return StepExecution.objects.get(pk=step.pk).heartbeat_at


@pytest.fixture(autouse=True)
def _no_queued_messages() -> Any:
    yield
    purge_broker()


def test_two_steps_working_at_once_both_beat(fast_saga):
    steps = [working_step("beats-one"), working_step("beats-two")]
    claimed = [beats_of(step) for step in steps]
    entered = threading.Barrier(3)
    done = threading.Event()
    errors: list[BaseException] = []

    def work(step: StepExecution) -> None:
        try:
            with Heartbeat(step.pk, step.run_id, step.token) as hb:
                entered.wait(timeout=10)
                while not done.is_set():
                    hb.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(step,)) for step in steps]
    for thread in threads:
        thread.start()
    try:
        entered.wait(timeout=10)
        for step, before in zip(steps, claimed, strict=True):
            wait_for(lambda s=step, b=before: beats_of(s) > b, what=f"a beat for step {step.pk}")
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=10)
    assert errors == []


def test_a_step_whose_run_is_cancelled_is_told_to_stop(fast_saga):
    step = working_step("beats-cancelled")
    with pytest.raises(Aborted), Heartbeat(step.pk, step.run_id, step.token) as hb:
        cancel_provisioning(tenant_id=step.run.tenant_id, actor=f.ACTOR)
        hb.sleep(30)  # woken by the first beat after the cancel, long before this
        hb.check()


def test_a_step_past_its_timeout_is_told_it_timed_out(fast_saga):
    fast_saga.CONTROLPLANE_STEP_TIMEOUT = 0.5
    step = working_step("beats-timed-out")
    with pytest.raises(StepTimedOut), Heartbeat(step.pk, step.run_id, step.token) as hb:
        hb.sleep(30)
        hb.check()
