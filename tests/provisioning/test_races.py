"""Cancel racing mark_active, for real: two threads, two connections, one row lock."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from provisioning import compensation, saga
from provisioning.models import Allocation, Run, StepExecution
from tenants.errors import OperationError
from tenants.models import Tenant
from tenants.services import Actor, cancel_provisioning

from .. import factories as f
from ..conftest import purge_broker

pytestmark = [pytest.mark.services]
ACTOR = Actor.shell("racer")
RACES = 50


def _up_to_mark_active(tenant: Tenant) -> StepExecution:
    while True:
        step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
        if step.name == "mark_active":
            return step
        saga.execute_step(step.pk, step.token)


def test_fifty_cancel_vs_mark_active_races_have_one_winner_each(fast_saga, transactional_db):
    outcomes = {"active": 0, "cancelled": 0}
    try:
        for i in range(RACES):
            tenant = f.new_tenant(slug=f"race-{i:02d}")
            mark = _up_to_mark_active(tenant)
            barrier = threading.Barrier(2)
            refused: list[OperationError] = []

            def finish(step: StepExecution = mark, barrier: threading.Barrier = barrier) -> None:
                try:
                    barrier.wait()
                    saga.execute_step(step.pk, step.token)
                finally:
                    connection.close()

            def cancel(
                t: Tenant = tenant,
                barrier: threading.Barrier = barrier,
                refused: list[OperationError] = refused,
            ) -> None:
                try:
                    barrier.wait()
                    cancel_provisioning(tenant_id=t.id, actor=ACTOR)
                except OperationError as exc:
                    refused.append(exc)
                finally:
                    connection.close()

            threads = [threading.Thread(target=finish), threading.Thread(target=cancel)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

            tenant = Tenant.objects.get(pk=tenant.pk)
            run = Run.objects.get(pk=tenant.workflow_id)
            held = Allocation.objects.filter(tenant=tenant, released_at__isnull=True)
            if refused:
                # mark_active won: active, completed, everything held, cancel said why.
                assert refused[0].code == "invalid_state"
                assert (tenant.state, run.status) == ("active", "completed")
                assert held.count() == 6
                outcomes["active"] += 1
            else:
                # cancel won: mark_active changed nothing; the rollback empties the ledger.
                assert tenant.activated_at is None
                assert run.status == "cancelling"
                compensation.compensate_run(run.id)
                tenant = Tenant.objects.get(pk=tenant.pk)
                assert tenant.state == "pending"
                assert Run.objects.get(pk=run.id).status == "cancelled"
                assert held.count() == 0
                outcomes["cancelled"] += 1
            assert Allocation.objects.filter(tenant=tenant).count() == 6  # nothing twice
    finally:
        purge_broker()
    assert sum(outcomes.values()) == RACES
