"""Headless Chromium for the editor tests: Debian's browser driven by Playwright, one context per page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.processes import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = ROOT / "test-output"
TIMEOUT_MS = 10_000  # a loopback sync takes milliseconds; 10 s only guards against a hang

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser():
    # No skip when Chromium is missing: CI installs it, and a silent skip would hide the editor's tests.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, start_server):
    """Opens a URL in a fresh browser context (its own storage, so its own guest) and fails on page errors."""
    contexts = []
    problems: list[str] = []

    def open_url(url: str) -> Page:
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type in ("error", "warning") else None)
        page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        page.goto(url)
        return page

    # Depending on start_server closes the pages before their server stops, so no page sees it go.
    yield open_url
    for context in contexts:
        context.close()
    assert problems == [], "\n".join(problems)


def wait_connected(page: Page) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")
