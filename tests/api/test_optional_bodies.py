"""The operations' optional bodies: documented as generators expect, and answered as documented.

``requestBody.required: false`` with the body's own object schema (not ``anyOf: [X, null]``,
which openapi-python-client turns into a client that crashes when no body is given). So no
body and ``{}`` are accepted, and a JSON ``null`` is refused like any other non-object.
"""

from __future__ import annotations

import pytest

from tenants.models import Tenant
from tests import factories as f

from .conftest import error_of, openapi_document

pytestmark = pytest.mark.django_db

ACTIONS = ["cancel", "reset", "retry", "suspend", "resume", "decommission", "pause", "unpause"]


def optional_bodies() -> dict[str, dict]:
    found = {}
    for template, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody")
            if body is not None and not body["required"]:
                found[f"{method} {template}"] = body
    return found


def test_every_operation_documents_an_optional_plain_object_body(db):
    bodies = optional_bodies()
    for action in ACTIONS:
        assert f"post /api/v1/tenants/{{tenant_id}}/{action}" in bodies
    components = openapi_document()["components"]["schemas"]
    for where, body in bodies.items():
        schema = body["content"]["application/json"]["schema"]
        # Declare the body `payload: X = OptionalBody` (api/base.py), not `X | None = None`.
        assert set(schema) == {"$ref"}, (where, schema)
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert components[name]["type"] == "object", where


def test_create_still_requires_its_body(db):
    body = openapi_document()["paths"]["/api/v1/tenants"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TenantCreateIn"
    }


@pytest.mark.parametrize("raw", ["", "{}"])
def test_no_body_or_an_empty_object_is_accepted(as_admin, raw):
    tenant = f.active_tenant()
    response = as_admin.post(f"/tenants/{tenant.id}/suspend", raw=raw)
    assert response.status_code == 202, response.content
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("raw", ["null", "[]", '"x"', "1", "true"])
def test_a_body_that_is_not_an_object_is_422_and_changes_nothing(as_admin, action, raw):
    tenant = f.active_tenant()
    response = as_admin.post(f"/tenants/{tenant.id}/{action}", raw=raw)
    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert list(error["details"]) == ["body"]
    stored = Tenant.objects.get(pk=tenant.pk)
    assert (stored.state, stored.updated_at) == (tenant.state, tenant.updated_at)
