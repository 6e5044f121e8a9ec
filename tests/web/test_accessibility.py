"""Accessibility and small screens: axe-core finds nothing on the start page, the editor, the palette and a
pending suggestion; at phone width (390x844) the panels open on screen and the suggestion's buttons are
touch targets; a link without access says so (4401) rather than claiming to be read-only."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from server.auth import mint_token
from tests.support.processes import ROOT
from tests.web.conftest import screenshot, share_link, show_ai, two_writers, wait_connected

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
SECRET = "a-test-secret-of-32-characters!!"
PHONE = {"width": 390, "height": 844}


def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it is now, one readable line each (rule, impact, where)."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in results["violations"]]


def suggestion_entry(page: Page, start: int, end: int, text: str, requester: dict) -> dict:
    where = page.evaluate("([s, e]) => ({ start: window.redraft.relativePosition(s), end: window.redraft.relativePosition(e) })",
                          [start, end])
    original = page.evaluate("([s, e]) => window.redraft.view.state.doc.sliceString(s, e)", [start, end])
    return {"id": "s1", "requester": requester, "kind": "rewrite", "mode": "suggest", "status": "suggested",
            "anchors": where, "step": 12, "max_steps": 12, "text": text, "tokens": [], "original": original, "error": None}


def test_axe_finds_nothing_on_the_start_page_the_editor_the_palette_and_a_suggestion(start_server, open_page):
    server = start_server()
    start = open_page(f"{server.http_url}/")
    expect(start.get_by_label("Document name")).to_be_focused()
    assert axe_violations(start) == []

    url = f"{server.http_url}/d/axe"
    text = "# Plan\n\nThe team ships on Monday and the support rota covers the first week."
    page, other = two_writers(open_page, url, text)
    other.evaluate("() => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: 12 } }) }")
    expect(page.locator(".cm-ySelectionInfo")).to_be_visible()
    assert axe_violations(page) == []

    page.keyboard.press("Control+k")
    expect(page.get_by_role("dialog", name="Redraft with AI")).to_be_visible()
    assert axe_violations(page) == []
    page.keyboard.press("Escape")

    start_at = text.index("The team")
    show_ai(page, [suggestion_entry(page, start_at, len(text), "The team ships on Monday; support covers week one.",
                                    {"name": "Grace", "color": "#b4233c"})])
    expect(page.locator(".cm-redraft-suggestion")).to_be_visible()
    assert axe_violations(page) == []
    page.emulate_media(color_scheme="dark")  # the dark scheme has its own colours to check
    assert axe_violations(page) == []
    page.emulate_media(color_scheme="light")
    page.get_by_role("button", name="History").click()
    expect(page.get_by_role("dialog", name="Redraft history")).to_be_visible()
    assert axe_violations(page) == []


def test_at_phone_width_panels_open_on_screen_and_buttons_are_touch_targets(start_server, open_page):
    server = start_server()
    page = open_page(f"{server.http_url}/d/phone")
    page.set_viewport_size(PHONE)
    wait_connected(page)
    page.locator(".cm-content").click()
    text = "Alpha beta gamma delta, a sentence long enough to wrap on a phone screen twice over."
    page.keyboard.type(text)
    for name, panel in (("Share", "Share this document"), ("Keyboard shortcuts", "Keyboard shortcuts"),
                        ("History", "Redraft history")):
        button = page.get_by_role("button", name=name, exact=True)
        box = button.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
        button.click()
        dialog = page.get_by_role("dialog", name=panel)
        expect(dialog).to_be_visible()
        box = dialog.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (panel, box)
        if name == "History":
            screenshot(page, "phone-history")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

    show_ai(page, [suggestion_entry(page, 0, len(text), "Alpha and beta, a sentence that wraps.",
                                    {"name": page.locator("#you-button .you-name").inner_text(), "color": "#00707f"})])
    page.evaluate("() => window.redraft.board.mine.set('s1', { body: {}, status: 'suggested' })")  # ours: Retry shows
    show_ai(page, [suggestion_entry(page, 0, len(text), "Alpha and beta, a sentence that wraps.", {"name": "Me", "color": "#00707f"})])
    # The board redraws on the next animation frame: wait for the button only ours gets before measuring.
    expect(page.locator(".cm-redraft-suggestion").get_by_role("button", name="Retry")).to_be_visible()
    for name in ("Accept", "Reject", "Retry"):
        box = page.locator(".cm-redraft-suggestion").get_by_role("button", name=name).bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, (name, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
    screenshot(page, "phone-suggestion")
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    box = palette.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    screenshot(page, "phone-palette")


def test_without_a_token_on_a_server_with_a_secret_the_page_says_the_link_gives_no_access(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    open_page.allow(r"Failed to load resource: the server responded with a status of 401")
    open_page.allow(r"WebSocket connection to .* failed")
    page = open_page(f"{server.http_url}/")
    page.get_by_role("button", name="New document").click()
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("does not give access")
    expect(notice).to_contain_text("4401")
    expect(notice).not_to_contain_text("read-only")
    expect(page.locator("#readonly-badge")).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("Redraft"))).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("4401")
    screenshot(page, "editor-no-access")
    # With a token the same document opens for editing.
    page.goto(f"{server.http_url}/d/anything?token={mint_token(SECRET, '*', 'edit', ttl_s=None)}")
    wait_connected(page)
    expect(notice).to_be_hidden()


def test_axe_finds_nothing_on_a_read_only_link(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    reader = open_page(share_link(server.http_url, SECRET, "minutes", "read"))
    wait_connected(reader)
    expect(reader.locator("#notice")).to_be_visible()
    expect(reader.locator("main #notice")).to_have_count(1)  # the banner is inside a landmark
    assert axe_violations(reader) == []
