"""The API's rough edges a new client met (issue 22): unknown query parameters, an unknown
tenant in the audit filter, pydantic's bookkeeping in messages, the 413 message, a JSON body
sent as text/plain, and the timestamps' one machine format."""

from __future__ import annotations

import json
import re

import pytest

from audit.models import Event
from tenants.models import Tenant
from tests import factories as f

from .conftest import error_of, openapi_document

pytestmark = pytest.mark.django_db

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_an_unknown_query_parameter_is_422_naming_it_on_a_list(as_viewer):
    f.active_tenant(slug="listed")
    response = as_viewer.get("/tenants", {"colour": "red"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["details"] == {"colour": ["Unknown query parameter."]}
    # A typo'd filter too: "stat" is not "state".
    response = as_viewer.get("/tenants", {"stat": "failed", "limit": "5"})
    assert error_of(response)["details"] == {"stat": ["Unknown query parameter."]}


def test_every_endpoint_refuses_an_unknown_query_parameter(as_admin):
    tenant = f.active_tenant(slug="everywhere")
    # A body each POST would take, so the one thing wrong is the query parameter.
    create = {"slug": "never", "name": "N", "plan": "starter", "admin_email": "n@n.test"}
    checked = 0
    for template, ops in openapi_document()["paths"].items():
        path = template.replace("{tenant_id}", str(tenant.id))
        for method in ops:
            if method == "get":
                response = as_admin.client.get(path, {"colour": "red"}, headers=as_admin.headers)
            elif method == "delete":
                response = as_admin.client.delete(path + "?colour=red", headers=as_admin.headers)
            else:
                body = (
                    create
                    if template.endswith("/tenants")
                    else {"ids": [str(tenant.id)], "dry_run": True}
                    if "/bulk/" in template
                    else {}
                    if template.endswith(("/approve", "/withdraw"))
                    else {"dry_run": True}
                )
                response = as_admin.client.post(
                    path + "?colour=red",
                    json.dumps(body),
                    content_type="application/json",
                    headers=as_admin.headers,
                )
            if template.endswith(("/openapi.json", "/docs")):
                continue
            assert response.status_code == 422, (method, template, response.content)
            assert error_of(response)["details"] == {"colour": ["Unknown query parameter."]}
            checked += 1
    assert checked >= 15, checked
    assert Tenant.objects.get(pk=tenant.pk).state == "active"  # nothing was done
    assert not Tenant.objects.filter(slug="never").exists()


def test_an_unknown_tenant_in_the_audit_filter_is_422_saying_so(as_viewer):
    tenant = f.active_tenant(slug="known")
    response = as_viewer.get("/audit", {"tenant": "unknown"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["message"] == "No tenant has the slug or id 'unknown'."
    assert error["details"] == {"tenant": ["No tenant has the slug or id 'unknown'."]}
    # The tenant's slug and id filter; a gone tenant's id still finds its events.
    assert as_viewer.get("/audit", {"tenant": "known"}).json()["items"]
    assert as_viewer.get("/audit", {"tenant": str(tenant.id)}).json()["items"]
    assert (
        as_viewer.get("/audit", {"tenant": "00000000-0000-0000-0000-000000000001"}).status_code
        == 422
    )


def test_messages_carry_no_pydantic_prefix(as_viewer):
    response = as_viewer.get("/audit", {"since": "12345"})
    assert response.status_code == 422
    said = error_of(response)["details"]["since"]
    assert said == ["since '12345' is not an ISO 8601 date-time; use e.g. 2026-05-17T09:30:00Z."]


def test_the_413_message_names_the_limit_not_a_setting(as_operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    response = as_operator.post("/tenants", raw='{"name": "' + "x" * 70_000 + '"}')
    assert response.status_code == 413
    message = error_of(response)["message"]
    assert message == "The body is larger than 64 KiB; send at most that."
    assert "DATA_UPLOAD" not in message


def test_a_json_body_sent_as_text_plain_is_415(as_operator):
    body = '{"slug": "plain", "name": "P", "plan": "starter", "admin_email": "o@p.test"}'
    response = as_operator.post("/tenants", raw=body, content_type="text/plain")
    assert response.status_code == 415
    error = error_of(response)
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert not Tenant.objects.exists()
    # Declared JSON (with a charset too), the same body creates the tenant.
    response = as_operator.post(
        "/tenants", raw=body, content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201


def test_timestamps_are_iso_8601_utc_with_z_to_the_millisecond(as_viewer):
    tenant = f.active_tenant(slug="stamped")
    body = as_viewer.get(f"/tenants/{tenant.id}").json()
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["activated_at"])
    assert all(ISO_Z.match(s["started_at"]) for s in body["run"]["steps"] if s["started_at"])
    events = as_viewer.get(f"/tenants/{tenant.id}/events").json()["items"]
    assert events and all(ISO_Z.match(e["occurred_at"]) for e in events)
    assert Event.objects.filter(tenant_id=tenant.id).count() >= len(events)
