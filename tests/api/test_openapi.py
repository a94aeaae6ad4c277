"""The OpenAPI document is valid, and what it documents is what the endpoints answer.

Every response any API test gets through ``ApiClient`` is checked against this document (see
``check_against_openapi`` in conftest.py); the test here makes sure each operation is called
at least once for its success answer.
"""

from __future__ import annotations

from datetime import timedelta

import jsonschema_rs
import pytest
from django.utils import timezone
from schemathesis.specs.openapi.definitions import OPENAPI_31

from tenants.operations import OPERATIONS, perform
from tenants.services import Actor
from tests import factories as f

from .conftest import openapi_document

pytestmark = pytest.mark.django_db


def test_the_document_is_valid_openapi_3_1(anonymous):
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    jsonschema_rs.Draft202012Validator(OPENAPI_31).validate(doc)
    # The meta-schema above does not look inside schemas; check each against JSON Schema.
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_every_operation_documents_its_errors_and_posts_take_an_idempotency_key():
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"401", "403", "422"} <= set(op["responses"]), (method, path)
            error_statuses = {s for s in op["responses"] if s.startswith("4")}
            for status in error_statuses:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}
            if method == "post":
                assert {"400", "404", "409", "413"} <= set(op["responses"]) or path.endswith(
                    "/tenants"
                )
                names = [p["name"] for p in op.get("parameters", [])]
                assert "Idempotency-Key" in names, path
            assert op.get("security"), (method, path)


def test_every_operation_answers_what_its_schema_says(as_admin, fast_saga):
    """Calls each documented operation once; conftest validates every body against the doc."""
    doc = openapi_document()
    tenant = f.active_tenant()
    failed = f.failed_tenant()
    provisioning = f.provisioning_tenant()
    stalled = f.stalled_tenant(fast_saga)
    changing = f.active_tenant()
    # Four eyes on, with four decommissions asked by another admin: to approve and to withdraw,
    # through the approvals endpoints and through the older per-tenant ones.
    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    to_approve, to_withdraw, alias_approve, alias_withdraw = (f.active_tenant() for _ in "1234")
    asked = {
        t.id: perform("decommission", tenant_id=t.id, actor=Actor.shell("grace")).approval.id
        for t in (to_approve, to_withdraw, alias_approve, alias_withdraw)
    }
    to_pause = f.provisioning_tenant()
    from tenants import schedules as schedule_service

    later = timezone.now() + timedelta(hours=1)
    to_cancel = schedule_service.schedule_operation(
        "suspend", tenant_id=tenant.id, actor=Actor.shell("grace"), at=later
    )
    bulk_calls = {
        ("post", f"/api/v1/tenants/bulk/{name}"): (
            lambda name=name: as_admin.post(
                f"/tenants/bulk/{name}",
                {"ids": [str(tenant.id)], "dry_run": True, **f.options_for(name, tenant)},
            )
        )
        for name in OPERATIONS
    }
    calls = {
        **bulk_calls,
        ("post", "/api/v1/tenants/{tenant_id}/decommission/approve"): lambda: as_admin.post(
            f"/tenants/{alias_approve.id}/decommission/approve", {"reason": "checked twice"}
        ),
        ("post", "/api/v1/tenants/{tenant_id}/decommission/withdraw"): lambda: as_admin.post(
            f"/tenants/{alias_withdraw.id}/decommission/withdraw"
        ),
        ("get", "/api/v1/approvals"): lambda: as_admin.get("/approvals", {"limit": 3}),
        ("post", "/api/v1/approvals/{approval_id}/approve"): lambda: as_admin.post(
            f"/approvals/{asked[to_approve.id]}/approve", {"reason": "checked twice"}
        ),
        ("post", "/api/v1/approvals/{approval_id}/withdraw"): lambda: as_admin.post(
            f"/approvals/{asked[to_withdraw.id]}/withdraw"
        ),
        ("post", "/api/v1/tenants"): lambda: as_admin.post(
            "/tenants",
            {"slug": "new-one", "name": "New", "plan": "starter", "admin_email": "a@b.test"},
        ),
        ("get", "/api/v1/tenants"): lambda: as_admin.get("/tenants", {"limit": 1}),
        ("get", "/api/v1/tenants/{tenant_id}"): lambda: as_admin.get(f"/tenants/{tenant.id}"),
        ("post", "/api/v1/tenants/{tenant_id}/cancel"): lambda: as_admin.post(
            f"/tenants/{provisioning.id}/cancel"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/reset"): lambda: as_admin.post(
            f"/tenants/{stalled.id}/reset"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/retry"): lambda: as_admin.post(
            f"/tenants/{failed.id}/retry"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/suspend"): lambda: as_admin.post(
            f"/tenants/{tenant.id}/suspend"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/resume"): lambda: as_admin.post(
            f"/tenants/{tenant.id}/resume"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/decommission"): lambda: as_admin.post(
            f"/tenants/{tenant.id}/decommission"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/change_plan"): lambda: as_admin.post(
            f"/tenants/{changing.id}/change_plan", f.options_for("change_plan", changing)
        ),
        ("get", "/api/v1/tenants/{tenant_id}/events"): lambda: as_admin.get(
            f"/tenants/{tenant.id}/events", {"limit": 2}
        ),
        ("get", "/api/v1/audit"): lambda: as_admin.get("/audit", {"limit": 2}),
        ("get", "/api/v1/tenants/{tenant_id}/runs"): lambda: as_admin.get(
            f"/tenants/{failed.id}/runs"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/pause"): lambda: as_admin.post(
            f"/tenants/{to_pause.id}/pause"
        ),
        ("post", "/api/v1/tenants/{tenant_id}/unpause"): lambda: as_admin.post(
            f"/tenants/{to_pause.id}/unpause"
        ),
        ("get", "/api/v1/schedules"): lambda: as_admin.get("/schedules", {"limit": 1}),
        ("get", "/api/v1/schedules/{schedule_id}"): lambda: as_admin.get(
            f"/schedules/{to_cancel.id}"
        ),
        ("delete", "/api/v1/schedules/{schedule_id}"): lambda: as_admin.delete(
            f"/schedules/{to_cancel.id}"
        ),
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == set(calls)
    for (method, path), call in calls.items():
        response = call()
        documented_statuses = doc["paths"][path][method]["responses"]
        # An operation answers 202 when it acts and 200 for a dry run; these calls act.
        success = (
            "202"
            if "202" in documented_statuses and "/bulk/" not in path  # bulk: dry runs here
            else min(s for s in documented_statuses if s.startswith("2"))
        )
        assert str(response.status_code) == success, (method, path, response.content)
