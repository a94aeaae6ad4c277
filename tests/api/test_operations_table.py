"""The API door to the operations table: actions with reasons, dry runs, recorded reasons, bulk
and four eyes. Every answer is also checked against the OpenAPI document (conftest)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import Event
from tenants.models import Tenant
from tenants.operations import OPERATIONS, perform
from tenants.services import Actor
from tests import factories as f

from ..conftest import make_user
from .conftest import client_for, error_of

pytestmark = pytest.mark.django_db

KINDS = {"storage", "identity", "database", "dns", "billing", "invite"}


def writes(queries: CaptureQueriesContext) -> list[str]:
    """The statements that write, but the bearer token's own last-used time (authentication's
    bookkeeping, written on every request whatever it asks)."""
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and '"api_apitoken"' not in q["sql"]
    ]


def test_detail_lists_every_action_with_why_not(as_viewer, as_operator, as_admin):
    tenant = f.active_tenant()
    for client, permitted in (
        (as_viewer, set()),
        (
            as_operator,
            {"cancel", "reset", "retry", "suspend", "resume", "change_plan", "pause", "unpause"},
        ),
        (as_admin, set(OPERATIONS)),
    ):
        body = client.get(f"/tenants/{tenant.id}").json()
        assert body["available_actions"] == ["suspend", "decommission", "change_plan"]
        assert [a["name"] for a in body["actions"]] == list(OPERATIONS)
        for a in body["actions"]:
            assert a["label"] == OPERATIONS[a["name"]].label
            assert a["available"] == (a["name"] in body["available_actions"])
            assert a["permitted"] == (a["name"] in permitted)
            assert (a["reason"] == "") == (a["available"] and a["permitted"])
    operator_view = {
        a["name"]: a for a in as_operator.get(f"/tenants/{tenant.id}").json()["actions"]
    }
    assert operator_view["decommission"]["available"] is True
    assert "permission" in operator_view["decommission"]["reason"]


def test_detail_reads_permissions_once(as_admin, django_assert_num_queries):
    tenant = f.active_tenant()
    # token, its last_used_at (first use), permissions once for all six actions, and the
    # detail's one statement (tenant, run, steps, allocations)
    with django_assert_num_queries(4):
        response = as_admin.get(f"/tenants/{tenant.id}")
    assert response.status_code == 200


def test_a_dry_run_answers_200_with_the_preview_and_writes_nothing(
    as_admin, django_capture_on_commit_callbacks
):
    tenant = f.active_tenant()
    before = Event.objects.count()
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks() as callbacks,
    ):
        response = as_admin.post(
            f"/tenants/{tenant.id}/decommission", {"dry_run": True, "reason": "why"}, key="dry-1"
        )
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True and body["action"] == "decommission"
    assert (body["from_state"], body["to_state"]) == ("active", "decommissioned")
    assert {a["kind"] for a in body["release"]} == KINDS and body["keep"] == []
    assert body["events"][0] == "tenant.decommission_requested"
    # Not even the idempotency key is stored: a dry run writes nothing at all.
    assert writes(queries) == [] and callbacks == []
    assert Event.objects.count() == before
    assert Tenant.objects.get(pk=tenant.id).decommission_requested_at is None


def test_a_dry_run_refuses_as_the_operation_would(as_operator):
    tenant = f.active_tenant()
    dry = as_operator.post(f"/tenants/{tenant.id}/resume", {"dry_run": True})
    real = as_operator.post(f"/tenants/{tenant.id}/resume")
    assert dry.status_code == real.status_code == 409
    assert error_of(dry) == error_of(real)
    denied = as_operator.post(f"/tenants/{tenant.id}/decommission", {"dry_run": True})
    assert denied.status_code == 403
    assert error_of(denied)["code"] == "permission_denied"


def test_the_reason_is_recorded_and_validated(as_operator):
    tenant = f.active_tenant()
    too_long = as_operator.post(f"/tenants/{tenant.id}/suspend", {"reason": "x" * 501})
    assert too_long.status_code == 422
    assert "reason" in error_of(too_long)["details"]
    wrong_type = as_operator.post(f"/tenants/{tenant.id}/suspend", {"reason": 5})
    assert wrong_type.status_code == 422
    assert Tenant.objects.get(pk=tenant.id).state == "active"
    ok = as_operator.post(f"/tenants/{tenant.id}/suspend", {"reason": "billing dispute"})
    assert ok.status_code == 202
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.suspended")
    assert event.data["reason"] == "billing dispute"


def test_retry_takes_faults_and_reason_and_dry_run(as_operator):
    tenant = f.failed_tenant()
    dry = as_operator.post(f"/tenants/{tenant.id}/retry", {"dry_run": True, "faults": {}})
    assert dry.status_code == 200 and dry.json()["to_state"] == "active"
    ok = as_operator.post(f"/tenants/{tenant.id}/retry", {"reason": "fixed DNS"})
    assert ok.status_code == 202
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.provisioning.retry_requested")
    assert event.data["reason"] == "fixed DNS"


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_by_ids_dry_run_then_for_real(as_operator):
    a, b, pending = f.active_tenant(), f.active_tenant(), f.pending_tenant()
    ids = [str(a.id), str(b.id), str(pending.id)]
    dry = as_operator.post("/tenants/bulk/suspend", {"ids": ids, "dry_run": True})
    assert dry.status_code == 200
    body = dry.json()
    assert body["dry_run"] is True and body["matched"] == 3
    assert [r["outcome"] for r in body["results"]] == ["would_accept", "would_accept", "refused"]
    assert body["results"][2]["code"] == "invalid_state"
    assert Tenant.objects.filter(state="suspended").count() == 0

    real = as_operator.post("/tenants/bulk/suspend", {"ids": ids, "reason": "maintenance"})
    assert real.status_code == 200
    assert [r["outcome"] for r in real.json()["results"]] == ["accepted", "accepted", "refused"]
    assert Tenant.objects.filter(state="suspended").count() == 2
    reasons = Event.objects.filter(type="tenant.suspended").values_list("data__reason", flat=True)
    assert set(reasons) == {"maintenance"}


def test_bulk_by_filter_with_limit(as_operator):
    for _ in range(3):
        f.active_tenant()
    response = as_operator.post(
        "/tenants/bulk/suspend", {"filter": {"state": "active"}, "limit": 2, "dry_run": True}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["matched"] == 3 and len(body["results"]) == 2


def test_bulk_is_idempotent_with_a_key(as_operator):
    tenant = f.active_tenant()
    body = {"ids": [str(tenant.id)]}
    first = as_operator.post("/tenants/bulk/suspend", body, key="bulk-1")
    second = as_operator.post("/tenants/bulk/suspend", body, key="bulk-1")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second["Idempotent-Replayed"] == "true"
    assert Event.objects.filter(type="tenant.suspended").count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": ["nope"]},
        {"ids": ["a"], "filter": {"state": "active"}},
        {"filter": {"state": "sleepy"}},
        {"filter": {"colour": "red"}},
        {"filter": {"state": "active"}, "limit": 1001},
        {"filter": {"state": "active"}, "limit": 0},
        {"filter": {"state": "active"}, "limit": "5"},
        {"filter": {"state": "active"}, "dry_run": "yes"},
    ],
)
def test_bulk_refuses_bad_bodies_with_422(as_operator, body):
    tenant = f.active_tenant()
    response = as_operator.post("/tenants/bulk/suspend", body)
    assert response.status_code == 422, response.content
    assert error_of(response)["code"] == "validation_error"
    assert Tenant.objects.get(pk=tenant.id).state == "active"


def test_bulk_without_the_permission_is_403(as_operator, as_viewer):
    tenant = f.active_tenant()
    for client, op in ((as_operator, "decommission"), (as_viewer, "suspend")):
        response = client.post(f"/tenants/bulk/{op}", {"ids": [str(tenant.id)]})
        assert response.status_code == 403
    assert Tenant.objects.get(pk=tenant.id).state == "active"


# --- four eyes ---------------------------------------------------------------------------------


def test_four_eyes_through_the_api(fast_saga, as_admin, admin_user):
    """The contract's four-eyes endpoints are thin aliases onto the approval policy."""
    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = f.active_tenant()
    asked = as_admin.post(f"/tenants/{tenant.id}/decommission", {"reason": "contract ended"})
    assert asked.status_code == 202
    assert asked.json()["awaiting_approval"] == ["decommission"]
    assert asked.json()["decommission_requested_at"] is None
    grace = make_user("grace", "admin")
    detail = as_admin.get(f"/tenants/{tenant.id}").json()
    [waiting] = detail["approvals"]
    assert waiting["requested_by"] == admin_user.username and waiting["approvers"] == ["grace"]
    assert waiting["operation"] == "decommission" and waiting["reason"] == "contract ended"

    own = as_admin.post(f"/tenants/{tenant.id}/decommission/approve")
    assert own.status_code == 403
    assert error_of(own)["code"] == "approver_is_author"
    other = client_for(grace)
    approved = other.post(f"/tenants/{tenant.id}/decommission/approve", {"reason": "agreed"})
    assert approved.status_code == 202
    assert approved.json()["decommission_requested_at"] is not None
    assert approved.json()["awaiting_approval"] == []
    assert Event.objects.filter(
        tenant_id=tenant.id, type="tenant.decommission_approved", actor="token:grace-token"
    ).exists()
    [decided] = as_admin.get("/approvals", {"tenant": tenant.slug}).json()["items"]
    assert decided["id"] == waiting["id"] and decided["status"] == "approved"
    assert decided["decided_by"] == "grace"


def test_withdraw_through_the_api(fast_saga, as_admin, as_operator):
    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = f.active_tenant()
    perform("decommission", tenant_id=tenant.id, actor=Actor.shell("grace"))
    assert as_operator.post(f"/tenants/{tenant.id}/decommission/withdraw").status_code == 403
    response = as_admin.post(f"/tenants/{tenant.id}/decommission/withdraw")
    assert response.status_code == 202
    assert response.json()["awaiting_approval"] == []
    again = as_admin.post(f"/tenants/{tenant.id}/decommission/withdraw")
    assert again.status_code == 409
