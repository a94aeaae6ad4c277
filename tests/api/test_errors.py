"""The error shape everywhere, the transport errors (400, 404, 405, 413), and the last resort."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from tenants.models import Tenant
from tests import factories as f

from .conftest import BASE, error_of

pytestmark = pytest.mark.django_db

NEW = {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "ops@acme.test"}


@pytest.mark.parametrize("raw", ["{", "{'slug': 1}", "nul", '{"a": 1} x', "[" * 50_000])
def test_a_body_that_is_not_json_is_400(as_operator, raw):
    response = as_operator.post("/tenants", raw=raw)
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_body"


def test_a_body_in_another_encoding_is_400(as_operator):
    response = as_operator.post("/tenants", raw=b'{"name": "\xff"}')
    assert response.status_code == 400


def test_a_body_over_the_limit_is_413(as_operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = as_operator.post("/tenants", {**NEW, "name": "x" * 2000})
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    tenant = f.active_tenant()
    response = as_operator.post(f"/tenants/{tenant.id}/suspend", raw=" " * 2000)
    assert response.status_code == 413
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


def test_a_missing_body_is_422_where_one_is_required(as_operator):
    response = as_operator.post("/tenants")
    assert response.status_code == 422
    assert "body" in error_of(response)["details"]


def test_a_form_encoded_body_is_refused(as_operator):
    response = as_operator.post(
        "/tenants", raw="slug=acme", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert not Tenant.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_wrong_method_is_a_json_405(as_operator, method):
    response = getattr(as_operator.client, method)(f"{BASE}/tenants", headers=as_operator.headers)
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert set(response["Allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize("path", ["/nope", "/tenants/a/b/c", "/tenants/x/explode", "/"])
def test_an_unknown_path_is_a_json_404(as_operator, path):
    response = as_operator.get(path)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_the_last_resort_answers_json_and_logs(as_viewer, monkeypatch, caplog):
    """No input reaches this (see the fuzz test); a bug would, and still gets the error shape."""

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("tenants.selectors.tenant_detail", broken)
    tenant = f.pending_tenant()
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = as_viewer.client.get(f"{BASE}/tenants/{tenant.id}", headers=as_viewer.headers)
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "boom" not in response.content.decode()
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_the_docs_page_and_its_assets_are_served_locally(db):
    client = Client()
    page = client.get(f"{BASE}/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "http://" not in html and "https://" not in html  # no CDN
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-init.js"):
        assert f"{BASE}/docs/assets/{asset}" in html
        response = client.get(f"{BASE}/docs/assets/{asset}")
        assert response.status_code == 200
        assert b"".join(response.streaming_content)
    assert client.get(f"{BASE}/docs/assets/..%2Fsettings.py").status_code == 404
    assert client.get(f"{BASE}/docs/assets/redoc.standalone.js.map").status_code == 404
