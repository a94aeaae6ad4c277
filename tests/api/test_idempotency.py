"""Idempotency-Key: the same POST twice does its work once; another body with the key is 422."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from audit.models import Event
from provisioning.models import Run
from tenants.models import Tenant
from tests import factories as f

from .conftest import ApiClient, client_for, error_of

pytestmark = pytest.mark.django_db

NEW = {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "ops@acme.test"}


def test_the_same_create_twice_creates_once_and_answers_the_same(as_operator):
    first = as_operator.post("/tenants", NEW, key="k-1")
    second = as_operator.post("/tenants", NEW, key="k-1")
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert "Idempotent-Replayed" not in first and second["Idempotent-Replayed"] == "true"
    assert Tenant.objects.count() == 1
    assert Event.objects.filter(type="tenant.created").count() == 1
    assert Run.objects.count() == 1


def test_a_caller_keeps_a_bounded_number_of_keys(as_operator, settings):
    # Issue 23: no cap let one token store thousands of answers for 24 hours.
    settings.CONTROLPLANE_IDEMPOTENCY_KEYS_PER_CALLER = 3
    for n in range(3):
        body = {**NEW, "slug": f"acme-{n}"}
        assert as_operator.post("/tenants", body, key=f"k-{n}").status_code == 201
    refused = as_operator.post("/tenants", {**NEW, "slug": "acme-3"}, key="k-3")
    assert refused.status_code == 422
    assert error_of(refused)["code"] == "idempotency_key_limit"
    assert "At most 3 Idempotency-Keys" in error_of(refused)["message"]
    assert not Tenant.objects.filter(slug="acme-3").exists()
    # A kept key still replays; a request without a key still works.
    again = as_operator.post("/tenants", {**NEW, "slug": "acme-0"}, key="k-0")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert as_operator.post("/tenants", {**NEW, "slug": "acme-4"}).status_code == 201


def test_the_same_key_with_another_body_is_422_and_does_nothing(as_operator):
    as_operator.post("/tenants", NEW, key="k-1")
    response = as_operator.post("/tenants", {**NEW, "slug": "other"}, key="k-1")
    assert response.status_code == 422
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"]


def test_the_same_key_on_another_endpoint_is_422(as_operator):
    tenant = f.active_tenant()
    as_operator.post(f"/tenants/{tenant.id}/suspend", key="k-1")
    response = as_operator.post(f"/tenants/{tenant.id}/resume", key="k-1")
    assert response.status_code == 422
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"


def test_field_order_and_spacing_do_not_make_another_body(as_operator):
    as_operator.post(
        "/tenants",
        raw='{"slug":"acme","name":"Acme","plan":"starter","admin_email":"ops@acme.test"}',
        key="k-1",
    )
    again = as_operator.post(
        "/tenants",
        raw='{ "admin_email": "ops@acme.test", "plan": "starter", "name": "Acme", "slug": "acme" }',
        key="k-1",
    )
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"


def test_an_action_replayed_answers_202_again_and_acts_once(as_operator):
    tenant = f.active_tenant()
    first = as_operator.post(f"/tenants/{tenant.id}/suspend", key="s-1")
    second = as_operator.post(f"/tenants/{tenant.id}/suspend", key="s-1")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert Event.objects.filter(tenant_id=tenant.id, type="tenant.suspended").count() == 1
    # Without the key, the second suspend is what it is: refused.
    assert as_operator.post(f"/tenants/{tenant.id}/suspend").status_code == 409


def test_a_refusal_is_an_answer_too(as_operator):
    tenant = f.active_tenant()
    first = as_operator.post(f"/tenants/{tenant.id}/resume", key="r-1")
    assert first.status_code == 409
    as_operator.post(f"/tenants/{tenant.id}/suspend")
    second = as_operator.post(f"/tenants/{tenant.id}/resume", key="r-1")
    assert (second.status_code, second.content) == (409, first.content)
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"


def test_a_request_refused_before_it_reached_the_operation_does_not_use_the_key(as_operator):
    assert as_operator.post("/tenants", {**NEW, "extra": 1}, key="k-1").status_code == 422
    assert as_operator.post("/tenants", raw="{nope", key="k-1").status_code == 400
    assert as_operator.post("/tenants", NEW, key="k-1").status_code == 201


def test_keys_belong_to_who_sent_them(operator, admin_user):
    one = client_for(operator, "one")
    two = client_for(admin_user, "two")
    assert one.post("/tenants", NEW, key="same").status_code == 201
    response = two.post("/tenants", {**NEW, "slug": "other"}, key="same")
    assert response.status_code == 201
    assert Tenant.objects.count() == 2


def test_a_key_lives_24_hours(as_operator):
    tenant = f.active_tenant()
    assert as_operator.post(f"/tenants/{tenant.id}/suspend", key="s-1").status_code == 202
    as_operator.post(f"/tenants/{tenant.id}/resume")
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=23)):
        assert as_operator.post(f"/tenants/{tenant.id}/suspend", key="s-1").status_code == 202
        assert Tenant.objects.get(pk=tenant.pk).state == "active"
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=25)):
        assert as_operator.post(f"/tenants/{tenant.id}/suspend", key="s-1").status_code == 202
        assert Tenant.objects.get(pk=tenant.pk).state == "suspended"


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_a_bad_key_is_422(as_operator, key):
    response = as_operator.post("/tenants", NEW, key=key)
    assert response.status_code == 422
    assert not Tenant.objects.exists()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_one_key_create_one_tenant(operator):
    """The second request waits on the first's claim of the key, then replays its answer."""
    raw_client = client_for(operator)
    answers: list[Any] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        client = ApiClient(raw_client.token)
        barrier.wait()
        try:
            answers.append(client.post("/tenants", NEW, key="race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.content for a in answers}) == 1
    assert Tenant.objects.count() == 1
    assert sum(1 for a in answers if a.has_header("Idempotent-Replayed")) == 3
