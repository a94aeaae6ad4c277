"""Scheduled operations through the API: ``at`` on every operation and bulk, ``GET /schedules``,
``DELETE /schedules/{id}``; run by the schedule pass as their author, with the state then."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import Event
from tenants import schedules
from tenants.models import Schedule, Tenant

from .. import factories as f

pytestmark = pytest.mark.django_db


def soon(minutes: int = 10) -> str:
    return (timezone.now() + timedelta(minutes=minutes)).isoformat()


def run_at(moment_text: str, seconds_after: int = 1) -> list:
    from django.utils.dateparse import parse_datetime

    moment = parse_datetime(moment_text) + timedelta(seconds=seconds_after)
    with time_machine.travel(moment, tick=False):
        return schedules.run_due()


def test_a_scheduled_suspend_runs_once_at_its_time_as_its_author(as_operator):
    tenant = f.active_tenant()
    at = soon()
    response = as_operator.post(f"/tenants/{tenant.id}/suspend", {"at": at, "reason": "night"})
    assert response.status_code == 202, response.content
    schedule = response.json()["schedule"]
    assert schedule["operation"] == "suspend" and schedule["status"] == "scheduled"
    assert schedule["tenant_id"] == str(tenant.id) and schedule["actor"] == "token:otto-token"
    assert Tenant.objects.get(pk=tenant.pk).state == "active"  # nothing yet
    event = Event.objects.get(type="operation.scheduled", tenant_id=tenant.id)
    assert event.data["schedule"] == schedule["id"] and event.data["reason"] == "night"

    assert schedules.run_due() == []  # not due yet
    ran = run_at(at)
    assert [str(i) for i in ran] == [schedule["id"]]
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"
    suspended = Event.objects.get(type="tenant.suspended", tenant_id=tenant.id)
    assert suspended.data.get("schedule") == schedule["id"], suspended.data
    assert suspended.data["reason"] == "night"
    assert suspended.actor == "token:otto-token"
    assert run_at(at, 60) == []  # at most once
    got = as_operator.get(f"/schedules/{schedule['id']}")
    assert "schedule" in got.json(), (got.status_code, got.content)
    body = got.json()["schedule"]
    assert body["status"] == "done" and body["outcome"]["code"] == "accepted"
    # Too late to cancel now.
    gone = as_operator.delete(f"/schedules/{schedule['id']}")
    assert gone.status_code == 409, gone.content


def test_a_cancelled_schedule_never_runs(as_operator):
    tenant = f.active_tenant()
    at = soon()
    sid = as_operator.post(f"/tenants/{tenant.id}/suspend", {"at": at}).json()["schedule"]["id"]
    response = as_operator.delete(f"/schedules/{sid}")
    assert response.status_code == 200 and response.json()["schedule"]["status"] == "cancelled"
    assert as_operator.delete(f"/schedules/{sid}").status_code == 409
    assert run_at(at, 3600) == []
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    assert Event.objects.filter(type="operation.schedule_cancelled", tenant_id=tenant.id).exists()


def test_a_refusal_then_is_recorded_never_raised(as_operator):
    tenant = f.active_tenant()
    at = soon()
    sid = as_operator.post(f"/tenants/{tenant.id}/suspend", {"at": at}).json()["schedule"]["id"]
    f.suspend_tenant(tenant_id=tenant.id, actor=f.ACTOR)  # the state moved on meanwhile
    assert [str(i) for i in run_at(at)] == [sid]
    s = Schedule.objects.get(pk=sid)
    assert s.status == "refused" and s.outcome["code"] == "invalid_state"
    refused = Event.objects.get(type="operation.schedule_refused", tenant_id=tenant.id)
    assert refused.data["schedule"] == sid and "suspended" in refused.data["message"]


def test_it_runs_with_the_authors_permissions_then(as_operator, operator):
    tenant = f.active_tenant()
    at = soon()
    sid = as_operator.post(f"/tenants/{tenant.id}/suspend", {"at": at}).json()["schedule"]["id"]
    operator.groups.clear()  # the author lost the operator role since
    run_at(at)
    s = Schedule.objects.get(pk=sid)
    assert s.status == "refused" and s.outcome["code"] == "permission_denied"
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


@pytest.mark.parametrize(
    ("at", "words"),
    [
        ("2030-01-01T09:00:00", "offset"),
        ("2001-01-01T09:00:00+00:00", "future"),
        ("tomorrow", "ISO 8601"),
        ("1767225600", "ISO 8601"),
        ("2999-01-01T00:00:00Z", "year"),
    ],
)
def test_a_bad_at_is_refused_and_changes_nothing(as_operator, at, words):
    tenant = f.active_tenant()
    for path, body in (
        (f"/tenants/{tenant.id}/suspend", {"at": at}),
        ("/tenants/bulk/suspend", {"ids": [str(tenant.id)], "at": at}),
        (f"/tenants/{tenant.id}/suspend", {"at": at, "dry_run": True}),
    ):
        response = as_operator.post(path, body)
        assert response.status_code == 422, response.content
        error = response.json()["error"]
        assert words in error["message"] and "at" in error["details"]
    assert not Schedule.objects.exists()
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


def test_a_viewer_cannot_schedule_and_sees_the_list(as_viewer, as_operator):
    tenant = f.active_tenant()
    assert as_viewer.post(f"/tenants/{tenant.id}/suspend", {"at": soon()}).status_code == 403
    assert not Schedule.objects.exists()
    as_operator.post(f"/tenants/{tenant.id}/suspend", {"at": soon()})
    assert len(as_viewer.get("/schedules").json()["items"]) == 1
    assert as_viewer.delete(f"/schedules/{Schedule.objects.get().id}").status_code == 403


def test_a_scheduled_bulk_chooses_its_tenants_then(as_operator):
    first = f.active_tenant()
    at = soon()
    response = as_operator.post(
        "/tenants/bulk/suspend", {"filter": {"state": "active"}, "at": at, "reason": "window"}
    )
    assert response.status_code == 202, response.content
    schedule = response.json()["schedule"]
    assert schedule["bulk"] is True and schedule["filter"] == {"state": "active"}
    second = f.active_tenant()  # made after the schedule: the filter is read at its time
    run_at(at)
    assert {t.state for t in Tenant.objects.filter(pk__in=[first.pk, second.pk])} == {"suspended"}
    for t in (first, second):
        event = Event.objects.get(type="tenant.suspended", tenant_id=t.id)
        assert event.data["schedule"] == schedule["id"]
    s = Schedule.objects.get(pk=schedule["id"])
    assert s.status == "done" and len(s.outcome["results"]) == 2
    assert Event.objects.filter(type="operation.scheduled", tenant_id=None).exists()


def test_the_list_filters_and_pages(as_operator):
    tenant = f.active_tenant()
    other = f.suspended_tenant()
    for minutes in (30, 10, 20):
        as_operator.post(f"/tenants/{tenant.id}/suspend", {"at": soon(minutes)})
    as_operator.post(f"/tenants/{other.id}/resume", {"at": soon(5)})
    page = as_operator.get("/schedules", {"limit": 2}).json()
    assert [i["operation"] for i in page["items"]] == ["resume", "suspend"]
    rest = as_operator.get("/schedules", {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    ats = [i["at"] for i in page["items"] + rest["items"]]
    assert ats == sorted(ats)
    only = as_operator.get("/schedules", {"tenant": other.slug}).json()["items"]
    assert [i["operation"] for i in only] == ["resume"]
    assert len(as_operator.get("/schedules", {"operation": "suspend"}).json()["items"]) == 3
    assert as_operator.get("/schedules", {"status": "bogus"}).status_code == 422
    assert as_operator.get("/schedules", {"cursor": "nope"}).status_code == 422
    assert as_operator.get("/schedules/not-an-id").status_code == 404


def test_a_scheduled_change_plan_keeps_its_plan_and_runs_it_then(as_operator, fast_saga):
    from ..conftest import drive

    tenant = f.active_tenant(plan="starter")
    at = soon()
    response = as_operator.post(
        f"/tenants/{tenant.id}/change_plan", {"plan": "growth", "at": at, "reason": "upsell"}
    )
    assert response.status_code == 202, response.content
    schedule = response.json()["schedule"]
    assert schedule["operation"] == "change_plan" and schedule["options"] == {"plan": "growth"}
    assert Tenant.objects.get(pk=tenant.pk).state == "active"  # nothing yet
    asked = Event.objects.get(type="operation.scheduled", tenant_id=tenant.id)
    assert asked.data["options"] == {"plan": "growth"}
    listed = as_operator.get("/schedules", {"operation": "change_plan"}).json()["items"]
    assert [i["options"] for i in listed] == [{"plan": "growth"}]

    assert [str(i) for i in run_at(at)] == [schedule["id"]]
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.state == "updating"
    started = Event.objects.get(type="tenant.plan_change.started", tenant_id=tenant.id)
    assert (started.data["from"], started.data["to"]) == ("starter", "growth")
    assert started.data["schedule"] == schedule["id"] and started.data["reason"] == "upsell"
    drive(tenant.workflow_id)
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert (tenant.state, tenant.plan) == ("active", "growth")
    s = Schedule.objects.get(pk=schedule["id"])
    assert s.status == "done" and s.outcome["code"] == "accepted"


def test_a_scheduled_change_plan_to_the_plan_it_is_on_then_is_refused_then(as_operator, fast_saga):
    tenant = f.active_tenant(plan="starter")
    at = soon()
    sid = as_operator.post(
        f"/tenants/{tenant.id}/change_plan", {"plan": "starter", "at": at}
    ).json()["schedule"]["id"]  # the plan is read then: another change may come first
    run_at(at)
    s = Schedule.objects.get(pk=sid)
    assert s.status == "refused" and s.outcome["code"] == "invalid_state"
    assert "already on the starter plan" in s.outcome["message"]
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    assert Event.objects.filter(type="operation.schedule_refused", tenant_id=tenant.id).exists()


def test_a_scheduled_bulk_change_plan_moves_every_chosen_tenant_then(as_operator, fast_saga):
    from ..conftest import drive

    tenants = [f.active_tenant(plan="starter"), f.active_tenant(plan="starter")]
    at = soon()
    response = as_operator.post(
        "/tenants/bulk/change_plan",
        {"ids": [str(t.id) for t in tenants], "plan": "enterprise", "at": at},
    )
    assert response.status_code == 202, response.content
    schedule = response.json()["schedule"]
    assert schedule["bulk"] is True and schedule["options"] == {"plan": "enterprise"}
    run_at(at)
    s = Schedule.objects.get(pk=schedule["id"])
    assert s.status == "done" and [r["outcome"] for r in s.outcome["results"]] == ["accepted"] * 2
    for t in tenants:
        drive(Tenant.objects.get(pk=t.pk).workflow_id)
        assert Tenant.objects.get(pk=t.pk).plan == "enterprise"


@pytest.mark.parametrize("plan", ["gold", None, ""])
def test_an_unknown_plan_is_refused_when_scheduled_and_nothing_is_stored(
    as_operator, fast_saga, plan
):
    tenant = f.active_tenant(plan="starter")
    events = Event.objects.count()
    body = {"at": soon()} if plan is None else {"plan": plan, "at": soon()}
    for path, extra in (
        (f"/tenants/{tenant.id}/change_plan", {}),
        ("/tenants/bulk/change_plan", {"ids": [str(tenant.id)]}),
    ):
        response = as_operator.post(path, {**body, **extra})
        assert response.status_code == 422, response.content
        error = response.json()["error"]
        assert "Choose a plan" in error["message"] and "plan" in error["details"]
    assert not Schedule.objects.exists() and Event.objects.count() == events
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
