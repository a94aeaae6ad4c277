"""What a new operator met on the screen (issue 22), each at a phone's width (390 px) and a
desktop's (1280 px), in Chromium: buttons that look like buttons, one word for each thing in
every door, nothing cut mid-word or pushed off-screen, and counted, worded questions.

Screenshots land in docs/screenshots/ as ``edges-<what>-<width>.png``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tenants.selectors import tenant_detail
from tenants.services import retry_provisioning

from .. import factories as f
from .conftest import shot
from .test_admin_tenant import looks

pytestmark = [pytest.mark.services, pytest.mark.browser]

WIDTHS = [390, 1280]
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
DANGER = "rgb(180, 35, 24)"  # --danger in console.css


@pytest.fixture
def open_as(
    fast_saga: Any, live_server: Any, browser: Any, transactional_db: None, admin_user: Any
) -> Iterator[Callable[..., Any]]:
    """A tab at a width, logged in as the admin persona (ada) to the console or the admin.
    No worker: each test builds its state through the services."""
    fast_saga.CONSOLE_POLL_SECONDS = 0.4
    contexts = []

    def open_page(width: int, *, door: str = "console") -> Any:
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 900}
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        login = "/admin/login/?next=/admin/" if door == "admin" else "/accounts/login/"
        page.goto(login)
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("pw-ada")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/admin/" if door == "admin" else "**/tenants/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def overflowing(page: Any) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
             .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' +
                              Math.round(e.getBoundingClientRect().right))"""
    )


def fits(page: Any, width: int) -> None:
    assert page_width(page) <= width, f"{page_width(page)} px wide: {overflowing(page)}"


# Where the text of the matched elements wraps in the middle of a word (a letter, digit or _
# on both sides of a line break): "fro m_s tate", "tenant.provisioning.starte d".
MID_WORD_BREAKS = """(selector) => {
  const bad = [];
  for (const el of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let top = null, prev = '', node, broken = false;
    while (!broken && (node = walker.nextNode())) {
      for (let i = 0; i < node.data.length; i++) {
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (!rect || rect.width === 0) continue;
        const ch = node.data[i];
        if (top !== null && rect.top > top + 2 && /\\w/.test(prev) && /\\w/.test(ch)) {
          bad.push(el.textContent.trim()); broken = true; break;
        }
        top = rect.top; prev = ch;
      }
    }
  }
  return bad;
}"""


def mid_word_breaks(page: Any, selector: str) -> list[str]:
    return page.evaluate(MID_WORD_BREAKS, selector)  # type: ignore[no-any-return]


# --- the console's tenant page --------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tenant_pages_operations_are_buttons_and_failed_is_said_once(open_as, width):
    tenant = f.failed_tenant(slug="broken")
    page = open_as(width)
    page.goto(f"/tenants/{tenant.pk}/")
    actions = page.locator("#actions")
    decommission = actions.locator('a.button[data-action="decommission"]')
    retry = actions.locator('a.button[data-action="retry"]')
    expect(decommission).to_have_text("Decommission")
    card = actions.bounding_box()
    # A button, not an empty text box: red words on a red outline, as wide as its words
    # (not the card's whole width).
    seen = looks(decommission)
    assert seen["color"] == DANGER
    assert decommission.evaluate("e => getComputedStyle(e).borderTopColor") == DANGER
    assert seen["width"] < card["width"] * 0.8
    assert looks(retry)["width"] < card["width"] * 0.8
    # The state says Failed; the condition beside it does not say it again.
    status = page.locator(".status-line")
    assert re.findall(r"\bFailed\b", status.inner_text()) == ["Failed"]
    expect(status.locator("[data-condition]")).to_have_text("Needs attention")
    fits(page, width)
    shot(page, f"edges-detail-failed-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_stalled_run_says_stalled_and_its_notes_are_on_screen(open_as, settings, width):
    tenant = f.stalled_tenant(settings, slug="stuck")
    page = open_as(width)
    page.goto(f"/tenants/{tenant.pk}/")
    expect(page.locator("[data-run-status]").first).to_have_text("stalled")
    note = page.locator('tr[data-step="create_database"] td.notes')
    expect(note).to_contain_text("stalled: no heartbeat")
    box = note.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box  # on screen, no scrolling
    fits(page, width)
    shot(page, f"edges-detail-stalled-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_step_no_worker_has_taken_says_queued_not_a_heartbeat(open_as, width):
    tenant = f.provisioning_tenant(slug="waiting")
    page = open_as(width)
    page.goto(f"/tenants/{tenant.pk}/")
    row = page.locator('tr[data-step="allocate_identity"]')
    expect(row).to_have_attribute("data-status", "dispatched")
    notes = row.locator("td.notes")
    expect(notes).to_contain_text(re.compile(r"queued for a worker \(\d+(\.\d)? s\)"))
    expect(page.locator("#live")).not_to_contain_text("last heartbeat")
    box = notes.bounding_box()
    assert box["x"] + box["width"] <= width, box
    fits(page, width)
    shot(page, f"edges-detail-queued-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_earlier_attempts_come_before_the_timeline_and_say_abandoned(open_as, settings, width):
    tenant = f.reset_tenant(settings, slug="again")
    retry_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    page = open_as(width)
    page.goto(f"/tenants/{tenant.pk}/")
    history = page.locator("#run-history")
    earlier = history.locator('details.run-history[data-attempt="1"]')
    # Attempt 1 was set aside by the reset: "abandoned", not a condition's word ("orphaned").
    expect(earlier.locator("[data-run-status]")).to_have_text("abandoned")
    assert "orphaned" not in history.inner_text()
    assert history.bounding_box()["y"] < page.locator("#timeline").bounding_box()["y"]
    # Opened, it stays open while the page refreshes by itself (the run is live).
    earlier.locator("summary").click()
    expect(earlier).to_have_attribute("open", "")
    page.wait_for_function("() => window.htmx !== undefined")
    with page.expect_response(lambda r: f"/tenants/{tenant.pk}/" in r.url and r.status < 300):
        pass
    expect(earlier).to_have_attribute("open", "")
    fits(page, width)
    shot(page, f"edges-detail-history-{width}")


# --- the audit feed and bulk ----------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_the_audit_feed_breaks_no_key_mid_word(open_as, width):
    f.failed_tenant(slug="a-tenant-with-a-rather-long-slug-for-the-feed")
    page = open_as(width)
    page.goto("/audit/")
    expect(page.locator("table.events .kv-key").first).to_be_visible()
    assert mid_word_breaks(page, "table.events .kv-key") == []
    assert mid_word_breaks(page, "table.events code.event-type") == []
    fits(page, width)
    shot(page, f"edges-audit-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_bulk_counts_its_tenants_and_says_outcomes_in_words(open_as, width):
    for n in range(3):
        f.active_tenant(slug=f"bulk-{n}")
    page = open_as(width)
    page.goto("/tenants/")
    for n in range(3):
        page.get_by_label(f"Select bulk-{n}").check()
    page.locator("form#bulk select[name=action]").select_option("suspend")
    page.locator("form#bulk button[type=submit]").click()
    expect(page.locator("#bulk-question")).to_contain_text("Suspend 3 tenants?")
    assert "this tenant" not in page.locator("#bulk-question").inner_text()
    outcomes = page.locator("table.bulk td.outcome")
    expect(outcomes).to_have_count(3)
    assert set(outcomes.all_inner_texts()) == {"Would be accepted"}
    assert "would_accept" not in page.locator("#bulk-result").inner_text()
    fits(page, width)
    shot(page, f"edges-bulk-{width}")


# --- the admin ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_the_admin_tenant_page_fits_and_speaks_every_doors_words(open_as, width):
    tenant = f.cancelled_tenant(slug="rolled-back")
    page = open_as(width, door="admin")
    page.goto(f"/admin/tenants/tenant/{tenant.pk}/change/")
    # The steps in the one vocabulary (compensated, abandoned, skipped), as every door says.
    expected = {v.name: v.status for v in tenant_detail(tenant.pk).step_views}
    rows = page.locator("#tenant-run tr[data-step]")
    expect(rows).to_have_count(len(expected))
    shown = {r.get_attribute("data-step"): r.locator("td").nth(2).inner_text() for r in rows.all()}
    assert shown == expected
    assert "compensated" in shown.values() and "abandoned" in shown.values()
    # Moments in the one format for people, never a bare time.
    for cell in page.locator("#tenant-run td.when, #tenant-events td.when").all_inner_texts():
        assert cell == "—" or STAMP.match(cell), cell
    # Event types break only at their dots; data in JSON's words (true), not Python's (True).
    assert mid_word_breaks(page, "#tenant-events td.word") == []
    events = page.locator("#tenant-events").inner_text()
    assert "start=true" in events and "start=True" not in events
    fits(page, width)
    shot(page, f"edges-admin-tenant-{width}")


def test_the_admin_list_shows_the_whole_e_mail_and_created_on_a_desktop(open_as):
    f.active_tenant(slug="mail", admin_email="a.rather.long.address@operations.example.test")
    page = open_as(1280, door="admin")
    page.goto("/admin/tenants/tenant/")
    shot(page, "edges-admin-list-1280")
    # Every column in view: none hidden behind the list's sideways scroll.
    visible = page.locator("#changelist-form .results").bounding_box()
    for th in page.locator("#result_list thead th").all():
        box = th.bounding_box()
        assert box["x"] + box["width"] <= visible["x"] + visible["width"] + 0.5, th.inner_text()
    expect(page.locator("th.column-created")).to_be_visible()
    email = page.locator("td.field-email").first
    expect(email).to_have_text("a.rather.long.address@operations.example.test")
    assert mid_word_breaks(page, "td.field-email") == []
    fits(page, 1280)
