"""The console's Change plan: the confirmation with a plan field and what changes, the post,
refusals, the decision panel, bulk; and the admin's button."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from audit.models import Event
from tests import factories as f

from .conftest import fresh, login

pytestmark = pytest.mark.django_db


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_confirmation_previews_the_chosen_plan_and_posts_it(client, operator, fast_saga):
    tenant = f.active_tenant(plan="starter")
    login(client, operator)
    detail = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert f"/tenants/{tenant.pk}/change_plan/" in detail
    before = Event.objects.filter(tenant_id=tenant.pk).count()
    page = client.get(f"/tenants/{tenant.pk}/change_plan/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="plan"' in body
    assert '<option value="starter"' not in body  # not its own plan
    assert 'data-what="database size"' in body
    assert "1 GB" in body and "10 GB" in body  # growth is offered first
    chosen = client.get(f"/tenants/{tenant.pk}/change_plan/", {"plan": "enterprise"})
    assert "100 GB" in chosen.content.decode()
    assert "Change plan to enterprise" in chosen.content.decode()
    assert Event.objects.filter(tenant_id=tenant.pk).count() == before
    response = client.post(
        f"/tenants/{tenant.pk}/change_plan/",
        {"seen_state": "active", "plan": "enterprise", "reason": "big customer"},
    )
    assert response.status_code == 302
    assert fresh(tenant).state == "updating"
    started = Event.objects.get(tenant_id=tenant.pk, type="tenant.plan_change.started")
    assert (started.data["from"], started.data["to"]) == ("starter", "enterprise")
    assert started.data["reason"] == "big customer"
    # While it works, Cancel is offered, and the page says a plan change runs.
    detail = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert f"/tenants/{tenant.pk}/cancel/" in detail
    cancel = client.get(f"/tenants/{tenant.pk}/cancel/").content.decode()
    assert 'data-to-state="active"' in cancel


def test_bad_plans_are_refused_and_change_nothing(client, operator, fast_saga):
    tenant = f.active_tenant(plan="starter")
    login(client, operator)
    before = Event.objects.filter(tenant_id=tenant.pk).count()
    bad = client.post(f"/tenants/{tenant.pk}/change_plan/", {"plan": "platinum"})
    assert bad.status_code == 422
    assert "Choose a plan" in bad.content.decode()
    same = client.get(f"/tenants/{tenant.pk}/change_plan/", {"plan": "starter"})
    assert "already on the starter plan" in same.content.decode()
    assert 'data-confirm-action="change_plan"' not in same.content.decode()
    posted_same = client.post(f"/tenants/{tenant.pk}/change_plan/", {"plan": "starter"})
    assert "already on the starter plan" in (
        posted_same.content.decode() + " ".join(said(posted_same))
    )
    assert fresh(tenant).state == "active"
    assert Event.objects.filter(tenant_id=tenant.pk).count() == before


def test_wrong_state_and_viewers(client, operator, viewer, fast_saga):
    tenant = f.suspended_tenant()
    login(client, operator)
    response = client.get(f"/tenants/{tenant.pk}/change_plan/")
    assert response.status_code == 302
    assert "Change plan applies to active tenants only" in said(response)[-1]
    active = f.active_tenant(plan="growth")
    login(client, viewer)
    assert client.get(f"/tenants/{active.pk}/change_plan/").status_code == 403
    assert client.post(f"/tenants/{active.pk}/change_plan/", {"plan": "starter"}).status_code == 403
    assert fresh(active).state == "active"


def test_a_failed_change_is_on_the_decision_panel(client, operator, fast_saga):
    tenant = f.change_failed_tenant()
    login(client, operator)
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert "Plan change failed" in body
    assert "Change plan again once the cause is fixed" in body
    listing = client.get("/tenants/", {"condition": "change_failed"}).content.decode()
    assert tenant.slug in listing


def test_bulk_from_the_list_takes_the_plan(client, operator, fast_saga):
    starter = f.active_tenant(plan="starter")
    growth = f.active_tenant(plan="growth")
    login(client, operator)
    ids = [str(starter.pk), str(growth.pk)]
    preview = client.post(
        "/tenants/bulk/", {"action": "change_plan", "plan": "growth", "ids": ids}
    ).content.decode()
    assert "database size 1 GB → 10 GB" in preview
    assert "already on the growth plan" in preview
    assert 'name="plan" value="growth"' in preview
    done = client.post(
        "/tenants/bulk/",
        {"action": "change_plan", "plan": "growth", "ids": [str(starter.pk)], "confirm": "yes"},
    )
    assert done.status_code == 200
    assert fresh(starter).state == "updating"
    assert fresh(growth).state == "active"


def test_the_admin_button_confirms_with_the_plan(client, operator, fast_saga):
    tenant = f.active_tenant(plan="starter")
    client.force_login(operator)
    change = client.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert "Change plan" in change
    url = f"/admin/tenants/tenant/{tenant.pk}/action/change_plan/"
    page = client.get(url, {"plan": "enterprise"}).content.decode()
    assert "Database size: 1 GB → 100 GB" in page
    assert fresh(tenant).state == "active"
    response = client.post(url, {"plan": "enterprise", "reason": "from the admin"})
    assert response.status_code == 302
    assert fresh(tenant).state == "updating"
    refused = client.post(url, {"plan": "enterprise"})
    assert refused.status_code == 302
    assert any("applies to active tenants only; this one is updating" in m for m in said(refused))
