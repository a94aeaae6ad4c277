"""The admin door: reasons on the confirmation page, reasons shown for what is not offered, and
four eyes (approve / withdraw buttons)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import Event
from tenants.models import ApprovalRequest, Tenant
from tenants.operations import perform

from ..conftest import make_user
from .helpers import SETUP, active_tenant, logged_in, messages_of

pytestmark = pytest.mark.django_db


def change_url(tenant: Tenant) -> str:
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def action_url(tenant: Tenant, action: str) -> str:
    return reverse("admin:tenants_tenant_action", args=[tenant.pk, action])


def test_the_confirmed_operation_records_the_reason(client, admin_user, fast_saga):
    tenant = active_tenant("acme")
    logged_in(client, admin_user)
    page = client.get(action_url(tenant, "suspend"))
    assert page.status_code == 200
    assert "keeps everything it holds" in page.content.decode()
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    response = client.post(action_url(tenant, "suspend"), {"reason": "legal hold"}, follow=True)
    assert "acme is suspended." in messages_of(response)
    event = Event.objects.get(tenant_id=tenant.pk, type="tenant.suspended")
    assert event.data["reason"] == "legal hold"


def test_a_bad_reason_is_refused_with_its_message(client, admin_user, fast_saga):
    tenant = active_tenant("acme")
    response = logged_in(client, admin_user).post(
        action_url(tenant, "suspend"), {"reason": "x" * 501}, follow=True
    )
    assert any("at most 500 characters" in m for m in messages_of(response))
    assert Tenant.objects.get(pk=tenant.pk).state == "active"


def test_the_change_page_says_why_not(client, operator, fast_saga):
    tenant = active_tenant("acme")
    response = logged_in(client, operator).get(change_url(tenant))
    assert response.status_code == 200
    html = response.content.decode()
    # Each operation the operator may not take now is a disabled button with its reason beside.
    resume = re.search(r'<li [^>]*data-unavailable="resume">(.*?)</li>', html, re.S).group(1)
    assert re.search(r"<button [^>]*disabled[^>]*>Resume</button>", resume)
    assert "Resume applies to suspended tenants only" in resume
    decommission = re.search(
        r'<li [^>]*data-unavailable="decommission">(.*?)</li>', html, re.S
    ).group(1)
    assert ">Decommission</button>" in decommission and "permission" in decommission


def decide_url(tenant: Tenant, decision: str) -> str:
    request = ApprovalRequest.objects.get(tenant=tenant, status="waiting")
    return reverse("admin:tenants_approvalrequest_decide", args=[request.pk, decision])


def test_four_eyes_in_the_admin(client, settings, admin_user, fast_saga):
    settings.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = active_tenant("acme")
    perform("decommission", tenant_id=tenant.pk, actor=SETUP)
    make_user("grace", "admin")
    logged_in(client, admin_user)
    html = client.get(change_url(tenant)).content.decode()
    assert "<strong>Decommission</strong> of acme waits for approval." in html
    assert "Asked by <span data-requested-by>setup</span>" in html
    assert "May approve: ada, grace." in html
    assert client.get(decide_url(tenant, "approve")).status_code == 405
    response = client.post(
        decide_url(tenant, "approve"), {"reason": "ok", "next": change_url(tenant)}, follow=True
    )
    assert response.redirect_chain[-1][0] == change_url(tenant)
    assert any("approved" in m for m in messages_of(response))
    assert Tenant.objects.get(pk=tenant.pk).decommission_requested_at is not None

    other = active_tenant("beta")
    perform("decommission", tenant_id=other.pk, actor=SETUP)
    response = client.post(decide_url(other, "withdraw"), follow=True)
    assert any("withdrawn" in m for m in messages_of(response))
    assert Tenant.objects.get(pk=other.pk).awaiting_approval == ""
