"""``--at`` on ``manage.py tenant OP`` and ``tenant bulk OP --yes``; ``manage.py schedule``."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import Event
from tenants import schedules
from tenants.models import Schedule, Tenant

from .. import factories as f

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_at_schedules_an_operation_and_schedule_lists_and_cancels_it(fast_saga):
    tenant = f.active_tenant()
    at = (timezone.now() + timedelta(hours=1)).isoformat()
    out = run("tenant", "suspend", tenant.slug, "--at", at, "--actor", "sam", "--json")
    scheduled = json.loads(out)["schedule"]
    assert scheduled["status"] == "scheduled" and scheduled["actor"] == "user:sam"
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    listed = run("schedule", "list", "--status", "scheduled")
    assert scheduled["id"] in listed and "Suspend" in listed and tenant.slug in listed
    out = run("schedule", "cancel", scheduled["id"], "--actor", "sam")
    assert "Cancelled" in out
    assert Schedule.objects.get(pk=scheduled["id"]).status == "cancelled"
    with pytest.raises(CommandError, match="cancelled"):
        run("schedule", "cancel", scheduled["id"])
    assert Event.objects.filter(type="operation.schedule_cancelled", actor="user:sam").exists()


def test_bulk_at_needs_yes_and_schedules(fast_saga):
    f.active_tenant()
    at = (timezone.now() + timedelta(hours=1)).isoformat()
    out = run("tenant", "bulk", "suspend", "--state", "active", "--at", at, "--yes")
    assert "Scheduled Suspend of tenants where state=active" in out
    s = Schedule.objects.get()
    assert s.bulk and s.filter == {"state": "active"}
    schedules.run_due(now=s.at + timedelta(seconds=1))
    assert set(Tenant.objects.values_list("state", flat=True)) == {"suspended"}


@pytest.mark.parametrize("at", ["2030-01-01T09:00", "2001-01-01T00:00Z", "soon"])
def test_a_bad_at_is_refused_by_the_commands(fast_saga, at):
    tenant = f.active_tenant()
    with pytest.raises(CommandError, match="at"):
        run("tenant", "suspend", tenant.slug, "--at", at)
    with pytest.raises(CommandError, match="at"):
        run("tenant", "bulk", "suspend", "--state", "active", "--at", at, "--yes")
    assert not Schedule.objects.exists()


def test_schedule_list_refuses_a_bad_filter(db):
    with pytest.raises(CommandError, match="status"):
        run("schedule", "list", "--status", "soon")
    assert "No scheduled operations." in run("schedule", "list")


def test_tenant_pause_and_unpause(fast_saga):
    from provisioning.models import StepExecution

    from ..conftest import drive

    tenant = f.new_tenant()
    out = run("tenant", "pause", tenant.slug, "--reason", "window", "--actor", "sam")
    assert "paused" in out
    assert Tenant.objects.get(pk=tenant.pk).condition == "paused"
    with pytest.raises(CommandError, match="already paused"):
        run("tenant", "pause", tenant.slug)
    drive(tenant.workflow_id)  # the step at work finishes; nothing after it
    assert not StepExecution.objects.filter(run_id=tenant.workflow_id, status="dispatched")
    shown = run("tenant", "show", tenant.slug)
    assert "paused" in shown
    assert "goes on" in run("tenant", "unpause", tenant.slug)
    drive(tenant.workflow_id)
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    assert Event.objects.filter(type="tenant.run.paused", actor="user:sam").exists()
