"""The console's confirmation step (preview and reason), bulk with a dry run, and four eyes."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages

from audit.models import Event
from tenants.models import ApprovalRequest, Tenant
from tenants.operations import perform

from ..conftest import make_user
from .conftest import SHELL, fresh, login

pytestmark = pytest.mark.django_db


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_confirmation_writes_nothing_and_the_post_records_the_reason(
    client, operator, make_state
):
    tenant = make_state("active")
    login(client, operator)
    before = Event.objects.filter(tenant_id=tenant.pk).count()
    page = client.get(f"/tenants/{tenant.pk}/suspend/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "keeps everything it holds" in body  # the sentence says what Suspend does
    assert 'data-to-state="suspended"' in body
    kept = re.findall(r'<li data-kind="(\w+)">', body.split('id="preview-keep"')[1])
    assert len(kept) == 6
    assert Event.objects.filter(tenant_id=tenant.pk).count() == before
    response = client.post(
        f"/tenants/{tenant.pk}/suspend/", {"seen_state": "active", "reason": "unpaid invoice"}
    )
    assert response.status_code == 302
    assert fresh(tenant).state == "suspended"
    event = Event.objects.get(tenant_id=tenant.pk, type="tenant.suspended")
    assert event.data["reason"] == "unpaid invoice"


def test_a_confirmation_for_what_the_state_refuses_goes_back_with_why(client, operator, make_state):
    tenant = make_state("active")
    login(client, operator)
    response = client.get(f"/tenants/{tenant.pk}/resume/")
    assert response.status_code == 302
    assert "Resume applies to suspended tenants only" in said(response)[-1]
    assert client.get(f"/tenants/{tenant.pk}/decommission/").status_code == 403


def test_a_too_long_reason_is_refused_with_the_message(client, operator, make_state):
    tenant = make_state("active")
    login(client, operator)
    response = client.post(f"/tenants/{tenant.pk}/suspend/", {"reason": "x" * 501})
    assert "at most 500 characters" in said(response)[-1]
    assert fresh(tenant).state == "active"


def test_the_list_offers_selection_and_bulk_shows_a_dry_run_first(client, operator, make_state):
    a, b = make_state("active"), make_state("active")
    pending = make_state("pending")
    login(client, operator)
    body = client.get("/tenants/").content.decode()
    assert f'name="ids" value="{a.pk}" form="bulk"' in body
    assert '<option value="suspend">Suspend</option>' in body
    assert '<option value="decommission">' not in body  # not the operator's

    data = {"action": "suspend", "ids": [str(a.pk), str(b.pk), str(pending.pk)]}
    dry = client.post("/tenants/bulk/", data)
    assert dry.status_code == 200
    html = dry.content.decode()
    assert 'data-dry-run="true"' in html
    assert html.count('data-outcome="would_accept"') == 2
    assert html.count('data-outcome="refused"') == 1
    assert Tenant.objects.filter(state="suspended").count() == 0
    # The confirming form carries only the tenants that would be accepted.
    confirm = html.split('id="bulk-confirm"')[1]
    assert str(pending.pk) not in confirm and str(a.pk) in confirm

    done = client.post(
        "/tenants/bulk/",
        {"action": "suspend", "ids": [str(a.pk), str(b.pk)], "confirm": "yes", "reason": "r"},
    )
    assert done.status_code == 200
    assert done.content.decode().count('data-outcome="accepted"') == 2
    assert set(Tenant.objects.filter(pk__in=[a.pk, b.pk]).values_list("state", flat=True)) == {
        "suspended"
    }


def test_bulk_refuses_cleanly(client, viewer, operator, make_state):
    tenant = make_state("active")
    login(client, viewer)
    assert (
        client.post("/tenants/bulk/", {"action": "suspend", "ids": [tenant.pk]}).status_code == 403
    )
    login(client, operator)
    assert "Choose an operation" in said(client.post("/tenants/bulk/", {"ids": [tenant.pk]}))[-1]
    assert "Select at least one" in said(client.post("/tenants/bulk/", {"action": "suspend"}))[-1]
    bad = client.post("/tenants/bulk/", {"action": "suspend", "ids": ["x"]})
    assert "is not a tenant id" in said(bad)[-1]
    assert client.get("/tenants/bulk/").status_code == 405


def waiting_url(tenant: Tenant, decision: str) -> str:
    request = ApprovalRequest.objects.get(tenant=tenant, status="waiting")
    return f"/approvals/{request.pk}/{decision}/"


def test_four_eyes_on_the_page(client, settings, admin_user, make_state):
    settings.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = make_state("active")
    grace = make_user("grace", "admin")
    perform("decommission", tenant_id=tenant.pk, actor=SHELL)  # asked by "tester"
    login(client, admin_user)
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert 'data-operation="decommission"' in body
    assert "Asked by <span data-requested-by>tester</span>" in body
    assert "May approve: ada, grace." in body
    assert "Approve decommission" in body
    url = waiting_url(tenant, "approve")
    response = client.post(url, {"reason": "ok", "next": f"/tenants/{tenant.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/tenants/{tenant.pk}/"
    assert "approved" in said(response)[-1]
    assert fresh(tenant).decommission_requested_at is not None
    assert Event.objects.filter(
        tenant_id=tenant.pk, type="tenant.decommission_approved", actor="user:ada"
    ).exists()
    assert grace.username == "grace"


def test_four_eyes_the_asker_cannot_approve_but_may_withdraw(
    client, settings, admin_user, make_state
):
    settings.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = make_state("active", slug="keep-me")
    login(client, admin_user)
    client.post(f"/tenants/{tenant.pk}/decommission/", {"confirm_slug": "keep-me"})
    assert fresh(tenant).awaiting_approval == "decommission"
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert "Approve decommission" not in body and "Withdraw request" in body
    assert "ada asked for this decommission; a different person" in body  # said on the page
    own = client.post(waiting_url(tenant, "approve"))
    assert "a different person with the tenants.decommission_tenant permission" in said(own)[-1]
    client.post(waiting_url(tenant, "withdraw"))
    assert fresh(tenant).awaiting_approval == ""
