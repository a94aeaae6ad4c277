"""The admin's tenant page in Chromium, as an operator reads it: only the operations to act
with, each a readable button labelled from the operations table; the others disabled, each
with its reason in plain sight; no form controls that make no sense on a read-only page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tenants.operations import OPERATIONS
from tenants.selectors import tenant_detail

from .. import factories as f
from .conftest import shot

pytestmark = [pytest.mark.services, pytest.mark.browser]


@pytest.fixture
def admin_page(
    fast_saga: Any, live_server: Any, browser: Any, transactional_db: None, admin_user: Any
) -> Iterator[Any]:
    """A tab logged in to the admin as the admin persona (no worker: the tests build state)."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-ada")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def _luminance(rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two computed colours ("rgb(r, g, b)")."""
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def looks(locator: Any) -> dict[str, Any]:
    """What the eye gets of an element: its colours (the background the page shows behind it
    when its own is transparent), font size and box."""
    return locator.evaluate(
        """e => { const cs = getComputedStyle(e); let bg = cs.backgroundColor, p = e;
                  while (bg === 'rgba(0, 0, 0, 0)' && p.parentElement) {
                      p = p.parentElement; bg = getComputedStyle(p).backgroundColor; }
                  const r = e.getBoundingClientRect();
                  return {color: cs.color, background: bg, fontSize: parseFloat(cs.fontSize),
                          width: r.width, height: r.height}; }"""
    )


def test_the_tenant_page_shows_readable_operations_and_no_stray_controls(admin_page: Any):
    page = admin_page
    tenant = f.failed_tenant(slug="broken")
    page.goto(f"/admin/tenants/tenant/{tenant.pk}/change/")
    expect(page.locator("#tenant-situation")).to_contain_text("needs attention")

    # What the table allows a failed tenant and the admin role: Retry and Decommission, each a
    # visible, readable button with the table's label.
    actions = page.locator("#tenant-actions")
    for name in ("retry", "decommission"):
        button = actions.get_by_role("link", name=OPERATIONS[name].label, exact=True)
        expect(button).to_be_visible()
        seen = looks(button)
        assert seen["fontSize"] >= 14, (name, seen)
        assert seen["height"] >= 36 and seen["width"] >= 120, (name, seen)
        assert contrast(seen["color"], seen["background"]) >= 4.5, (name, seen)

    # Every other operation: a disabled button with its label, and the reason beside it, as
    # readable as the rest of the page.
    detail = tenant_detail(tenant.pk, user=None)
    reasons = {a.name: a.reason for a in detail.actions if not a.available}
    assert set(reasons) == set(OPERATIONS) - {"retry", "decommission"}
    for name, reason in reasons.items():
        row = page.locator(f'[data-unavailable="{name}"]')
        button = row.get_by_role("button", name=OPERATIONS[name].label, exact=True)
        expect(button).to_be_visible()
        expect(button).to_be_disabled()
        why = row.locator(".op-note")
        expect(why).to_be_visible()
        expect(why).to_have_text(reason)
        seen = looks(why)
        assert seen["fontSize"] >= 13 and contrast(seen["color"], seen["background"]) >= 4.5
        seen = looks(button)
        assert seen["fontSize"] >= 14 and contrast(seen["color"], seen["background"]) >= 4.5

    # No control that makes no sense on a read-only page whose operations are the way to act.
    for stray in ("Save and add another", "Save and continue editing", "Save as new", "Save"):
        expect(page.get_by_role("button", name=stray, exact=True)).to_have_count(0)
    for stray in ("Close", "Delete", "History"):
        expect(page.get_by_role("link", name=stray, exact=True)).to_have_count(0)
    fields = page.locator("#tenant_form").locator("input:not([type=hidden]), select, textarea")
    expect(fields).to_have_count(0)  # the fields are shown, not editable

    # The sections under the form start below it (nothing painted through behind the fields).
    form_bottom = page.locator("#tenant_form").bounding_box()
    run_top = page.locator("#tenant-run").bounding_box()
    assert run_top["y"] >= form_bottom["y"] + form_bottom["height"]

    # Nothing sticks out sideways (a long storage path in the events wraps in its cell).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    shot(page, "admin-tenant", full_page=False)

    # The button does what it says: Retry opens the confirmation with the preview.
    actions.get_by_role("link", name=OPERATIONS["retry"].label, exact=True).click()
    expect(page.locator("#preview")).to_contain_text("resulting state")
    confirm = page.get_by_role("button", name=OPERATIONS["retry"].label, exact=True)
    expect(confirm).to_be_visible()
    seen = looks(confirm)
    assert seen["fontSize"] >= 14 and contrast(seen["color"], seen["background"]) >= 4.5
