"""The console's session store (controlplane.sessions): Django's database sessions, read with
one plain statement, behaving as Django's do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from controlplane.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_a_saved_session_reads_back_and_an_expired_or_unknown_one_is_empty() -> None:
    store = SessionStore()
    store["who"] = "otto"
    store.save()
    key = store.session_key
    assert SessionStore(key).load() == {"who": "otto"}
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(1))
    expired = SessionStore(key)
    assert expired.load() == {}
    assert expired.session_key is None  # a save makes a new session, never revives this one
    assert SessionStore("no-such-session-key-000000000000").load() == {}


def test_logging_in_and_out_goes_through_it(client, viewer, settings) -> None:
    assert settings.SESSION_ENGINE == "controlplane.sessions"
    login = client.post("/accounts/login/", {"username": "vera", "password": "pw-vera"})
    assert login.status_code == 302
    assert client.get("/tenants/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/tenants/").status_code == 302  # back to the login page
