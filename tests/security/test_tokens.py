"""API tokens: expire by default (settable), record when they were last used (at most one
write a minute), show it in the admin and ``--list``, and stop working the moment they are
revoked."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from api.models import ApiToken
from api.tokens import issue_token, recent_tokens, revoke_token

pytestmark = pytest.mark.django_db

TENANTS = "/api/v1/tenants"


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_default_expiry_follows_the_setting(operator, settings):
    settings.CONTROLPLANE_API_TOKEN_DAYS = 30
    token, _ = issue_token(user=operator, name="short")
    assert 29.9 < (token.expires_at - token.created_at).total_seconds() / 86400 < 30.1


def test_the_command_takes_expires_in(operator):
    call_command(
        "create_api_token",
        "otto",
        "--name",
        "ci",
        "--expires-in",
        "7",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    token = ApiToken.objects.get(name="ci")
    assert 6.9 < (token.expires_at - token.created_at).total_seconds() / 86400 < 7.1


def test_an_expired_token_is_refused(operator):
    _, raw = issue_token(user=operator, name="soon", expires_days=1)
    client = Client()
    assert client.get(TENANTS, headers=bearer(raw)).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1), tick=False):
        assert client.get(TENANTS, headers=bearer(raw)).status_code == 401


def test_revocation_takes_effect_on_the_next_request(operator):
    _, raw = issue_token(user=operator, name="gone")
    client = Client()
    assert client.get(TENANTS, headers=bearer(raw)).status_code == 200
    revoke_token(name="gone")
    response = client.get(TENANTS, headers=bearer(raw))
    assert response.status_code == 401
    assert "revoked" in response.content.decode()


def test_last_used_is_written_at_most_once_a_minute(operator, django_assert_num_queries):
    token, raw = issue_token(user=operator, name="busy")
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.get(TENANTS, headers=bearer(raw))
    token.refresh_from_db()
    assert token.last_used_at == start
    # Within the minute: no write (the answer is the same without the UPDATE). 50 s later the
    # process's one-second token cache (api.tokens.recent_tokens) has expired; time_machine
    # moves the wall clock, not the monotonic clock the cache reads, so it is emptied here.
    recent_tokens.forget_all()
    with time_machine.travel(start + timedelta(seconds=50), tick=False):
        client.get(TENANTS, headers=bearer(raw))
    token.refresh_from_db()
    assert token.last_used_at == start
    recent_tokens.forget_all()  # as above
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        client.get(TENANTS, headers=bearer(raw))
    token.refresh_from_db()
    assert token.last_used_at == start + timedelta(seconds=61)


def test_last_used_shows_in_the_list_and_the_admin(operator, roles):
    _, raw = issue_token(user=operator, name="seen")
    issue_token(user=operator, name="unused")
    Client().get(TENANTS, headers=bearer(raw))
    out = StringIO()
    call_command("create_api_token", "--list", stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()}
    assert "LAST USED" in lines["NAME"]
    assert (
        lines["seen"].rstrip().endswith(f"{timezone.now():%Y-%m-%d}" + lines["seen"].rstrip()[-6:])
    )
    assert lines["unused"].rstrip().endswith("never")
    boss = User.objects.create_superuser("boss", password="pw-boss")
    admin = Client()
    admin.force_login(boss)
    page = admin.get("/admin/api/apitoken/").content.decode()
    assert "Last used at" in page or "last used" in page.lower()
