"""Playwright (sync API) on Debian's Chromium against pytest-django's live server.

The live server and the Celery worker both run as threads of this process, on the real
database (transactional tests), so the saga the browser watches is the production one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CONTROLPLANE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API drives its own event loop between calls. Django refuses ORM calls
    # from a thread where a loop is running; the tests' ORM calls happen between Playwright
    # calls (the loop is idle then), so allow them in this test process only.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def console(settings: Any, celery_worker: Any, live_server: Any, browser: Any) -> Iterator[Any]:
    """A fresh browser tab on the live console, with a real worker behind it."""
    # Poll often so a test sees changes quickly; slow steps so an operator (a test) can act.
    settings.CONSOLE_POLL_SECONDS = 0.4
    settings.CONTROLPLANE_STEP_DELAY = 0.8
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    # Destructive actions ask through window.confirm; the operator says yes.
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


def log_in(page: Any, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/tenants/")


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
