"""``manage.py tenant change-plan`` and ``tenant bulk change_plan --to-plan``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import Event
from tenants.models import Tenant
from tests import factories as f

from ..conftest import drive, drive_compensation

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenant", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_dry_run_then_the_change(fast_saga):
    tenant = f.active_tenant(plan="starter", slug="acme")
    out = run("change-plan", "acme", "--plan", "growth", "--dry-run")
    assert "database size: 1 GB -> 10 GB" in out
    assert "billing plan: starter -> growth" in out
    assert "Nothing was changed." in out
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    out = run("change-plan", "acme", "--plan", "growth", "--reason", "ticket 9")
    assert "plan change of acme started" in out
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.state == "updating"
    drive(tenant.workflow_id)
    assert Tenant.objects.get(pk=tenant.pk).plan == "growth"
    started = Event.objects.get(tenant_id=tenant.id, type="tenant.plan_change.started")
    assert started.data["reason"] == "ticket 9"
    # The underscore spelling works too; show prints the run's kind and steps.
    assert "plan change of acme started" in run("change_plan", "acme", "--plan", "enterprise")
    shown = run("show", "acme")
    assert "change_plan" in shown


def test_refusals_are_one_line_and_change_nothing(fast_saga):
    f.active_tenant(plan="starter", slug="acme")
    f.suspended_tenant(slug="paused")
    n = Event.objects.count()
    assert "Choose a plan" in refused("change-plan", "acme")
    assert "Choose a plan" in refused("change-plan", "acme", "--plan", "gold")
    assert "already on the starter plan" in refused("change-plan", "acme", "--plan", "starter")
    assert "applies to active tenants only" in refused("change-plan", "paused", "--plan", "growth")
    assert "unknown step" in refused(
        "change-plan", "acme", "--plan", "growth", "--faults", "create_database=fail"
    )
    assert Event.objects.count() == n


def test_a_failed_change_by_the_command(fast_saga):
    tenant = f.active_tenant(plan="starter", slug="acme")
    run("change-plan", "acme", "--plan", "growth", "--faults", "resize_database=fail")
    run_id = Tenant.objects.get(pk=tenant.pk).workflow_id
    drive(run_id)
    drive_compensation(run_id)
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert (tenant.state, tenant.plan, tenant.condition) == ("active", "starter", "change_failed")
    listed = run("list", "--condition", "change_failed")
    assert "acme" in listed


def test_bulk_change_plan_takes_to_plan(fast_saga):
    f.active_tenant(plan="starter", slug="one")
    f.active_tenant(plan="starter", slug="two")
    out = run("bulk", "change_plan", "--plan", "starter", "--to-plan", "enterprise")
    assert out.count("would_accept") == 2
    assert "1 GB → 100 GB" in out
    assert "--to-plan goes with change_plan" in refused(
        "bulk", "suspend", "--state", "active", "--to-plan", "growth"
    )
    run("bulk", "change_plan", "--plan", "starter", "--to-plan", "enterprise", "--yes")
    assert set(Tenant.objects.values_list("state", flat=True)) == {"updating"}
