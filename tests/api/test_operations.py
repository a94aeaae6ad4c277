"""POST /tenants/{id}/{action}: every action × state, and every action × persona."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from audit.models import Event
from provisioning.models import Allocation, Run
from tenants.models import Tenant
from tests import factories as f

from .conftest import error_of

pytestmark = pytest.mark.django_db

ACTIONS = ["cancel", "reset", "retry", "suspend", "resume", "decommission", "pause", "unpause"]

BUILDERS = f.SITUATIONS
ALLOWED = f.ALLOWED_ACTIONS

# What the state is right after the API accepted the operation (the rest happens in tasks).
STATE_AFTER: dict[str, str] = {
    "cancel": "provisioning",
    "reset": "pending",
    "retry": "provisioning",
    "suspend": "suspended",
    "resume": "active",
    "pause": "provisioning",
    "unpause": "provisioning",
}


def snapshot(tenant: Tenant) -> tuple[Any, ...]:
    t = Tenant.objects.get(pk=tenant.pk)
    return (
        t.state,
        t.workflow_id,
        t.last_error,
        t.updated_at,
        t.decommission_requested_at,
        Event.objects.filter(tenant_id=t.id).count(),
        sorted(Run.objects.filter(tenant=t).values_list("status", flat=True)),
        Allocation.objects.filter(tenant=t, released_at__isnull=True).count(),
    )


@pytest.mark.parametrize("situation", list(BUILDERS))
def test_detail_lists_the_contracts_actions(as_viewer, fast_saga, situation):
    tenant = BUILDERS[situation](fast_saga)
    body = as_viewer.get(f"/tenants/{tenant.id}").json()
    assert set(body["available_actions"]) == ALLOWED[situation]


@pytest.mark.parametrize(("situation", "action"), [(s, a) for s in BUILDERS for a in ACTIONS])
def test_every_action_in_every_state(as_admin, fast_saga, situation, action):
    tenant = BUILDERS[situation](fast_saga)
    before = snapshot(tenant)
    response = as_admin.post(f"/tenants/{tenant.id}/{action}")
    if action in ALLOWED[situation]:
        assert response.status_code == 202, response.content
        body = response.json()
        assert body["id"] == str(tenant.id)
        stored = Tenant.objects.get(pk=tenant.pk)
        assert body["state"] == stored.state
        if action == "decommission":
            assert body["decommission_requested_at"] is not None
        elif situation == "updating":
            assert body["state"] == "updating"  # a cancel of a plan change reverts it first
        else:
            assert body["state"] == STATE_AFTER[action]
        assert Event.objects.filter(tenant_id=tenant.id, actor="token:ada-token").exists()
    else:
        assert response.status_code == 409, response.content
        error = error_of(response)
        assert error["code"] == "invalid_state"
        assert error["message"]
        assert snapshot(tenant) == before


# Which personas may do what (roles from tenants/roles.py): operators all but decommission.
MAY: dict[str, set[str]] = {
    "viewer": set(),
    "operator": {"cancel", "reset", "retry", "suspend", "resume", "pause", "unpause"},
    "admin": set(ACTIONS),
    "outsider": set(),
}
WHERE: dict[str, str] = {
    "cancel": "provisioning",
    "reset": "pending_with_error",
    "retry": "failed",
    "suspend": "active",
    "resume": "suspended",
    "decommission": "active",
    "pause": "provisioning",
    "unpause": "paused",
}


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin", "outsider", "anonymous"])
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_for_every_persona(personas, fast_saga, persona, action):
    tenant = BUILDERS[WHERE[action]](fast_saga)
    before = snapshot(tenant)
    response = personas[persona].post(f"/tenants/{tenant.id}/{action}", {})
    if persona == "anonymous":
        assert response.status_code == 401
    elif action in MAY[persona]:
        assert response.status_code == 202, response.content
        return
    else:
        assert response.status_code == 403
        assert error_of(response)["code"] == "permission_denied"
    assert snapshot(tenant) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_on_an_unknown_tenant_are_404(as_admin, action):
    for tenant_id in (uuid.uuid4(), "nope"):
        response = as_admin.post(f"/tenants/{tenant_id}/{action}")
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("action", ACTIONS)
def test_action_bodies_refuse_unknown_fields(as_admin, action):
    tenant = f.active_tenant()
    before = snapshot(tenant)
    response = as_admin.post(f"/tenants/{tenant.id}/{action}", {"force": True})
    assert response.status_code == 422
    assert error_of(response)["details"] == {"force": ["Unknown field."]}
    assert snapshot(tenant) == before


def test_retry_carries_faults_to_the_new_run(as_operator):
    tenant = f.failed_tenant()
    response = as_operator.post(
        f"/tenants/{tenant.id}/retry", {"faults": {"setup_billing": "fail_once"}}
    )
    assert response.status_code == 202
    run = Run.objects.get(pk=response.json()["workflow_id"])
    assert (run.attempt, run.faults) == (2, {"setup_billing": "fail_once"})


def test_retry_refuses_unknown_fault_steps(as_operator):
    tenant = f.failed_tenant()
    response = as_operator.post(f"/tenants/{tenant.id}/retry", {"faults": {"launch": "fail"}})
    assert response.status_code == 422
    assert "faults" in error_of(response)["details"]
    assert Tenant.objects.get(pk=tenant.pk).state == "failed"


def test_a_cancel_then_a_second_cancel_is_409(as_operator):
    tenant = f.provisioning_tenant()
    assert as_operator.post(f"/tenants/{tenant.id}/cancel").status_code == 202
    response = as_operator.post(f"/tenants/{tenant.id}/cancel")
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"
