"""The approvals page in Chromium, at a phone's width (390 px) and a desktop's (1280 px): the
author sees why they cannot approve (and may withdraw); a second person approves with a button
and the operation runs as its author. Screenshots: docs/screenshots/approvals-<who>-<width>.png.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tenants.models import ApprovalRequest, Tenant
from tenants.operations import perform
from tenants.services import Actor

from .. import factories as f
from ..conftest import make_user
from .conftest import shot

pytestmark = [pytest.mark.services, pytest.mark.browser]

WIDTHS = [390, 1280]


@pytest.fixture
def open_as(
    fast_saga: Any, live_server: Any, browser: Any, transactional_db: None, roles: None
) -> Iterator[Callable[..., Any]]:
    """A console tab at a width, logged in as ``username`` (no worker: suspend needs none)."""
    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = ("suspend", "bulk")
    contexts = []

    def open_page(username: str, width: int) -> Any:
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 900}
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill("pw-" + username)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/tenants/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def fits(page: Any, width: int) -> None:
    wide = int(page.evaluate("document.documentElement.scrollWidth"))
    assert wide <= width, f"the page is {wide} px wide at {width}"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_approvals_page_waits_for_a_second_person(open_as: Any, width: int) -> None:
    otto, olga = make_user("otto", "operator"), make_user("olga", "operator")
    tenant = f.active_tenant(slug=f"shop-{width}")
    bulk_one = f.active_tenant(slug=f"bulk-{width}")
    perform("suspend", tenant_id=tenant.pk, actor=Actor.for_user(otto), reason="unpaid invoices")
    from tenants import bulk

    bulk.bulk("suspend", actor=Actor.for_user(otto), ids=[str(bulk_one.pk)])

    # The author: the rule said on the page, no Approve button, Withdraw offered.
    page = open_as("otto", width)
    page.get_by_role("link", name="Approvals").click()
    page.wait_for_url("**/approvals/")
    waiting = page.locator(f".approval.waiting:has-text('{tenant.slug}')")
    expect(waiting.locator("[data-own-note]")).to_contain_text(
        "otto asked for this suspend; a different person with the tenants.suspend_tenant "
        "permission must approve it."
    )
    expect(waiting.get_by_role("button", name="Approve suspend")).to_have_count(0)
    expect(waiting.get_by_role("button", name="Withdraw request")).to_be_visible()
    expect(page.locator("#policy")).to_contain_text("cannot approve their own request")
    expect(page.locator(".approval.waiting:has-text('1 selected tenant (bulk)')")).to_have_count(1)
    fits(page, width)
    shot(page, f"approvals-author-{width}")

    # A second operator approves: the tenant is suspended, by its author.
    page = open_as("olga", width)
    page.goto("/approvals/")
    waiting = page.locator(f".approval.waiting:has-text('{tenant.slug}')")
    expect(waiting).to_contain_text("Reason: “unpaid invoices”")
    expect(waiting).to_contain_text("May approve: olga.")
    fits(page, width)
    shot(page, f"approvals-second-person-{width}")
    waiting.get_by_label("Reason (optional)").fill("checked the invoices")
    waiting.get_by_role("button", name="Approve suspend").click()
    expect(page.locator("ul.messages")).to_contain_text(
        f"Suspend of {tenant.slug} approved: {tenant.slug} is suspended."
    )
    assert Tenant.objects.get(pk=tenant.pk).state == "suspended"
    request = ApprovalRequest.objects.get(tenant=tenant)
    assert request.status == "approved" and request.decided_by == "olga"
    expect(
        page.locator(f"tr[data-approval='{request.pk}'][data-status='approved']")
    ).to_be_visible()
    fits(page, width)
    shot(page, f"approvals-decided-{width}")
    assert olga.username == "olga"
