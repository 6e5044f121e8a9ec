"""Headless Chromium for the editor tests: Debian's browser driven by Playwright, one context per page."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from server.auth import mint_token
from tests.support.processes import ROOT, wait_until
from tests.web.scripted_engine import ScriptedEngine

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
    """Opens a URL in a fresh browser context (its own storage, so its own guest) and fails on page errors.

    `open_page.allow(pattern)` accepts console messages a test provokes on purpose: Chromium logs
    every failed request (an HTTP 503 the page shows, a socket refused while offline) as an error.
    """
    contexts = []
    problems: list[str] = []
    allowed: list[re.Pattern] = []

    def open_url(url: str) -> Page:
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type in ("error", "warning") else None)
        page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        page.goto(url)
        return page

    open_url.allow = lambda pattern: allowed.append(re.compile(pattern))
    # Depending on start_server closes the pages before their server stops, so no page sees it go.
    yield open_url
    for context in contexts:
        context.close()
    unexpected = [problem for problem in problems if not any(pattern.search(problem) for pattern in allowed)]
    assert unexpected == [], "\n".join(unexpected)


@pytest.fixture
def scripted_server(start_server, redis_server):
    """A server with `--engine redis` whose only worker is a ScriptedEngine the test drives: (server, engine).
    `tasks=` is the declaration the engine publishes (none: the server offers every task)."""
    engines = []

    def start(*extra_args: str, tasks: dict | None = None):
        engine = ScriptedEngine(redis_server.url, tasks=tasks)
        engines.append(engine)
        server = start_server(extra_args=("--engine", "redis", *extra_args), redis_url=redis_server.url)
        wait_until(lambda: httpx.get(f"{server.http_url}/healthz").json()["engine"]["status"] == "ready", 20,
                   "the scripted engine to be ready")
        return server, engine

    yield start
    for engine in engines:
        engine.close()


def wait_connected(page: Page) -> None:
    """Synced with the server, and the session answered (the editor is read-only until it does)."""
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#editor")).to_have_attribute("data-role", re.compile(r"^(edit|read)$"))


def editor_text(page: Page) -> str:
    return page.evaluate("() => window.redraft.view.state.doc.toString()")


def wait_editor_text(page: Page, expected: str) -> None:
    """Waits until the editor shows `expected` (the Y.Text and the view agree: y-codemirror keeps them in step)."""
    try:
        page.wait_for_function("(expected) => window.redraft.view.state.doc.toString() === expected", arg=expected)
    except Exception as exc:
        raise AssertionError(f"the editor shows {editor_text(page)!r}, not {expected!r}") from exc


def two_pages(open_page, first_url: str, second_url: str, text: str = "") -> tuple[Page, Page]:
    """Two people on one document through these addresses, both connected; the first types `text` and the
    second has it."""
    first, second = open_page(first_url), open_page(second_url)
    wait_connected(first)
    wait_connected(second)
    if text:
        first.locator(".cm-content").click()
        first.keyboard.type(text)
        wait_editor_text(second, text)
    return first, second


def two_writers(open_page, url: str, text: str = "") -> tuple[Page, Page]:
    """Two people with the same link; the first types `text` and the second has it."""
    return two_pages(open_page, url, url, text)


def share_link(http_url: str, secret: str, doc: str, role: str) -> str:
    """The editor's address for `doc` with a share token of `role` (edit or read), as the Share button makes."""
    return f"{http_url}/d/{doc}?token={mint_token(secret, doc, role, ttl_s=None)}"


AI_USER = {"name": "Redraft AI", "color": "#7c3aed", "colorLight": "#7c3aed33", "ai": True}
AI_CLIENT_ID_MIN = 2**32


def show_ai(page: Page, redrafts: list, user: dict = AI_USER) -> None:
    """The AI peer's awareness state as this page would receive it from the server: under an id of the range
    the session reserves for the server's peers (read from the page, so it is whatever the server says)."""
    page.wait_for_function("() => window.redraft.board.session !== null")
    page.evaluate("""([state]) => {
        const awareness = window.redraft.provider.awareness
        const id = window.redraft.board.session.ai_client_id_min + 7
        const had = awareness.states.has(id)
        awareness.states.set(id, state)
        awareness.meta.set(id, { clock: (awareness.meta.get(id)?.clock || 0) + 1, lastUpdated: Date.now() })
        awareness.emit('change', [{ added: had ? [] : [id], updated: had ? [id] : [], removed: [] }, 'server'])
    }""", [{"user": user, "redrafts": redrafts}])


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")
