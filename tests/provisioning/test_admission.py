"""Provider limits and the bulk lane (provisioning.admission), on real workers.

Limits hold across processes because they live in PostgreSQL; a step that may not start yet
stays queued for the same try and holds no worker. Work a bulk operation started yields to work
started for one tenant. Order is asserted, never a clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from audit.models import Event
from provisioning import admission, saga
from provisioning.models import StepExecution
from tenants.bulk import bulk
from tenants.models import Tenant
from tenants.selectors import tenant_detail
from tenants.services import Actor

from .. import factories as f
from ..conftest import thread_worker, wait_for

ACTOR = Actor.shell("tester")


# --- the setting, read strictly --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "not JSON"),
        ("[1]", "JSON object"),
        ('{"databse": {"concurrency": 1}}', "names 'databse'"),
        ('{"database": {"concurency": 1}}', "takes concurrency and/or per_minute"),
        ('{"database": {"concurrency": 0}}', "at least 1"),
        ('{"database": {"per_minute": true}}', "whole number"),
        ('{"database": {}}', "takes concurrency"),
    ],
)
def test_a_limit_it_cannot_understand_stops_the_process_with_its_reason(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        admission.parse_limits(raw)


def test_limits_read_as_written():
    limits = admission.parse_limits('{"database": {"concurrency": 4, "per_minute": 120}}')
    assert limits == {"database": admission.Limit(concurrency=4, per_minute=120)}
    assert admission.parse_limits("") == {}


# --- per minute: counted in the database -------------------------------------------------------


def test_the_per_minute_budget_is_counted_across_claims_and_refills_with_time(fast_saga, db):
    fast_saga.CONTROLPLANE_PROVIDER_LIMITS = json.dumps({"dns": {"per_minute": 3}})
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert all(admission.admit("dns").admitted for _ in range(3))
        fourth = admission.admit("dns")
        assert not fourth.admitted
        assert fourth.waiting_for == "the dns provider's rate limit (3 of 3 a minute started)"
        assert admission.admit("storage").admitted  # another kind is not limited
        clock.shift(timedelta(seconds=61))
        assert admission.admit("dns").admitted


def test_a_concurrency_slot_is_one_of_n_and_comes_back(fast_saga, db):
    fast_saga.CONTROLPLANE_PROVIDER_LIMITS = json.dumps({"database": {"concurrency": 2}})
    first, second = admission.admit("database"), admission.admit("database")
    assert {first.slot, second.slot} == {0, 1}
    third = admission.admit("database")
    assert not third.admitted
    assert third.waiting_for == "a free database provider slot (2 of 2 in use)"
    assert admission.slots_in_use() == {"database": 2}
    admission.release("database", first.slot)
    assert admission.slot_free("database")
    again = admission.admit("database")
    assert again.admitted and again.slot == first.slot
    admission.release("database", again.slot)
    admission.release("database", second.slot)
    assert admission.slots_in_use() == {"database": 0}


# --- concurrency on real workers ---------------------------------------------------------------


@pytest.mark.services
@pytest.mark.worker
def test_with_one_database_slot_no_two_create_database_steps_overlap(celery_worker, fast_saga):
    """Four worker threads, eight tenants, a slow create_database: the slot lets one run at a
    time, the others wait queued (no worker held, no try spent), and all end active."""
    fast_saga.CONTROLPLANE_PROVIDER_LIMITS = json.dumps({"database": {"concurrency": 1}})
    tenants = [
        f.new_tenant(slug=f"slot-{i}", faults={"create_database": "slow:0.3"}) for i in range(8)
    ]
    waited: set[str] = set()

    def all_active() -> bool:
        waited.update(
            StepExecution.objects.filter(name="create_database")
            .exclude(waiting_for="")
            .values_list("waiting_for", flat=True)
        )
        return Tenant.objects.filter(pk__in=[t.pk for t in tenants], state="active").count() == 8

    wait_for(all_active, timeout=90, what="eight tenants active")
    steps = list(StepExecution.objects.filter(name="create_database").order_by("started_at"))
    assert len(steps) == 8
    for earlier, later in zip(steps, steps[1:], strict=False):
        assert earlier.finished_at <= later.started_at, "two create_database steps overlapped"
    assert {s.tries for s in StepExecution.objects.all()} == {1}  # waiting spent no try
    assert {s.waiting_for for s in StepExecution.objects.all()} == {""}
    assert waited == {"a free database provider slot (1 of 1 in use)"}, waited
    assert admission.slots_in_use() == {"database": 0}


def test_a_waiting_step_says_what_it_waits_for(fast_saga, db):
    fast_saga.CONTROLPLANE_PROVIDER_LIMITS = json.dumps({"storage": {"concurrency": 1}})
    held = admission.admit("storage")  # another worker's step holds the only slot
    tenant = f.new_tenant(slug="waits-for-storage")
    for _ in range(2):  # validate_request, then allocate_storage: no slot
        step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
        saga.execute_step(step.pk, step.token)
    step = StepExecution.objects.get(run_id=tenant.workflow_id, name="allocate_storage")
    assert (step.status, step.tries, step.started_at) == ("dispatched", 1, None)
    assert step.waiting_for == "a free storage provider slot (1 of 1 in use)"
    detail = tenant_detail(tenant.pk)
    assert detail.tenant.condition == "progressing"
    assert detail.recommendation.action == "wait"
    assert "waiting for a free storage provider slot" in detail.recommendation.reason
    admission.release("storage", held.slot)


# --- the bulk lane --------------------------------------------------------------------------------


@pytest.fixture
def one_slot_worker(fast_saga: Any, transactional_db: None) -> Iterator[Any]:
    with thread_worker(concurrency=1) as worker:
        yield worker


@pytest.mark.services
@pytest.mark.worker
def test_a_single_tenants_steps_run_ahead_of_a_bulk_retrys_queued_ones(one_slot_worker):
    pending = [f.new_tenant(slug=f"bulk-{i:03d}", start=False) for i in range(150)]
    result = bulk("retry", actor=ACTOR, filters={"state": "pending"}, limit=1000)
    assert result.count("accepted") == 150
    # The bulk's runs fill the queue; the single tenant comes after all of them.
    wait_for(
        lambda: Event.objects.filter(type="tenant.provisioning.step_completed").count() >= 3,
        what="the bulk to be under way",
    )
    single = f.new_tenant(slug="on-its-own")
    wait_for(
        lambda: Tenant.objects.get(pk=single.pk).state == "active",
        timeout=120,
        what="the single tenant to be active",
    )
    created = Event.objects.get(tenant_id=single.id, type="tenant.created")
    done = Event.objects.get(tenant_id=single.id, type="tenant.provisioning.completed")
    bulk_ids = [t.id for t in pending]
    bulk_started_meanwhile = Event.objects.filter(
        tenant_id__in=bulk_ids,
        type="tenant.provisioning.step_started",
        id__gt=created.id,
        id__lt=done.id,
    ).count()
    # One worker slot: while the single tenant's eight steps ran, the bulk got at most the one
    # step it was running when the tenant was created (and one prefetched), not its backlog.
    assert bulk_started_meanwhile <= 2, bulk_started_meanwhile
    bulk_active = Tenant.objects.filter(pk__in=bulk_ids, state="active").count()
    assert bulk_active < 100, "the bulk was nearly done: the test proved nothing"


def test_metrics_show_slots_in_use_and_waiters(fast_saga, db, client):
    fast_saga.CONTROLPLANE_PROVIDER_LIMITS = json.dumps({"storage": {"concurrency": 1}})
    fast_saga.CONTROLPLANE_METRICS_PUBLIC = True
    held = admission.admit("storage")
    tenant = f.new_tenant(slug="metrics-waiter")
    for _ in range(2):
        step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
        saga.execute_step(step.pk, step.token)
    body = client.get("/metrics").content.decode()
    assert 'controlplane_provider_slots_in_use{kind="storage"} 1.0' in body
    assert 'controlplane_steps_waiting_for_provider{kind="storage"} 1.0' in body
    api = tenant_detail(tenant.pk).step_views
    assert [s.waiting_for for s in api if s.name == "allocate_storage"] == [
        "a free storage provider slot (1 of 1 in use)"
    ]
    admission.release("storage", held.slot)


def test_every_door_says_what_a_waiting_step_waits_for(fast_saga, db, client, admin_user):
    """The words come from one place (``tenants.selectors.recommend``, the step's
    ``waiting_for``): the console page, the API, the admin page and ``tenant show`` all say them."""
    from io import StringIO

    from django.core.management import call_command

    from ..api.conftest import client_for
    from ..console.conftest import login

    fast_saga.CONTROLPLANE_PROVIDER_LIMITS = json.dumps({"storage": {"concurrency": 1}})
    held = admission.admit("storage")
    try:
        tenant = f.new_tenant(slug="waits-everywhere")
        for _ in range(2):  # validate_request, then allocate_storage: no slot
            step = StepExecution.objects.get(run_id=tenant.workflow_id, status="dispatched")
            saga.execute_step(step.pk, step.token)
        words = "waiting for a free storage provider slot (1 of 1 in use)"

        login(client, admin_user)
        console = client.get(f"/tenants/{tenant.pk}/")
        assert console.status_code == 200
        assert words in console.content.decode()

        api = client_for(admin_user).get(f"/tenants/{tenant.pk}")
        assert api.status_code == 200
        body = api.json()
        assert words in body["recommended_reason"]
        assert [
            s["waiting_for"] for s in body["run"]["steps"] if s["name"] == "allocate_storage"
        ] == ["a free storage provider slot (1 of 1 in use)"]

        admin = client.get(f"/admin/tenants/tenant/{tenant.pk}/change/")
        assert admin.status_code == 200
        assert words in admin.content.decode()

        out = StringIO()
        call_command("tenant", "show", "waits-everywhere", stdout=out, stderr=StringIO())
        assert words in out.getvalue()
    finally:
        admission.release("storage", held.slot)
