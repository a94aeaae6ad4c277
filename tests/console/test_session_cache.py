"""A console session's user, with its permission set, is kept by the process for
``CONTROLPLANE_AUTH_CACHE_SECONDS`` (``tenants.permissions.recent_users``): the price and its
bounds, as docs/security.md states them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.permissions import recent_users

pytestmark = pytest.mark.django_db

NEW_TENANT = "/tenants/new/"  # an operator's page: a viewer is refused it
HOME = "/tenants/"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_role_removed_in_this_process_is_seen_by_the_next_request(operator):
    client = logged_in(operator)
    assert client.get(NEW_TENANT).status_code == 200  # the user is kept from here
    operator.groups.clear()  # the role removed here: the cache is emptied
    assert client.get(NEW_TENANT).status_code == 403


def test_a_user_deactivated_in_this_process_is_logged_out_at_once(operator):
    client = logged_in(operator)
    assert client.get(HOME).status_code == 200
    operator.is_active = False
    operator.save()
    response = client.get(HOME)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_another_process_deactivating_the_user_is_seen_once_the_entry_is_a_second_old(
    operator, settings, monkeypatch
):
    settings.CONTROLPLANE_AUTH_CACHE_SECONDS = 1.0
    now = [1000.0]
    monkeypatch.setattr(recent_users, "clock", lambda: now[0])
    client = logged_in(operator)
    assert client.get(HOME).status_code == 200
    # Another process deactivates the user: an UPDATE this process hears nothing of.
    User.objects.filter(pk=operator.pk).update(is_active=False)
    now[0] += 0.99
    assert client.get(HOME).status_code == 200  # within the second: kept
    now[0] += 0.02
    response = client.get(HOME)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_password_changed_elsewhere_ends_the_session_even_while_kept(operator, monkeypatch):
    client = logged_in(operator)
    assert client.get(HOME).status_code == 200
    # The kept user carries the old password hash; the session's hash is checked against it,
    # and a change made here empties the cache, so the next request reads the new one.
    operator.set_password("another-long-passphrase")
    operator.save()
    response = client.get(HOME)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_with_the_cache_off_every_request_reads_the_user(operator, settings):
    settings.CONTROLPLANE_AUTH_CACHE_SECONDS = 0
    client = logged_in(operator)
    assert client.get(HOME).status_code == 200
    User.objects.filter(pk=operator.pk).update(is_active=False)
    response = client.get(HOME)
    assert response.status_code == 302 and "/login/" in response["Location"]
