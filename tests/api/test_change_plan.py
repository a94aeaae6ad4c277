"""POST /tenants/{id}/change_plan (and bulk): previews, refusals, and the saga on a real
worker: completed, cancelled mid-way, failed by a fault."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import Event
from provisioning.models import Allocation, Run
from provisioning.providers import get_provider
from tenants.models import Tenant
from tests import factories as f

from ..conftest import wait_for
from .conftest import error_of

pytestmark = pytest.mark.django_db


def snapshot(tenant: Tenant) -> dict[str, Any]:
    """The tenant's fields, runs, events and every held allocation with what the plan decides
    of it, as the providers report it."""
    t = Tenant.objects.get(pk=tenant.pk)
    held = {
        a.kind: (a.pk, a.external_id)
        for a in Allocation.objects.filter(tenant=t, released_at__isnull=True)
    }
    return {
        "state": t.state,
        "plan": t.plan,
        "held": held,
        "size_gb": get_provider("database").read(t.id, held["database"][1], "size_gb"),
        "billing": get_provider("billing").read(t.id, held["billing"][1], "plan"),
        "released": Allocation.objects.filter(tenant=t, released_at__isnull=False).count(),
    }


def active_on_worker(plan: str) -> Tenant:
    """A tenant provisioned by the running worker (not driven in this process)."""
    tenant = f.new_tenant(plan=plan)
    wait_for(lambda: f.reload(tenant).state == "active", what="provisioned")
    return f.reload(tenant)


def plan_events(tenant: Tenant) -> list[str]:
    return [
        t
        for t in Event.objects.filter(tenant_id=tenant.id)
        .order_by("id")
        .values_list("type", flat=True)
        if t.startswith("tenant.plan_change") or t.startswith("tenant.resource.change")
    ]


def test_dry_run_previews_what_changes_and_writes_nothing(as_operator, fast_saga):
    tenant = f.active_tenant(plan="starter")
    events = Event.objects.count()
    response = as_operator.post(
        f"/tenants/{tenant.id}/change_plan", {"plan": "enterprise", "dry_run": True}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["action"] == "change_plan"
    assert (body["from_state"], body["to_state"]) == ("active", "active")
    assert body["release"] == []
    assert {a["kind"] for a in body["keep"]} == {
        "storage",
        "identity",
        "database",
        "dns",
        "billing",
        "invite",
    }
    assert [(c["what"], c["from"], c["to"]) for c in body["changes"]] == [
        ("plan", "starter", "enterprise"),
        ("database size", 1, 100),
        ("billing plan", "starter", "enterprise"),
    ]
    assert body["events"][0] == "tenant.plan_change.started"
    assert Event.objects.count() == events
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "platinum"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
        ({"plan": "starter"}, 409, "invalid_state"),  # its own plan
        ({"plan": "growth", "faults": {"create_database": "fail"}}, 422, "validation_error"),
        ({"plan": "growth", "colour": "red"}, 422, "validation_error"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(as_operator, fast_saga, body, status, code):
    tenant = f.active_tenant(plan="starter")
    before = snapshot(tenant)
    events = Event.objects.count()
    for dry_run in (True, False):
        response = as_operator.post(
            f"/tenants/{tenant.id}/change_plan", {**body, "dry_run": dry_run}
        )
        assert response.status_code == status, response.content
        assert error_of(response)["code"] == code
    assert snapshot(tenant) == before
    assert Event.objects.count() == events


@pytest.mark.parametrize("situation", ["suspended", "provisioning", "updating", "failed"])
def test_wrong_states_are_409(as_admin, fast_saga, situation):
    tenant = f.SITUATIONS[situation](fast_saga)
    events = Event.objects.count()
    response = as_admin.post(f"/tenants/{tenant.id}/change_plan", {"plan": "enterprise"})
    assert response.status_code == 409, response.content
    assert error_of(response)["code"] == "invalid_state"
    assert Event.objects.count() == events


def test_viewers_may_not(as_viewer, fast_saga):
    tenant = f.active_tenant(plan="starter")
    response = as_viewer.post(f"/tenants/{tenant.id}/change_plan", {"plan": "growth"})
    assert response.status_code == 403
    detail = as_viewer.get(f"/tenants/{tenant.id}").json()
    action = next(a for a in detail["actions"] if a["name"] == "change_plan")
    assert action["label"] == "Change plan"
    assert (action["available"], action["permitted"]) == (True, False)
    assert "change_plan_tenant" in action["reason"]


@pytest.mark.django_db(transaction=True)
def test_a_change_completes_on_a_real_worker(as_operator, celery_worker):
    tenant = active_on_worker("starter")
    before = snapshot(tenant)
    response = as_operator.post(
        f"/tenants/{tenant.id}/change_plan", {"plan": "growth", "reason": "more room"}
    )
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "updating"
    wait_for(lambda: Tenant.objects.get(pk=tenant.pk).state == "active", what="active")
    after = snapshot(tenant)
    assert (after["plan"], after["size_gb"], after["billing"]) == ("growth", 10, "growth")
    assert after["held"] == before["held"]
    assert plan_events(tenant) == [
        "tenant.plan_change.started",
        "tenant.resource.changed",  # the database resized
        "tenant.resource.changed",  # the billing plan
        "tenant.plan_change.completed",
    ]
    started = Event.objects.get(tenant_id=tenant.id, type="tenant.plan_change.started")
    assert started.data["from"] == "starter"
    assert started.data["to"] == "growth"
    assert started.data["reason"] == "more room"
    runs = as_operator.get(f"/tenants/{tenant.id}/runs").json()["items"]
    assert [r["kind"] for r in runs] == ["plan_change", "provision"]
    detail = as_operator.get(f"/tenants/{tenant.id}").json()
    assert detail["run"]["kind"] == "plan_change"
    assert detail["condition"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_change_failed_by_a_fault_ends_on_the_old_plan(as_operator, celery_worker):
    tenant = active_on_worker("starter")
    before = snapshot(tenant)
    response = as_operator.post(
        f"/tenants/{tenant.id}/change_plan",
        {"plan": "enterprise", "faults": {"change_billing_plan": "fail"}},
    )
    assert response.status_code == 202, response.content
    wait_for(
        lambda: Run.objects.get(pk=response.json()["workflow_id"]).status == "failed",
        what="the change to fail",
    )
    assert snapshot(tenant) == before
    detail = as_operator.get(f"/tenants/{tenant.id}").json()
    assert (detail["state"], detail["plan"]) == ("active", "starter")
    assert (detail["condition"], detail["needs_attention"]) == ("change_failed", True)
    assert detail["recommended_action"] == "change_plan"
    assert "injected failure" in detail["last_error"]
    assert plan_events(tenant)[0] == "tenant.plan_change.started"
    assert plan_events(tenant)[-1] == "tenant.plan_change.failed"
    assert "tenant.resource.change_reverted" in plan_events(tenant)
    listed = as_operator.get("/tenants", {"condition": "change_failed"}).json()["items"]
    assert [t["id"] for t in listed] == [str(tenant.id)]


@pytest.mark.django_db(transaction=True)
def test_a_change_cancelled_mid_way_ends_on_the_old_plan(as_operator, celery_worker):
    tenant = active_on_worker("growth")
    before = snapshot(tenant)
    response = as_operator.post(
        f"/tenants/{tenant.id}/change_plan",
        {"plan": "enterprise", "faults": {"change_billing_plan": "slow:30"}},
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["workflow_id"]
    # Mid-way: the database is resized, the billing step is at work.
    wait_for(
        lambda: (
            Run.objects.get(pk=run_id).current_step == "change_billing_plan"
            and snapshot(tenant)["size_gb"] == 100
        ),
        what="the resize to be done",
    )
    preview = as_operator.post(f"/tenants/{tenant.id}/cancel", {"dry_run": True}).json()
    assert (preview["from_state"], preview["to_state"], preview["release"]) == (
        "updating",
        "active",
        [],
    )
    assert as_operator.post(f"/tenants/{tenant.id}/cancel").status_code == 202
    wait_for(lambda: Run.objects.get(pk=run_id).status == "cancelled", what="cancelled")
    assert snapshot(tenant) == before
    t = Tenant.objects.get(pk=tenant.pk)
    assert (t.state, t.plan, t.condition, t.last_error) == ("active", "growth", "ok", "")
    assert plan_events(tenant)[-1] == "tenant.plan_change.cancelled"


def test_bulk_change_plan_takes_the_plan(as_operator, fast_saga):
    starter = f.active_tenant(plan="starter")
    growth = f.active_tenant(plan="growth")
    body = {"ids": [str(starter.id), str(growth.id)], "plan": "growth", "dry_run": True}
    response = as_operator.post("/tenants/bulk/change_plan", body)
    assert response.status_code == 200, response.content
    outcomes = {r["id"]: r for r in response.json()["results"]}
    assert outcomes[str(starter.id)]["outcome"] == "would_accept"
    assert "database size 1 GB → 10 GB" in outcomes[str(starter.id)]["message"]
    assert outcomes[str(growth.id)]["outcome"] == "refused"
    assert "already on the growth plan" in outcomes[str(growth.id)]["message"]
    missing = as_operator.post("/tenants/bulk/change_plan", {"ids": [str(starter.id)]})
    assert missing.status_code == 422
    done = as_operator.post("/tenants/bulk/change_plan", {**body, "dry_run": False}).json()
    assert {r["outcome"] for r in done["results"]} == {"accepted", "refused"}
    assert Tenant.objects.get(pk=starter.pk).state == "updating"
