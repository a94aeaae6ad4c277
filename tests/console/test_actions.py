"""The action endpoints: they call the service, say what happened, and refuse cleanly."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from audit.models import Event
from provisioning.models import Run
from tenants.models import Tenant

from .conftest import fresh, login, run_to_end

pytestmark = pytest.mark.django_db


def post(client: Client, tenant: Tenant, action: str, **data: str):
    return client.post(f"/tenants/{tenant.pk}/{action}/", data)


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def snapshot(tenant: Tenant) -> tuple:
    t = fresh(tenant)
    return (
        t.state,
        t.workflow_id,
        t.last_error,
        t.decommission_requested_at,
        Event.objects.filter(tenant_id=t.pk).count(),
        Run.objects.filter(tenant=t).count(),
    )


def test_cancel_starts_the_rollback(client, operator, make_state) -> None:
    tenant = make_state("provisioning")
    login(client, operator)
    response = post(client, tenant, "cancel", seen_state="provisioning")
    assert response.status_code == 302
    assert response["Location"] == f"/tenants/{tenant.pk}/"
    assert Run.objects.get(pk=tenant.workflow_id).status == "cancelling"
    assert "Cancellation of" in said(response)[-1]
    assert Event.objects.filter(
        tenant_id=tenant.pk, type="tenant.provisioning.cancel_requested", actor="user:otto"
    ).exists()
    tenant = run_to_end(tenant)
    assert tenant.state == "pending"
    # The page after the action says it landed in Pending, with the cancelled event.
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert 'data-state="pending"' in body
    assert 'data-event-type="tenant.provisioning.cancelled"' in body


def test_reset_then_retry_reaches_active(client, operator, make_state) -> None:
    tenant = make_state("stalled")
    login(client, operator)
    response = post(client, tenant, "reset", seen_state="provisioning")
    assert fresh(tenant).state == "pending" and fresh(tenant).last_error == ""
    assert "was reset" in said(response)[-1]
    response = post(client, tenant, "retry", seen_state="pending")
    assert fresh(tenant).state == "provisioning"
    assert "started again" in said(response)[-1]
    assert run_to_end(tenant).state == "active"


def test_suspend_and_resume(client, operator, make_state) -> None:
    tenant = make_state("active")
    login(client, operator)
    post(client, tenant, "suspend", seen_state="active")
    assert fresh(tenant).state == "suspended"
    post(client, tenant, "resume", seen_state="suspended")
    assert fresh(tenant).state == "active"


def test_decommission_needs_the_typed_slug(client, admin_user, make_state) -> None:
    tenant = make_state("active", slug="doomed")
    login(client, admin_user)
    before = snapshot(tenant)
    for typed in ("", "doome", "DOOMED", "other"):
        response = post(
            client, tenant, "decommission", confirm_slug=typed, reason="ticket 4411: closed"
        )
        # The confirmation again, saying why, with what was typed kept (the reason above all).
        assert response.status_code == 422
        body = response.content.decode()
        assert "type the tenant&#x27;s slug (doomed) exactly" in body
        assert ">ticket 4411: closed</textarea>" in body
        assert f'name="confirm_slug" value="{typed}"' in body
        assert snapshot(tenant) == before
    response = post(client, tenant, "decommission", confirm_slug="doomed", seen_state="active")
    assert fresh(tenant).decommission_requested_at is not None
    assert "Decommission of doomed requested" in said(response)[-1]
    from provisioning import compensation

    compensation.decommission_tenant(tenant.pk)
    assert fresh(tenant).state == "decommissioned"


@pytest.mark.parametrize(
    ("kind", "action", "reason"),
    [
        ("active", "cancel", "Cancel applies to provisioning tenants only; this one is active."),
        ("pending", "reset", "Reset is for a provisioning with a recorded error"),
        ("provisioning", "retry", "Retry applies to failed or pending tenants only"),
        ("pending", "suspend", "Suspend applies to active tenants only"),
        ("active", "resume", "Resume applies to suspended tenants only"),
        (
            "decommissioned",
            "decommission",
            "Decommission applies to active, suspended, pending or failed tenants only; "
            "this one is decommissioned.",
        ),
        ("provisioning", "decommission", "tenants only; this one is provisioning."),
        ("pending_error", "retry", "reset it first, then retry"),
    ],
)
def test_refused_actions_change_nothing_and_say_why(
    client, admin_user, make_state, kind, action, reason
) -> None:
    tenant = make_state(kind)
    login(client, admin_user)
    before = snapshot(tenant)
    data = {"seen_state": fresh(tenant).state, "confirm_slug": tenant.slug}
    response = post(client, tenant, action, **data)
    assert response.status_code == 302
    assert snapshot(tenant) == before
    [message] = said(response)
    assert "was refused" in message and reason in message
    # The message is shown on the page the redirect leads to.
    page = client.get(response["Location"])
    assert page.status_code == 200


def test_a_stale_page_gets_a_clear_message_not_an_error(client, operator, make_state) -> None:
    """The saga finished between page load and click: say so, change nothing."""
    tenant = make_state("provisioning")
    login(client, operator)
    client.get(f"/tenants/{tenant.pk}/")  # the operator looks at a provisioning tenant ...
    tenant = run_to_end(tenant)  # ... the saga completes meanwhile ...
    before = snapshot(tenant)
    response = post(client, tenant, "cancel", seen_state="provisioning")  # ... then they click
    assert response.status_code == 302
    assert snapshot(tenant) == before
    [message] = said(response)
    assert "changed since the page loaded (it was provisioning, it is now active)" in message
    body = client.get(response["Location"]).content.decode()
    assert "changed since the page loaded" in body


def test_a_double_click_on_cancel_is_refused_the_second_time(client, operator, make_state) -> None:
    tenant = make_state("provisioning")
    login(client, operator)
    post(client, tenant, "cancel", seen_state="provisioning")
    response = post(client, tenant, "cancel", seen_state="provisioning")
    assert "already being cancelled" in said(response)[-1]
    assert Event.objects.filter(type="tenant.provisioning.cancel_requested").count() == 1


@pytest.mark.parametrize(
    ("role", "kind", "action"),
    [
        ("viewer", "provisioning", "cancel"),
        ("viewer", "stalled", "reset"),
        ("viewer", "failed", "retry"),
        ("viewer", "active", "suspend"),
        ("viewer", "suspended", "resume"),
        ("viewer", "active", "decommission"),
        ("operator", "active", "decommission"),
        ("outsider", "active", "suspend"),
    ],
)
def test_actions_without_permission_are_forbidden(
    client, request, make_state, role, kind, action
) -> None:
    user = request.getfixturevalue(role)
    tenant = make_state(kind)
    before = snapshot(tenant)
    login(client, user)
    response = post(client, tenant, action, confirm_slug=tenant.slug)
    assert response.status_code == 403
    assert snapshot(tenant) == before


def test_only_a_post_acts(client, admin_user, make_state) -> None:
    """GET is the confirmation step (it changes nothing); other methods are refused."""
    tenant = make_state("active")
    login(client, admin_user)
    assert client.get(f"/tenants/{tenant.pk}/suspend/").status_code == 200
    assert client.put(f"/tenants/{tenant.pk}/suspend/").status_code == 405
    assert fresh(tenant).state == "active"


def test_unknown_action_or_tenant_is_404(client, admin_user, make_state) -> None:
    import uuid

    tenant = make_state("active")
    login(client, admin_user)
    assert client.post(f"/tenants/{tenant.pk}/explode/").status_code == 404
    assert client.post(f"/tenants/{uuid.uuid4()}/suspend/").status_code == 404


@pytest.mark.parametrize("action", ["cancel", "suspend", "decommission"])
def test_csrf_is_enforced(admin_user, make_state, action) -> None:
    tenant = make_state("provisioning" if action == "cancel" else "active")
    before = snapshot(tenant)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(f"/tenants/{tenant.pk}/{action}/", {"confirm_slug": tenant.slug})
    assert response.status_code == 403
    assert b"The form has expired" in response.content
    assert snapshot(tenant) == before


def test_csrf_token_from_the_page_is_accepted(admin_user, make_state) -> None:
    """The real flow: the token in the page's form (and in hx-headers) makes the post pass."""
    import re

    tenant = make_state("active")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    assert re.search(r"hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'", body)
    response = client.post(
        f"/tenants/{tenant.pk}/suspend/", {"csrfmiddlewaretoken": token, "seen_state": "active"}
    )
    assert response.status_code == 302
    assert fresh(tenant).state == "suspended"


def test_cancel_racing_the_last_step_has_one_winner(client, operator, make_state) -> None:
    """Cancel accepted first: the saga's mark_active can no longer win."""
    from tests.conftest import drive

    tenant = make_state("provisioning")
    drive(tenant.workflow_id, max_steps=7)  # everything but mark_active
    login(client, operator)
    post(client, tenant, "cancel", seen_state="provisioning")
    drive(tenant.workflow_id)  # mark_active's message arrives late: fenced out
    tenant = run_to_end(tenant)
    assert tenant.state == "pending"
    assert not Event.objects.filter(tenant_id=tenant.pk, type="tenant.provisioning.completed")
