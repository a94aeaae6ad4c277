"""The approval policy through every door: an operation (suspend) and a bulk under the policy
wait for a second person in the console, the API, the admin and the commands; the author is
refused with the reason; the queries of the approvals page and list are counted."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse

from tenants.models import ApprovalRequest, Tenant
from tenants.operations import perform
from tenants.services import Actor
from tests import factories as f

from ..api.conftest import client_for, error_of
from ..conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy(fast_saga):
    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = ("suspend", "bulk")
    return fast_saga


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def state(tenant: Tenant) -> str:
    return Tenant.objects.get(pk=tenant.pk).state


def waiting(tenant: Tenant | None = None) -> ApprovalRequest:
    return ApprovalRequest.objects.get(tenant=tenant, status="waiting")


# --- console --------------------------------------------------------------------------------


def test_console_suspend_waits_and_a_second_operator_approves(client, policy, operator):
    tenant = f.active_tenant()
    client.force_login(operator)
    response = client.post(f"/tenants/{tenant.pk}/suspend/", {"reason": "unpaid"})
    assert "waits for a different person allowed to suspend" in said(response)[-1]
    assert state(tenant) == "active"
    page = client.get("/approvals/").content.decode()
    assert f"{operator.username} asked for this suspend; a different person" in page
    assert 'data-decision="approve"' not in page and 'data-decision="withdraw"' in page
    assert "Whoever asked cannot approve their own request" in page  # the page says the rule
    own = client.post(f"/approvals/{waiting(tenant).pk}/approve/")
    assert own.status_code == 302
    assert "a different person with the tenants.suspend_tenant permission" in said(own)[-1]

    client.force_login(make_user("olga", "operator"))
    page = client.get("/approvals/").content.decode()
    assert 'data-decision="approve"' in page and "Reason: “unpaid”" in page
    request = waiting(tenant)
    done = client.post(f"/approvals/{request.pk}/approve/", {"reason": "seen"})
    assert done["Location"] == "/approvals/"
    assert f"Suspend of {tenant.slug} approved: {tenant.slug} is suspended." in said(done)[-1]
    assert state(tenant) == "suspended"
    page = client.get("/approvals/?status=approved").content.decode()
    assert f'data-approval="{request.pk}" data-status="approved"' in page
    assert "Nothing waits for approval." in page
    bad = client.get("/approvals/?status=maybe").content.decode()
    assert "status must be one of" in bad


def test_console_bulk_under_the_policy_waits(client, policy, operator):
    one, two = f.active_tenant(), f.active_tenant()
    client.force_login(operator)
    response = client.post(
        "/tenants/bulk/", {"action": "suspend", "ids": [one.pk, two.pk], "confirm": "yes"}
    )
    assert response["Location"] == "/approvals/"
    assert said(response)[-1] == (
        "Suspend of 2 selected tenants requested: it waits for a different person allowed to "
        "suspend to approve it."
    )
    assert {state(one), state(two)} == {"active"}
    assert waiting(None).selection["ids"] == [str(one.pk), str(two.pk)]


def test_console_a_viewer_sees_the_request_without_buttons(client, policy, operator, viewer):
    tenant = f.active_tenant()
    perform("suspend", tenant_id=tenant.pk, actor=Actor.for_user(operator))
    client.force_login(viewer)
    page = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert 'data-operation="suspend"' in page and 'data-decision="withdraw"' not in page
    assert client.post(f"/approvals/{waiting(tenant).pk}/withdraw/").status_code == 403


def test_console_approvals_page_queries_are_counted(
    client, policy, operator, django_assert_num_queries
):
    for _ in range(3):
        perform("suspend", tenant_id=f.active_tenant().pk, actor=Actor.for_user(operator))
    client.force_login(make_user("olga", "operator"))
    client.get("/approvals/")  # warm the session and permission caches of this client
    # session (its user with the permissions kept from the request before:
    # controlplane.recent), the page of requests (with tenants), and one query per waiting
    # request for who may approve it
    with django_assert_num_queries(5):
        assert client.get("/approvals/").status_code == 200


# --- API ------------------------------------------------------------------------------------


def test_api_suspend_waits_and_a_different_person_approves(policy, operator):
    tenant = f.active_tenant()
    author = client_for(operator)
    asked = author.post(f"/tenants/{tenant.id}/suspend", {"reason": "unpaid"})
    assert asked.status_code == 202 and asked.json()["awaiting_approval"] == ["suspend"]
    [item] = author.get("/approvals", {"status": "waiting"}).json()["items"]
    assert item["operation"] == "suspend" and item["tenant_slug"] == tenant.slug
    assert item["requested_by"] == operator.username and item["reason"] == "unpaid"

    own = author.post(f"/approvals/{item['id']}/approve")
    assert own.status_code == 403 and error_of(own)["code"] == "approver_is_author"
    assert "a different person" in error_of(own)["message"]
    viewer = client_for(make_user("vera", "viewer"))
    assert viewer.post(f"/approvals/{item['id']}/approve").status_code == 403

    other = client_for(make_user("olga", "operator"))
    done = other.post(f"/approvals/{item['id']}/approve", {"reason": "checked"})
    assert done.status_code == 200
    assert done.json()["status"] == "approved" and done.json()["decided_by"] == "olga"
    assert state(tenant) == "suspended"
    again = other.post(f"/approvals/{item['id']}/withdraw")
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"


def test_api_bulk_under_the_policy_answers_the_request(policy, operator):
    tenant = f.active_tenant()
    api = client_for(operator)
    answer = api.post("/tenants/bulk/suspend", {"ids": [str(tenant.id)]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["results"] == [] and body["approval"]["status"] == "waiting"
    [item] = api.get("/approvals", {"operation": "bulk"}).json()["items"]
    assert api.get("/approvals", {"operation": "suspend"}).json()["items"] == [item]
    assert item["bulk"] is True and item["selection"]["ids"] == [str(tenant.id)]
    withdrawn = api.post(f"/approvals/{item['id']}/withdraw")
    assert withdrawn.json()["status"] == "withdrawn" and state(tenant) == "active"


def test_api_filters_are_checked(policy, operator):
    api = client_for(operator)
    assert error_of(api.get("/approvals", {"status": "maybe"}))["code"] == "validation_error"
    assert api.get("/approvals", {"operation": "supsend"}).status_code == 422
    assert "nobody-here" in error_of(api.get("/approvals", {"tenant": "nobody-here"}))["message"]
    assert api.get("/approvals", {"colour": "red"}).status_code == 422
    assert api.post("/approvals/not-an-id/approve").status_code == 404


# --- admin ----------------------------------------------------------------------------------


def test_admin_bulk_under_the_policy_waits(client, policy, operator):
    tenant = f.active_tenant()
    client.force_login(operator)
    response = client.post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "suspend_selected", "_selected_action": [tenant.pk], "post": "yes"},
        follow=True,
    )
    assert (
        "Suspend of 1 selected tenant requested: it waits for a different person allowed to "
        "suspend to approve it." in said(response)
    )
    assert state(tenant) == "active" and waiting(None).selection["ids"] == [str(tenant.pk)]


def test_admin_lists_requests_and_approves_them_as_a_bulk_action(client, policy, operator):
    tenant = f.active_tenant()
    perform("suspend", tenant_id=tenant.pk, actor=Actor.for_user(operator))
    request = waiting(tenant)
    client.force_login(operator)
    changelist = reverse("admin:tenants_approvalrequest_changelist")
    page = client.get(reverse("admin:tenants_approvalrequest_change", args=[request.pk]))
    assert f"{operator.username} asked for this suspend" in page.content.decode()
    own = client.post(
        changelist,
        {"action": "approve_selected", "_selected_action": [request.pk], "index": "0"},
        follow=True,
    )
    assert any("a different person" in m for m in said(own))
    assert state(tenant) == "active"
    client.force_login(make_user("olga", "operator"))
    assert tenant.slug in client.get(changelist).content.decode()
    done = client.post(
        changelist,
        {"action": "approve_selected", "_selected_action": [request.pk], "index": "0"},
        follow=True,
    )
    assert any("approved" in m for m in said(done))
    assert state(tenant) == "suspended"


# --- commands -------------------------------------------------------------------------------


def approval(*args: str) -> str:
    out = StringIO()
    call_command("approval", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_commands_wait_list_approve_and_withdraw(policy):
    tenant, other = f.active_tenant(), f.active_tenant()
    out = StringIO()
    call_command("tenant", "suspend", tenant.slug, "--actor", "alice", stdout=out)
    assert "waits for a different person allowed to suspend" in out.getvalue()
    call_command("tenant", "suspend", other.slug, "--actor", "alice", stdout=StringIO())
    listing = approval("list", "--status", "waiting")
    assert listing.splitlines()[0].split() == [
        "ID",
        "OPERATION",
        "OF",
        "ASKED",
        "BY",
        "EXPIRES",
        "STATUS",
        "OUTCOME",
    ]
    assert tenant.slug in listing and other.slug in listing
    request = waiting(tenant)
    with pytest.raises(CommandError) as own:
        approval("approve", str(request.pk), "--actor", "alice")
    assert "alice asked for this suspend; a different person" in str(own.value)
    assert "approved" in approval("approve", str(request.pk), "--actor", "bob")
    assert state(tenant) == "suspended"
    assert "withdrawn" in approval("withdraw", str(waiting(other).pk), "--actor", "alice")
    assert state(other) == "active"
    with pytest.raises(CommandError, match="No approval request"):
        approval("approve", "nope")


def test_command_bulk_under_the_policy(policy):
    tenant = f.active_tenant()
    out = StringIO()
    call_command(
        "tenant", "bulk", "suspend", "--state", "active", "--yes", "--actor", "alice", stdout=out
    )
    assert out.getvalue().startswith(
        "Suspend of the tenants where state=active requested: it waits for a different person"
    )
    request = waiting(None)
    approval("approve", str(request.pk), "--actor", "bob")
    assert state(tenant) == "suspended"
