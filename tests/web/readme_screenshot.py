"""Makes docs/editor.png, the README's screenshot: two people in one document while a redraft resolves.

    .venv/bin/python -m tests.web.readme_screenshot [--out docs/editor.png]

A real server and two real browser pages (Ada and Grace). Grace asked for the last paragraph to be
redrafted and is typing in it while it runs: the paragraph stays in place, marked, and the live canvas
shows under it. The AI peer's state (a canvas at step 9 of 24, some positions still unresolved) is put
into Ada's page under the id range the session reserves for the server's AI, as the server would send
it, so the picture does not depend on a model; the session answer is stubbed to "engine ready" for the
same reason. Not a test: pytest collects test_*.py only.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.support.node import NodePeer
from tests.support.processes import ROOT, ServerProcess
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

TEXT = """# Launch plan

We ship the editor to the pilot teams on **Monday**. Each team gets its own document and a link to share.

The support rota covers the first week: Ada takes mornings, Grace the afternoons.

Before launch we check three things: the offline mode merges cleanly, read-only links stay read-only, and the AI redraft can be undone by anyone.
"""
PARAGRAPH = "Before launch we check three things: the offline mode merges cleanly, read-only links stay read-only, and the AI redraft can be undone by anyone."
# The canvas mid-redraft: (piece, confidence); a confidence under 0.3 shows as a shimmering placeholder.
CANVAS = [
    ("Before", 0.97), (" launch", 0.95), (",", 0.6), (" we", 0.9), (" confirm", 0.55), (" three", 0.92), (" things", 0.9),
    (":", 0.8), (" offline", 0.7), (" edits", 0.45), (" merge", 0.5), (" cleanly", 0.8), (",", 0.6), ("", 0.1),
    ("", 0.15), (" links", 0.85), (" stay", 0.75), ("", 0.2), (",", 0.5), (" and", 0.9), (" anyone", 0.4), ("", 0.05),
    ("", 0.1), ("", 0.2), (" undo", 0.35), ("", 0.1), (" AI", 0.9), (" redraft", 0.8), (".", 0.95),
]
USERS = {"Ada": "#00707f", "Grace": "#b4233c"}
AI_CLIENT_ID_MIN = 2**32


def open_as(browser, url: str, name: str):
    context = browser.new_context(viewport={"width": 1200, "height": 640}, device_scale_factor=1)
    context.add_init_script(f"localStorage.setItem('redraft.user', {json.dumps(json.dumps({'name': name, 'color': USERS[name]}))})")
    page = context.new_page()
    session = {"doc": "launch-plan", "role": "edit", "secret": False, "engine": {"mode": "local", "status": "ready"},
               "ai_client_id_min": AI_CLIENT_ID_MIN}
    page.route(re.compile(r"/api/docs/[^/]+/session"), lambda route: route.fulfill(json=session))
    page.goto(url)
    page.wait_for_selector("#editor[data-role='edit']")
    page.wait_for_selector("#status[data-state='connected']")
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "editor.png")
    args = parser.parse_args()
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="redraft-shot-"))).start()
    writer = None
    try:
        writer = NodePeer(server.ws_url, "launch-plan")
        writer.wait_synced()
        writer.insert(0, TEXT)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            url = f"{server.http_url}/d/launch-plan"
            ada, grace = open_as(browser, url, "Ada"), open_as(browser, url, "Grace")
            for page in (ada, grace):
                page.wait_for_function("(n) => window.redraft.text.length === n", arg=len(TEXT.encode("utf-16-le")) // 2)
            ada.evaluate("(at) => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: at } }) }",
                         TEXT.index("**Monday**") + len("**Monday**"))
            begin = TEXT.index(PARAGRAPH)
            anchors = ada.evaluate("([s, e]) => ({ start: window.redraft.relativePosition(s), end: window.redraft.relativePosition(e) })",
                                   [begin, begin + len(PARAGRAPH)])
            # Grace types inside the paragraph being redrafted: her words land there, at her caret.
            typed_at = begin + len("Before launch we check three things:")
            grace.evaluate("(at) => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: at } }) }", typed_at)
            grace.keyboard.type(" (all by Friday)")
            ada.wait_for_function("() => window.redraft.text.toString().includes('(all by Friday)')")
            ada.evaluate("""(state) => {
                const awareness = window.redraft.provider.awareness
                const id = window.redraft.board.session.ai_client_id_min + 7
                awareness.states.set(id, state)
                awareness.meta.set(id, { clock: 1, lastUpdated: Date.now() })
                awareness.emit('change', [{ added: [id], updated: [], removed: [] }, 'server'])
            }""", {"user": {"name": "Redraft AI", "color": "#7c3aed", "colorLight": "#7c3aed33"}, "redrafts": [{
                "id": "shot", "requester": {"name": "Grace", "color": USERS["Grace"]}, "kind": "rewrite", "mode": "apply",
                "status": "running", "anchors": anchors, "step": 9, "max_steps": 24, "progress": {"step": 9, "max_steps": 24},
                "text": "".join(piece for piece, _ in CANVAS), "tokens": [list(pair) for pair in CANVAS],
                "original": PARAGRAPH, "error": None,
            }]})
            ada.wait_for_selector(".cm-redraft-canvas .cm-redraft-masked")
            ada.wait_for_selector(".cm-ySelectionInfo")
            ada.wait_for_timeout(400)  # let the fade-ins settle
            args.out.parent.mkdir(parents=True, exist_ok=True)
            ada.screenshot(path=args.out)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        if writer is not None:
            writer.close()
        server.stop()


if __name__ == "__main__":
    main()
