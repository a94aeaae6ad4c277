"""At least once: the worker delivering a webhook is SIGKILLed mid-request."""

from __future__ import annotations

import os
import signal

import pytest

from webhooks import outbox, sender, services
from webhooks.models import Delivery, DeliveryStatus

from .. import factories as f
from ..conftest import subprocess_env, wait_for
from .conftest import valid_signature

pytestmark = [pytest.mark.services, pytest.mark.worker]


def test_a_delivery_whose_worker_was_killed_is_sent_again(
    worker_process, webhook_settings, receiver
):
    outbox.invalidate()
    worker_process.env = subprocess_env(
        webhook_settings,
        CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE="1",
        CONTROLPLANE_WEBHOOK_TIMEOUT=str(webhook_settings.CONTROLPLANE_WEBHOOK_TIMEOUT),
        CONTROLPLANE_WEBHOOK_RETRY_BASE="0.05",
    )
    receiver.hold = True  # the first request is answered only after the kill
    sub = services.add_subscription(url=receiver.url, events="tenant.created")
    worker_process.start(concurrency=1)
    f.new_tenant(start=False, slug="killed-mid-hook")

    wait_for(lambda: receiver.requests, timeout=60, what="the first request to arrive")
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SENDING
    [child] = worker_process.children()
    os.kill(child, signal.SIGKILL)  # the pool process sending the request dies
    receiver.release.set()

    # The beat-scheduled sweep, run here: once the claim is older than three request
    # timeouts, the delivery goes back to pending and is sent again by the new pool process.
    wait_for(
        lambda: sender.sweep().reclaimed or Delivery.objects.get().status != "sending",
        timeout=60,
        what="the sweep to reclaim the delivery",
    )
    wait_for(
        lambda: Delivery.objects.get().status == DeliveryStatus.DELIVERED,
        timeout=60,
        what="the delivery to be sent again",
    )
    delivery = Delivery.objects.get()
    assert delivery.attempts == 2
    assert len(receiver.requests) == 2
    ids = {r.headers["X-Controlplane-Delivery"] for r in receiver.requests}
    assert ids == {str(delivery.id)}  # the same delivery id: the receiver can drop the repeat
    assert all(valid_signature(sub.secret, r) for r in receiver.requests)
