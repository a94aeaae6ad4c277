"""The runbooks' scenarios with a real Celery worker on PostgreSQL and Redis.

The worker runs in threads of this process (``celery_worker``); the watchdog is called the way
beat calls it, one pass at a time, once its timeout has really elapsed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from audit.models import Event
from provisioning.models import Allocation, Run, StepExecution
from provisioning.providers import get_provider
from provisioning.watchdog import run_watchdog
from tenants.errors import OperationError
from tenants.models import Tenant
from tenants.services import (
    Actor,
    cancel_provisioning,
    decommission_tenant,
    reset_provisioning,
    retry_provisioning,
)

from .. import factories as f
from ..conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker]
ACTOR = Actor.shell("operator-on-call")


def state_of(tenant) -> str:
    return Tenant.objects.get(pk=tenant.pk).state


def until_state(tenant, state: str, timeout: float = 60) -> Tenant:
    wait_for(lambda: state_of(tenant) == state, timeout=timeout, what=f"{tenant.slug} {state}")
    return Tenant.objects.get(pk=tenant.pk)


def held(tenant) -> dict[str, str]:
    return dict(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).values_list(
            "kind", "external_id"
        )
    )


def event_types(tenant) -> list[str]:
    return list(
        Event.objects.filter(tenant_id=tenant.id).order_by("id").values_list("type", flat=True)
    )


def step_status(tenant, name: str) -> str:
    t = Tenant.objects.get(pk=tenant.pk)
    return StepExecution.objects.get(run_id=t.workflow_id, name=name).status


def test_cancel_in_the_middle_rolls_back_everything_then_retry_succeeds(celery_worker):
    # configure_dns would take ten minutes; only the cancel stopping it early lets the rollback
    # finish within the wait (no clock is read: a loaded machine only makes this slower).
    tenant = f.new_tenant(slug="mid-cancel", faults={"configure_dns": "slow:600"})
    wait_for(lambda: step_status(tenant, "configure_dns") == "running", what="dns running")
    made = held(tenant)
    assert set(made) == {"storage", "identity", "database"}

    cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    tenant = until_state(tenant, "pending", timeout=120)
    assert step_status(tenant, "configure_dns") != "completed"
    assert not Allocation.objects.filter(tenant=tenant, kind="dns").exists()

    assert held(tenant) == {}
    assert not Path(made["storage"]).exists()
    assert not Group.objects.filter(name=made["identity"]).exists()
    assert not get_provider("database").exists(made["database"])
    types = event_types(tenant)
    assert types[-1] == "tenant.provisioning.cancelled"
    assert "tenant.provisioning.cancel_requested" in types
    assert Run.objects.get(pk=tenant.workflow_id).status == "cancelled"
    assert tenant.last_error == ""

    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    tenant = until_state(tenant, "active")
    assert len(held(tenant)) == 6
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 2


def test_cancel_is_refused_once_active(celery_worker):
    tenant = f.new_tenant(slug="done-already")
    tenant = until_state(tenant, "active")
    with pytest.raises(OperationError) as refused:
        cancel_provisioning(tenant_id=tenant.id, actor=ACTOR)
    assert refused.value.code == "invalid_state"
    assert state_of(tenant) == "active"
    assert len(held(tenant)) == 6


def test_a_step_whose_worker_vanished_is_redispatched_and_the_saga_completes(celery_worker):
    tenant = f.new_tenant(slug="vanished", faults={"create_database": "stall"})
    wait_for(lambda: step_status(tenant, "create_database") == "running", what="db started")
    # The stalled try holds no slot and never heartbeats. Let the watchdog find it; the
    # injected stall applies to every try, so clear it as if the next worker were healthy.
    Run.objects.filter(pk=tenant.workflow_id).update(faults={})
    wait_for(lambda: run_watchdog().redispatched, timeout=60, what="a redispatch")
    tenant = until_state(tenant, "active")
    redispatched = Event.objects.get(
        tenant_id=tenant.id, type="tenant.provisioning.step_redispatched"
    )
    assert redispatched.data["step"] == "create_database"
    assert Allocation.objects.filter(tenant=tenant).count() == 6


def test_stall_reset_late_answer_retry_reuses_and_reaches_active(celery_worker, fast_saga):
    tenant = f.new_tenant(slug="wedged", faults={"configure_dns": "stall"})
    old_run = Tenant.objects.get(pk=tenant.pk).workflow_id

    def stalled() -> bool:
        run_watchdog()
        return Event.objects.filter(
            tenant_id=tenant.id, type="tenant.provisioning.stalled"
        ).exists()

    wait_for(stalled, timeout=40, what="the watchdog to flag the stall")
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.state == "provisioning" and "stalled" in tenant.last_error
    tries = StepExecution.objects.get(run_id=old_run, name="configure_dns").tries
    assert tries == fast_saga.CONTROLPLANE_STEP_MAX_TRIES
    kept = held(tenant)
    assert set(kept) == {"storage", "identity", "database"}

    reset_provisioning(tenant_id=tenant.id, actor=ACTOR)
    assert state_of(tenant) == "pending"
    assert Run.objects.get(pk=old_run).status == "orphaned"

    # The old run's try answers late: the tenant does not move.
    stuck = StepExecution.objects.get(run_id=old_run, name="configure_dns")
    from provisioning import saga

    saga.execute_step(stuck.pk, stuck.token)
    assert state_of(tenant) == "pending"

    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    tenant = until_state(tenant, "active")
    after = held(tenant)
    assert {k: after[k] for k in kept} == kept
    reused = Event.objects.filter(
        tenant_id=tenant.id, run_id=tenant.workflow_id, type="tenant.resource.reused"
    )
    assert {e.data["kind"] for e in reused} == set(kept)
    assert Allocation.objects.filter(tenant=tenant).count() == 6


def test_failure_out_of_retries_compensates_then_retry_succeeds(celery_worker):
    tenant = f.new_tenant(slug="fails-dns", faults={"configure_dns": "fail"})
    tenant = until_state(tenant, "failed")
    assert tenant.failed_activity == "configure_dns"
    assert "injected failure" in tenant.last_error
    assert held(tenant) == {}
    types = event_types(tenant)
    assert "tenant.provisioning.compensation_started" in types
    assert types[-1] == "tenant.provisioning.failed"
    retry_provisioning(tenant_id=tenant.id, actor=ACTOR)
    tenant = until_state(tenant, "active")
    assert len(held(tenant)) == 6


def test_fail_once_is_absorbed(celery_worker):
    tenant = f.new_tenant(slug="hiccup", faults={"setup_billing": "fail_once"})
    tenant = until_state(tenant, "active")
    failures = Event.objects.filter(tenant_id=tenant.id, type="tenant.provisioning.step_failed")
    assert [e.data["step"] for e in failures] == ["setup_billing"]


def test_decommission_releases_everything_and_frees_the_slug(celery_worker):
    tenant = until_state(f.new_tenant(slug="short-lived"), "active")
    made = held(tenant)
    decommission_tenant(tenant_id=tenant.id, actor=ACTOR)
    tenant = until_state(tenant, "decommissioned")
    assert held(tenant) == {}
    assert not Path(made["storage"]).exists()
    assert not get_provider("database").exists(made["database"])
    successor = until_state(f.new_tenant(slug="short-lived"), "active")
    assert successor.id != tenant.id
