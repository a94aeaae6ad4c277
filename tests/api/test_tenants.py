"""POST /tenants, GET /tenants (filters, cursors), GET /tenants/{id}."""

from __future__ import annotations

import json
import uuid

import pytest
import time_machine
from django.utils import timezone

from api.tokens import recent_tokens
from audit.models import Event
from provisioning.models import Run
from tenants.models import Tenant
from tests.factories import active_tenant, failed_tenant, new_tenant, pending_tenant

from .conftest import error_of

pytestmark = pytest.mark.django_db

NEW = {"slug": "acme", "name": "  Acme Corp ", "plan": "growth", "admin_email": "Ops@Acme.TEST"}
TENANT_FIELDS = {
    "id",
    "condition",
    "needs_attention",
    "slug",
    "name",
    "plan",
    "admin_email",
    "state",
    "workflow_id",
    "last_error",
    "failed_activity",
    "created_at",
    "updated_at",
    "activated_at",
    "decommissioned_at",
    "decommission_requested_at",
    "awaiting_approval",
}


# --- create ---------------------------------------------------------------------------------


def test_create_answers_201_with_the_tenant_provisioning(as_operator):
    response = as_operator.post("/tenants", NEW)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == TENANT_FIELDS
    tenant = Tenant.objects.get(pk=body["id"])
    assert body["state"] == tenant.state == "provisioning"
    assert body["workflow_id"] == str(tenant.workflow_id)
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 1
    # The service normalises; the API shows what was stored.
    assert (body["name"], body["admin_email"]) == ("Acme Corp", "ops@acme.test")
    assert body["created_at"].endswith("Z") and body["activated_at"] is None


def test_create_with_start_false_stays_pending(as_operator):
    response = as_operator.post("/tenants", {**NEW, "start": False})
    assert response.status_code == 201
    assert response.json()["state"] == "pending"
    assert response.json()["workflow_id"] is None


def test_create_names_every_bad_field(as_operator):
    response = as_operator.post(
        "/tenants", {"slug": "Admin", "name": " ", "plan": "gold", "admin_email": "nope"}
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"slug", "name", "plan", "admin_email"}
    assert all(isinstance(m, str) for msgs in error["details"].values() for m in msgs)
    assert not Tenant.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in NEW.items() if k != "plan"}, "plan"),
        ({**NEW, "name": 3}, "name"),
        ({**NEW, "start": "yes"}, "start"),
        ({**NEW, "start": 1}, "start"),
        ({**NEW, "color": "red"}, "color"),
        ({**NEW, "faults": ["x"]}, "faults"),
        ({**NEW, "name": "a\x00b"}, "name"),
        ({**NEW, "name": "\ud800"}, "name"),
    ],
)
def test_create_refuses_a_badly_shaped_body_with_422(as_operator, body, field):
    response = as_operator.post("/tenants", body)
    assert response.status_code == 422, response.content
    assert field in error_of(response)["details"]
    assert not Tenant.objects.exists()


@pytest.mark.parametrize("body", [[], "acme", 3, None])
def test_create_refuses_a_body_that_is_not_an_object(as_operator, body):
    response = as_operator.post("/tenants", raw=json.dumps(body))
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"


def test_a_taken_slug_is_409_and_a_decommissioned_one_is_free(as_admin):
    assert as_admin.post("/tenants", NEW).status_code == 201
    response = as_admin.post("/tenants", NEW)
    assert response.status_code == 409
    assert error_of(response)["code"] == "slug_taken"
    assert Tenant.objects.count() == 1


def test_faults_are_refused_unless_fault_injection_is_on(as_operator, settings):
    settings.CONTROLPLANE_FAULT_INJECTION = False
    response = as_operator.post("/tenants", {**NEW, "faults": {"create_database": "fail"}})
    assert response.status_code == 422
    assert "faults" in error_of(response)["details"]
    settings.CONTROLPLANE_FAULT_INJECTION = True
    response = as_operator.post("/tenants", {**NEW, "faults": {"create_database": "fail"}})
    assert response.status_code == 201
    assert Run.objects.get(pk=response.json()["workflow_id"]).faults == {"create_database": "fail"}


# --- list -----------------------------------------------------------------------------------


def test_list_is_newest_first_and_filters(as_viewer):
    old = pending_tenant(slug="old-one", name="Old Corp")
    mid = new_tenant(slug="mid-one", name="Middle", admin_email="boss@mid.test")
    new = pending_tenant(slug="new-one", name="New Corp")

    def slugs(**params):
        response = as_viewer.get("/tenants", params)
        assert response.status_code == 200
        return [t["slug"] for t in response.json()["items"]]

    assert slugs() == [new.slug, mid.slug, old.slug]
    assert slugs(state="pending") == [new.slug, old.slug]
    assert slugs(state="provisioning") == [mid.slug]
    assert slugs(slug="old-one") == [old.slug]
    assert slugs(slug="old") == []
    assert slugs(q="corp") == [new.slug, old.slug]
    assert slugs(q="BOSS@") == [mid.slug]
    assert slugs(q="nothing") == []


@pytest.mark.parametrize(
    "params",
    [
        {"state": "sleeping"},
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"limit": "99999999999999999999999"},
        {"cursor": "garbage"},
        {"cursor": "eyJrIjoiYXVkaXQiLCJpIjoxfQ"},  # an audit cursor
        {"q": "x" * 201},
    ],
)
def test_bad_list_parameters_are_422(as_viewer, params):
    response = as_viewer.get("/tenants", params)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == set(params)


def test_cursor_pages_cover_every_tenant_once_even_with_equal_timestamps(as_viewer):
    # Frozen time: every tenant has the same created_at, so only the id breaks ties.
    with time_machine.travel(timezone.now(), tick=False):
        created = {str(pending_tenant().id) for _ in range(7)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = as_viewer.get("/tenants", params).json()
        seen += [t["id"] for t in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


def test_cursor_is_stable_while_tenants_are_created(as_viewer):
    first = [pending_tenant() for _ in range(4)]
    page1 = as_viewer.get("/tenants", {"limit": 2}).json()
    for _ in range(3):
        pending_tenant()  # newer: they belong before the cursor, not in the next pages
    page2 = as_viewer.get("/tenants", {"limit": 2, "cursor": page1["next_cursor"]}).json()
    shown = [t["id"] for t in page1["items"] + page2["items"]]
    assert shown == [str(t.id) for t in reversed(first)]
    assert page2["next_cursor"] is None


def test_limit_defaults_to_50(as_viewer):
    with time_machine.travel(timezone.now(), tick=False):
        for _ in range(51):
            pending_tenant()
    body = as_viewer.get("/tenants").json()
    assert len(body["items"]) == 50 and body["next_cursor"]


def test_list_reads_a_fixed_number_of_queries(as_viewer, django_assert_num_queries):
    for _ in range(3):
        pending_tenant()
    assert as_viewer.get("/tenants").status_code == 200  # last_used_at is written once
    # Cold (no token cached): token (with its user), permissions, the page of tenants
    recent_tokens.forget_all()
    with django_assert_num_queries(3):
        assert as_viewer.get("/tenants").status_code == 200
    for _ in range(20):
        pending_tenant()
    recent_tokens.forget_all()
    with django_assert_num_queries(3):
        response = as_viewer.get("/tenants")
    assert response.status_code == 200
    assert len(response.json()["items"]) == 23


# --- detail ---------------------------------------------------------------------------------


def test_detail_shows_run_steps_allocations_and_what_can_be_done(as_viewer):
    tenant = active_tenant()
    response = as_viewer.get(f"/tenants/{tenant.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= TENANT_FIELDS
    assert body["state"] == "active" and body["activated_at"]
    assert body["run"]["status"] == "completed" and body["run"]["attempt"] == 1
    assert [s["name"] for s in body["run"]["steps"]][0] == "validate_request"
    assert all(s["status"] == "completed" for s in body["run"]["steps"])
    assert {a["kind"] for a in body["allocations"]} == {
        "storage",
        "identity",
        "database",
        "dns",
        "billing",
        "invite",
    }
    assert body["available_actions"] == ["suspend", "decommission", "change_plan"]
    assert body["recommended_action"] == "none"
    assert body["recommended_reason"]


def test_detail_of_a_failed_tenant_recommends_retry(as_viewer):
    tenant = failed_tenant(step="configure_dns")
    body = as_viewer.get(f"/tenants/{tenant.id}").json()
    assert body["failed_activity"] == "configure_dns" and body["last_error"]
    assert body["allocations"] == []
    assert body["run"]["status"] == "failed"
    assert set(body["available_actions"]) == {"retry", "decommission"}
    assert body["recommended_action"] == "retry"


def test_detail_of_a_pending_tenant_has_no_run(as_viewer):
    body = as_viewer.get(f"/tenants/{pending_tenant().id}").json()
    assert body["run"] is None and body["allocations"] == []


@pytest.mark.parametrize("tenant_id", [str(uuid.uuid4()), "not-a-uuid", "0"])
def test_detail_of_an_unknown_tenant_is_404(as_viewer, tenant_id):
    response = as_viewer.get(f"/tenants/{tenant_id}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_detail_of_an_active_tenant_reads_a_fixed_number_of_queries(
    as_viewer, django_assert_num_queries
):
    tenant = active_tenant()
    assert as_viewer.get(f"/tenants/{tenant.id}").status_code == 200
    # token, permissions, and the detail's one statement (tenants.detail_read: the tenant with
    # whether it has drift, its run, the run's steps, the failed-run count, allocations);
    # cold, no token cached
    recent_tokens.forget_all()
    with django_assert_num_queries(3):
        response = as_viewer.get(f"/tenants/{tenant.id}")
    assert response.status_code == 200


def test_reads_leave_no_trace_in_the_audit_feed(as_viewer):
    tenant = active_tenant()
    before = Event.objects.count()
    as_viewer.get(f"/tenants/{tenant.id}")
    as_viewer.get("/tenants")
    assert Event.objects.count() == before


def test_empty_text_filters_mean_no_filter_and_an_empty_limit_is_refused(as_viewer):
    active_tenant()
    pending_tenant()
    everything = as_viewer.get("/tenants").json()["items"]
    response = as_viewer.get("/tenants", {"slug": "", "q": "", "cursor": ""})
    assert response.status_code == 200
    assert [t["id"] for t in response.json()["items"]] == [t["id"] for t in everything]
    refused = as_viewer.get("/tenants", {"limit": ""})
    assert refused.status_code == 422
    assert "limit" in str(error_of(refused)["details"])


def test_detail_is_three_queries_cold_and_one_with_the_token_cached(
    as_viewer, django_assert_num_queries
):
    tenant = failed_tenant()
    as_viewer.get(f"/tenants/{tenant.id}")  # the token's first use writes last_used_at
    recent_tokens.forget_all()
    # Cold: token (with its user), permissions (one query for the user's and its groups'), and
    # one statement for the tenant (with whether reconciliation has open findings about it),
    # its run, the run's steps, the failed-run count and the allocations; nothing written, no
    # transaction.
    with django_assert_num_queries(3) as queries:
        response = as_viewer.get(f"/tenants/{tenant.id}")
        assert response.status_code == 200
    assert not any(q["sql"] in ("BEGIN", "COMMIT") for q in queries.captured_queries)
    # The same token within CONTROLPLANE_AUTH_CACHE_SECONDS: neither the token nor the
    # permissions are read again: the detail is one statement.
    with django_assert_num_queries(1):
        response = as_viewer.get(f"/tenants/{tenant.id}")
        assert response.status_code == 200
