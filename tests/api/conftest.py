"""API test helpers: a client per persona, each holding its own bearer token."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema_rs
import pytest
from django.contrib.auth.models import User
from django.test import Client

from api.tokens import issue_token

BASE = "/api/v1"


# --- every response checked against the OpenAPI document ------------------------------------


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document as served (JSON keys, not the Python dict ninja builds it as)."""
    return Client().get(f"{BASE}/openapi.json").json()  # type: ignore[no-any-return]


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    routes = []
    for template in openapi_document()["paths"]:
        regex = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        routes.append((re.compile(regex), template))
    return routes


@functools.cache
def _validator(template: str, method: str, status: int) -> Any:
    doc = openapi_document()
    responses = doc["paths"][template][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {template} answered {status}, undocumented"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    # Refs are "#/components/...": resolve them against a root that carries the components.
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


def check_against_openapi(method: str, path: str, response: Any) -> None:
    """The answer's status is documented for the operation and its body matches the schema."""
    assert response.status_code < 500, response.content
    if path in (f"{BASE}/openapi.json",) or path.startswith(f"{BASE}/docs"):
        return
    template = next((t for regex, t in _routes() if regex.fullmatch(path)), None)
    ops = openapi_document()["paths"].get(template, {}) if template else {}
    if method.lower() not in ops:
        # Not an operation: the JSON 404/405 of api/urls.py.
        assert response.status_code in (404, 405), response.content
        error_of(response)
        return
    assert response["Content-Type"].startswith("application/json")
    _validator(template, method.lower(), response.status_code).validate(response.json())


class ApiClient:
    """A Django test client that speaks JSON and sends a bearer token (or none)."""

    def __init__(self, token: str | None = None, client: Client | None = None) -> None:
        self.client = client or Client()
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.token = token

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        response = self.client.get(BASE + path, params or {}, headers={**self.headers, **headers})
        check_against_openapi("get", BASE + path, response)
        return response

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        key: str | None = None,
        content_type: str = "application/json",
        **headers: str,
    ) -> Any:
        extra = {**self.headers, **headers}
        if key is not None:
            extra["Idempotency-Key"] = key
        if raw is not None:
            data: Any = raw
        elif body is None:
            data = ""
        else:
            data = json.dumps(body)
        response = self.client.post(BASE + path, data, content_type=content_type, headers=extra)
        check_against_openapi("post", BASE + path, response)
        return response

    def delete(self, path: str, **headers: str) -> Any:
        response = self.client.delete(BASE + path, headers={**self.headers, **headers})
        check_against_openapi("delete", BASE + path, response)
        return response


@pytest.fixture(autouse=True)
def _fast_saga(fast_saga: Any) -> Any:
    """Short timings, fault injection on, tenant data under tmp_path (see tests/conftest.py)."""
    return fast_saga


def client_for(user: User | None, name: str | None = None) -> ApiClient:
    if user is None:
        return ApiClient()
    _, raw = issue_token(user=user, name=name or f"{user.username}-token")
    return ApiClient(raw)


@pytest.fixture
def as_viewer(viewer: User) -> ApiClient:
    return client_for(viewer)


@pytest.fixture
def as_operator(operator: User) -> ApiClient:
    return client_for(operator)


@pytest.fixture
def as_admin(admin_user: User) -> ApiClient:
    return client_for(admin_user)


@pytest.fixture
def as_outsider(outsider: User) -> ApiClient:
    return client_for(outsider)


@pytest.fixture
def anonymous(db: None) -> ApiClient:
    return ApiClient()


@pytest.fixture
def personas(
    as_viewer: ApiClient,
    as_operator: ApiClient,
    as_admin: ApiClient,
    as_outsider: ApiClient,
    anonymous: ApiClient,
) -> dict[str, ApiClient]:
    return {
        "viewer": as_viewer,
        "operator": as_operator,
        "admin": as_admin,
        "outsider": as_outsider,
        "anonymous": anonymous,
    }


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]  # type: ignore[no-any-return]
