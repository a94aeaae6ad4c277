"""Playwright (sync API) on Debian's Chromium against pytest-django's live server.

The live server and the Celery worker both run as threads of this process, on the real
database (transactional tests), so the saga the browser watches is the production one.
"""

from __future__ import annotations

import os
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
REQUIRE_SERVICES = os.environ.get("CONTROLPLANE_REQUIRE_SERVICES") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module; Playwright is stopped when the module is done."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # While Playwright's sync API is alive its event loop counts as running in this thread,
    # and Django refuses ORM calls from a thread with a running loop. The tests' ORM calls
    # happen between Playwright calls (nothing awaits then), so allow them, for this module
    # only: the flag is put back when Playwright stops, before any other test module runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# What Chromium logs when the Content-Security-Policy blocks something.
CSP_MARKERS = ("Content Security Policy", "Refused to")


class ConsoleLog:
    """Everything the page logged, and the page errors; a CSP violation fails the test."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("console", lambda message: self.messages.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if any(marker in m for marker in CSP_MARKERS)]


@pytest.fixture
def console_log() -> Iterator[ConsoleLog]:
    """The browser's console log for the test; after it, no CSP violation may be in it."""
    log = ConsoleLog()
    yield log
    violations = log.csp_violations()
    assert not violations, "the Content-Security-Policy blocked something:\n" + "\n".join(
        violations
    )


@pytest.fixture
def console(
    settings: Any, celery_worker: Any, live_server: Any, browser: Any, console_log: ConsoleLog
) -> Iterator[Any]:
    """A fresh browser tab on the live console, with a real worker behind it, under the CSP
    (a violation logged in the console fails the test)."""
    # Poll often so a test sees changes quickly; slow steps so an operator (a test) can act.
    settings.CONSOLE_POLL_SECONDS = 0.4
    settings.CONTROLPLANE_STEP_DELAY = 0.8
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    console_log.attach(page)
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
