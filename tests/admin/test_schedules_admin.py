"""The admin's doors to scheduled operations: the time field on an operation's confirmation
(read by ``parse_at`` as every door reads it) and the read-only schedules page with its cancel
action (through ``tenants.schedules.cancel_schedule``, as ``DELETE /schedules/{id}``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import Event
from tenants import schedules
from tenants.models import Schedule, Tenant

from ..conftest import drive
from .helpers import SETUP, active_tenant, logged_in, messages_of

pytestmark = pytest.mark.django_db

SCHEDULES = reverse("admin:tenants_schedule_changelist")


def action_url(tenant: Tenant, action: str) -> str:
    return reverse("admin:tenants_tenant_action", args=[tenant.pk, action])


def soon(minutes: int = 30) -> str:
    return (timezone.now() + timedelta(minutes=minutes)).isoformat()


def test_the_confirmation_schedules_an_operation_at_its_time(client, operator, fast_saga):
    tenant = active_tenant("acme")
    logged_in(client, operator)
    form = client.get(action_url(tenant, "suspend")).content.decode()
    assert 'name="at"' in form and SCHEDULES in form
    response = client.post(
        action_url(tenant, "suspend"), {"at": soon(), "reason": "night"}, follow=True
    )
    assert any("Suspend of acme is scheduled for" in m for m in messages_of(response))
    s = Schedule.objects.get()
    assert (s.operation, s.reason, s.actor) == ("suspend", "night", "user:otto")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"  # nothing yet
    assert Event.objects.filter(type="operation.scheduled", tenant_id=tenant.pk).exists()
    schedules.run_due(now=s.at + timedelta(seconds=1))
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"
    suspended = Event.objects.get(type="tenant.suspended", tenant_id=tenant.pk)
    assert suspended.data["schedule"] == str(s.id) and suspended.actor == "user:otto"


def test_a_change_plan_is_scheduled_with_the_plan_chosen(client, operator, fast_saga):
    tenant = active_tenant("acme")
    logged_in(client, operator)
    response = client.post(
        action_url(tenant, "change_plan"), {"plan": "growth", "at": soon()}, follow=True
    )
    assert any("Change plan to growth of acme is scheduled" in m for m in messages_of(response))
    s = Schedule.objects.get()
    assert s.options == {"plan": "growth"}
    schedules.run_due(now=s.at + timedelta(seconds=1))
    drive(Tenant.objects.get(pk=tenant.pk).workflow_id)
    assert Tenant.objects.get(pk=tenant.pk).plan == "growth"


@pytest.mark.parametrize(
    ("at", "words"),
    [
        ("2030-01-01T09:00:00", "offset"),
        ("2001-01-01T09:00:00+00:00", "future"),
        ("tomorrow", "ISO 8601"),
    ],
)
def test_a_bad_time_comes_back_on_the_confirmation(client, operator, fast_saga, at, words):
    tenant = active_tenant("acme")
    logged_in(client, operator)
    response = client.post(action_url(tenant, "suspend"), {"at": at, "reason": "kept"})
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="at_error"' in html and "Nothing was scheduled" in html and words in html
    assert f'value="{at}"' in html and ">kept</textarea>" in html  # what was typed, kept
    assert not Schedule.objects.exists() and Tenant.objects.get(pk=tenant.pk).state == "active"


def test_an_unknown_plan_comes_back_on_the_confirmation(client, operator, fast_saga):
    tenant = active_tenant("acme")
    logged_in(client, operator)
    response = client.post(action_url(tenant, "change_plan"), {"plan": "gold", "at": soon()})
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="option-error"' in html and "Choose a plan" in html
    assert (
        not Schedule.objects.exists()
        and not Event.objects.filter(type="operation.scheduled").exists()
    )


def test_the_schedules_page_lists_them_read_only(client, viewer, fast_saga):
    tenant = active_tenant("acme")
    s = schedules.schedule_operation(
        "change_plan",
        tenant_id=tenant.pk,
        actor=SETUP,
        at=timezone.now() + timedelta(hours=2),
        reason="upsell",
        options={"plan": "enterprise"},
    )
    logged_in(client, viewer)
    html = client.get(SCHEDULES).content.decode()
    assert "Change plan to enterprise" in html and "acme" in html and "upsell" in html
    change = reverse("admin:tenants_schedule_change", args=[s.pk])
    assert client.get(change).status_code == 200  # viewable
    assert client.post(change, {"reason": "edited"}).status_code == 403
    assert client.get(reverse("admin:tenants_schedule_add")).status_code == 403
    assert client.get(reverse("admin:tenants_schedule_delete", args=[s.pk])).status_code == 403
    assert Schedule.objects.get(pk=s.pk).reason == "upsell"


def test_the_cancel_action_goes_through_the_service(client, operator, viewer, fast_saga):
    tenant = active_tenant("acme")
    s = schedules.schedule_operation(
        "suspend", tenant_id=tenant.pk, actor=SETUP, at=timezone.now() + timedelta(hours=2)
    )
    cancel = {"action": "cancel_selected", "_selected_action": [str(s.pk)]}
    # A viewer may see it, not cancel it: the service says so, nothing changes.
    refused = logged_in(client, viewer).post(SCHEDULES, cancel, follow=True)
    assert any("permission" in m for m in messages_of(refused)), messages_of(refused)
    assert Schedule.objects.get(pk=s.pk).status == "scheduled"

    done = logged_in(client, operator).post(SCHEDULES, cancel, follow=True)
    assert any(m.startswith("Cancelled: Suspend of acme") for m in messages_of(done))
    s.refresh_from_db()
    assert (s.status, s.cancelled_by) == ("cancelled", "user:otto")
    event = Event.objects.get(type="operation.schedule_cancelled", tenant_id=tenant.pk)
    assert event.actor == "user:otto" and event.data["schedule"] == str(s.pk)
    again = client.post(SCHEDULES, cancel, follow=True)
    assert any("Not cancelled" in m and "cancelled" in m for m in messages_of(again))
    assert schedules.run_due(now=s.at + timedelta(seconds=1)) == []
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
