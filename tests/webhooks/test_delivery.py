"""Delivery by a real worker to a real receiver on loopback: signed, retried, given up, guarded."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from webhooks import outbox, sender, services
from webhooks.models import Delivery, DeliveryStatus, Subscription

from .. import factories as f
from ..conftest import wait_for
from .conftest import valid_signature

pytestmark = [pytest.mark.services, pytest.mark.worker]


@pytest.fixture(autouse=True)
def fresh_cache():
    outbox.invalidate()
    yield
    outbox.invalidate()


def settled(status: str = DeliveryStatus.DELIVERED, count: int = 1):
    def check():
        rows = list(Delivery.objects.filter(status=status))
        return rows if len(rows) >= count else None

    return check


def test_an_event_is_posted_signed_to_the_receiver(celery_worker, webhook_settings, receiver):
    sub = services.add_subscription(url=receiver.url, events="tenant.created")
    tenant = f.new_tenant(start=False, slug="hooked")
    [delivery] = wait_for(settled(), what="the delivery")
    [got] = receiver.requests
    assert valid_signature(sub.secret, got)
    assert got.headers["X-Controlplane-Event"] == "tenant.created"
    assert got.headers["X-Controlplane-Delivery"] == str(delivery.id)
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert body["type"] == "tenant.created" and body["tenant_id"] == str(tenant.id)
    assert body["id"] == delivery.event_id and body["actor"] == "user:tester"
    assert delivery.attempts == 1 and delivery.last_status_code == 200
    assert delivery.last_response == "answered 200"


def test_a_failing_receiver_is_retried_with_backoff(celery_worker, webhook_settings, receiver):
    receiver.script = [500, 503]
    sub = services.add_subscription(url=receiver.url, events="tenant.created")
    f.new_tenant(start=False)
    [delivery] = wait_for(settled(), what="the delivery after two failures")
    assert delivery.attempts == 3
    tries = list(delivery.tries.order_by("number").values_list("number", "status_code"))
    assert tries == [(1, 500), (2, 503), (3, 200)]
    ids = {r.headers["X-Controlplane-Delivery"] for r in receiver.requests}
    assert ids == {str(delivery.id)}  # the same delivery, tried three times
    assert all(valid_signature(sub.secret, r) for r in receiver.requests)


def test_a_delivery_gives_up_after_its_tries(celery_worker, webhook_settings, receiver):
    webhook_settings.CONTROLPLANE_WEBHOOK_MAX_TRIES = 3
    receiver.script = [500] * 10
    services.add_subscription(url=receiver.url, events="tenant.created")
    f.new_tenant(start=False)
    [delivery] = wait_for(settled(DeliveryStatus.FAILED), what="the delivery to give up")
    assert delivery.attempts == 3 and len(receiver.requests) == 3
    assert delivery.last_status_code == 500


def test_the_guard_is_checked_again_at_send_time(celery_worker, webhook_settings, receiver):
    services.add_subscription(url=receiver.url, events="tenant.created")
    webhook_settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = False  # the address is private now
    f.new_tenant(start=False)
    [delivery] = wait_for(settled(DeliveryStatus.FAILED), what="the refusal")
    assert "private address" in delivery.last_error
    assert receiver.requests == []


def test_a_url_that_cannot_be_sent_fails_after_its_tries(celery_worker, webhook_settings, receiver):
    # A subscription stored before URLs were normalised (issue 23): the non-ASCII path made
    # http.client raise UnicodeEncodeError, the row stayed `sending` and the sweep re-queued it
    # without end. Now each try counts, and the delivery gives up.
    webhook_settings.CONTROLPLANE_WEBHOOK_MAX_TRIES = 3
    sub = services.add_subscription(url=receiver.url, events="tenant.created")
    Subscription.objects.filter(pk=sub.pk).update(url=receiver.url + "/café")
    f.new_tenant(start=False)
    [delivery] = wait_for(settled(DeliveryStatus.FAILED), what="the delivery to give up")
    assert delivery.attempts == 3 and delivery.tries.count() == 3
    assert "UnicodeEncodeError" in delivery.last_error
    assert receiver.requests == []
    assert sender.sweep().reclaimed == []


def test_the_sweep_gives_up_on_a_last_try_that_never_finished(db, webhook_settings, receiver):
    webhook_settings.CONTROLPLANE_WEBHOOK_MAX_TRIES = 2
    services.add_subscription(url=receiver.url, events="tenant.created")
    f.new_tenant(start=False)
    long_ago = timezone.now() - timedelta(hours=1)
    Delivery.objects.update(status=DeliveryStatus.SENDING, attempts=2, claimed_at=long_ago)
    report = sender.sweep()
    assert report.reclaimed == []
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "the last try never finished"


def test_redelivery_by_hand_sends_a_new_delivery(celery_worker, webhook_settings, receiver):
    sub = services.add_subscription(url=receiver.url, events="tenant.created")
    f.new_tenant(start=False)
    [first] = wait_for(settled(), what="the first delivery")
    again = services.redeliver(delivery_id=first.pk)
    assert again.redelivery_of_id == first.pk and again.event_id == first.event_id
    wait_for(settled(count=2), what="the redelivery")
    ids = [r.headers["X-Controlplane-Delivery"] for r in receiver.requests]
    assert ids == [str(first.id), str(again.id)]
    assert receiver.requests[0].body == receiver.requests[1].body
    assert all(valid_signature(sub.secret, r) for r in receiver.requests)


def test_the_admin_redeliver_action(celery_worker, webhook_settings, receiver, client, roles):
    from ..conftest import make_user

    client.force_login(make_user("root", None, superuser=True))
    services.add_subscription(url=receiver.url, events="tenant.created")
    f.new_tenant(start=False)
    [first] = wait_for(settled(), what="the first delivery")
    page = client.get(f"/admin/webhooks/delivery/{first.pk}/change/")
    assert page.status_code == 200 and "answered 200" in page.content.decode()
    response = client.post(
        "/admin/webhooks/delivery/",
        {"action": "redeliver", "_selected_action": [str(first.pk)]},
    )
    assert response.status_code == 302
    wait_for(settled(count=2), what="the redelivery")
    assert len(receiver.requests) == 2


def test_the_sweep_sends_a_delivery_whose_message_was_lost(
    celery_worker, webhook_settings, receiver, django_capture_on_commit_callbacks
):
    webhook_settings.CONTROLPLANE_WEBHOOK_SWEEP_INTERVAL = 0
    services.add_subscription(url=receiver.url, events="tenant.created")
    with django_capture_on_commit_callbacks(execute=False):
        f.new_tenant(start=False)  # committed, but its publish never runs: "lost"
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    report = sender.sweep()
    assert report.republished == [str(delivery.pk)]
    wait_for(settled(), what="the swept delivery")
    assert len(receiver.requests) == 1


def test_backoff_gives_at_least_eight_tries_over_an_hour_by_default(settings):
    from controlplane import settings as defaults

    settings.CONTROLPLANE_WEBHOOK_RETRY_BASE = defaults.CONTROLPLANE_WEBHOOK_RETRY_BASE
    tries = defaults.CONTROLPLANE_WEBHOOK_MAX_TRIES
    assert tries >= 8
    for _ in range(50):
        waits = [sender.backoff(n) for n in range(1, tries)]
        assert sum(waits[:7]) >= 3600  # the first eight tries alone span an hour
        for n, wait in enumerate(waits, start=1):
            base = settings.CONTROLPLANE_WEBHOOK_RETRY_BASE * 2 ** (n - 1)
            assert base <= wait <= base * 1.25
