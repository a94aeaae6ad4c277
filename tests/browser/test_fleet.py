"""The fleet view in a real browser: the Needs attention chip, the condition filter, the list
refreshing by itself, honest step statuses and phone width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from provisioning.watchdog import run_watchdog
from tenants.models import Tenant
from tenants.services import retry_provisioning

from .. import factories as f
from ..conftest import drive, wait_for
from .conftest import log_in, shot

pytestmark = [pytest.mark.services, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def page_on(
    fast_saga: Any, live_server: Any, browser: Any, transactional_db: None
) -> Iterator[Any]:
    """Open tabs at a viewport size on the live console (no worker: tests drive the saga)."""
    fast_saga.CONSOLE_POLL_SECONDS = 0.4
    contexts = []

    def open_page(viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def rows(page: Any) -> Any:
    return page.locator("table.tenants tbody tr")


def overflowing(page: Any) -> list[str]:
    """What sticks out past the right edge (for the failure message)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
             .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' +
                              Math.round(e.getBoundingClientRect().right))"""
    )


def fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.worker
def test_the_list_refreshes_itself_and_the_chip_filters(
    celery_worker: Any, page_on: Any, admin_user: Any, settings: Any
) -> None:
    settings.CONTROLPLANE_STEP_DELAY = 0.3
    # The real worker provisions it (driving it inline too would race the worker for its steps).
    steady = f.new_tenant(slug="steady")
    wait_for(lambda: f.reload(steady).state == "active", timeout=60, what="steady to be active")
    # Slow enough at first for the page to load while it is still in flight.
    broken = f.new_tenant(
        slug="broken", faults={"allocate_storage": "slow:2", "create_database": "fail"}
    )
    page = page_on()
    log_in(page, "ada")
    expect(page.locator("#attention-chip")).to_have_attribute("data-attention-count", "0")
    expect(page.locator("#fleet")).to_have_attribute("data-live", "true")
    page.evaluate("window.__sameDocument = true")
    # The list watches it fail, counts it and stops polling, all without a reload.
    expect(page.locator('tr[data-tenant="broken"]')).to_have_attribute(
        "data-condition", "failed", timeout=60_000
    )
    expect(page.locator("#attention-chip")).to_have_attribute("data-attention-count", "1")
    expect(page.locator("#fleet")).to_have_attribute("data-live", "false")
    assert page.evaluate("window.__sameDocument") is True
    shot(page, "list-needs-attention")
    page.locator("#attention-chip").click()
    page.wait_for_url(re.compile(r".*needs_attention=1.*"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-tenant", broken.slug)
    # The condition filter says the same through the form.
    page.goto("/tenants/")
    page.get_by_label("Condition").select_option("ok")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r".*condition=ok.*"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-tenant", "steady")


def test_polling_keeps_the_filters_and_the_page(page_on: Any, admin_user: Any) -> None:
    for i in range(3):
        f.new_tenant(slug=f"moving-{i}")
    page = page_on()
    log_in(page, "ada")
    page.goto("/tenants/?state=provisioning&sort=slug")
    fleet = page.locator("#fleet")
    expect(fleet).to_have_attribute("data-live", "true")
    expect(fleet).to_have_attribute("hx-get", "/tenants/?state=provisioning&sort=slug")
    for tenant in Tenant.objects.filter(slug__startswith="moving-"):
        drive(tenant.workflow_id)
    # The next poll answers 286 with the last rows: the filter still holds (no rows now).
    expect(fleet).to_have_attribute("data-live", "false")
    expect(rows(page)).to_have_count(0)
    assert "state=provisioning" in page.url and "sort=slug" in page.url


def test_a_lost_step_is_named_as_such(page_on: Any, admin_user: Any, settings: Any) -> None:
    tenant = f.new_tenant(slug="lossy", faults={"allocate_storage": "stall"})
    drive(tenant.workflow_id)  # allocate_storage's first try vanishes
    later = timezone.now() + timezone.timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT * 2)
    with time_machine.travel(later, tick=False):
        assert run_watchdog().redispatched
    page = page_on()
    log_in(page, "ada")
    page.goto(f"/tenants/{tenant.pk}/")
    advice = page.locator("[data-recommendation]")
    expect(advice).to_contain_text("the step's try was lost; resending (try 2 of 3)")
    expect(page.locator(".status-line [data-condition]")).to_have_attribute(
        "data-condition", "lost"
    )
    expect(page.locator('tr[data-step="allocate_storage"]')).to_contain_text("resending")
    shot(page, "detail-lost-step")


def test_run_history_shows_earlier_attempts(page_on: Any, admin_user: Any) -> None:
    tenant = f.failed_tenant(slug="second-go")
    retry_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    drive(f.reload(tenant).workflow_id)
    page = page_on()
    log_in(page, "ada")
    page.goto(f"/tenants/{tenant.pk}/")
    earlier = page.locator('details.run-history[data-attempt="1"]')
    expect(earlier).not_to_have_attribute("open", "")
    earlier.locator("summary").click()
    expect(earlier.locator('tr[data-step="create_database"]')).to_have_attribute(
        "data-status", "failed"
    )
    expect(earlier.locator('tr[data-step="allocate_storage"]')).to_have_attribute(
        "data-status", "compensated"
    )
    earlier.scroll_into_view_if_needed()
    shot(page, "detail-run-history")


def test_phone_width_has_no_sideways_scroll(page_on: Any, admin_user: Any, settings: Any) -> None:
    f.failed_tenant(
        slug="a-rather-long-tenant-slug-for-a-phone",
        name="Internationalisation Department Incorporated",
        admin_email="administrator.of.everything@very-long-domain-name.example",
    )
    f.active_tenant(slug="short")
    page = page_on(PHONE)
    log_in(page, "ada")
    for url in ("/tenants/", "/tenants/?needs_attention=1", "/audit/"):
        page.goto(url)
        assert fits(page), (url, overflowing(page))
    page.goto("/tenants/")
    shot(page, "list-phone")
    # No word is cut in the middle: each cell's words fit its width.
    assert page.evaluate(
        """() => [...document.querySelectorAll('table.tenants td')].every(
             td => td.scrollWidth <= td.clientWidth + 1)"""
    )
