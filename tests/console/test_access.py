"""Every page needs a login; every page and action needs its permission."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from .conftest import fresh, login, new_tenant

pytestmark = pytest.mark.django_db

PAGES = ["/tenants/", "/tenants/new/", "/tenants/{id}/", "/audit/", "/"]


@pytest.fixture
def tenant(roles):
    return new_tenant("acme", start=False)


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_login(client: Client, tenant, page: str) -> None:
    url = page.format(id=tenant.pk)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("action", ["cancel", "reset", "retry", "suspend", "decommission"])
def test_anonymous_actions_are_sent_to_login_and_change_nothing(client, tenant, action) -> None:
    response = client.post(f"/tenants/{tenant.pk}/{action}/", {"confirm_slug": "acme"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert fresh(tenant).state == "pending"
    assert fresh(tenant).decommission_requested_at is None


@pytest.mark.parametrize("page", ["/tenants/", "/tenants/new/", "/tenants/{id}/", "/audit/"])
def test_users_without_a_role_get_a_403_page(client, outsider, tenant, page) -> None:
    login(client, outsider)
    response = client.get(page.format(id=tenant.pk))
    assert response.status_code == 403
    assert b"Not allowed" in response.content


def test_a_viewer_cannot_open_the_create_form(client, viewer) -> None:
    login(client, viewer)
    assert client.get("/tenants/new/").status_code == 403
    response = client.post(
        "/tenants/new/",
        {"slug": "sneaky", "name": "S", "plan": "starter", "admin_email": "a@b.test"},
    )
    assert response.status_code == 403


def test_root_leads_to_the_tenant_list(client, viewer) -> None:
    login(client, viewer)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/tenants/"


def test_login_page_logs_in_and_lands_on_tenants(client, operator) -> None:
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="password"' in page.content
    response = client.post("/accounts/login/", {"username": "otto", "password": "pw-otto"})
    assert response.status_code == 302
    assert response["Location"] == "/tenants/"
    assert client.get("/tenants/").status_code == 200


def test_a_wrong_password_says_so(client, operator) -> None:
    response = client.post("/accounts/login/", {"username": "otto", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_logout_is_a_post(client, operator) -> None:
    login(client, operator)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/tenants/").status_code == 302


def test_login_form_enforces_csrf(operator) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "otto", "password": "pw-otto"})
    assert response.status_code == 403


def test_an_unknown_tenant_is_a_404(client, viewer) -> None:
    login(client, viewer)
    assert client.get(f"/tenants/{uuid.uuid4()}/").status_code == 404
    assert client.get("/tenants/not-a-uuid/").status_code == 404


def test_an_htmx_poll_from_an_expired_session_sends_the_browser_to_login(client, tenant) -> None:
    response = client.get(
        f"/tenants/{tenant.pk}/",
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver/tenants/{tenant.pk}/"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/accounts/login/?next=%2Ftenants%2F{tenant.pk}%2F"
    assert b"<form" not in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/tenants/?q=%00",
        "/tenants/?q=a%00b&state=%00&plan=%00&sort=%00",
        "/audit/?type=%00",
        "/audit/?tenant=%00",
        "/audit/?since=2026-13-45T99:00",
        "/audit/?since=%00",
        "/audit/?format=csv&type=%00&since=2026-02-30T10:00",
    ],
)
def test_hostile_query_strings_never_break_a_page(client, operator, path):
    client.force_login(operator)
    response = client.get(path)
    if "%00" in path:
        # A NUL anywhere in the query string is refused at the door (controlplane/middleware.py).
        assert response.status_code == 400
        assert b"NUL characters are not allowed" in response.content
    else:
        assert response.status_code == 200
