"""The console, the admin and the API docs in Chromium under the Content-Security-Policy.

Every test here (and in test_journeys.py) runs with the ``console_log`` fixture, which fails
the test when Chromium logged a CSP violation. The first test proves that the fixture sees one.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tenants.models import Tenant

from ..admin.helpers import new_tenant
from ..conftest import wait_for
from .conftest import log_in

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.browser]


def test_an_inline_script_is_refused_and_the_log_shows_it(
    console: Any, console_log: Any, viewer: Any
):
    page = console
    log_in(page, "vera")
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.__inline_ran = true';
                   document.body.appendChild(s); }"""
    )
    assert page.evaluate("() => window.__inline_ran === undefined")
    wait_for(lambda: console_log.csp_violations(), timeout=10, what="the CSP violation report")
    # Seen, so this test's own violation is expected: clear it for the fixture's check.
    console_log.messages.clear()


def test_the_admin_decommission_button_asks_first_without_an_inline_handler(
    console: Any, admin_user: Any
):
    """The admin's Decommission opens its confirmation page (the preview and a reason) before
    anything happens: no inline handler, no dialog, under the CSP."""
    page = console
    asked: list[str] = []
    page.on("dialog", lambda dialog: asked.append(dialog.message))
    tenant = new_tenant("csp-admin")
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).state == "active",
        timeout=60,
        what="the tenant to be active",
    )
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-ada")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/admin/tenants/tenant/{tenant.pk}/change/")
    page.locator("#tenant-actions").get_by_role("link", name="Decommission").click()
    expect(page.locator("#preview")).to_contain_text("Will be released")
    assert Tenant.objects.get(pk=tenant.pk).decommission_requested_at is None  # asked first
    page.get_by_label("Reason (optional, recorded in the audit feed)").fill("csp check")
    page.get_by_role("button", name="Decommission").click()
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).decommission_requested_at is not None,
        timeout=20,
        what="the decommission to be requested",
    )
    assert asked == []  # no script dialog: the page itself is the question


def test_the_api_docs_render_under_the_csp(console: Any, viewer: Any):
    page = console
    log_in(page, "vera")
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()


def test_the_lockout_message_shows_on_the_login_page(console: Any, viewer: Any):
    page = console
    for _ in range(5):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("vera")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed logins")
