"""Queued is not lost: waiting in a queue never spends a try or stalls a run; a message the
broker may have lost is published again for the same try; copies of a message change nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
import time_machine
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.models import Event
from console.presenters import step_rows
from controlplane.celery import app
from observability.metrics import render
from provisioning import broker, saga
from provisioning.models import STEPS, Allocation, StepExecution
from provisioning.watchdog import republish_due, run_watchdog
from tenants.models import Tenant
from tenants.selectors import tenant_detail

from .. import factories as f
from ..conftest import wait_for


def broker_client() -> redis.Redis:
    """The broker's own Redis client, whatever form its URL takes (a Unix socket included)."""
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.client


def broker_idle() -> bool:
    """Nothing waits in the step queue and nothing delivered is unacknowledged (the copies a
    worker holds for later, too): every message sent so far has been handled."""
    client = broker_client()
    return client.llen("celery") == 0 and client.zcard("unacked_index") == 0


def step(tenant: Tenant, name: str) -> StepExecution:
    return StepExecution.objects.get(run_id=tenant.workflow_id, name=name)


def events(tenant: Tenant, type_: str, **data: str) -> int:
    found = Event.objects.filter(tenant_id=tenant.pk, type=type_)
    for key, value in data.items():
        found = found.filter(**{f"data__{key}": value})
    return found.count()


# --- the watchdog's rule, in-process --------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db
def test_a_queued_step_never_spends_a_try_or_stalls(fast_saga):
    tenant = f.new_tenant(slug="waits-long")
    first = step(tenant, "validate_request")
    # Passes an hour apart: however long it waits, the step keeps its one try.
    for hours in range(1, 6):
        run_watchdog(now=timezone.now() + timedelta(hours=hours))
    first = step(tenant, "validate_request")
    tenant = f.reload(tenant)
    assert first.status == "dispatched" and first.tries == 1
    assert tenant.condition == "progressing" and tenant.last_error == ""
    assert events(tenant, "tenant.provisioning.step_redispatched") == 0
    assert events(tenant, "tenant.provisioning.stalled") == 0


def test_re_publishing_backs_off_by_doubling():
    now = timezone.now()
    queued = StepExecution(status="dispatched", due_at=now, republished_at=None)
    after = 2.0

    def at(seconds: float) -> bool:
        return republish_due(queued, now + timedelta(seconds=seconds), after)

    assert not at(1.9)
    assert at(2.1)
    queued.republished_at = now + timedelta(seconds=2.1)
    assert not at(3.9)  # the next point is 2 x 2 s after it was due
    assert at(4.1)
    queued.republished_at = now + timedelta(seconds=4.1)
    assert not at(7.9) and at(8.1)
    # A new try (due again later) starts from the first point again.
    queued.due_at = now + timedelta(seconds=100)
    assert not at(101) and at(102.5)


@pytest.mark.services
@pytest.mark.django_db
def test_a_queued_step_says_how_long_it_has_waited(fast_saga):
    tenant = f.new_tenant(slug="says-queued")
    first = step(tenant, "validate_request")
    later = first.due_at + timedelta(seconds=42.2)  # far past the 2 s heartbeat timeout
    with time_machine.travel(later, tick=False):
        detail = tenant_detail(tenant.pk)
    assert detail.tenant.condition == "progressing"
    rows = {row.name: row for row in step_rows(detail)}
    assert rows["validate_request"].note == "queued for a worker (42 s)"
    assert rows["validate_request"].heartbeat_age is None  # no heartbeat is overdue
    assert rows["allocate_storage"].note == ""
    assert detail.recommendation.action == "wait"
    assert detail.recommendation.reason.startswith(
        "validate_request is queued for a worker (42 s), try 1."
    )
    views = {view.name: view for view in detail.step_views}
    assert views["validate_request"].queued_seconds == pytest.approx(42.2)


# --- real workers ---------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.worker
def test_a_backlog_on_one_slot_ends_all_active_with_one_try_per_step(worker_process):
    # Every step takes a little time, so that each lap of the backlog (one step per tenant)
    # lasts longer than the 2 s heartbeat timeout: before, queue wait spent tries and stalled.
    worker_process.env["CONTROLPLANE_STEP_DELAY"] = "0.03"
    tenants = [f.new_tenant(slug=f"backlog-{i:03d}") for i in range(110)]
    worker_process.start(concurrency=1, queues=None)

    passes = 0
    last_pass = 0.0

    def all_active_with_the_watchdog_running() -> bool:
        nonlocal passes, last_pass
        if time.monotonic() - last_pass >= 0.5:  # beat's schedule, from the test thread
            run_watchdog()
            passes += 1
            last_pass = time.monotonic()
        return not Tenant.objects.exclude(state="active").exists()

    wait_for(all_active_with_the_watchdog_running, timeout=900, what="every tenant Active")

    ids = [t.pk for t in tenants]
    steps = list(StepExecution.objects.filter(run__tenant_id__in=ids))
    assert len(steps) == len(ids) * len(STEPS)
    assert Counter(s.tries for s in steps) == {1: len(steps)}
    stalls = Event.objects.filter(tenant_id__in=ids, type="tenant.provisioning.stalled")
    redispatched = Event.objects.filter(
        tenant_id__in=ids, type="tenant.provisioning.step_redispatched"
    )
    assert stalls.count() == 0 and redispatched.count() == 0
    # There was a backlog longer than the heartbeat timeout: steps waited that long.
    longest_wait = max((s.started_at - s.due_at).total_seconds() for s in steps)
    assert longest_wait > settings.CONTROLPLANE_HEARTBEAT_TIMEOUT, longest_wait
    # And the queue was not filled with copies of its own messages: a message waiting in it
    # is never copied (a copy happens only in the instant between a worker taking a message
    # and starting its step).
    copies = sum(s.republished for s in steps)
    assert copies <= passes // 10, (copies, passes)


@pytest.mark.services
@pytest.mark.worker
def test_a_broker_that_lost_its_queue_gets_the_same_try_again(worker_process):
    tenant = f.new_tenant(slug="broker-restarted")
    queued = step(tenant, "validate_request")
    token = queued.token
    assert (queued.pk, str(token)) in broker.held_step_messages("celery", recent=60)

    # A broker restart without persistence: everything it held is gone, the marker with it.
    broker_client().flushdb()
    assert broker.held_step_messages("celery", recent=60) == set()
    report = run_watchdog()
    assert report.republished == [f"{tenant.workflow_id}:validate_request"]
    assert report.redispatched == []
    queued = step(tenant, "validate_request")
    assert (queued.token, queued.tries, queued.republished) == (token, 1, 1)
    assert broker.held_step_messages("celery", recent=60) == {(queued.pk, str(token))}

    # A waiting message is not copied, however long it waits...
    later = timezone.now() + timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT * 1.5)
    assert run_watchdog(now=later).republished == []
    # ...but one that is gone from the queue (the marker kept) is sent again once it has waited
    # the redelivery time.
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    assert run_watchdog(now=later).republished == [f"{tenant.workflow_id}:validate_request"]
    assert run_watchdog(now=later).republished == []  # once per backoff point
    queued = step(tenant, "validate_request")
    assert (queued.token, queued.tries, queued.republished) == (token, 1, 2)

    worker_process.start(concurrency=1, queues=None)
    wait_for(lambda: f.reload(tenant).state == "active", timeout=60, what="provisioning")
    assert step(tenant, "validate_request").token == token
    assert events(tenant, "tenant.provisioning.step_started", step="validate_request") == 1
    assert events(tenant, "tenant.provisioning.step_redispatched") == 0
    assert Counter(
        StepExecution.objects.filter(run_id=tenant.workflow_id).values_list("tries", flat=True)
    ) == {1: len(STEPS)}


@pytest.mark.services
@pytest.mark.worker
def test_copies_of_one_message_change_nothing(worker_process):
    worker_process.start(concurrency=3, queues=None)
    tenant = f.new_tenant(slug="copied-message", faults={"allocate_storage": "slow:2"})
    wait_for(
        lambda: step(tenant, "allocate_storage").status == "running",
        timeout=60,
        what="allocate_storage to start",
    )
    working = step(tenant, "allocate_storage")
    for _ in range(3):  # copies of the try at work, as a re-publish or a redelivery makes
        saga.publish_step("allocate_storage", working.pk, working.token)
    done = step(tenant, "validate_request")
    saga.publish_step("validate_request", done.pk, done.token)  # a copy of a finished try
    wait_for(lambda: f.reload(tenant).state == "active", timeout=60, what="provisioning")
    wait_for(broker_idle, timeout=60, what="every copy handled")

    assert events(tenant, "tenant.provisioning.step_started", step="allocate_storage") == 1
    assert events(tenant, "tenant.provisioning.step_completed", step="allocate_storage") == 1
    assert events(tenant, "tenant.provisioning.step_started", step="validate_request") == 1
    # One provider call: one allocation made, none found held and reused.
    assert events(tenant, "tenant.resource.allocated", kind="storage") == 1
    assert events(tenant, "tenant.resource.reused") == 0
    assert Allocation.objects.filter(tenant=tenant, kind="storage").count() == 1
    assert step(tenant, "allocate_storage").tries == 1


@pytest.mark.services
@pytest.mark.django_db
def test_metrics_show_the_backlog(fast_saga):
    tenants = [f.new_tenant(slug=f"in-backlog-{i}") for i in range(3)]
    oldest = step(tenants[0], "validate_request").due_at
    with time_machine.travel(oldest + timedelta(seconds=30), tick=False):
        found = {
            sample.name: sample.value
            for family in text_string_to_metric_families(render().decode())
            for sample in family.samples
        }
    assert found["controlplane_steps_queued"] == 3
    assert found["controlplane_oldest_queued_step_seconds"] == pytest.approx(30, abs=0.01)
    assert found["controlplane_step_republished_total"] == 0
