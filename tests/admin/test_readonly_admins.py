"""Audit events, runs and allocations: visible in the admin, never added, changed or deleted."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import Event
from provisioning.models import Allocation, Run

from ..conftest import make_user
from .helpers import active_tenant, logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(roles):
    return make_user("root", None, superuser=True)


@pytest.fixture(params=["superuser", "admin_user"])
def staff(request, roles):
    """Both a superuser and the admin role: the refusals hold for everyone."""
    return request.getfixturevalue(request.param)


def snapshot(event: Event) -> tuple:
    event = Event.objects.get(pk=event.pk)
    return (event.type, event.actor, event.data, event.tenant_id, event.seq, event.digest)


# --- audit events ------------------------------------------------------------------------------


def test_events_are_listed_and_filterable(client, staff, fast_saga):
    tenant = active_tenant("acme")
    logged_in(client, staff)
    url = reverse("admin:audit_event_changelist")

    response = client.get(url)
    assert response.status_code == 200
    assert "tenant.provisioning.completed" in response.content.decode()

    listed = client.get(url, {"type": "tenant.resource"}).context["cl"].result_list
    assert listed and {e.type.rsplit(".", 1)[0] for e in listed} == {"tenant.resource"}

    listed = client.get(url, {"actor": "user:setup"}).context["cl"].result_list
    assert listed and {e.actor for e in listed} == {"user:setup"}

    listed = client.get(url, {"actor_kind": "system"}).context["cl"].result_list
    assert listed and {e.actor for e in listed} == {"system"}

    listed = client.get(url, {"tenant_id": str(tenant.pk)}).context["cl"].result_list
    assert len(listed) == Event.objects.filter(tenant_id=tenant.pk).count()

    listed = client.get(url, {"q": str(tenant.pk)}).context["cl"].result_list
    assert len(listed) == Event.objects.filter(tenant_id=tenant.pk).count()

    response = client.get(url, {"occurred_at__gte": "2000-01-01 00:00:00+00:00"})
    assert response.status_code == 200


def test_an_event_can_be_viewed(client, staff, fast_saga):
    active_tenant("acme")
    event = Event.objects.filter(type="tenant.created").get()
    response = logged_in(client, staff).get(reverse("admin:audit_event_change", args=[event.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "tenant.created" in html
    assert 'name="_save"' not in html  # view only: no save button


def test_events_cannot_be_added(client, staff, fast_saga):
    active_tenant("acme")
    before = Event.objects.count()
    logged_in(client, staff)
    url = reverse("admin:audit_event_add")
    assert client.get(url).status_code == 403
    response = client.post(
        url,
        {
            "type": "tenant.created",
            "occurred_at": "2026-01-01 00:00:00",
            "tenant_id": "00000000-0000-0000-0000-000000000000",
            "actor": "user:mallory",
            "data": "{}",
            "seq": "1",
            "digest": "x",
        },
    )
    assert response.status_code == 403
    assert Event.objects.count() == before


def test_events_cannot_be_changed(client, staff, fast_saga):
    active_tenant("acme")
    event = Event.objects.filter(type="tenant.created").get()
    before = snapshot(event)
    response = logged_in(client, staff).post(
        reverse("admin:audit_event_change", args=[event.pk]),
        {"type": "tenant.suspended", "actor": "user:mallory", "data": "{}"},
    )
    assert response.status_code == 403
    assert snapshot(event) == before


def test_events_cannot_be_deleted(client, staff, fast_saga):
    active_tenant("acme")
    event = Event.objects.filter(type="tenant.created").get()
    count = Event.objects.count()
    logged_in(client, staff)
    url = reverse("admin:audit_event_delete", args=[event.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403

    # The bulk delete is not offered (the list has no actions at all), and asking for it
    # anyway only shows the list again.
    changelist = reverse("admin:audit_event_changelist")
    assert 'value="delete_selected"' not in client.get(changelist).content.decode()
    response = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert response.status_code == 200
    assert "Are you sure" not in response.content.decode()
    assert Event.objects.count() == count
    assert snapshot(event)


def test_the_admin_index_offers_no_add_link_for_events(client, superuser):
    html = logged_in(client, superuser).get(reverse("admin:index")).content.decode()
    assert reverse("admin:audit_event_changelist") in html
    assert reverse("admin:audit_event_add") not in html


# --- runs and allocations ------------------------------------------------------------------


def test_runs_are_visible_and_read_only(client, staff, fast_saga):
    tenant = active_tenant("acme")
    run = Run.objects.get(tenant=tenant)
    logged_in(client, staff)

    response = client.get(reverse("admin:provisioning_run_changelist"), {"status": "completed"})
    assert response.status_code == 200
    assert "acme" in response.content.decode()

    change = reverse("admin:provisioning_run_change", args=[run.pk])
    html = client.get(change).content.decode()
    assert "mark_active" in html and "completed" in html  # the steps, inline
    assert 'name="_save"' not in html

    assert client.post(change, {"status": "running", "attempt": "9"}).status_code == 403
    assert client.get(reverse("admin:provisioning_run_add")).status_code == 403
    delete = reverse("admin:provisioning_run_delete", args=[run.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert (run.status, run.attempt) == ("completed", 1)


def test_allocations_are_visible_and_read_only(client, staff, fast_saga):
    tenant = active_tenant("acme")
    allocation = Allocation.objects.get(tenant=tenant, kind="storage")
    logged_in(client, staff)

    url = reverse("admin:provisioning_allocation_changelist")
    listed = client.get(url, {"held": "yes"}).context["cl"].result_list
    assert {a.kind for a in listed} == {
        "storage",
        "identity",
        "database",
        "dns",
        "billing",
        "invite",
    }
    assert not client.get(url, {"held": "no"}).context["cl"].result_list

    change = reverse("admin:provisioning_allocation_change", args=[allocation.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"external_id": "elsewhere"}).status_code == 403
    assert client.get(reverse("admin:provisioning_allocation_add")).status_code == 403
    delete = reverse("admin:provisioning_allocation_delete", args=[allocation.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    response = client.post(
        url, {"action": "delete_selected", "_selected_action": [allocation.pk], "post": "yes"}
    )
    assert response.status_code == 200  # no actions: the list is shown again
    allocation.refresh_from_db()
    assert allocation.held and allocation.external_id.endswith(str(tenant.pk))


def test_role_members_reach_the_admin_without_being_staff(client, viewer, outsider):
    client.force_login(viewer)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/tenants/tenant/").status_code == 200
    client.force_login(outsider)
    assert client.get("/admin/").status_code == 302  # to the admin login
