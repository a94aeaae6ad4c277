"""The outbox: deliveries written in the event's own transaction, at no cost without subscribers."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.services import SYSTEM, record_event
from audit.signals import event_recorded
from webhooks import outbox, sender, services
from webhooks.models import Delivery, DeliveryStatus, Subscription

from .. import factories as f

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_cache():
    outbox.invalidate()
    yield
    outbox.invalidate()


def subscribe(settings, events: str) -> Subscription:
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    return services.add_subscription(url="http://127.0.0.1:9/hook", events=events)


def test_a_delivery_commits_with_its_event(settings, django_capture_on_commit_callbacks):
    sub = subscribe(settings, "tenant.created")
    with django_capture_on_commit_callbacks() as callbacks:
        tenant = f.new_tenant(start=False)
    delivery = Delivery.objects.get()
    assert delivery.subscription_id == sub.pk and delivery.event_type == "tenant.created"
    assert delivery.event.tenant_id == tenant.id
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
    assert len(callbacks) >= 1  # the publish waits for the commit


def test_a_rolled_back_event_leaves_no_delivery(settings):
    subscribe(settings, "tenant")

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        f.new_tenant(start=False)
        assert Delivery.objects.count() == 1
        raise Rollback
    assert not Delivery.objects.exists()


def test_patterns_match_whole_types_and_dotted_prefixes(settings):
    subscribe(settings, "tenant.provisioning")
    exact = subscribe(settings, "tenant.provisioning.started")
    f.new_tenant()  # tenant.created, tenant.provisioning.started (+ the first step's events)
    types = sorted(Delivery.objects.values_list("event_type", flat=True))
    assert "tenant.created" not in types
    assert types.count("tenant.provisioning.started") == 2
    assert Delivery.objects.filter(subscription=exact).count() == 1


def test_inactive_subscriptions_receive_nothing(settings):
    sub = subscribe(settings, "tenant")
    sub.active = False
    sub.save()
    f.new_tenant(start=False)
    assert not Delivery.objects.exists()


def record(tenant_id: uuid.UUID) -> int:
    with CaptureQueriesContext(connection) as queries:
        record_event(type="tenant.suspended", tenant_id=tenant_id, actor=SYSTEM)
    return len(queries.captured_queries)


def test_without_subscriptions_an_event_costs_no_query_more(settings):
    tenant_id = uuid.uuid4()
    record(tenant_id)  # the chain row exists from here on; the cache is warm
    with_receiver = record(tenant_id)
    event_recorded.disconnect(dispatch_uid="webhooks.outbox")
    try:
        without = record(tenant_id)
    finally:
        event_recorded.connect(outbox.on_event_recorded, dispatch_uid="webhooks.outbox")
    assert with_receiver == without


def test_a_change_of_subscriptions_is_seen_at_once_in_this_process(settings):
    settings.CONTROLPLANE_WEBHOOK_CACHE_SECONDS = 3600
    tenant_id = uuid.uuid4()
    record(tenant_id)  # caches "no subscriptions" for an hour
    subscribe(settings, "tenant.suspended")  # post_save drops the cache
    record(tenant_id)
    assert Delivery.objects.count() == 1


def test_a_delivery_for_a_removed_subscription_is_dropped_not_sent(settings, receiver):
    sub = subscribe(settings, "tenant.created")
    f.new_tenant(start=False)
    delivery = Delivery.objects.get()
    # Another process removes it while this one's cache still lists it: the row stays behind.
    Subscription.objects.filter(pk=sub.pk)._raw_delete(Subscription.objects.db)
    assert sender.deliver(delivery.pk) == DeliveryStatus.FAILED
    delivery.refresh_from_db()
    assert "removed or deactivated" in delivery.last_error
    assert receiver.requests == []
