"""Any worker does any work: ``celery -A controlplane worker`` without ``-Q`` consumes every
queue the product uses; ``-Q`` only dedicates a worker. ``/readyz`` names a queue nobody
consumes; ``/metrics`` counts each queue's consumers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.models import Event
from controlplane.celery import app
from observability.consumers import record_consumers
from observability.metrics import render
from observability.pulse import last_watchdog_pass, record_watchdog_pass
from provisioning.models import Allocation, Run, StepExecution
from tenants.models import Tenant
from tenants.services import cancel_provisioning, decommission_tenant

from .. import factories as f
from ..conftest import wait_for

QUEUES = ("celery", "control")


def consumers_gauge() -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(render().decode()):
        if family.name == "controlplane_queue_consumers":
            for sample in family.samples:
                out[sample.labels["queue"]] = sample.value
    return out


def state(tenant: Tenant) -> str:
    return Tenant.objects.get(pk=tenant.pk).state


@pytest.mark.services
@pytest.mark.worker
def test_a_plain_worker_runs_a_cancel_a_decommission_and_a_watchdog_pass(worker_process, client):
    worker_process.start(concurrency=2, queues=None)  # no -Q, as production's command reads

    # Its queues, as it says itself: both of the product's.
    wait_for(lambda: consumers_gauge() == dict.fromkeys(QUEUES, 1.0), what="both queues stamped")

    # A cancel (compensation runs on the control queue).
    cancelled = f.new_tenant(slug="plain-cancel", faults={"allocate_identity": "slow:600"})
    wait_for(
        lambda: StepExecution.objects.filter(
            run_id=cancelled.workflow_id, name="allocate_identity", status="running"
        ).exists(),
        timeout=60,
        what="allocate_identity to start",
    )
    cancel_provisioning(tenant_id=cancelled.pk, actor=f.ACTOR)
    wait_for(lambda: state(cancelled) == "pending", timeout=60, what="the cancel to finish")
    assert Run.objects.get(pk=cancelled.workflow_id).status == "cancelled"
    assert not Allocation.objects.filter(tenant=cancelled, released_at__isnull=True).exists()

    # A decommission (control queue too), of a tenant the same worker provisioned.
    kept = f.new_tenant(slug="plain-decommission")
    wait_for(lambda: state(kept) == "active", timeout=60, what="provisioning to finish")
    decommission_tenant(tenant_id=kept.pk, actor=f.ACTOR)
    wait_for(lambda: state(kept) == "decommissioned", timeout=60, what="the decommission")
    assert Event.objects.filter(tenant_id=kept.pk, type="tenant.decommissioned").count() == 1

    # A watchdog pass, sent as beat sends it (routed to the control queue).
    assert last_watchdog_pass() is None
    app.send_task("provisioning.watchdog")
    wait_for(lambda: last_watchdog_pass() is not None, timeout=60, what="a watchdog pass")

    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["consumers"] == "ok"


@pytest.mark.services
@pytest.mark.worker
def test_a_dedicated_worker_consumes_only_its_queue_and_readyz_names_the_other(
    worker_process, client
):
    worker_process.start(concurrency=1, queues=("celery",))
    wait_for(lambda: consumers_gauge().get("celery") == 1.0, what="the step queue stamped")
    assert consumers_gauge() == {"celery": 1.0, "control": 0.0}

    # Steps run; control work waits in its queue for a worker that takes it.
    tenant = f.new_tenant(slug="dedicated-steps")
    wait_for(lambda: state(tenant) == "active", timeout=60, what="provisioning to finish")
    decommission_tenant(tenant_id=tenant.pk, actor=f.ACTOR)

    record_watchdog_pass()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["consumers"]
    assert "'control'" in body["checks"]["consumers"]
    assert "'celery'" not in body["checks"]["consumers"]
    assert state(tenant) == "active"  # nobody took the decommission

    # A control worker beside it takes the waiting work.
    worker_process.stop()
    worker_process.start(concurrency=1, queues=("control",))
    wait_for(lambda: state(tenant) == "decommissioned", timeout=60, what="the decommission")


@pytest.mark.django_db
def test_a_queue_silent_for_three_watchdog_intervals_fails_readiness(client, settings):
    settings.CONTROLPLANE_WATCHDOG_INTERVAL = 10
    now = timezone.now()
    record_watchdog_pass()
    record_consumers(worker="steps@a", queues=["celery"], now=now)
    record_consumers(worker="control@b", queues=["control"], now=now - timedelta(seconds=29))
    response = client.get("/readyz")
    assert response.json()["checks"]["consumers"] == "ok", response.content
    assert consumers_gauge() == {"celery": 1.0, "control": 1.0}

    record_consumers(worker="control@b", queues=["control"], now=now - timedelta(seconds=31))
    response = client.get("/readyz")
    assert response.status_code == 503
    message = response.json()["checks"]["consumers"]
    assert message.startswith("no worker has consumed queue 'control' for 3")
    assert "three watchdog intervals" in message
    assert consumers_gauge() == {"celery": 1.0, "control": 0.0}


@pytest.mark.django_db
def test_a_queue_never_consumed_is_named(client):
    record_watchdog_pass()
    record_consumers(worker="steps@a", queues=["celery", "webhooks-not-ours"])
    body = client.get("/readyz").json()
    assert body["failing"] == ["consumers"]
    assert body["checks"]["consumers"] == "no worker has consumed queue 'control'"
