"""Two schedule passes at once (two beats by mistake, or a pass that outlasts its interval):
each due schedule runs exactly once, a cancelled one never."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import Event
from tenants import schedules
from tenants.models import Schedule, Tenant

from .. import factories as f

pytestmark = [pytest.mark.services]


def test_two_passes_racing_run_each_schedule_once(transactional_db, fast_saga):
    tenants = [f.active_tenant() for _ in range(6)]
    at = timezone.now() + timedelta(minutes=5)
    made = [
        schedules.schedule_operation("suspend", tenant_id=t.id, actor=f.ACTOR, at=at)
        for t in tenants
    ]
    schedules.cancel_schedule(made[-1].id, actor=f.ACTOR)
    later = at + timedelta(seconds=1)
    barrier = threading.Barrier(2)
    ran: list[list] = [[], []]
    errors: list[BaseException] = []

    def beat(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            ran[i] = schedules.run_due(now=later)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    first, second = set(ran[0]), set(ran[1])
    assert not first & second  # no schedule ran in both passes
    assert first | second == {s.id for s in made[:-1]}
    for t in tenants[:-1]:
        assert Event.objects.filter(type="tenant.suspended", tenant_id=t.id).count() == 1
        assert Tenant.objects.get(pk=t.pk).state == "suspended"
    assert Tenant.objects.get(pk=tenants[-1].pk).state == "active"  # cancelled: never
    assert Schedule.objects.get(pk=made[-1].id).status == "cancelled"
    assert set(Schedule.objects.values_list("status", flat=True)) == {"done", "cancelled"}
    assert schedules.run_due(now=later + timedelta(hours=1)) == []


@pytest.mark.worker
def test_beat_runs_the_schedule_pass_on_a_worker(celery_worker, settings):
    from controlplane.celery import app
    from tenants.tasks import run_schedules

    from ..conftest import wait_for

    entry = settings.CELERY_BEAT_SCHEDULE["schedules"]
    assert entry["task"] == run_schedules.name and app.conf.beat_schedule["schedules"]
    tenant = f.new_tenant()  # the worker provisions it
    wait_for(lambda: Tenant.objects.get(pk=tenant.pk).state == "active", what="active")
    at = timezone.now() + timedelta(seconds=1)
    s = schedules.schedule_operation("suspend", tenant_id=tenant.id, actor=f.ACTOR, at=at)
    wait_for(lambda: timezone.now() > at, what="the schedule's time")
    run_schedules.delay()
    wait_for(lambda: Schedule.objects.get(pk=s.id).status == "done", what="the schedule run")
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"
