"""Two watchdogs at once (two beat processes by mistake, or a failover): every action on the
same stale work happens once. Two threads, each with its own PostgreSQL connection, run passes
over the same stale runs at the same moment."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from audit.models import Event
from provisioning.models import Run, StepExecution, StepStatus
from provisioning.watchdog import WatchdogReport, run_watchdog
from tenants.services import cancel_provisioning, decommission_tenant

from ..conftest import close_other_sessions, drive, purge_broker
from ..factories import ACTOR, active_tenant, new_tenant, provisioning_tenant, reload

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def almost_stalled(settings: Any) -> Any:
    """A run whose step stalled on every try but the watchdog has not flagged it yet."""
    tenant = new_tenant(faults={"allocate_storage": "stall"})
    for _ in range(20):
        drive(tenant.workflow_id)
        step = StepExecution.objects.get(run_id=tenant.workflow_id, name="allocate_storage")
        if step.tries >= settings.CONTROLPLANE_STEP_MAX_TRIES:
            return tenant
        with time_machine.travel(later(settings), tick=False):
            run_watchdog()
    raise AssertionError("the step never ran out of tries")


def later(settings: Any, factor: float = 2) -> Any:
    return timezone.now() + timezone.timedelta(
        seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT * factor
    )


def concurrent_passes(n: int = 2) -> list[WatchdogReport]:
    barrier = threading.Barrier(n)
    reports: list[WatchdogReport] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(run_watchdog())
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(reports) == n
    return reports


@pytest.fixture
def stale_world(fast_saga: Any) -> Any:
    purge_broker()
    world: dict[str, Any] = {}
    world["stalling"] = almost_stalled(fast_saga)
    # Dead workers: steps started that never beat again.
    world["dead"] = [new_tenant(faults={"validate_request": "stall"}) for _ in range(4)]
    for tenant in world["dead"]:
        drive(tenant.workflow_id, max_steps=1)
    # Lost messages: steps dispatched, their messages gone from the broker.
    world["lost"] = [new_tenant() for _ in range(4)]
    purge_broker()
    orphan = provisioning_tenant()
    Run.objects.filter(pk=orphan.workflow_id).update(status="orphaned")
    world["orphan"] = orphan
    cancelled = provisioning_tenant()
    cancel_provisioning(tenant_id=cancelled.id, actor=ACTOR)  # compensation never picked up
    world["cancelled"] = cancelled
    leaving = active_tenant()
    decommission_tenant(tenant_id=leaving.id, actor=ACTOR)  # its task never picked up
    world["leaving"] = leaving
    yield world
    purge_broker()
    close_other_sessions()


def test_two_concurrent_watchdog_passes_do_each_action_once(stale_world: Any, fast_saga: Any):
    with time_machine.travel(later(fast_saga), tick=False):
        reports = concurrent_passes(2)
        # And once more, both again: nothing is left to do twice.
        again = concurrent_passes(2)

    def total(attr: str, rs: list[WatchdogReport]) -> Counter[str]:
        return Counter(item for r in rs for item in getattr(r, attr))

    dead_runs = {str(t.workflow_id) for t in stale_world["dead"]}
    redispatched = total("redispatched", reports)
    assert {key.split(":")[0] for key in redispatched} == dead_runs
    assert set(redispatched.values()) == {1}
    lost_runs = {str(t.workflow_id) for t in stale_world["lost"]}
    republished = total("republished", reports)
    assert {key.split(":")[0] for key in republished} == lost_runs
    assert set(republished.values()) == {1}
    assert total("stalled", reports) == {str(stale_world["stalling"].workflow_id): 1}
    assert total("orphaned_handles", reports) == {str(stale_world["orphan"].id): 1}
    assert total("compensations_resumed", reports) == {str(stale_world["cancelled"].workflow_id): 1}
    assert total("decommissions_resumed", reports) == {str(stale_world["leaving"].id): 1}
    assert all(not any(vars(r).values()) for r in again), again

    events = Counter(
        (e.tenant_id, e.type)
        for e in Event.objects.filter(
            type__in=[
                "tenant.provisioning.step_redispatched",
                "tenant.provisioning.stalled",
                "tenant.provisioning.orphaned_handle",
            ]
        )
    )
    for tenant in stale_world["dead"]:
        assert events[(tenant.id, "tenant.provisioning.step_redispatched")] == 1
        step = StepExecution.objects.get(run_id=tenant.workflow_id, name="validate_request")
        assert step.status == StepStatus.DISPATCHED and step.tries == 2
    assert events[(stale_world["stalling"].id, "tenant.provisioning.stalled")] == 1
    assert events[(stale_world["orphan"].id, "tenant.provisioning.orphaned_handle")] == 1
    for tenant in stale_world["lost"]:
        # Queued is not lost: the same try, sent again once; no try spent, no event.
        assert events[(tenant.id, "tenant.provisioning.step_redispatched")] == 0
        step = StepExecution.objects.get(run_id=tenant.workflow_id, name="validate_request")
        assert step.status == StepStatus.DISPATCHED and step.tries == 1
        assert step.republished == 1


def test_a_decommission_being_worked_on_is_not_resent(fast_saga: Any):
    purge_broker()
    try:
        tenant = active_tenant()
        decommission_tenant(tenant_id=tenant.id, actor=ACTOR)
        with time_machine.travel(later(fast_saga), tick=False):
            # Its task beats (as it does while releasing): the watchdog leaves it alone.
            from tenants.models import Tenant

            Tenant.objects.filter(pk=tenant.id).update(decommission_heartbeat_at=timezone.now())
            assert run_watchdog().decommissions_resumed == []
        with time_machine.travel(later(fast_saga, 4), tick=False):
            assert run_watchdog().decommissions_resumed == [str(tenant.id)]
            assert run_watchdog().decommissions_resumed == []
        assert reload(tenant).decommission_requested_at is not None
    finally:
        purge_broker()
