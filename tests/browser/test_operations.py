"""Reasons, previews and bulk in a real browser: an operator sees why, sees what an operation
will do before confirming it, and applies one operation to selected tenants after a dry run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tenants.models import Tenant
from tenants.services import Actor, create_tenant

from .conftest import log_in, shot
from .test_journeys import DETAIL_URL, action, create, state

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.browser]


def unavailable(page: Any, name: str) -> Any:
    return page.locator(f'#actions [data-unavailable="{name}"]')


def test_reasons_preview_and_bulk_with_a_dry_run(console: Any, operator: Any, viewer: Any) -> None:
    page = console
    log_in(page, "otto")
    tenant = create(page, "reasoned")
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)

    # Why not: each operation that is not offered says why, including the one not his.
    expect(unavailable(page, "resume")).to_contain_text("Resume applies to suspended tenants only")
    expect(unavailable(page, "decommission")).to_contain_text("permission")
    expect(action(page, "Decommission")).to_have_count(0)
    shot(page, "detail-reasons")

    # The preview comes before anything is done: what is kept, the resulting state.
    action(page, "Suspend").click()
    expect(page.locator("#preview [data-to-state]")).to_have_attribute("data-to-state", "suspended")
    expect(page.locator("#preview-keep li[data-kind]")).to_have_count(6)
    expect(page.locator("#preview-release")).to_contain_text("Nothing.")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"  # nothing done yet
    page.get_by_label(re.compile("Reason")).fill("customer asked for a pause")
    shot(page, "confirm-suspend")
    page.locator("#confirm").get_by_role("button", name="Suspend", exact=True).click()
    page.wait_for_url(DETAIL_URL)
    expect(state(page)).to_have_attribute("data-state", "suspended")
    expect(page.locator('[data-event-type="tenant.suspended"]')).to_contain_text(
        "customer asked for a pause"
    )

    # Bulk: select two tenants, see the dry run, then confirm.
    waiting = create_tenant(
        slug="waiting",
        name="Waiting",
        plan="starter",
        admin_email="ops@waiting.example",
        start=False,
        actor=Actor.shell("setup"),
    )
    page.goto("/tenants/")
    page.get_by_label("Select reasoned").check()
    page.get_by_label("Select waiting").check()
    page.locator("#bulk select[name=action]").select_option("resume")
    page.locator("#bulk").get_by_role("button", name="Preview (dry run)").click()
    expect(page.locator("#bulk-result")).to_have_attribute("data-dry-run", "true")
    expect(page.locator('tr[data-tenant="reasoned"]')).to_have_attribute(
        "data-outcome", "would_accept"
    )
    expect(page.locator('tr[data-tenant="waiting"]')).to_have_attribute("data-outcome", "refused")
    expect(page.locator('tr[data-tenant="waiting"]')).to_contain_text(
        "Resume applies to suspended tenants only"
    )
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"  # still only a dry run
    shot(page, "bulk-dry-run")
    page.locator("#bulk-confirm").get_by_role("button", name=re.compile("^Resume")).click()
    expect(page.locator("#bulk-result")).to_have_attribute("data-dry-run", "false")
    expect(page.locator('tr[data-tenant="reasoned"]')).to_have_attribute("data-outcome", "accepted")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    assert Tenant.objects.get(pk=waiting.pk).state == "pending"

    # A viewer sees the reasons too, and no button.
    page.context.clear_cookies()
    log_in(page, "vera")
    page.goto(f"/tenants/{tenant.pk}/")
    expect(page.locator("#actions a.button")).to_have_count(0)
    expect(unavailable(page, "suspend")).to_contain_text("permission")
