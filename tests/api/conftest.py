"""API test helpers: a client per persona, each holding its own bearer token."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from api.tokens import issue_token

BASE = "/api/v1"


class ApiClient:
    """A Django test client that speaks JSON and sends a bearer token (or none)."""

    def __init__(self, token: str | None = None, client: Client | None = None) -> None:
        self.client = client or Client()
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.token = token

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.client.get(BASE + path, params or {}, headers={**self.headers, **headers})

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
        return self.client.post(BASE + path, data, content_type=content_type, headers=extra)


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
