"""Change plan in a real browser, on a real worker: the confirmation with its plan field and
what changes, at a desktop's width (1280 px) and a phone's (390 px)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tenants.models import Tenant

from .conftest import log_in, shot
from .test_journeys import DETAIL_URL, action, create, state

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.browser]


def test_change_plan_confirmation_at_desktop_and_phone_widths(console: Any, operator: Any) -> None:
    page = console
    log_in(page, "otto")
    tenant = create(page, "replanned")  # on growth
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)

    action(page, "Change plan").click()
    plan = page.get_by_label("New plan (now growth)")
    expect(plan).to_be_visible()
    expect(page.locator("#option-plan option")).to_have_count(2)  # not its own plan
    plan.select_option("enterprise")
    page.get_by_role("button", name="Show what changes").click()
    changes = page.locator("#preview-changes")
    expect(changes.locator('tr[data-what="database size"] td[data-from]')).to_have_text("10 GB")
    expect(changes.locator('tr[data-what="database size"] td[data-to]')).to_have_text("100 GB")
    expect(changes.locator('tr[data-what="billing plan"] td[data-to]')).to_have_text("enterprise")
    expect(page.locator("#preview-release")).to_contain_text("Nothing.")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"  # nothing done yet
    shot(page, "change-plan-1280")

    # The same confirmation on a phone: nothing spills sideways, the table is readable.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(changes).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    shot(page, "change-plan-390")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#confirm").get_by_role("button", name="Change plan to enterprise").click()
    page.wait_for_url(DETAIL_URL)
    expect(page.locator('[data-event-type="tenant.plan_change.started"]')).to_have_count(1)
    expect(page.locator('[data-event-type="tenant.plan_change.completed"]')).to_have_count(
        1, timeout=40_000
    )
    expect(state(page)).to_have_attribute("data-state", "active")
    assert Tenant.objects.get(pk=tenant.pk).plan == "enterprise"
