"""Redrafts in the browser: the live canvas drawn from the AI peer's awareness, the palette's requests
against the HTTP contract, and a real redraft end to end (the shipped redraft-small on CPU)."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.support.processes import wait_until
from tests.web.conftest import editor_text, screenshot, wait_connected, wait_editor_text

AI_USER = {"name": "Redraft AI", "color": "#7c3aed", "colorLight": "#7c3aed33", "ai": True}
READY_SESSION = {"doc": "", "role": "edit", "secret": False, "engine": {"mode": "local", "status": "ready"}}


def select(page: Page, anchor: int, head: int) -> None:
    page.evaluate(
        "([anchor, head]) => { const view = window.redraft.view; view.focus(); view.dispatch({ selection: { anchor, head } }) }",
        [anchor, head],
    )


def anchors(page: Page, start: int, end: int) -> dict:
    """Relative positions of a range, made in the page as the browser makes them for a request."""
    return page.evaluate("([s, e]) => ({ start: window.redraft.relativePosition(s), end: window.redraft.relativePosition(e) })",
                         [start, end])


def entry(page_anchors: dict, **fields) -> dict:
    base = {"id": "r1", "requester": {"name": "Ada", "color": "#d1495b"}, "kind": "rewrite", "mode": "apply",
            "status": "running", "anchors": page_anchors, "step": 0, "max_steps": 16, "text": "", "tokens": [],
            "original": "beta gamma", "error": None}
    return {**base, **fields}


def test_everyone_sees_the_live_canvas_from_the_ai_peer(start_server, open_page, node_peers):
    server = start_server()
    doc_url = f"{server.http_url}/d/canvas"
    page_a, page_b = open_page(doc_url), open_page(doc_url)
    wait_connected(page_a)
    wait_connected(page_b)
    page_a.locator(".cm-content").click()
    page_a.keyboard.type("Alpha beta gamma delta.")
    wait_editor_text(page_b, "Alpha beta gamma delta.")
    ai = node_peers(server.ws_url, "canvas")  # stands in for the server's AI peer: the same awareness state
    ai.wait_synced()
    ai.call("set_awareness", field="user", value=AI_USER)
    where = anchors(page_a, 6, 16)  # "beta gamma"

    tokens = [["Be", 0.9], ["ta", 0.5], ["", 0.1], [" and", 0.2], [" gam", 0.31]]
    ai.call("set_awareness", field="redrafts", value=[entry(where, step=3, tokens=tokens)])
    canvas = page_b.locator(".cm-redraft-canvas")
    expect(canvas).to_be_visible()
    expect(canvas.locator(".cm-redraft-who")).to_have_text("Ada · rewriting")
    expect(canvas.locator(".cm-redraft-step")).to_have_text("step 3/16")
    # Resolved tokens fade in by confidence; unresolved ones (< 0.3) are shimmering placeholders, not glyphs.
    expect(canvas.locator(".cm-redraft-token")).to_have_text(["Be", "ta", " gam"])
    opacities = canvas.locator(".cm-redraft-token").evaluate_all("nodes => nodes.map(n => n.style.opacity)")
    assert opacities == ["0.95", "0.65", "0.5"]  # 0.3 + 0.7 * confidence, in steps of 0.05
    expect(canvas.locator(".cm-redraft-masked")).to_have_count(2)
    assert canvas.locator(".cm-redraft-masked").first.evaluate("n => getComputedStyle(n).animationName") == "shimmer"
    expect(page_b.locator(".cm-content")).not_to_contain_text("beta gamma")  # the canvas stands in its place
    expect(page_b.locator("#presence .person.is-ai")).to_have_class(re.compile(r"\bis-busy\b"))
    expect(page_a.locator(".cm-redraft-canvas .cm-redraft-step")).to_have_text("step 3/16")  # everyone sees it

    # Later steps update the same DOM nodes in place: no new widget, so nothing around it jumps.
    canvas.evaluate("node => { node.dataset.probe = 'kept'; node.querySelector('.cm-redraft-token').dataset.probe = 'kept' }")
    resolved = [["Be", 0.95], ["ta", 0.9], [" and", 0.8], [" gam", 0.9], ["ma", 0.7]]
    ai.call("set_awareness", field="redrafts", value=[entry(where, step=9, tokens=resolved)])
    expect(canvas.locator(".cm-redraft-step")).to_have_text("step 9/16")
    expect(canvas.locator(".cm-redraft-token")).to_have_text(["Be", "ta", " and", " gam", "ma"])
    expect(canvas.locator(".cm-redraft-masked")).to_have_count(0)
    assert canvas.evaluate("node => node.dataset.probe") == "kept"
    assert canvas.locator(".cm-redraft-token").first.evaluate("node => node.dataset.probe") == "kept"
    # Typing elsewhere goes on while the canvas runs.
    page_b.evaluate("() => window.redraft.view.focus()")
    page_b.keyboard.press("Control+End")
    page_b.keyboard.type(" Epsilon.")
    wait_editor_text(page_a, "Alpha beta gamma delta. Epsilon.")
    screenshot(page_b, "redraft-live")

    # A suggestion shows as an inline diff against the passage, with its buttons.
    ai.call("set_awareness", field="redrafts",
            value=[entry(where, status="suggested", mode="suggest", step=16, text="Beta and gamma")])
    suggestion = page_b.locator(".cm-redraft-suggestion")
    expect(suggestion).to_be_visible()
    expect(suggestion.locator("del")).to_have_text(["beta"])
    expect(suggestion.locator("ins")).to_have_text(["Beta and"])
    expect(suggestion.get_by_role("button", name="Accept this suggestion")).to_be_visible()
    expect(suggestion.get_by_role("button", name="Reject this suggestion")).to_be_visible()
    expect(suggestion.get_by_role("button", name="Ask again with the same instruction")).to_have_count(0)  # not B's own
    expect(canvas).to_have_count(0)
    screenshot(page_b, "redraft-suggestion")

    ai.call("set_awareness", field="redrafts", value=[entry(where, status="done", step=16, text="Beta and gamma")])
    expect(page_b.locator(".cm-redraft-applied")).to_have_text("beta gamma")
    expect(suggestion).to_have_count(0)
    ai.call("set_awareness", field="redrafts", value=[])
    expect(page_b.locator(".cm-redraft-applied")).to_have_count(0)
    expect(page_b.locator("#presence .person.is-ai")).not_to_have_class(re.compile(r"\bis-busy\b"))
    assert editor_text(page_b) == "Alpha beta gamma delta. Epsilon."


class FakeRedraftApi:
    """Answers the page's redraft requests the way the contract says, and records every call."""

    def __init__(self, page: Page):
        self.calls: list[tuple[str, str]] = []  # (method, path after /redrafts)
        self.requests: list[dict] = []  # the bodies of POST /redrafts
        self.create_replies: list[tuple[int, dict, dict]] = []
        self.replies: dict[tuple[str, str], dict] = {}  # (method, path) -> the redraft's JSON
        self.hold_next_create = False  # keep the next POST's reply back until release(): a slow server
        self.held: list[tuple[Route, tuple[int, dict, dict]]] = []
        page.route(re.compile(r"/api/docs/[^/]+/session"), lambda route: route.fulfill(json=READY_SESSION))
        page.route(re.compile(r"/api/docs/[^/]+/redrafts(/.*)?$"), self.handle)

    def wait_for(self, page: Page, call: tuple[str, str], count: int = 1) -> None:
        """Until the page has made `call` `count` times (routes are answered while Playwright waits)."""
        deadline = time.monotonic() + 10
        while self.calls.count(call) < count:
            assert time.monotonic() < deadline, f"the page never called {call} ({count}x): {self.calls}"
            page.wait_for_timeout(20)

    def release(self) -> None:
        for route, (status, body, headers) in self.held:
            route.fulfill(status=status, json=body, headers=headers)
        self.held.clear()

    def handle(self, route: Route) -> None:
        request = route.request
        path = request.url.split("?")[0].split("/redrafts", 1)[1]
        self.calls.append((request.method, path))
        if request.method == "POST" and path == "":
            self.requests.append(json.loads(request.post_data))
            reply = self.create_replies.pop(0)
            if self.hold_next_create:
                self.hold_next_create = False
                self.held.append((route, reply))
                return
            status, body, headers = reply
            route.fulfill(status=status, json=body, headers=headers)
        else:
            route.fulfill(json=self.replies.get((request.method, path), {"status": "running"}))


def test_the_palette_asks_by_the_contract_and_shows_errors_plainly(start_server, open_page):
    server = start_server()
    page = open_page(f"{server.http_url}/d/palette")
    api = FakeRedraftApi(page)
    page.reload()
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("One two three. Four five six.")
    select(page, 4, 13)  # "two three"

    # A free instruction, the best quality, as a suggestion.
    api.create_replies.append((202, {"id": "r1", "status": "queued"}, {}))
    api.replies["GET", "/r1"] = {"id": "r1", "status": "failed", "error": "the engine ran out of memory"}
    expect(page.locator(".cm-redraft-float")).to_be_visible()  # the button beside the selection
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    expect(palette).to_be_visible()
    expect(palette.locator("#palette-scope")).to_have_text("The selection (2 words).")
    page.keyboard.type("make it formal")
    expect(palette.get_by_role("option").first).to_have_text("Ask: “make it formal”")
    palette.get_by_label("Best").check()
    palette.get_by_label("Suggest first").check()
    screenshot(page, "palette")
    palette.get_by_role("combobox").press("Enter")
    expect(palette).to_be_hidden()
    expect(page.locator(".toast")).to_contain_text("The redraft failed (the engine ran out of memory). Nothing was changed.")
    request = api.requests[0]
    assert set(request) == {"start", "end", "instruction", "mode", "steps", "requester"}  # kind: the server's default
    assert (request["instruction"], request["mode"], request["steps"]) == ("make it formal", "suggest", 48)
    assert request["requester"]["name"] == page.locator("#you-button .you-name").inner_text()
    assert page.evaluate("(r) => [window.redraft.absolutePosition(r.start), window.redraft.absolutePosition(r.end)]", request) == [4, 13]

    # A preset on the paragraph at the cursor; quality and mode are remembered.
    open_page.allow(r"Failed to load resource: the server responded with a status of (429|503)")
    api.create_replies.append((429, {"error": "rate_limited", "detail": "at most 20 redrafts a minute"}, {"Retry-After": "7"}))
    select(page, 2, 2)
    page.keyboard.press("Control+j")
    expect(palette.locator("#palette-scope")).to_have_text("The paragraph at the cursor (6 words).")
    page.keyboard.press("ArrowDown")  # from "Rewrite clearer" to "Shorten"
    expect(palette.get_by_role("option", name="Shorten")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    expect(page.locator(".toast-error").last).to_have_text(
        re.compile(r"The redraft was not started: at most 20 redrafts a minute\. Try again in 7 s\."))
    request = api.requests[1]
    assert (request["kind"], request["mode"], request["steps"]) == ("rewrite", "suggest", 48)
    assert request["instruction"].startswith("Make this passage shorter")
    assert page.evaluate("(r) => [window.redraft.absolutePosition(r.start), window.redraft.absolutePosition(r.end)]", request) == [0, 29]

    api.create_replies.append((503, {"error": "engine_unavailable", "detail": "the model is loading"}, {}))
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.get_by_role("button", name=re.compile("Redraft")).first.click()
    palette.get_by_role("option", name="Continue writing").click()
    expect(page.locator(".toast-error").last).to_have_text(re.compile("The redraft was not started: the model is loading"))
    assert api.requests[2]["kind"] == "continue"
    assert page.evaluate("(r) => [window.redraft.absolutePosition(r.start), window.redraft.absolutePosition(r.end)]", api.requests[2]) == [29, 29]


def test_ones_own_redrafts_can_be_stopped_accepted_undone_rejected_and_retried(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/controls")
    api = FakeRedraftApi(page)
    page.reload()
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("Alpha beta gamma delta.")
    ai = node_peers(server.ws_url, "controls")
    ai.wait_synced()
    ai.call("set_awareness", field="user", value=AI_USER)
    where = anchors(page, 6, 16)

    def ask(redraft_id: str) -> None:
        api.create_replies.append((202, {"id": redraft_id, "status": "queued"}, {}))
        asked = len(api.requests) + 1
        select(page, 6, 16)
        page.keyboard.press("Control+k")
        page.keyboard.type("warmer")
        page.keyboard.press("Enter")
        api.wait_for(page, ("POST", ""), count=asked)

    ask("r2")
    ai.call("set_awareness", field="redrafts", value=[entry(where, id="r2", step=2, tokens=[["x", 0.9]])])
    page.locator(".cm-redraft-canvas").get_by_role("button", name="Stop this redraft").click()
    api.wait_for(page, ("DELETE", "/r2"))

    ask("r3")
    ai.call("set_awareness", field="redrafts", value=[entry(where, id="r3", status="suggested", mode="suggest", text="Beta, gamma")])
    suggestion = page.locator(".cm-redraft-suggestion")
    expect(suggestion.get_by_role("button", name="Ask again with the same instruction")).to_be_visible()  # it is ours
    api.replies["POST", "/r3/accept"] = {"id": "r3", "status": "done"}
    page.keyboard.press("Control+Alt+Enter")
    api.wait_for(page, ("POST", "/r3/accept"))
    expect(page.locator(".toast")).to_contain_text("Redraft applied.")
    api.replies["POST", "/r3/undo"] = {"id": "r3", "status": "undone"}
    page.keyboard.press("Control+Alt+KeyZ")
    api.wait_for(page, ("POST", "/r3/undo"))
    expect(page.locator(".toast")).to_contain_text("The redraft was undone")

    # The AI peer shows our suggestion before our POST has returned: Retry appears once the page knows it is ours.
    api.hold_next_create = True
    ask("r4")
    ai.call("set_awareness", field="redrafts", value=[entry(where, id="r4", status="suggested", mode="suggest", text="Beta, gamma")])
    expect(suggestion.get_by_role("button", name="Reject this suggestion")).to_be_visible()
    expect(suggestion.get_by_role("button", name="Ask again with the same instruction")).to_have_count(0)
    api.release()
    expect(suggestion.get_by_role("button", name="Ask again with the same instruction")).to_be_visible()
    api.create_replies.append((202, {"id": "r5", "status": "queued"}, {}))
    suggestion.get_by_role("button", name="Ask again with the same instruction").click()
    api.wait_for(page, ("DELETE", "/r4"))
    api.wait_for(page, ("POST", ""), count=4)
    retried = api.requests[-1]
    assert (retried["start"], retried["end"], retried["instruction"]) == (where["start"], where["end"], "warmer")
    ai.call("set_awareness", field="redrafts", value=[entry(where, id="r5", status="suggested", mode="suggest", text="Beta, gamma")])
    suggestion.get_by_role("button", name="Reject this suggestion").click()
    api.wait_for(page, ("DELETE", "/r5"))

    api.replies["GET", "/r6"] = {"id": "r6", "status": "conflict", "error": "the passage was deleted"}
    ask("r6")
    expect(page.locator(".toast-error")).to_contain_text(
        "The passage changed too much while the AI was writing (the passage was deleted), so the redraft was not "
        "put in. Nothing was changed: select the passage and try again.")


def test_a_real_redraft_is_seen_live_by_the_other_page_and_undone(start_server, open_page):
    server = start_server(extra_args=("--engine", "local", "--engine-device", "cpu"))
    probe = httpx.post(f"{server.http_url}/api/docs/probe/redrafts", json={})
    if probe.status_code == 404 and "application/json" not in probe.headers.get("content-type", ""):
        pytest.skip("the server has no redraft API yet (POST /api/docs/{doc}/redrafts is not a route)")
    wait_until(lambda: httpx.get(f"{server.http_url}/healthz").json()["engine"]["status"] == "ready", 60,
               "the model to load")
    doc_url = f"{server.http_url}/d/real"
    page_a, page_b = open_page(doc_url), open_page(doc_url)
    wait_connected(page_a)
    wait_connected(page_b)
    page_a.locator(".cm-content").click()
    original = "The meeting moved to Thursday. Bring the draft budget and your questions."
    page_a.keyboard.type(original)
    wait_editor_text(page_b, original)
    # A redraft of the small model takes about a second: B records every canvas it draws.
    page_b.evaluate("""() => {
        window.seenCanvases = []
        new MutationObserver(() => {
            for (const node of document.querySelectorAll('.cm-redraft-canvas')) {
                window.seenCanvases.push({ who: node.querySelector('.cm-redraft-who').textContent,
                                           step: node.querySelector('.cm-redraft-step').textContent })
            }
        }).observe(document.querySelector('.cm-content'), { childList: true, subtree: true, characterData: true })
    }""")

    passage = "Bring the draft budget and your questions."
    start = original.index(passage)
    select(page_a, start, start + len(passage))
    page_a.keyboard.press("Control+k")
    palette = page_a.get_by_role("dialog", name="Redraft with AI")
    palette.get_by_label("Best").check()
    palette.get_by_label("Put it in").check()
    palette.get_by_role("option", name="Rewrite clearer").click()
    expect(page_a.locator(".toast")).to_contain_text("Redraft applied.")
    name_a = page_a.locator("#you-button .you-name").inner_text()
    seen = page_b.evaluate("() => window.seenCanvases")
    assert seen, "page B never drew the live canvas"
    assert seen[0]["who"] == f"{name_a} · rewriting"
    assert any(re.fullmatch(r"step \d+/\d+", canvas["step"]) for canvas in seen), seen
    merged = editor_text(page_a)
    assert merged != original and merged.startswith("The meeting moved to Thursday. ")
    wait_editor_text(page_b, merged)
    expect(page_b.locator(".cm-redraft-canvas")).to_have_count(0)
    screenshot(page_a, "redraft-after")

    page_a.locator(".toast").get_by_role("button", name="Undo").click()
    wait_editor_text(page_a, original)
    wait_editor_text(page_b, original)
    expect(page_a.locator(".toast")).to_contain_text("The redraft was undone")


def test_with_the_engine_off_the_palette_says_so_and_help_lists_every_shortcut(start_server, open_page):
    server = start_server()  # --engine off
    page = open_page(f"{server.http_url}/d/no-engine")
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("Some text.")
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    expect(palette.locator("#palette-note")).to_have_text(re.compile(r"AI redrafts are off on this server"))
    expect(palette.locator("#palette-run")).to_be_disabled()
    page.keyboard.press("Enter")  # nothing is sent
    page.keyboard.press("Escape")
    expect(palette).to_be_hidden()
    expect(page.locator(".cm-content")).to_be_focused()  # back to the text

    page.keyboard.press("Control+Slash")
    help_panel = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_panel).to_be_visible()
    expect(help_panel.locator("#help-keys tr")).to_have_count(13)
    expect(help_panel).to_contain_text("Ctrl+Alt+Z")
    expect(help_panel).to_contain_text("Undo the last AI redraft you applied")
    screenshot(page, "help")
    page.keyboard.press("Escape")
    expect(help_panel).to_be_hidden()
    assert editor_text(page) == "Some text."
