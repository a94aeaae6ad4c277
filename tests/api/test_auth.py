"""Who may call the API: bearer tokens (hashed, expiring, revocable) and the session with CSRF."""

from __future__ import annotations

import hashlib

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from api.models import ApiToken
from api.tokens import issue_token, recent_tokens, revoke_token
from audit.models import Event
from tenants.models import Tenant

from .conftest import BASE, ApiClient, error_of

pytestmark = pytest.mark.django_db

NEW = {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "ops@acme.test"}


def test_no_token_is_401_with_the_error_shape(anonymous):
    for response in (anonymous.get("/tenants"), anonymous.post("/tenants", NEW)):
        assert response.status_code == 401
        assert error_of(response)["code"] == "not_authenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Tenant.objects.exists()


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", "Bearer cpt_" + "x" * 43, "Bearer ", "Token abc", "Basic dXNlcjpwdw=="],
)
def test_a_bad_token_is_401(operator, header):
    client = ApiClient()
    client.headers["Authorization"] = header
    response = client.get("/tenants")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_only_the_hash_is_stored(operator):
    token, raw = issue_token(user=operator, name="ci")
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {str(v) for v in ApiToken.objects.values().get(pk=token.pk).values()}
    assert raw.startswith(stored.prefix)


def test_a_revoked_token_stops_working(operator):
    _, raw = issue_token(user=operator, name="ci")
    client = ApiClient(raw)
    assert client.get("/tenants").status_code == 200
    revoke_token(name="ci")
    response = client.get("/tenants")
    assert response.status_code == 401
    assert "revoked" in error_of(response)["message"]


def test_an_expired_token_stops_working(operator):
    _, raw = issue_token(user=operator, name="ci", expires_days=1)
    client = ApiClient(raw)
    assert client.get("/tenants").status_code == 200
    with time_machine.travel(timezone.now() + timezone.timedelta(days=1, seconds=1)):
        assert client.get("/tenants").status_code == 401


def test_an_inactive_users_token_stops_working(operator):
    _, raw = issue_token(user=operator, name="ci")
    operator.is_active = False
    operator.save()
    assert ApiClient(raw).get("/tenants").status_code == 401


def test_a_bad_token_is_refused_even_with_a_logged_in_session(operator):
    client = ApiClient()
    client.client.force_login(operator)
    assert client.get("/tenants").status_code == 200
    client.headers["Authorization"] = "Bearer cpt_wrong"
    assert client.get("/tenants").status_code == 401


def test_last_used_is_recorded_without_a_write_per_request(operator):
    token, raw = issue_token(user=operator, name="ci")
    client = ApiClient(raw)
    client.get("/tenants")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get("/tenants")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first


def test_the_token_acts_as_its_user_and_is_named_in_the_audit_feed(operator):
    _, raw = issue_token(user=operator, name="deploy-bot")
    response = ApiClient(raw).post("/tenants", NEW)
    assert response.status_code == 201
    actors = set(
        Event.objects.filter(tenant_id=response.json()["id"]).values_list("actor", flat=True)
    )
    assert actors == {"token:deploy-bot"}


def test_a_token_has_only_its_users_permissions(viewer):
    _, raw = issue_token(user=viewer, name="read-only")
    client = ApiClient(raw)
    assert client.get("/tenants").status_code == 200
    response = client.post("/tenants", NEW)
    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"
    assert not Tenant.objects.exists()


# --- the browser session ----------------------------------------------------------------------


def test_the_session_reads_without_csrf(viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.get(f"{BASE}/tenants").status_code == 200


def test_a_session_post_without_the_csrf_token_is_403(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(f"{BASE}/tenants", NEW, content_type="application/json")
    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"
    assert not Tenant.objects.exists()


def test_a_session_post_with_the_csrf_token_acts_as_the_user(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get(f"{BASE}/docs")  # renders the CSRF token, which sets the cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        f"{BASE}/tenants", NEW, content_type="application/json", headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 201, response.content
    actors = set(
        Event.objects.filter(tenant_id=response.json()["id"]).values_list("actor", flat=True)
    )
    assert actors == {"user:otto"}


def test_an_anonymous_post_is_401_not_a_csrf_403(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"{BASE}/tenants", NEW, content_type="application/json")
    assert response.status_code == 401


# --- the per-process token cache (CONTROLPLANE_AUTH_CACHE_SECONDS) ---------------------------


def test_a_change_in_this_process_is_seen_by_the_next_request_despite_the_cache(operator):
    _, raw = issue_token(user=operator, name="ci")
    client = ApiClient(raw)
    assert client.get("/tenants").status_code == 200  # now cached
    operator.groups.clear()  # the operator role removed here: the cache is emptied
    assert client.get("/tenants").status_code == 403


def test_a_revocation_by_another_process_is_seen_once_the_cached_entry_is_a_second_old(
    operator, settings, monkeypatch
):
    settings.CONTROLPLANE_AUTH_CACHE_SECONDS = 1.0
    now = [1000.0]
    monkeypatch.setattr(recent_tokens, "clock", lambda: now[0])
    _, raw = issue_token(user=operator, name="ci")
    client = ApiClient(raw)
    assert client.get("/tenants").status_code == 200
    # Another process revokes it: an UPDATE this process hears nothing of.
    ApiToken.objects.filter(name="ci").update(revoked_at=timezone.now())
    now[0] += 0.99
    assert client.get("/tenants").status_code == 200  # within the second: cached
    now[0] += 0.02
    assert client.get("/tenants").status_code == 401


def test_with_the_cache_off_every_request_reads_the_token(operator, settings):
    settings.CONTROLPLANE_AUTH_CACHE_SECONDS = 0
    _, raw = issue_token(user=operator, name="ci")
    client = ApiClient(raw)
    assert client.get("/tenants").status_code == 200
    ApiToken.objects.filter(name="ci").update(revoked_at=timezone.now())
    assert client.get("/tenants").status_code == 401
