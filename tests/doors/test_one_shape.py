"""One input normalisation (a slug with spaces around it is trimmed by every door) and one
detail shape (``tenant show --json`` and ``GET /tenants/{id}`` give the same keys)."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from tenants.models import Tenant

from ..admin.helpers import active_tenant, logged_in
from ..api.conftest import client_for

pytestmark = pytest.mark.django_db

PADDED = "  padded-slug  "


def _via_api(user: Any) -> None:
    response = client_for(user).post(
        "/tenants",
        {
            "slug": PADDED,
            "name": "Padded",
            "plan": "starter",
            "admin_email": "a@b.test",
            "start": False,
        },
    )
    assert response.status_code == 201, response.content


def _via_console(user: Any) -> None:
    response = logged_in(Client(), user).post(
        "/tenants/new/",
        {"slug": PADDED, "name": "Padded", "plan": "starter", "admin_email": "a@b.test"},
    )
    assert response.status_code == 302, response.content


def _via_admin(user: Any) -> None:
    response = logged_in(Client(), user).post(
        "/admin/tenants/tenant/add/",
        {"slug": PADDED, "name": "Padded", "plan": "starter", "admin_email": "a@b.test"},
    )
    assert response.status_code == 302, response.content


def _via_command(user: Any) -> None:
    call_command(
        "tenant",
        "create",
        "--slug",
        PADDED,
        "--name",
        "Padded",
        "--plan",
        "starter",
        "--admin-email",
        "a@b.test",
        "--no-start",
        stdout=StringIO(),
    )


@pytest.mark.parametrize("door", [_via_api, _via_console, _via_admin, _via_command])
def test_a_slug_with_spaces_around_it_is_trimmed_by_every_door(door: Any, admin_user: Any) -> None:
    door(admin_user)
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["padded-slug"]


def test_an_inner_space_or_a_capital_is_refused_not_rewritten(admin_user: Any) -> None:
    api = client_for(admin_user)
    for slug in ("pad ded", "Padded", "padded\t"):
        response = api.post(
            "/tenants",
            {"slug": slug, "name": "P", "plan": "starter", "admin_email": "a@b.test"},
        )
        assert response.status_code == 422
    assert not Tenant.objects.exists()


def _keys(value: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            keys.add(prefix + key)
            keys |= _keys(inner, prefix + key + ".")
    elif isinstance(value, list) and value:
        keys |= _keys(value[0], prefix + "[].")
    return keys


def test_tenant_show_json_and_the_api_detail_have_the_same_keys(admin_user: Any) -> None:
    tenant = active_tenant("shape")
    api = client_for(admin_user).get(f"/tenants/{tenant.id}")
    assert api.status_code == 200
    out = StringIO()
    call_command("tenant", "show", "shape", "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert _keys(shown) == _keys(api.json())
    assert shown["run"]["steps"] and shown["allocations"]


def test_tenant_list_json_and_the_api_list_items_have_the_same_keys(admin_user: Any) -> None:
    active_tenant("shape")
    api = client_for(admin_user).get("/tenants")
    assert api.status_code == 200
    out = StringIO()
    call_command("tenant", "list", "--json", stdout=out)
    assert set(json.loads(out.getvalue())[0]) == set(api.json()["items"][0])
