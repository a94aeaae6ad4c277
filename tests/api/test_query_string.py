"""A query parameter is given once: ``?slug=a&slug=b`` is refused, on every endpoint.

The endpoints and their parameters are read from the OpenAPI document, so a parameter or a
list endpoint added later is covered here (and needs a sample value below to be).
"""

from __future__ import annotations

from typing import Any

import pytest

from api.views import api
from audit.models import Event
from tenants.models import Tenant
from tests import factories as f

from .conftest import BASE, ApiClient, error_of, openapi_document

pytestmark = pytest.mark.django_db

# A valid value for each query parameter of the API (any GET endpoint).
SAMPLES: dict[str, tuple[str, str]] = {
    "state": ("active", "pending"),
    "slug": ("acme", "other"),
    "q": ("acme", "corp"),
    "limit": ("5", "10"),
    "cursor": ("", ""),
    "type": ("tenant", "tenant.created"),
    # Tenants that exist (an unknown tenant is a 422 of its own): made by the test.
    "tenant": ("sample-one", "sample-two"),
    "since": ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
    "plan": ("starter", "growth"),
    "condition": ("ok", "failed"),
    "needs_attention": ("true", "false"),
    "actor": ("system", "user:ada"),
    "hide_steps": ("true", "false"),
    "status": ("waiting", "approved"),
    "operation": ("suspend", "bulk"),
}
# Where a list's parameter takes other words than the table above (the schedules' statuses, and
# no bulk "operation").
SAMPLES_AT = {
    ("/schedules", "status"): ("scheduled", "done"),
    ("/schedules", "operation"): ("suspend", "resume"),
}


def query_parameters() -> list[tuple[str, str]]:
    """(path template, parameter) for every query parameter of every GET in the document.

    Built in-process: parametrization runs at collection, before the test client may be used.
    """
    found = []
    for template, ops in api.get_openapi_schema()["paths"].items():
        for param in ops.get("get", {}).get("parameters", []):
            if param["in"] == "query":
                found.append((template.removeprefix(BASE), param["name"]))
    return found


def test_every_list_endpoint_and_parameter_is_covered():
    found = query_parameters()
    served = [
        (template.removeprefix(BASE), p["name"])
        for template, ops in openapi_document()["paths"].items()
        for p in ops.get("get", {}).get("parameters", [])
        if p["in"] == "query"
    ]
    assert found == served
    assert {template for template, _ in found} >= {
        "/tenants",
        "/tenants/{tenant_id}/events",
        "/audit",
    }
    assert {name for _, name in found} <= set(SAMPLES), "add a sample value for the new parameter"


def _path(template: str, tenant: Tenant) -> str:
    return template.replace("{tenant_id}", str(tenant.id))


@pytest.mark.parametrize(("template", "name"), query_parameters())
@pytest.mark.parametrize("same", [True, False], ids=["same-value", "two-values"])
def test_a_repeated_query_parameter_is_422_naming_it(as_admin, template, name, same):
    tenant = f.active_tenant()
    if name == "tenant":
        f.pending_tenant(slug="sample-one")
        f.pending_tenant(slug="sample-two")
    first, second = SAMPLES_AT.get((template, name), SAMPLES[name])
    values = [first, first] if same else [first, second]
    # Each value alone is fine: the refusal is about the repetition.
    for value in values:
        assert as_admin.get(_path(template, tenant), {name: value}).status_code == 200
    events = Event.objects.count()
    response = as_admin.get(_path(template, tenant), {name: values})
    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["details"] == {name: ["Given 2 times; give it once."]}
    assert Event.objects.count() == events


def test_the_fuzzers_find_is_refused(as_viewer):
    """The request that passed as a 200 in CI (schemathesis, issue 13)."""
    f.active_tenant()
    response = as_viewer.client.get(
        f"{BASE}/tenants?slug=true&slug=%5B%27null%27%5D", headers=as_viewer.headers
    )
    assert response.status_code == 422
    assert error_of(response)["details"] == {"slug": ["Given 2 times; give it once."]}


def test_every_repeated_parameter_is_named_at_once(as_viewer):
    response = as_viewer.get("/audit", {"type": ["a", "b", "c"], "limit": ["1", "2"], "q": "x"})
    assert response.status_code == 422
    assert error_of(response)["details"] == {
        "type": ["Given 3 times; give it once."],
        "limit": ["Given 2 times; give it once."],
    }


def test_distinct_parameters_together_are_fine(as_viewer):
    tenant = f.active_tenant()
    response = as_viewer.get("/tenants", {"state": "active", "slug": tenant.slug, "limit": 1})
    assert response.status_code == 200
    assert [t["id"] for t in response.json()["items"]] == [str(tenant.id)]


def test_authentication_comes_first(db):
    response = ApiClient().get("/tenants", {"slug": ["a", "b"]})
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin"])
def test_every_reader_gets_the_same_refusal(personas: dict[str, Any], persona):
    response = personas[persona].get("/tenants", {"state": ["active", "failed"]})
    assert response.status_code == 422
    assert error_of(response)["details"] == {"state": ["Given 2 times; give it once."]}
