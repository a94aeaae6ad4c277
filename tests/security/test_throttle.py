"""Login throttling: 5 failures for one username from one address, or 20 from one address,
within 15 minutes lock further attempts from there out for 15 minutes, on the console's login
page and the admin's, with a clear message, ``auth.login_failed`` / ``auth.locked_out`` in the
audit feed, and a way to unlock."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import GLOBAL_CHAIN, Event, EventChain
from audit.services import verify_chains

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


def attempt(
    client: Client, username: str, password: str, *, url: str = LOGIN, ip: str = "10.0.0.1"
):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_wrong_passwords_lock_the_username_from_that_address(operator):
    client = Client()
    for _ in range(4):
        response = attempt(client, "otto", "wrong")
        assert response.status_code == 200
        assert "match. Please try again" in response.content.decode()
    fifth = attempt(client, "otto", "wrong")
    assert fifth.status_code == 429
    assert "Too many failed logins" in fifth.content.decode()
    # The right password is refused too while the lock holds, from that address.
    refused = attempt(client, "otto", "pw-otto")
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    events = list(Event.objects.filter(tenant_id__isnull=True).order_by("seq"))
    types = [e.type for e in events]
    assert types.count("auth.login_failed") == 5
    assert types.count("auth.locked_out") == 1  # the failure that locked; refusals are counted
    assert {e.actor for e in events} == {"user:otto"}
    assert events[0].data["address"] == "10.0.0.1"
    # Fifteen minutes later the lock is over and the right password works.
    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        ok = attempt(Client(), "otto", "pw-otto")
        assert ok.status_code == 302 and ok["Location"] == "/tenants/"


def test_a_stranger_cannot_lock_the_owner_out_from_the_owners_address(operator):
    # Issue 23: five wrong passwords from anywhere locked the owner out from every address.
    stranger = Client()
    for _ in range(5):
        attempt(stranger, "otto", "wrong", ip="203.0.113.9")
    assert attempt(stranger, "otto", "pw-otto", ip="203.0.113.9").status_code == 429
    owner = Client()
    ok = attempt(owner, "otto", "pw-otto", ip="10.9.9.9")
    assert ok.status_code == 302 and "_auth_user_id" in owner.session
    # The admin's login page too.
    assert attempt(Client(), "otto", "pw-otto", url=ADMIN_LOGIN, ip="10.9.9.8").status_code in (
        200,
        302,
    )


def test_refused_logins_are_counted_not_recorded_one_by_one(operator, admin_user, client):
    stranger = Client()
    for _ in range(5):
        attempt(stranger, "otto", "wrong", ip="203.0.113.9")
    before = Event.objects.count()
    for _ in range(30):
        assert attempt(stranger, "otto", "pw-otto", ip="203.0.113.9").status_code == 429
    assert Event.objects.count() == before  # no audit row per refused try
    assert Event.objects.filter(type="auth.locked_out").count() == 1
    client.force_login(admin_user)
    metrics = client.get("/metrics").content.decode()
    assert "controlplane_logins_refused_total 30.0" in metrics


def test_other_usernames_are_not_locked_by_one_users_failures(operator, viewer):
    client = Client()
    for _ in range(5):
        attempt(client, "otto", "wrong")
    assert attempt(client, "vera", "pw-vera").status_code == 302


def test_twenty_failures_from_one_address_lock_the_address(operator):
    client = Client()
    # Four names, four failures each (under the username limit), from one address...
    for name in ("a1", "a2", "a3", "a4", "a5"):
        for _ in range(4):
            last = attempt(client, name, "wrong", ip="10.0.0.7")
    assert last.status_code == 429  # the twentieth
    # ...locks the address, for every username, but not other addresses.
    assert attempt(client, "otto", "pw-otto", ip="10.0.0.7").status_code == 429
    assert attempt(Client(), "otto", "pw-otto", ip="10.0.0.8").status_code == 302


def test_the_admin_login_is_throttled_too(admin_user):
    client = Client()
    for _ in range(5):
        response = attempt(client, "ada", "wrong", url=ADMIN_LOGIN)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert attempt(client, "ada", "pw-ada", url=ADMIN_LOGIN).status_code == 429


def test_axes_reset_username_unlocks_at_once(operator):
    client = Client()
    for _ in range(5):
        attempt(client, "otto", "wrong")
    assert attempt(client, "otto", "pw-otto").status_code == 429
    out = StringIO()
    call_command("axes_reset_username", "otto", stdout=out)
    assert "removed" in out.getvalue()
    assert attempt(client, "otto", "pw-otto").status_code == 302


def test_a_success_clears_the_count(operator):
    client = Client()
    for _ in range(4):
        attempt(client, "otto", "wrong")
    assert attempt(client, "otto", "pw-otto").status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "otto", "wrong").status_code == 200


def test_auth_events_have_their_own_verified_chain(operator):
    client = Client()
    for _ in range(3):
        attempt(client, "otto", "wrong")
    chain = EventChain.objects.get(tenant_id=GLOBAL_CHAIN)
    assert chain.length == 3
    checked, problems = verify_chains()
    assert checked >= 3 and problems == []
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "and the chain of events without a tenant verified" in out.getvalue()


def test_odd_usernames_are_recorded_safely(roles):
    client = Client()
    name = "ünï\u200bcode<script>" + "x" * 100
    assert attempt(client, name, "wrong").status_code == 200
    event = Event.objects.get(type="auth.login_failed")
    assert event.tenant_id is None and event.actor.startswith("user:ünï")


def test_a_very_long_username_is_refused_not_a_server_error(roles):
    # Found by the bad-input corpus: axes stores the username in 255 characters.
    response = attempt(Client(), "x" * 5000, "wrong")
    assert response.status_code == 200
    assert response.context["form"].errors
