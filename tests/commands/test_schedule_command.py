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


def test_change_plan_at_keeps_the_plan_and_runs_it_then(fast_saga):
    from ..conftest import drive

    tenant = f.active_tenant(plan="starter", slug="acme")
    at = (timezone.now() + timedelta(hours=1)).isoformat()
    out = run("tenant", "change-plan", "acme", "--plan", "growth", "--at", at)
    assert "Scheduled Change plan to growth of acme" in out
    s = Schedule.objects.get()
    assert (s.operation, s.options) == ("change_plan", {"plan": "growth"})
    assert "Change plan to growth" in run("schedule", "list")
    listed = json.loads(run("schedule", "list", "--json"))
    assert [i["options"] for i in listed] == [{"plan": "growth"}]
    schedules.run_due(now=s.at + timedelta(seconds=1))
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.state == "updating"
    drive(tenant.workflow_id)
    assert Tenant.objects.get(pk=tenant.pk).plan == "growth"
    assert Schedule.objects.get(pk=s.pk).status == "done"


def test_bulk_change_plan_at_keeps_the_plan(fast_saga):
    from ..conftest import drive

    tenants = [f.active_tenant(plan="starter"), f.active_tenant(plan="starter")]
    at = (timezone.now() + timedelta(hours=1)).isoformat()
    out = run(
        "tenant", "bulk", "change_plan", "--plan", "starter", "--to-plan", "enterprise",
        "--at", at, "--yes",
    )  # fmt: skip
    assert "Scheduled Change plan to enterprise of tenants where plan=starter" in out
    s = Schedule.objects.get()
    assert s.bulk and s.options == {"plan": "enterprise"}
    schedules.run_due(now=s.at + timedelta(seconds=1))
    for t in tenants:
        drive(Tenant.objects.get(pk=t.pk).workflow_id)
    assert set(Tenant.objects.values_list("plan", flat=True)) == {"enterprise"}


def test_an_unknown_plan_is_refused_when_scheduled_by_the_commands(fast_saga):
    f.active_tenant(plan="starter", slug="acme")
    at = (timezone.now() + timedelta(hours=1)).isoformat()
    events = Event.objects.count()
    with pytest.raises(CommandError, match="Choose a plan"):
        run("tenant", "change-plan", "acme", "--plan", "gold", "--at", at)
    with pytest.raises(CommandError, match="Choose a plan"):
        run("tenant", "change-plan", "acme", "--at", at)
    with pytest.raises(CommandError, match="Choose a plan"):
        run("tenant", "bulk", "change_plan", "--plan", "starter", "--to-plan", "gold",
            "--at", at, "--yes")  # fmt: skip
    assert not Schedule.objects.exists() and Event.objects.count() == events
