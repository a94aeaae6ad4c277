"""The tenant admin: buttons and bulk actions go through the services, with their checks."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import Event
from provisioning.models import Run
from tenants.models import Tenant

from ..conftest import drive_compensation, make_user
from .helpers import active_tenant, failed_tenant, logged_in, messages_of, new_tenant

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:tenants_tenant_changelist")
ADD = reverse("admin:tenants_tenant_add")


def change_url(tenant: Tenant) -> str:
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def action_url(tenant: Tenant, action: str) -> str:
    return reverse("admin:tenants_tenant_action", args=[tenant.pk, action])


def events(tenant: Tenant, type: str) -> list[Event]:
    return list(Event.objects.filter(tenant_id=tenant.pk, type=type))


@pytest.fixture
def staff_viewer(roles):
    """A viewer who may open the admin, but holds no operation's permission."""
    user = make_user("vic", "viewer")
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def staff_operator(roles):
    user = make_user("oscar", "operator")
    user.is_staff = True
    user.save()
    return user


# --- the change page's buttons -----------------------------------------------------------------


def test_change_page_offers_the_available_actions_the_user_may_take(client, admin_user, fast_saga):
    tenant = active_tenant("acme")
    response = logged_in(client, admin_user).get(change_url(tenant))
    assert response.status_code == 200
    html = response.content.decode()
    assert action_url(tenant, "suspend") in html
    assert action_url(tenant, "decommission") in html
    assert 'data-action="suspend"' in html and ">Suspend</a>" in html
    for absent in ("resume", "retry", "cancel", "reset"):
        assert action_url(tenant, absent) not in html


def test_buttons_hide_what_the_user_lacks_permission_for(
    client, staff_viewer, staff_operator, fast_saga
):
    tenant = active_tenant("acme")
    html = logged_in(client, staff_viewer).get(change_url(tenant)).content.decode()
    assert "/action/" not in html
    assert "No operation is available to you" in html

    client.logout()
    html = logged_in(client, staff_operator).get(change_url(tenant)).content.decode()
    assert action_url(tenant, "suspend") in html
    assert action_url(tenant, "decommission") not in html


def test_suspend_button_suspends_through_the_service_as_the_user(client, admin_user, fast_saga):
    tenant = active_tenant("acme")
    response = logged_in(client, admin_user).post(action_url(tenant, "suspend"), follow=True)
    assert response.redirect_chain[-1][0] == change_url(tenant)
    assert "acme is suspended." in messages_of(response)
    tenant.refresh_from_db()
    assert tenant.state == "suspended"
    [event] = events(tenant, "tenant.suspended")
    assert event.actor == "user:ada"


def test_a_refused_operation_shows_a_message_and_changes_nothing(client, admin_user, fast_saga):
    tenant = active_tenant("acme")
    before = Event.objects.filter(tenant_id=tenant.pk).count()
    response = logged_in(client, admin_user).post(action_url(tenant, "resume"), follow=True)
    assert response.status_code == 200
    assert any("Resume applies to suspended tenants only" in m for m in messages_of(response))
    tenant.refresh_from_db()
    assert tenant.state == "active"
    assert Event.objects.filter(tenant_id=tenant.pk).count() == before


def test_a_user_without_the_permission_is_refused_on_the_server(
    client, staff_viewer, staff_operator, fast_saga
):
    """The button is hidden, but a hand-made POST must be refused too."""
    tenant = active_tenant("acme")
    response = logged_in(client, staff_viewer).post(action_url(tenant, "suspend"), follow=True)
    assert "Suspend: You do not have permission to suspend." in messages_of(response)

    client.logout()
    response = logged_in(client, staff_operator).post(
        action_url(tenant, "decommission"), follow=True
    )
    assert any("permission to decommission" in m for m in messages_of(response))

    tenant.refresh_from_db()
    assert tenant.state == "active"
    assert tenant.decommission_requested_at is None
    assert not events(tenant, "tenant.suspended")
    assert not events(tenant, "tenant.decommission_requested")


def test_the_action_view_confirms_on_get_and_knows_only_the_operations(
    client, admin_user, fast_saga
):
    tenant = active_tenant("acme")
    logged_in(client, admin_user)
    # GET is the confirmation: the preview and a reason field, nothing done.
    page = client.get(action_url(tenant, "decommission"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-to-state="decommissioned"' in html
    assert 'name="reason"' in html
    for kind in ("storage", "identity", "database", "dns", "billing", "invite"):
        assert f"<li>{kind} " in html.split('id="preview-release"')[1].split("</ul>")[0]
    assert client.put(action_url(tenant, "suspend")).status_code == 405
    assert client.post(action_url(tenant, "complete")).status_code == 404
    tenant.refresh_from_db()
    assert tenant.state == "active"


def test_the_action_view_needs_a_role(client, outsider, operator, fast_saga):
    """Someone in no role is sent to the admin's login; a (non-staff) operator is served."""
    tenant = active_tenant("acme")
    response = logged_in(client, outsider).post(action_url(tenant, "suspend"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    tenant.refresh_from_db()
    assert tenant.state == "active"
    logged_in(client, operator).post(action_url(tenant, "suspend"))
    tenant.refresh_from_db()
    assert tenant.state == "suspended"


def test_cancel_button_rolls_back_a_provisioning(client, admin_user, fast_saga):
    tenant = new_tenant("acme")  # provisioning, first step dispatched, nothing driven yet
    response = logged_in(client, admin_user).post(action_url(tenant, "cancel"), follow=True)
    assert any("Cancellation of acme requested" in m for m in messages_of(response))
    run = Run.objects.get(pk=tenant.workflow_id)
    assert run.status == "cancelling"
    drive_compensation(run.id)
    tenant.refresh_from_db()
    assert tenant.state == "pending"
    [event] = events(tenant, "tenant.provisioning.cancel_requested")
    assert event.actor == "user:ada"


def test_retry_button_starts_a_new_attempt(client, admin_user, fast_saga):
    tenant = failed_tenant("acme")
    response = logged_in(client, admin_user).post(action_url(tenant, "retry"), follow=True)
    assert "Provisioning of acme started again." in messages_of(response)
    tenant.refresh_from_db()
    assert tenant.state == "provisioning"
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 2
    assert events(tenant, "tenant.provisioning.retry_requested")[0].actor == "user:ada"


def test_change_page_shows_run_steps_allocations_and_events(
    client, admin_user, fast_saga, django_assert_num_queries
):
    tenant = active_tenant("acme")
    logged_in(client, admin_user)
    # session, user, the tenant (the admin's own), permissions, the detail's one statement
    # (tenants.detail_read), the events
    with django_assert_num_queries(6):
        response = client.get(change_url(tenant))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Attempt 1" in html
    assert "allocate_storage" in html and "mark_active" in html
    assert str(tenant.pk) in html
    assert "storage" in html and "database" in html
    assert "tenant.created" in html and "tenant.provisioning.completed" in html
    assert "user:setup" in html
    # Every field is read-only: the page has no input named after a tenant field.
    for field in ("slug", "name", "plan", "admin_email", "state", "workflow_id"):
        assert f'name="{field}"' not in html


# --- bulk actions ----------------------------------------------------------------------------


def test_bulk_suspend_applies_to_each_tenant_and_reports_refusals(client, admin_user, fast_saga):
    a, b = active_tenant("alpha"), active_tenant("bravo")
    c = new_tenant("charlie", start=False)  # pending: suspend is refused for it
    selected = {"action": "suspend_selected", "_selected_action": [a.pk, b.pk, c.pk]}
    # First the dry run: each tenant's outcome, nothing done.
    preview = logged_in(client, admin_user).post(CHANGELIST, selected)
    assert preview.status_code == 200
    html = preview.content.decode()
    assert html.count('data-outcome="would_accept"') == 2
    assert html.count('data-outcome="refused"') == 1
    assert set(Tenant.objects.values_list("state", flat=True)) == {"active", "pending"}
    response = client.post(
        CHANGELIST, {**selected, "post": "yes", "reason": "quarterly audit"}, follow=True
    )
    shown = messages_of(response)
    assert "Suspend: accepted for alpha, bravo." in shown
    assert any(
        m.startswith("Suspend refused for charlie: Suspend applies to active") for m in shown
    )
    states = dict(Tenant.objects.values_list("slug", "state"))
    assert states == {"alpha": "suspended", "bravo": "suspended", "charlie": "pending"}
    suspended = Event.objects.filter(type="tenant.suspended")
    assert sorted(e.actor for e in suspended) == ["user:ada", "user:ada"]
    assert {e.data["reason"] for e in suspended} == {"quarterly audit"}


def test_bulk_actions_offered_follow_the_user_permissions(
    client, admin_user, staff_operator, staff_viewer, fast_saga
):
    active_tenant("alpha")
    html = logged_in(client, admin_user).get(CHANGELIST).content.decode()
    assert 'value="decommission_selected"' in html
    assert 'value="delete_selected"' not in html

    client.logout()
    html = logged_in(client, staff_operator).get(CHANGELIST).content.decode()
    assert 'value="suspend_selected"' in html
    assert 'value="decommission_selected"' not in html

    client.logout()
    html = logged_in(client, staff_viewer).get(CHANGELIST).content.decode()
    assert "suspend_selected" not in html


def test_bulk_action_without_permission_changes_nothing(client, staff_operator, fast_saga):
    tenant = active_tenant("alpha")
    logged_in(client, staff_operator).post(
        CHANGELIST, {"action": "decommission_selected", "_selected_action": [tenant.pk]}
    )
    tenant.refresh_from_db()
    assert tenant.decommission_requested_at is None
    assert not events(tenant, "tenant.decommission_requested")


def test_bulk_decommission_as_admin(client, admin_user, fast_saga):
    tenant = failed_tenant("alpha")
    response = logged_in(client, admin_user).post(
        CHANGELIST,
        {"action": "decommission_selected", "_selected_action": [tenant.pk], "post": "yes"},
        follow=True,
    )
    assert "Decommission: accepted for alpha." in messages_of(response)
    [event] = events(tenant, "tenant.decommission_requested")
    assert event.actor == "user:ada"


# --- list, filters, search ---------------------------------------------------------------------


def test_changelist_filters_and_searches(client, admin_user, fast_saga, django_assert_num_queries):
    alpha = active_tenant("alpha")
    new_tenant("bravo", start=False)
    logged_in(client, admin_user)

    with django_assert_num_queries(8):
        response = client.get(CHANGELIST, {"state__exact": "active"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "alpha" in html and "bravo" not in html

    html = client.get(CHANGELIST, {"q": "bravo"}).content.decode()
    assert "bravo" in html and "alpha" not in html

    html = client.get(CHANGELIST, {"q": str(alpha.pk)}).content.decode()
    assert "alpha" in html and "bravo" not in html

    html = client.get(CHANGELIST, {"q": "ops@bravo.test"}).content.decode()
    assert "bravo" in html and "alpha" not in html


def test_changelist_query_count_does_not_grow_with_tenants(
    client, admin_user, fast_saga, django_assert_num_queries
):
    logged_in(client, admin_user)
    for i in range(3):
        new_tenant(f"small-{i}", start=False)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(CHANGELIST)  # the session's user is kept from here (controlplane.recent)
    with CaptureQueriesContext(connection) as few:
        assert client.get(CHANGELIST).status_code == 200
    for i in range(20):
        new_tenant(f"many-{i}", start=False)
    with django_assert_num_queries(len(few)):
        assert client.get(CHANGELIST).status_code == 200


# --- create through the admin ------------------------------------------------------------------


def test_add_creates_through_the_service(client, admin_user, fast_saga):
    response = logged_in(client, admin_user).post(
        ADD,
        {
            "slug": "acme",
            "name": "  Acme Inc ",
            "plan": "growth",
            "admin_email": "Ops@Acme.Test",
            "start": "on",
        },
    )
    tenant = Tenant.objects.get(slug="acme")
    assert response.status_code == 302
    assert response["Location"] == change_url(tenant)
    assert tenant.state == "provisioning"
    assert tenant.name == "Acme Inc"
    assert tenant.admin_email == "ops@acme.test"
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 1
    [created] = events(tenant, "tenant.created")
    assert created.actor == "user:ada"


def test_add_without_start_leaves_the_tenant_pending(client, admin_user, fast_saga):
    logged_in(client, admin_user).post(
        ADD, {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "a@acme.test"}
    )
    assert Tenant.objects.get(slug="acme").state == "pending"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"slug": "admin"}, "slug"),
        ({"slug": "Bad--Slug"}, "slug"),
        ({"plan": "gold"}, "plan"),
        ({"admin_email": "nope"}, "admin_email"),
    ],
)
def test_add_shows_field_errors_and_creates_nothing(client, admin_user, fast_saga, data, field):
    form = {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "a@acme.test"}
    form.update(data)
    response = logged_in(client, admin_user).post(ADD, form)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Tenant.objects.exists()


def test_add_refuses_a_slug_in_use(client, admin_user, fast_saga):
    new_tenant("acme", start=False)
    response = logged_in(client, admin_user).post(
        ADD, {"slug": "acme", "name": "Other", "plan": "starter", "admin_email": "b@x.test"}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["slug"] == ["This slug is already in use."]
    assert Tenant.objects.count() == 1


def test_add_is_forbidden_without_the_add_permission(client, staff_viewer):
    response = logged_in(client, staff_viewer).post(
        ADD, {"slug": "acme", "name": "Acme", "plan": "starter", "admin_email": "a@acme.test"}
    )
    assert response.status_code == 403
    assert not Tenant.objects.exists()


# --- nobody edits or deletes a tenant through the admin --------------------------------------


@pytest.fixture
def superuser(roles):
    return make_user("root", None, superuser=True)


def test_even_a_superuser_cannot_edit_or_delete_a_tenant(client, superuser, fast_saga):
    tenant = active_tenant("acme")
    logged_in(client, superuser)
    response = client.post(
        change_url(tenant),
        {"slug": "evil", "name": "Evil", "plan": "enterprise", "admin_email": "e@x.test"},
    )
    assert response.status_code == 403
    delete = reverse("admin:tenants_tenant_delete", args=[tenant.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    tenant.refresh_from_db()
    assert (tenant.slug, tenant.plan, tenant.state) == ("acme", "starter", "active")


# --- the page an operator reads: no stray controls ------------------------------------------


@pytest.mark.parametrize("who", ["admin_user", "superuser"])
def test_the_tenant_page_offers_only_the_operations(request, client, who, fast_saga):
    """Read-only for everyone: no Save/Close/Delete/History, no raw state field; the
    operations (labels from the table) are the only buttons, the others disabled with why."""
    from tenants.operations import OPERATIONS

    tenant = failed_tenant("broken")
    html = logged_in(client, request.getfixturevalue(who)).get(change_url(tenant)).content.decode()
    for stray in (
        "Save and add another",
        "Save and continue editing",
        "Save as new",
        'name="_save"',
        'class="closelink"',
        'class="deletelink"',
        "/history/",
        'name="state"',
    ):
        assert stray not in html, stray
    assert "field-state" not in html and "field-last_error" not in html  # in the Situation
    button = r'<a class="op-button[^"]*" data-action="(\w+)"[^>]*>([^<]+)</a>'
    offered = dict(re.findall(button, html))
    assert offered == {n: OPERATIONS[n].label for n in ("retry", "decommission")}
    disabled_button = r'data-unavailable="(\w+)">\s*<button [^>]*disabled[^>]*>([^<]+)<'
    disabled = dict(re.findall(disabled_button, html))
    assert disabled == {
        n: OPERATIONS[n].label
        for n in ("cancel", "reset", "suspend", "resume", "change_plan", "pause", "unpause")
    }
    assert "Suspend applies to active tenants only" in html
    assert 'class="op-button danger" data-action="decommission"' in html  # it releases


def test_the_add_page_has_one_button_create(client, admin_user):
    html = logged_in(client, admin_user).get(ADD).content.decode()
    assert '<input type="submit" value="Create tenant" class="default" name="_save">' in html
    for stray in ("_addanother", "_continue", "Save and add another", "Save and continue"):
        assert stray not in html, stray


def test_bulk_change_plan_asks_for_the_plan_then_dry_runs_then_changes(
    client, admin_user, fast_saga
):
    from ..conftest import drive

    a, b = active_tenant("alpha"), active_tenant("bravo")  # both on starter
    selected = {"action": "change_plan_selected", "_selected_action": [a.pk, b.pk]}
    html = logged_in(client, admin_user).get(CHANGELIST).content.decode()
    assert 'value="change_plan_selected"' in html
    # From the action menu: the plan is asked for first; no dry run yet, nothing done.
    asked = client.post(CHANGELIST, selected)
    assert asked.status_code == 200
    html = asked.content.decode()
    assert 'id="bulk-options"' in html and 'name="plan"' in html
    assert "bulk-preview" not in html and 'name="post"' not in html
    # The plan chosen: the dry run through the one bulk service, each tenant's outcome.
    preview = client.post(CHANGELIST, {**selected, "plan": "growth"})
    html = preview.content.decode()
    assert html.count('data-outcome="would_accept"') == 2
    assert '<input type="hidden" name="plan" value="growth">' in html
    assert set(Tenant.objects.values_list("state", flat=True)) == {"active"}
    response = client.post(
        CHANGELIST, {**selected, "plan": "growth", "post": "yes", "reason": "upsell"}, follow=True
    )
    assert "Change plan: accepted for alpha, bravo." in messages_of(response)
    for t in (a, b):
        t.refresh_from_db()
        assert t.state == "updating"
        drive(t.workflow_id)
        t.refresh_from_db()
        assert (t.state, t.plan) == ("active", "growth")
        [started] = events(t, "tenant.plan_change.started")
        assert (started.actor, started.data["to"], started.data["reason"]) == (
            "user:ada",
            "growth",
            "upsell",
        )


def test_bulk_change_plan_refuses_an_unknown_plan_and_changes_nothing(
    client, admin_user, fast_saga
):
    tenant = active_tenant("alpha")
    selected = {"action": "change_plan_selected", "_selected_action": [tenant.pk]}
    response = logged_in(client, admin_user).post(
        CHANGELIST, {**selected, "plan": "gold", "post": "yes"}, follow=True
    )
    assert any("Choose a plan" in m for m in messages_of(response))
    tenant.refresh_from_db()
    assert (tenant.state, tenant.plan) == ("active", "starter")
    assert not events(tenant, "tenant.plan_change.started")
