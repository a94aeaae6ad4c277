"""A worker process SIGKILLed in the middle of a step."""

from __future__ import annotations

import os
import signal

import pytest

from audit.models import Event
from provisioning.models import Allocation, Run, StepExecution
from tenants.models import Tenant

from .. import factories as f
from ..conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker]


def test_a_step_killed_mid_work_is_redelivered_and_completes_once(worker_process):
    worker_process.start(concurrency=1)
    # The step would take ten minutes, so the kill surely lands mid-work (with a few seconds,
    # a slow machine could reach the kill after the step had finished).
    tenant = f.new_tenant(slug="killed-mid-step", faults={"create_database": "slow:600"})

    def database_step_running() -> StepExecution | None:
        step = StepExecution.objects.get(run_id=tenant.workflow_id, name="create_database")
        return step if step.status == "running" else None

    wait_for(database_step_running, timeout=60, what="create_database to start")
    # The try at work read its fault when it claimed the step; the redelivered try is healthy.
    Run.objects.filter(pk=tenant.workflow_id).update(faults={})
    children = worker_process.children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # the pool process running the step dies

    # Only the redelivered try can finish the step: the killed one would have slept ten minutes.
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).state == "active",
        timeout=90,
        what="the saga to complete after the kill",
    )
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert Allocation.objects.filter(tenant=tenant, kind="database").count() == 1
    assert Allocation.objects.filter(tenant=tenant).count() == 6
    assert Allocation.objects.filter(tenant=tenant, released_at__isnull=True).count() == 6
    completed = Event.objects.filter(
        tenant_id=tenant.id, type="tenant.provisioning.step_completed", data__step="create_database"
    )
    assert completed.count() == 1  # the answer was accepted once
