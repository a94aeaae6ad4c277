"""An ``Authorization`` header is credentials offered: a working bearer token, or a 401.

Never a 200 through the session (or anything else) when the header is malformed: another
scheme, an empty bearer, an empty header, or a token that does not work.
"""

from __future__ import annotations

import pytest
from django.test import Client

from api.tokens import issue_token
from tenants.models import Tenant
from tests import factories as f

from .conftest import BASE, ApiClient, error_of

pytestmark = pytest.mark.django_db

NEW = {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "ops@acme.test"}

MALFORMED = [
    "",
    " ",
    "Bearer",
    "Bearer ",
    "Bearer    ",
    "Bearercpt_abc",
    "Token abc",
    "Basic b3R0bzpwdy1vdHRv",  # otto:pw-otto, the right password: still not a bearer token
    "Digest username=otto",
    "cpt_abc",
    "Bearer cpt_wrong",
    "Bearer null",
]


def session_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("header", MALFORMED)
def test_a_malformed_authorization_header_is_401_even_with_a_session(operator, header):
    client = ApiClient(client=session_client(operator))
    assert client.get("/tenants").status_code == 200  # the session alone works
    client.headers["Authorization"] = header
    for response in (client.get("/tenants"), client.post("/tenants", NEW)):
        assert response.status_code == 401, (header, response.content)
        assert error_of(response)["code"] == "not_authenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Tenant.objects.exists()


@pytest.mark.parametrize("header", ["Basic b3R0bzpwdy1vdHRv", "Token abc", ""])
def test_a_malformed_header_says_what_is_expected(db, header):
    response = ApiClient().get("/tenants", Authorization=header)
    assert response.status_code == 401
    assert "Bearer <token>" in error_of(response)["message"]


@pytest.mark.parametrize("header", MALFORMED)
def test_a_malformed_header_next_to_a_good_session_does_not_operate(operator, header):
    tenant = f.active_tenant()
    client = session_client(operator)
    response = client.post(
        f"{BASE}/tenants/{tenant.id}/decommission",
        "",
        content_type="application/json",
        headers={"Authorization": header},
    )
    assert response.status_code == 401
    assert Tenant.objects.get(pk=tenant.pk).state == tenant.state


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_scheme_is_case_insensitive(operator, scheme):
    _, raw = issue_token(user=operator, name="ci")
    response = ApiClient().get("/tenants", Authorization=f"{scheme} {raw}")
    assert response.status_code == 200


def test_no_header_at_all_leaves_the_session_to_answer(operator):
    assert ApiClient(client=session_client(operator)).get("/tenants").status_code == 200
    assert ApiClient().get("/tenants").status_code == 401
