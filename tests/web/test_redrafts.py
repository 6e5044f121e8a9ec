"""Redrafts in the browser: the live canvas drawn from the AI peer's awareness, the palette's requests
against the HTTP contract, and a real redraft end to end (the shipped redraft-small on CPU).

Where a test needs the AI peer's exact state it either runs a real server with a scripted engine
worker (tests/web/scripted_engine.py) or, for the buttons' wiring against a stubbed API, puts the
state into the page's awareness under an id from the AI's reserved range, as the server's AI peer
would; a client announcing itself as the AI is not believed (tested below)."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.support.processes import wait_until
from tests.web.conftest import (
    AI_CLIENT_ID_MIN,
    AI_USER,
    editor_text,
    screenshot,
    show_ai,
    two_writers,
    wait_connected,
    wait_editor_text,
)
from tests.web.scripted_engine import ScriptedEngine
from tests.web.test_accessibility import axe_violations

SMALL_MODEL = {"tasks": ["fix", "shorten", "continue", "fill"], "canvas_init": "passage",
               "note": "A small local model: it fixes spelling, shortens, fills in and continues."}
READY_SESSION = {"doc": "", "role": "edit", "secret": False, "engine": {"mode": "local", "status": "ready"},
                 "ai_client_id_min": AI_CLIENT_ID_MIN}


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


def ask(page: Page, start: int, end: int, instruction: str, mode: str = "apply") -> None:
    select(page, start, end)
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    page.keyboard.type(instruction)
    palette.get_by_label("Suggest first" if mode == "suggest" else "Put it in").check()
    palette.get_by_role("combobox").press("Enter")
    expect(palette).to_be_hidden()


def test_everyone_sees_the_live_canvas_from_the_ai_peer(scripted_server, open_page, node_peers):
    server, engine = scripted_server()
    doc_url = f"{server.http_url}/d/canvas"
    page_a, page_b = two_writers(open_page, doc_url, "Alpha beta gamma delta.")
    # A client that calls itself the AI is not believed: nothing it publishes is drawn.
    impostor = node_peers(server.ws_url, "canvas")
    impostor.wait_synced()
    impostor.call("set_awareness", field="user", value=AI_USER)
    impostor.call("set_awareness", field="redrafts", value=[entry(anchors(page_a, 6, 16), id="fake", step=3)])
    expect(page_b.locator("#presence .person-name")).to_have_count(2)  # listed as a person, not as the AI
    expect(page_b.locator(".cm-redraft-canvas")).to_have_count(0)

    ask(page_a, 6, 16, "warmer")  # "beta gamma"
    job = engine.next_job()
    tokens = [["Be", 0.9], ["ta", 0.5], ["", 0.1], [" and", 0.2], [" gam", 0.31]]
    job.progress(3, 16, tokens)
    canvas = page_b.locator(".cm-redraft-canvas")
    expect(canvas).to_be_visible()
    name_a = page_a.locator("#you-button .you-name").inner_text()
    expect(canvas.locator(".cm-redraft-who")).to_have_text(f"{name_a} · rewriting")
    expect(canvas.locator(".cm-redraft-step")).to_have_text("step 3/16")
    # Resolved tokens fade in by confidence; unresolved ones (< 0.3) are shimmering placeholders, not glyphs.
    expect(canvas.locator(".cm-redraft-token")).to_have_text(["Be", "ta", " gam"])
    opacities = canvas.locator(".cm-redraft-token").evaluate_all("nodes => nodes.map(n => n.style.opacity)")
    assert opacities == ["0.95", "0.65", "0.5"]  # 0.3 + 0.7 * confidence, in steps of 0.05
    expect(canvas.locator(".cm-redraft-masked")).to_have_count(2)
    assert canvas.locator(".cm-redraft-masked").first.evaluate("n => getComputedStyle(n).animationName") == "shimmer"
    assert editor_text(page_b) == "Alpha beta gamma delta."  # the passage stays, in the text itself
    expect(page_b.locator(".cm-redraft-busy")).to_have_text("beta gamma")
    expect(page_b.locator("#presence .person.is-ai")).to_have_class(re.compile(r"\bis-busy\b"))
    expect(page_a.locator(".cm-redraft-canvas .cm-redraft-step")).to_have_text("step 3/16")  # everyone sees it

    # Later steps update the same DOM nodes in place: no new widget, so nothing around it jumps.
    canvas.evaluate("node => { node.dataset.probe = 'kept'; node.querySelector('.cm-redraft-token').dataset.probe = 'kept' }")
    job.progress(9, 16, [["Be", 0.95], ["ta", 0.9], [" and", 0.8], [" gam", 0.9], ["ma", 0.7]])
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
    job.finish("Beta and gamma")
    wait_editor_text(page_b, "Alpha Beta and gamma delta. Epsilon.")
    expect(canvas).to_have_count(0)
    expect(page_b.locator("#presence .person.is-ai")).not_to_have_class(re.compile(r"\bis-busy\b"))


def test_a_suggestion_shows_a_diff_that_follows_edits_and_expires(scripted_server, open_page):
    server, engine = scripted_server("--redraft-suggestion-ttl-s", "10")
    doc_url = f"{server.http_url}/d/suggest"
    text = "Alpha beta gamma delta.\n\nThe old plan was slow and nobody liked it much."
    page_a, page_b = two_writers(open_page, doc_url, text)

    # A small edit: an inline diff under the passage, which stays editable.
    ask(page_a, 6, 16, "warmer", mode="suggest")
    engine.next_job().finish("Beta and gamma")
    suggestion = page_b.locator(".cm-redraft-suggestion")
    expect(suggestion.locator(".cm-redraft-diff del")).to_have_text(["beta"])
    expect(suggestion.locator(".cm-redraft-diff ins")).to_have_text(["Beta and"])
    expect(suggestion.get_by_role("button", name="Accept")).to_be_visible()
    expect(suggestion.get_by_role("button", name="Retry")).to_have_count(0)  # not B's own
    expect(page_a.locator(".cm-redraft-suggestion").get_by_role("button", name="Retry")).to_be_visible()
    # Editing inside the pending suggestion: the caret stays where it is and the diff follows the text.
    select(page_b, 11, 11)  # "beta |gamma"
    page_b.keyboard.type("big ")
    wait_editor_text(page_a, text.replace("beta gamma", "beta big gamma"))
    assert page_b.evaluate("() => window.redraft.view.state.selection.main.head") == 15
    expect(suggestion.locator(".cm-redraft-diff del")).to_have_text(["beta", "big "])
    expect(suggestion.locator(".cm-redraft-note")).to_contain_text("edited after the AI wrote this")
    screenshot(page_b, "redraft-suggestion")
    size = page_b.locator(".cm-redraft-suggestion .accept").bounding_box()
    assert size["height"] >= 32, size  # a target a finger or an unsteady hand can hit

    # A full rewrite: before and after as two blocks, not a word salad.
    start = text.index("The old plan")
    ask(page_a, start + 4, start + len("The old plan was slow and nobody liked it much.") + 4, "new", mode="suggest")
    engine.next_job().finish("A faster plan replaced it, and the team welcomed the change.")
    rewrite = page_b.locator(".cm-redraft-suggestion.is-rewrite")
    expect(rewrite.locator(".cm-redraft-before")).to_contain_text("The old plan was slow")
    expect(rewrite.locator(".cm-redraft-after")).to_contain_text("A faster plan replaced it")

    # Someone else rejects Ada's suggestion: Ada is told who.
    suggestion.first.get_by_role("button", name="Reject").click()
    name_b = page_b.locator("#you-button .you-name").inner_text()
    expect(page_a.locator(".toast").last).to_contain_text(f"{name_b} rejected your suggestion")
    # The other one expires (the server was started with a 10 s lifetime): shown as expired, then gone.
    expect(page_b.locator('.cm-redraft-suggestion[data-status="expired"]')).to_contain_text("expired", timeout=25_000)
    expect(page_a.locator(".toast").last).to_contain_text("expired")
    expired = page_a.locator('.cm-redraft-suggestion[data-status="expired"]')
    expect(expired.get_by_role("button", name="Retry")).to_be_visible()  # Ada's own: she may ask again
    expect(expired.get_by_role("button", name="Accept")).to_have_count(0)
    assert "A faster plan" not in editor_text(page_a)


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
    assert set(request) == {"start", "end", "kind", "task", "instruction", "mode", "steps", "requester"}
    assert (request["kind"], request["task"], request["instruction"], request["mode"], request["steps"]) == (
        "rewrite", "instruct", "make it formal", "suggest", 48)
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
    assert (request["kind"], request["task"], request["mode"], request["steps"]) == ("rewrite", "shorten", "suggest", 48)
    assert "instruction" not in request  # the server knows each task's own
    assert page.evaluate("(r) => [window.redraft.absolutePosition(r.start), window.redraft.absolutePosition(r.end)]", request) == [0, 29]

    api.create_replies.append((503, {"error": "engine_unavailable", "detail": "the model is loading"}, {}))
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.get_by_role("button", name=re.compile("Redraft")).first.click()
    palette.get_by_role("option", name="Continue writing").click()
    expect(page.locator(".toast-error").last).to_have_text(re.compile("The redraft was not started: the model is loading"))
    assert (api.requests[2]["kind"], api.requests[2]["task"]) == ("continue", "continue")
    assert page.evaluate("(r) => [window.redraft.absolutePosition(r.start), window.redraft.absolutePosition(r.end)]", api.requests[2]) == [29, 29]


def test_ones_own_redrafts_can_be_stopped_accepted_undone_rejected_and_retried(start_server, open_page):
    server = start_server()
    page = open_page(f"{server.http_url}/d/controls")
    api = FakeRedraftApi(page)
    page.reload()
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("Alpha beta gamma delta.")
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
    show_ai(page, [entry(where, id="r2", step=2, tokens=[["x", 0.9]])])
    page.locator(".cm-redraft-canvas").get_by_role("button", name="Stop").click()
    api.wait_for(page, ("DELETE", "/r2"))

    ask("r3")
    show_ai(page, [entry(where, id="r3", status="suggested", mode="suggest", text="Beta, gamma")])
    suggestion = page.locator(".cm-redraft-suggestion")
    expect(suggestion.get_by_role("button", name="Retry")).to_be_visible()  # it is ours
    api.replies["POST", "/r3/accept"] = {"id": "r3", "status": "done"}
    page.keyboard.press("Control+Shift+Enter")
    api.wait_for(page, ("POST", "/r3/accept"))
    expect(page.locator(".toast")).to_contain_text("Redraft applied.")
    api.replies["POST", "/r3/undo"] = {"id": "r3", "status": "undone"}
    page.keyboard.press("Alt+Shift+KeyZ")
    api.wait_for(page, ("POST", "/r3/undo"))
    expect(page.locator(".toast")).to_contain_text("The redraft was undone")

    # The AI peer shows our suggestion before our POST has returned: Retry appears once the page knows it is ours.
    api.hold_next_create = True
    ask("r4")
    show_ai(page, [entry(where, id="r4", status="suggested", mode="suggest", text="Beta, gamma")])
    expect(suggestion.get_by_role("button", name="Reject")).to_be_visible()
    expect(suggestion.get_by_role("button", name="Retry")).to_have_count(0)
    api.release()
    expect(suggestion.get_by_role("button", name="Retry")).to_be_visible()
    api.create_replies.append((202, {"id": "r5", "status": "queued"}, {}))
    suggestion.get_by_role("button", name="Retry").click()
    api.wait_for(page, ("DELETE", "/r4"))
    api.wait_for(page, ("POST", ""), count=4)
    retried = api.requests[-1]
    assert (retried["start"], retried["end"], retried["instruction"]) == (where["start"], where["end"], "warmer")
    show_ai(page, [entry(where, id="r5", status="suggested", mode="suggest", text="Beta, gamma")])
    suggestion.get_by_role("button", name="Reject").click()
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
    original = "The meeting moved to Thursday. Bring teh draft budegt and your questions."
    page_a, page_b = two_writers(open_page, doc_url, original)
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

    passage = "Bring teh draft budegt and your questions."
    start = original.index(passage)
    select(page_a, start, start + len(passage))
    page_a.keyboard.press("Control+k")
    palette = page_a.get_by_role("dialog", name="Redraft with AI")
    palette.get_by_label("Best").check()
    palette.get_by_label("Put it in").check()
    palette.get_by_role("option", name="Fix spelling").click()  # the task the shipped model declares
    expect(page_a.locator(".toast")).to_contain_text("Redraft applied.")
    name_a = page_a.locator("#you-button .you-name").inner_text()
    seen = page_b.evaluate("() => window.seenCanvases")
    assert seen, "page B never drew the live canvas"
    assert seen[0]["who"] == f"{name_a} · rewriting"
    assert any(re.fullmatch(r"step \d+/\d+", canvas["step"]) for canvas in seen), seen
    merged = "The meeting moved to Thursday. Bring the draft budget and your questions."  # its two slips fixed
    wait_editor_text(page_a, merged)
    wait_editor_text(page_b, merged)
    expect(page_b.locator(".cm-redraft-canvas")).to_have_count(0)
    screenshot(page_a, "redraft-after")

    page_a.locator(".toast").get_by_role("button", name="Undo").click()
    wait_editor_text(page_a, original)
    wait_editor_text(page_b, original)
    expect(page_a.locator(".toast")).to_contain_text("The redraft was undone")


def test_the_palette_offers_only_what_the_model_declares_and_names_it(scripted_server, open_page):
    server, engine = scripted_server(tasks=SMALL_MODEL)
    page = open_page(f"{server.http_url}/d/declared")
    sent = []
    page.on("request", lambda request: sent.append(json.loads(request.post_data))
            if request.method == "POST" and request.url.endswith("/redrafts") else None)
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("Teh meeting moved to Thursday.")
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    expect(palette.get_by_role("option")).to_have_text(["Shorten", "Fix spelling", "Continue writing", "Fill in here"])
    expect(palette.locator("#palette-model-name")).to_have_text("Model: scripted")
    expect(palette.locator("#palette-model-note")).to_have_text(SMALL_MODEL["note"])
    combobox = palette.get_by_role("combobox")
    expect(combobox).to_have_attribute("placeholder", "scripted takes no free instructions: pick one below")
    expect(palette.locator("#palette-note")).to_be_hidden()
    screenshot(page, "palette-declared")
    page.keyboard.type("make it formal")  # no "Ask" for a model that takes no free instructions: it says so
    expect(palette.get_by_role("option")).to_have_count(4)
    expect(palette.locator("#palette-note")).to_have_text("scripted takes no free instructions: pick one of the tasks above.")
    expect(palette.get_by_role("option", name="Shorten")).to_have_attribute("aria-selected", "true")
    expect(palette.locator("#palette-run")).to_have_text("Shorten")
    expect(palette.locator("#palette-run")).to_be_enabled()
    assert axe_violations(page) == []  # the model's line, its note and the hint included
    screenshot(page, "palette-declared-typed")
    page.keyboard.press("ArrowUp")  # the keys still move, round the list
    expect(palette.get_by_role("option", name="Fill in here")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(palette.get_by_role("option", name="Fix spelling")).to_have_attribute("aria-selected", "true")
    palette.get_by_label("Put it in").check()
    page.keyboard.press("Enter")
    expect(palette).to_be_hidden()
    job = engine.next_job()
    assert (job.spec["kind"], job.spec["task"], job.spec["passage"]) == ("rewrite", "fix", "Teh meeting moved to Thursday.")
    assert job.spec["instruction"] == "Fix spelling, typos and doubled words. Change nothing else."  # the task's own
    assert (sent[0]["kind"], sent[0]["task"]) == ("rewrite", "fix") and "instruction" not in sent[0]
    job.finish("The meeting moved to Thursday.")
    wait_editor_text(page, "The meeting moved to Thursday.")

    # A page that asks anyway (an older one, or the console): the server refuses in the model's own words.
    open_page.allow(r"Failed to load resource: the server responded with a status of 400")
    page.evaluate("() => window.redraft.board.request({ from: 0, to: 3, kind: 'rewrite', task: 'instruct', instruction: 'Be formal.' })")
    expect(page.locator(".toast-error").last.locator("p")).to_have_text(
        "The redraft was not started: scripted does not take free instructions; it does: shorten, fix spelling, "
        "continue, fill in")


def test_a_page_opened_before_any_worker_learns_the_model_when_the_palette_opens(start_server, redis_server, open_page):
    server = start_server(extra_args=("--engine", "redis"), redis_url=redis_server.url)
    page = open_page(f"{server.http_url}/d/early")
    wait_connected(page)
    assert page.evaluate("() => window.redraft.board.session.model") == {
        "name": None, "tasks": ["rewrite", "shorten", "expand", "fix", "instruct", "continue", "fill"], "note": ""}
    engine = ScriptedEngine(redis_server.url, tasks=SMALL_MODEL)
    try:
        wait_until(lambda: httpx.get(f"{server.http_url}/healthz").json()["engine"]["status"] == "ready", 20, "worker")
        page.locator(".cm-content").click()
        page.keyboard.type("Some text.")
        page.keyboard.press("Control+k")
        palette = page.get_by_role("dialog", name="Redraft with AI")
        expect(palette.get_by_role("option")).to_have_text(["Shorten", "Fix spelling", "Continue writing", "Fill in here"])
        expect(palette.locator("#palette-model-name")).to_have_text("Model: scripted")
        expect(palette.get_by_role("combobox")).to_have_attribute("placeholder", re.compile("takes no free instructions"))
    finally:
        engine.close()


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
    expect(palette.locator("#palette-model")).to_be_hidden()  # no model to name
    expect(palette.get_by_role("option")).to_have_count(6)  # every preset: nothing is known to refuse any
    page.keyboard.press("Enter")  # nothing is sent
    page.keyboard.press("Escape")
    expect(palette).to_be_hidden()
    expect(page.locator(".cm-content")).to_be_focused()  # back to the text

    page.keyboard.press("Control+Slash")
    help_panel = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_panel).to_be_visible()
    expect(help_panel.locator("#help-keys tr")).to_have_count(15)
    expect(help_panel).to_contain_text("Alt+Shift+Z")
    expect(help_panel).to_contain_text("Alt+Shift+V")  # the versions panel
    expect(help_panel).not_to_contain_text("Ctrl+Alt")  # AltGr on Windows: it types letters
    expect(help_panel).to_contain_text("Undo the last AI redraft you applied")
    screenshot(page, "help")
    page.keyboard.press("Escape")
    expect(help_panel).to_be_hidden()
    assert editor_text(page) == "Some text."


def test_a_suggestion_whose_words_someone_changed_says_it_no_longer_fits(scripted_server, open_page):
    server, engine = scripted_server()
    doc_url = f"{server.http_url}/d/conflict"
    page_a, page_b = two_writers(open_page, doc_url, "Alpha beta gamma delta.")
    ask(page_a, 6, 16, "warmer", mode="suggest")
    engine.next_job().finish("Beta and gamma")
    expect(page_b.locator(".cm-redraft-suggestion .cm-redraft-diff")).to_be_visible()
    select(page_b, 6, 10)  # "beta": the very word the suggestion rewrites
    page_b.keyboard.type("BETA")
    wait_editor_text(page_a, "Alpha BETA gamma delta.")
    stale = page_a.locator('.cm-redraft-suggestion[data-status="conflict"]')
    expect(stale.locator(".cm-redraft-label")).to_contain_text("no longer fits")
    expect(stale.get_by_role("button", name="Accept")).to_have_count(0)
    expect(page_a.locator(".toast").last).to_contain_text("Your suggestion no longer fits")
    stale.get_by_role("button", name="Reject").click()
    expect(page_a.locator(".cm-redraft-suggestion")).to_have_count(0)
    assert editor_text(page_a) == "Alpha BETA gamma delta."
