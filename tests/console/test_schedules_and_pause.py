"""The console's doors for pause (banner, buttons) and scheduled operations (the confirmation's
time field, the bulk confirmation, the schedules page with its cancel button)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from tenants.models import Schedule, Tenant
from tests import factories as f

from .conftest import login

pytestmark = pytest.mark.django_db


def local(minutes_ahead: int, offset_minutes: int) -> str:
    """A browser's datetime-local value at ``offset_minutes`` east of UTC."""
    moment = timezone.now() + timedelta(minutes=minutes_ahead)
    return (moment + timedelta(minutes=offset_minutes)).strftime("%Y-%m-%dT%H:%M")


def test_the_pause_banner_says_who_and_when(client, operator, fast_saga):
    tenant = f.new_tenant()
    login(client, operator)
    page = client.get(f"/tenants/{tenant.pk}/")
    assert 'data-action="pause"' in page.content.decode()
    client.post(f"/tenants/{tenant.pk}/pause/", {"reason": "vendor window"})
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert 'id="paused-banner"' in body and "user:otto" in body and "This run is paused" in body
    assert 'data-action="unpause"' in body
    listed = client.get("/tenants/?condition=paused").content.decode()
    assert f'data-tenant="{tenant.slug}"' in listed


def test_the_confirmation_schedules_at_the_browsers_offset(client, operator, fast_saga):
    tenant = f.active_tenant()
    login(client, operator)
    form = client.get(f"/tenants/{tenant.pk}/suspend/").content.decode()
    assert 'name="at"' in form and 'name="tz_offset"' in form
    value = local(90, 120)  # 90 minutes ahead, written at UTC+02:00
    response = client.post(
        f"/tenants/{tenant.pk}/suspend/", {"at": value, "tz_offset": "120", "reason": "later"}
    )
    assert response.status_code == 302
    s = Schedule.objects.get()
    assert s.operation == "suspend" and s.reason == "later" and s.actor == "user:otto"
    expected = (timezone.now() + timedelta(minutes=90)).replace(second=0, microsecond=0)
    assert abs((s.at - expected).total_seconds()) <= 60
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    page = client.get(response["Location"]).content.decode()
    assert "is scheduled for" in page and "UTC" in page and "UTC+02:00" in page


@pytest.mark.parametrize(
    ("at", "offset", "words"),
    [("2030-01-01T09:00", "", "offset"), ("2001-01-01T09:00", "0", "future"), ("x", "0", "ISO")],
)
def test_a_bad_time_is_refused_on_the_confirmation(client, operator, fast_saga, at, offset, words):
    tenant = f.active_tenant()
    login(client, operator)
    response = client.post(f"/tenants/{tenant.pk}/suspend/", {"at": at, "tz_offset": offset})
    assert response.status_code == 422
    assert words in response.content.decode() and 'id="at_error"' in response.content.decode()
    assert not Schedule.objects.exists() and Tenant.objects.get(pk=tenant.pk).state == "active"


def test_a_bulk_is_scheduled_from_its_confirmation(client, operator, fast_saga):
    tenants = [f.active_tenant(), f.active_tenant()]
    login(client, operator)
    response = client.post(
        "/tenants/bulk/",
        {
            "action": "suspend",
            "confirm": "yes",
            "ids": [str(t.pk) for t in tenants],
            "at": local(30, 0),
            "tz_offset": "0",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/schedules/"
    s = Schedule.objects.get()
    assert s.bulk and sorted(s.ids) == sorted(str(t.pk) for t in tenants)
    bad = client.post(
        "/tenants/bulk/",
        {"action": "suspend", "confirm": "yes", "ids": [str(tenants[0].pk)], "at": "2001-01-01"},
    )
    assert bad.status_code == 302 and Schedule.objects.count() == 1


def test_the_schedules_page_lists_and_cancels(client, operator, viewer, fast_saga):
    from tenants import schedules

    tenant = f.active_tenant()
    s = schedules.schedule_operation(
        "suspend",
        tenant_id=tenant.id,
        actor=f.ACTOR,
        at=timezone.now() + timedelta(hours=3),
        reason="maintenance",
    )
    login(client, viewer)
    page = client.get("/schedules/").content.decode()
    assert f'data-schedule="{s.id}"' in page and "maintenance" in page
    assert f"{s.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in page
    assert "data-cancel-schedule" not in page  # a viewer may not cancel
    assert client.post(f"/schedules/{s.id}/cancel/").status_code == 403
    login(client, operator)
    page = client.get("/schedules/").content.decode()
    assert f'data-cancel-schedule="{s.id}"' in page
    response = client.post(f"/schedules/{s.id}/cancel/")
    assert response.status_code == 302
    assert Schedule.objects.get(pk=s.id).status == "cancelled"
    assert "Cancelled" in client.get("/schedules/?status=cancelled").content.decode()
    again = client.post(f"/schedules/{s.id}/cancel/", follow=True).content.decode()
    assert "Not cancelled" in again
    assert client.get("/schedules/?status=bogus").status_code == 200


def test_the_change_plan_confirmation_schedules_the_plan_chosen(client, operator, fast_saga):
    from audit.models import Event
    from tenants import schedules
    from tests.conftest import drive

    tenant = f.active_tenant(plan="starter")
    login(client, operator)
    form = client.get(f"/tenants/{tenant.pk}/change_plan/?plan=enterprise").content.decode()
    assert 'name="at"' in form and 'name="plan" value="enterprise"' in form
    response = client.post(
        f"/tenants/{tenant.pk}/change_plan/",
        {"plan": "enterprise", "at": local(60, 0), "tz_offset": "0", "reason": "upsell"},
    )
    assert response.status_code == 302
    s = Schedule.objects.get()
    assert (s.operation, s.options, s.reason) == ("change_plan", {"plan": "enterprise"}, "upsell")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    page = client.get(response["Location"]).content.decode()
    assert "Change plan to enterprise of" in page and "is scheduled for" in page
    listed = client.get("/schedules/").content.decode()
    assert f'data-schedule="{s.id}"' in listed and "Change plan to enterprise" in listed

    schedules.run_due(now=s.at + timedelta(seconds=1))
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.state == "updating"
    drive(tenant.workflow_id)
    assert Tenant.objects.get(pk=tenant.pk).plan == "enterprise"
    started = Event.objects.get(type="tenant.plan_change.started", tenant_id=tenant.pk)
    assert started.data["to"] == "enterprise" and started.data["schedule"] == str(s.id)


def test_an_unknown_plan_is_refused_on_the_scheduling_confirmation(client, operator, fast_saga):
    tenant = f.active_tenant(plan="starter")
    login(client, operator)
    response = client.post(
        f"/tenants/{tenant.pk}/change_plan/",
        {"plan": "gold", "at": local(60, 0), "tz_offset": "0"},
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Nothing was scheduled" in body and "Choose a plan" in body
    assert 'id="option-error"' in body
    assert not Schedule.objects.exists() and Tenant.objects.get(pk=tenant.pk).state == "active"


def test_a_bulk_change_plan_is_scheduled_with_its_plan(client, operator, fast_saga):
    tenants = [f.active_tenant(plan="starter"), f.active_tenant(plan="starter")]
    login(client, operator)
    response = client.post(
        "/tenants/bulk/",
        {
            "action": "change_plan",
            "confirm": "yes",
            "plan": "growth",
            "ids": [str(t.pk) for t in tenants],
            "at": local(30, 0),
            "tz_offset": "0",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/schedules/"
    s = Schedule.objects.get()
    assert s.bulk and s.options == {"plan": "growth"}
    bad = client.post(
        "/tenants/bulk/",
        {
            "action": "change_plan",
            "confirm": "yes",
            "plan": "gold",
            "ids": [str(tenants[0].pk)],
            "at": local(30, 0),
            "tz_offset": "0",
        },
    )
    assert bad.status_code == 302 and Schedule.objects.count() == 1
