"""Tokens through ``manage.py create_api_token`` and through the admin."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from api.models import ApiToken
from api.tokens import hash_token

from ..conftest import ROOT, subprocess_env
from .conftest import ApiClient

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_the_token_once_and_stores_its_hash(operator):
    out, err = run("otto", "--name", "ci")
    raw = out.strip()
    assert raw.startswith("cpt_") and "\n" not in raw
    assert "shown once" in err
    token = ApiToken.objects.get(name="ci")
    assert token.user == operator and token.token_hash == hash_token(raw)
    # Every token expires: 90 days (CONTROLPLANE_API_TOKEN_DAYS) unless told otherwise.
    assert 89.9 < (token.expires_at - token.created_at).total_seconds() / 86400 < 90.1
    assert ApiClient(raw).get("/tenants").status_code == 200


def test_create_with_expiry(operator):
    run("otto", "--name", "ci", "--expires", "7")
    token = ApiToken.objects.get(name="ci")
    assert 6.9 < (token.expires_at - token.created_at).total_seconds() / 86400 < 7.1


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["nobody", "--name", "x"], "No user"),
        (["otto"], "Usage"),
        (["otto", "--name", "two words"], "no spaces"),
        (["otto", "--name", "x", "--expires", "0"], "at least 1"),
        (["otto", "--name", "taken"], "already exists"),
    ],
)
def test_create_refusals(operator, args, reason):
    run("otto", "--name", "taken")
    with pytest.raises(CommandError, match=reason):
        run(*args)


def test_list_shows_no_secret_and_revoke_stops_the_token(operator, admin_user):
    raw = run("otto", "--name", "ci")[0].strip()
    run("ada", "--name", "ops")
    listing = run("--list")[0]
    assert "ci" in listing and "ops" in listing and "active" in listing
    assert raw not in listing
    assert "ops" not in run("--list", "otto")[0]
    assert "Revoked token ci" in run("--revoke", "ci")[0]
    assert "revoked" in run("--list", "otto")[0]
    assert ApiClient(raw).get("/tenants").status_code == 401
    with pytest.raises(CommandError, match="No token"):
        run("--revoke", "nope")


@pytest.mark.services  # the child process finds the test database through DATABASE_URL
@pytest.mark.django_db(transaction=True)
def test_the_command_in_a_real_process(operator, settings):
    env = subprocess_env(settings)
    cmd = [sys.executable, "manage.py", "create_api_token"]
    made = subprocess.run(
        [*cmd, "otto", "--name", "proc"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert ApiToken.objects.get(name="proc").token_hash == hash_token(made.stdout.strip())
    again = subprocess.run(
        [*cmd, "otto", "--name", "proc"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


# --- admin ----------------------------------------------------------------------------------


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.test", "pw")


def test_admin_creates_a_token_and_shows_it_once(client, superuser, operator):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:api_apitoken_add"),
        {"name": "from-admin", "user": operator.pk, "expires_days": "30"},
    )
    assert response.status_code == 200
    raw = response.context["raw_token"]
    assert raw.startswith("cpt_") and raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="from-admin")
    assert token.token_hash == hash_token(raw) and token.expires_at
    assert ApiClient(raw).get("/tenants").status_code == 200
    # The change page shows the token without its secret, and nothing can be edited.
    page = client.get(reverse("admin:api_apitoken_change", args=[token.pk]))
    assert page.status_code == 200
    assert raw not in page.content.decode()
    listing = client.get(reverse("admin:api_apitoken_changelist"))
    assert "from-admin" in listing.content.decode() and raw not in listing.content.decode()


def test_admin_refuses_a_bad_name(client, superuser, operator):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:api_apitoken_add"), {"name": "two words", "user": operator.pk}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"]
    assert not ApiToken.objects.exists()


def test_admin_revokes_by_bulk_action_and_never_deletes(client, superuser, operator):
    from api.tokens import issue_token

    token, raw = issue_token(user=operator, name="old")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:api_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert ApiClient(raw).get("/tenants").status_code == 401
    delete = client.get(reverse("admin:api_apitoken_delete", args=[token.pk]))
    assert delete.status_code == 403
