"""Pause and scheduled operations in a real browser, at desktop (1280 px) and phone (390 px)
widths: the pause banner says who paused the run and when; an operation scheduled from its
confirmation in the operator's own time zone shows on the schedules page in UTC and in that
zone, and its cancel button cancels it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tenants.models import Schedule, Tenant
from tenants.services import Actor, create_tenant

from .conftest import ConsoleLog, log_in, shot
from .test_journeys import DETAIL_URL, action, state

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def berlin(
    settings: Any, celery_worker: Any, live_server: Any, browser: Any, console_log: ConsoleLog
) -> Iterator[Any]:
    """A browser tab in Berlin (UTC+01:00 in December, +02:00 in summer) on the live console."""
    settings.CONSOLE_POLL_SECONDS = 0.4
    settings.CONTROLPLANE_STEP_DELAY = 0.8
    context = browser.new_context(
        base_url=live_server.url, viewport=DESKTOP, timezone_id="Europe/Berlin"
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    console_log.attach(page)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


def both_widths(page: Any, name: str) -> None:
    shot(page, f"{name}-1280")
    page.set_viewport_size(PHONE)
    shot(page, f"{name}-390")
    # Nothing wider than the phone's screen but the tables' own scrolling boxes.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name}: the page is {overflow}px wider than a 390px screen"
    page.set_viewport_size(DESKTOP)


def test_pause_banner_then_unpause(berlin: Any, operator: Any) -> None:
    page = berlin
    log_in(page, "otto")
    tenant = create_tenant(
        slug="pausable",
        name="Pausable",
        plan="starter",
        admin_email="ops@pausable.example",
        actor=Actor.shell("setup"),
    )
    page.goto(f"/tenants/{tenant.pk}/")
    action(page, "Pause").click()
    page.get_by_label(re.compile("Reason")).fill("vendor maintenance")
    page.locator("#confirm").get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_url(DETAIL_URL)
    banner = page.locator("#paused-banner")
    expect(banner).to_contain_text("This run is paused")
    expect(banner).to_contain_text("user:otto")
    expect(banner.locator(".local-time")).to_contain_text("UTC+0")
    expect(page.locator("[data-condition=paused]").first).to_be_visible()
    both_widths(page, "pause-banner")
    action(page, "Unpause").click()
    page.locator("#confirm").get_by_role("button", name="Unpause", exact=True).click()
    page.wait_for_url(DETAIL_URL)
    expect(page.locator("#paused-banner")).to_have_count(0)
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)


def test_schedule_from_the_confirmation_then_cancel_it(berlin: Any, operator: Any) -> None:
    page = berlin
    log_in(page, "otto")
    tenant = create_tenant(
        slug="nightly",
        name="Nightly",
        plan="starter",
        admin_email="ops@nightly.example",
        actor=Actor.shell("setup"),
    )
    page.goto(f"/tenants/{tenant.pk}/")
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)
    action(page, "Suspend").click()
    expect(page.locator(".tz-note")).to_contain_text("UTC+0")
    page.get_by_label(re.compile("Reason")).fill("night window")
    # The next 15 January (winter: Berlin is UTC+01:00), within the year a schedule may reach.
    today = timezone.now().date()
    year = today.year + 1 if (today.month, today.day) >= (1, 15) else today.year
    page.get_by_label(re.compile("At, in your time")).fill(f"{year}-01-15T03:30")
    shot(page, "confirm-schedule-1280")
    page.locator("#confirm").get_by_role("button", name="Suspend", exact=True).click()
    page.wait_for_url(DETAIL_URL)
    # 03:30 in Berlin in January is 02:30 UTC.
    expect(page.locator(".messages")).to_contain_text(f"{year}-01-15 02:30 UTC")
    expect(page.locator(".messages")).to_contain_text(f"{year}-01-15 03:30 (UTC+01:00)")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    s = Schedule.objects.get()
    assert s.at.isoformat() == f"{year}-01-15T02:30:00+00:00"

    page.get_by_role("link", name="Schedules").click()
    row = page.locator(f'tr[data-schedule="{s.id}"]')
    expect(row).to_contain_text(f"{year}-01-15 02:30 UTC")
    expect(row.locator(".local-time")).to_contain_text(f"{year}-01-15 03:30 (UTC+01:00)")
    expect(row).to_contain_text("night window")
    both_widths(page, "schedules")
    row.get_by_role("button", name="Cancel").click()
    expect(page.locator(".messages")).to_contain_text("will not run")
    expect(page.locator(f'tr[data-schedule="{s.id}"]')).to_have_count(0)
    assert Schedule.objects.get(pk=s.id).status == "cancelled"
