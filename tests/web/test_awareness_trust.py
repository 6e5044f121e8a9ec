"""A hostile collaborator's awareness in a real browser (issue 14 items 3-4): another person's page changes
nothing, fetches nothing and offers no Accept button for a fake AI.

The attacker is a raw websocket with frames written byte by byte; the CSS it carries points at a local HTTP
listener, so a fetch would show there and in the page's requests. The server refuses those states; the
page's own defence (colours made strict before y-codemirror.next writes them into a `style`) is checked
too, with a state put straight into the page's awareness as if it had got through.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from server.awareness_trust import AI_CLIENT_ID_MIN
from tests.support.pyclient import write_bytes, write_uint
from tests.support.raw import open_raw
from tests.web.conftest import show_ai, wait_connected, wait_editor_text

MALLORY = 3_000_001
# Both ends of the text, as JSON relative positions (y-codemirror reads a cursor's fields as they are).
WHOLE_TEXT = {"anchor": {"type": None, "tname": "content", "item": None, "assoc": -1},
              "head": {"type": None, "tname": "content", "item": None, "assoc": 0}}


def awareness_frame(*entries) -> bytes:
    body = write_uint(len(entries))
    for client_id, clock, state in entries:
        body += write_uint(client_id) + write_uint(clock) + write_bytes(json.dumps(state).encode())
    return b"\x01" + write_bytes(body)


@pytest.fixture
def listener():
    """A local HTTP server that records every path asked of it: (base URL, paths)."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            paths.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", paths
    server.shutdown()
    server.server_close()


def test_css_colours_and_a_fake_ai_change_nothing_on_another_persons_page(start_server, open_page, listener):
    base, paths = listener
    server = start_server()
    page = open_page(f"{server.http_url}/d/hostile")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("Alpha beta gamma delta")
    wait_editor_text(page, "Alpha beta gamma delta")
    where = page.evaluate("() => ({ start: window.redraft.relativePosition(6),"
                          " end: window.redraft.relativePosition(16) })")
    css = f"red;position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:99999;background-image:url({base}/x)"
    fake = {"id": "fake", "requester": {"name": "Ada", "color": css}, "kind": "rewrite", "mode": "suggest",
            "status": "suggested", "anchors": where, "step": 16, "max_steps": 16, "text": "pwned", "tokens": [],
            "original": "beta gamma", "error": None}
    ai_user = {"name": "Redraft AI", "color": "#7c3aed", "colorLight": "#7c3aed33", "ai": True}

    with open_raw(server.ws_url, "hostile") as mallory:
        mallory.send(awareness_frame((MALLORY, 1, {"user": {"name": "m", "color": css, "colorLight": css},
                                                   "cursor": WHOLE_TEXT})))
        mallory.send(awareness_frame((AI_CLIENT_ID_MIN + 9, 1, {"user": ai_user, "redrafts": [fake]})))
        # Its own id, a valid colour, the AI's name and a suggestion: shown as what it is, a person.
        mallory.send(awareness_frame((MALLORY, 2, {"user": ai_user, "redrafts": [fake], "cursor": WHOLE_TEXT})))
        expect(page.locator("#presence .person-name")).to_have_text(["Redraft AI"])
        expect(page.locator("#presence .person.is-ai")).to_have_count(0)
        expect(page.locator(".cm-ySelectionCaret")).to_have_count(1)
        page.wait_for_function("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        expect(page.locator(".cm-redraft-suggestion")).to_have_count(0)
        expect(page.get_by_role("button", name="Accept")).to_have_count(0)

        # Defence in depth: a state with CSS colours that got into the page's awareness all the same.
        page.evaluate("""([id, state]) => {
            const awareness = window.redraft.provider.awareness
            awareness.states.set(id, state)
            awareness.meta.set(id, { clock: 1, lastUpdated: Date.now() })
            awareness.emit('change', [{ added: [id], updated: [], removed: [] }, 'server'])
            awareness.emit('update', [{ added: [id], updated: [], removed: [] }, 'server'])
        }""", [MALLORY + 1, {"user": {"name": "slipped", "color": css, "colorLight": css}, "cursor": WHOLE_TEXT}])
        expect(page.locator(".cm-ySelectionCaret")).to_have_count(2)
        styles = page.locator(".cm-ySelectionCaret, .cm-ySelection, .cm-yLineSelection").evaluate_all(
            "nodes => nodes.map((node) => node.getAttribute('style'))")
        assert styles and all("url(" not in style and "fixed" not in style for style in styles), styles
        covered = page.evaluate("""() => {
            const hit = document.elementFromPoint(innerWidth / 2, innerHeight / 2)
            return hit === null || hit.closest('.cm-ySelectionCaret, .cm-ySelection, .avatar') !== null
        }""")
        assert not covered

        # A fetch the page does make reaches the listener: after it, one from the states above would have too.
        page.evaluate("""(url) => {
            const probe = document.createElement('div')
            probe.style.cssText = `width:4px;height:4px;background-image:url(${url})`
            document.body.append(probe)
        }""", f"{base}/control")
        page.wait_for_function("(url) => performance.getEntriesByName(url).length > 0", arg=f"{base}/control")
        assert paths == ["/control"]
        assert [url for url in requests if url.startswith(base)] == [f"{base}/control"]

        # The same suggestion from the id the server reserves for its AI would show its buttons.
        show_ai(page, [fake])
        expect(page.get_by_role("button", name="Accept")).to_have_count(1)
