"""The operator's journeys in a real browser, against a live server and a real worker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from provisioning.models import Allocation
from provisioning.watchdog import run_watchdog
from tenants.models import Tenant

from ..conftest import wait_for
from .conftest import log_in, shot

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.browser]

DETAIL_URL = re.compile(r".*/tenants/[0-9a-f-]{36}/$")


def create(page: Any, slug: str, *, faults: str = "") -> Tenant:
    page.goto("/tenants/new/")
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("Name").fill(f"{slug.title()} Corporation")
    page.get_by_label("Plan").select_option("growth")
    page.get_by_label("Admin e-mail").fill(f"admin@{slug}.example")
    if faults:
        page.get_by_text("Fault injection (development)").click()
        page.get_by_label("Faults").fill(faults)
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_url(DETAIL_URL)
    return Tenant.objects.get(slug=slug)


def state(page: Any) -> Any:
    return page.locator(".status-line [data-state]")


def step(page: Any, name: str) -> Any:
    # The current run's steps (earlier attempts, above the timeline, have rows of the same
    # names).
    return page.locator(f'#current-steps tr[data-step="{name}"]')


def action(page: Any, label: str) -> Any:
    """An operation's button on the detail page (a link to its confirmation step)."""
    return page.locator("#actions").get_by_role("link", name=label, exact=True)


def confirm(page: Any, label: str, *, slug: str = "", reason: str = "") -> None:
    """Open the operation's confirmation, see its preview, and confirm it."""
    action(page, label).click()
    expect(page.locator("#preview")).to_be_visible()
    if reason:
        page.get_by_label(re.compile("Reason")).fill(reason)
    if slug:
        page.get_by_label(re.compile("to confirm")).fill(slug)
    page.locator("#confirm").get_by_role("button", name=label, exact=True).click()
    page.wait_for_url(DETAIL_URL)


def test_create_watch_the_saga_and_cancel_it(console: Any, admin_user: Any) -> None:
    page = console
    log_in(page, "ada")
    # allocate_identity takes ten minutes (fault injection) unless cancelled: the page is sure
    # to see it running and the cancel is sure to meet a live run, however slow the machine.
    tenant = create(page, "journey", faults="allocate_identity=slow:600")
    expect(state(page)).to_have_attribute("data-state", "provisioning")
    # Mark the document: if the page reloaded, the mark would be gone.
    page.evaluate("window.__sameDocument = true")
    expect(step(page, "validate_request")).to_have_attribute("data-status", "completed")
    expect(step(page, "allocate_storage")).to_have_attribute("data-status", "completed")
    expect(step(page, "allocate_identity")).to_have_attribute("data-status", "running")
    expect(page.locator(".heartbeat")).to_contain_text("last heartbeat")
    assert page.evaluate("window.__sameDocument") is True  # the steps advanced by themselves
    shot(page, "detail-provisioning")

    confirm(page, "Cancel provisioning")
    expect(page.locator(".messages")).to_contain_text("Cancellation of journey requested")
    expect(state(page)).to_have_attribute("data-state", "pending")
    expect(page.locator('[data-event-type="tenant.provisioning.cancelled"]')).to_be_visible()
    expect(step(page, "allocate_storage")).to_have_attribute("data-status", "compensated")
    expect(action(page, "Retry provisioning")).to_be_visible()
    shot(page, "detail-cancelled")
    tenant.refresh_from_db()
    assert tenant.state == "pending"
    assert not Allocation.objects.filter(tenant=tenant, released_at__isnull=True).exists()


def test_stalled_saga_reset_retry_then_decommission(console: Any, admin_user: Any) -> None:
    page = console
    log_in(page, "ada")
    tenant = create(page, "wedged", faults="allocate_identity=stall")
    expect(step(page, "allocate_identity")).to_have_attribute("data-status", "running")
    expect(action(page, "Cancel provisioning")).to_be_visible()
    expect(action(page, "Reset provisioning")).to_have_count(0)

    def flagged() -> bool:
        # The watchdog's periodic pass, run here: redispatch, then flag the run as stalled.
        run_watchdog()
        return bool(Tenant.objects.get(pk=tenant.pk).last_error)

    wait_for(flagged, timeout=60, what="the watchdog to flag the stalled run")
    expect(action(page, "Reset provisioning")).to_be_visible()
    expect(page.locator("#recorded-error")).to_be_visible()
    expect(step(page, "allocate_identity")).to_contain_text("stalled: no heartbeat")
    expect(page.locator(".advice")).to_have_attribute("data-recommendation", "reset")
    shot(page, "detail-stalled")

    confirm(page, "Reset provisioning")
    expect(state(page)).to_have_attribute("data-state", "pending")
    expect(page.locator(".messages")).to_contain_text("was reset")
    expect(page.locator('[data-kind="storage"]').first).to_be_visible()  # kept for reuse
    shot(page, "detail-reset")

    confirm(page, "Retry provisioning")
    expect(state(page)).to_have_attribute("data-state", "provisioning")
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)
    expect(step(page, "allocate_storage")).to_have_attribute("data-status", "completed")
    expect(page.locator(".handle")).to_contain_text("attempt 2")
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "false")
    shot(page, "detail-active")

    # Decommission asks for the slug: a wrong one does nothing, and the confirmation comes back
    # saying so with what was typed kept (the reason above all).
    action(page, "Decommission").click()
    page.get_by_label(re.compile("Reason")).fill("ticket 4411: customer left")
    page.get_by_label(re.compile("to confirm")).fill("wedge")
    page.locator("#confirm").get_by_role("button", name="Decommission", exact=True).click()
    expect(page.locator("#confirm_slug_error")).to_contain_text("Nothing was done")
    expect(page.get_by_label(re.compile("Reason"))).to_have_value("ticket 4411: customer left")
    expect(page.get_by_label(re.compile("to confirm"))).to_have_value("wedge")
    assert Tenant.objects.get(pk=tenant.pk).state == "active"
    page.get_by_label(re.compile("to confirm")).fill("wedged")
    shot(page, "detail-decommission-confirm")
    page.locator("#confirm").get_by_role("button", name="Decommission", exact=True).click()
    expect(state(page)).to_have_attribute("data-state", "decommissioned")
    expect(page.locator('[data-event-type="tenant.decommissioned"]')).to_be_visible()
    expect(page.locator("#actions a.button")).to_have_count(0)
    shot(page, "detail-decommissioned")
    assert not Allocation.objects.filter(tenant=tenant, released_at__isnull=True).exists()


def test_a_failed_saga_shows_the_error_and_retry_fixes_it(console: Any, admin_user: Any) -> None:
    page = console
    log_in(page, "ada")
    create(page, "flaky", faults="configure_dns=fail")
    expect(state(page)).to_have_attribute("data-state", "failed", timeout=40_000)
    expect(page.locator("#recorded-error")).to_contain_text("configure_dns")
    expect(step(page, "configure_dns")).to_have_attribute("data-status", "failed")
    expect(step(page, "create_database")).to_have_attribute("data-status", "compensated")
    expect(page.locator(".advice")).to_have_attribute("data-recommendation", "retry")
    shot(page, "detail-failed")
    confirm(page, "Retry provisioning")
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)


def test_list_feed_and_form_errors(console: Any, admin_user: Any, viewer: Any) -> None:
    page = console
    log_in(page, "ada")
    page.goto("/tenants/new/")
    page.get_by_label("Slug").fill("Not A Slug")
    page.get_by_label("Admin e-mail").fill("nope")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.locator('[data-field="slug"]')).to_contain_text("lowercase letters")
    expect(page.locator('[data-field="admin_email"]')).to_contain_text("valid e-mail")
    expect(page.locator('[data-field="name"]')).to_be_visible()
    shot(page, "new-tenant-errors")
    assert not Tenant.objects.exists()

    tenant = create(page, "listed")
    expect(state(page)).to_have_attribute("data-state", "active", timeout=40_000)
    page.goto("/tenants/")
    expect(page.locator('tr[data-tenant="listed"] [data-state="active"]')).to_be_visible()
    shot(page, "tenant-list")

    # The feed is live: an event recorded while it is open shows up without a reload.
    page.goto("/audit/")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator('[data-event-type="tenant.suspended"]')).to_have_count(0)
    from tenants.services import Actor, suspend_tenant

    suspend_tenant(tenant_id=tenant.pk, actor=Actor.shell("someone-else"))
    expect(page.locator('[data-event-type="tenant.suspended"]')).to_have_count(1)
    assert page.evaluate("window.__sameDocument") is True
    shot(page, "audit-feed")

    # A phone-sized screen: nothing spills sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/tenants/{tenant.pk}/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    shot(page, "detail-phone", full_page=False)
