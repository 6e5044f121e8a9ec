"""The editor in a real browser against a real server: sync, cursors, offline edits, undo, closes, presence."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from server.auth import mint_token
from tests.web.conftest import AI_USER, editor_text, screenshot, show_ai, two_writers, wait_connected, wait_editor_text

SECRET = "a-test-secret-of-32-characters!!"


def utf16_len(text: str) -> int:
    """CodeMirror and Y.Text offsets count UTF-16 code units: an emoji is two."""
    return len(text.encode("utf-16-le")) // 2


def place_caret(page: Page, start: int, end: int | None = None) -> None:
    page.evaluate(
        "([anchor, head]) => { const view = window.redraft.view; view.focus(); view.dispatch({ selection: { anchor, head } }) }",
        [start, start if end is None else end],
    )


def selection(page: Page) -> list[int]:
    return page.evaluate("() => { const s = window.redraft.view.state.selection.main; return [s.from, s.to] }")


def set_name(page: Page, name: str) -> None:
    page.locator("#you-button").click()
    page.get_by_role("textbox", name="Your name").fill(name)
    page.get_by_role("textbox", name="Your name").press("Enter")
    expect(page.locator("#you-button")).to_contain_text(name)


def test_two_pages_converge_and_show_each_others_cursor(start_server, open_page, node_peers):
    server = start_server()
    doc_url = f"{server.http_url}/d/shared-notes"
    page_a, page_b = two_writers(open_page, doc_url)
    set_name(page_a, "Ada")
    set_name(page_b, "Grace")
    expect(page_a.locator("#presence .count")).to_have_text("2 people here")
    expect(page_a.locator("#presence .person-name")).to_have_text(["Grace"])
    expect(page_a.locator("#doc-title")).to_have_text("shared-notes")

    typed = "# Notes\n\nHello é 😀 world"
    page_a.locator(".cm-content").click()
    page_a.keyboard.type(typed)
    wait_editor_text(page_b, typed)

    place_caret(page_b, utf16_len("# Notes\n\nHello é 😀"))
    page_b.keyboard.type(" there")
    expected = "# Notes\n\nHello é 😀 there world"
    wait_editor_text(page_a, expected)
    wait_editor_text(page_b, expected)
    # Grace's caret, with her name on it, shows in Ada's editor.
    caret = page_a.locator(".cm-ySelectionCaret", has_text="Grace")
    expect(caret).to_be_visible()
    expect(caret.locator(".cm-ySelectionInfo")).to_be_visible()
    # Markdown is highlighted: the heading's text is set bold.
    heading_weight = page_a.evaluate("() => getComputedStyle(document.querySelector('.cm-line span')).fontWeight")
    assert heading_weight == "700"

    peer = node_peers(server.ws_url, "shared-notes")
    peer.wait_synced()
    peer.wait_text(expected)
    screenshot(page_a, "editor")


def test_local_edit_keeps_a_concurrent_insert_in_place(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/concurrent")
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("abc")
    peer = node_peers(server.ws_url, "concurrent")
    peer.wait_synced()
    peer.wait_text("abc")

    peer.disconnect()
    peer.insert(2, "X")  # offline, so the page edits a text that lacks it
    place_caret(page, 0)
    page.keyboard.type("Z")
    wait_editor_text(page, "Zabc")
    peer.reconnect()
    peer.wait_text("ZabXc")
    wait_editor_text(page, "ZabXc")
    assert selection(page) == [1, 1]


def test_offline_edits_on_both_sides_converge(start_server, open_page):
    server = start_server()
    doc_url = f"{server.http_url}/d/offline"
    page_a, page_b = two_writers(open_page, doc_url, "one two three")

    open_page.allow(r"WebSocket connection to .* failed: .*ERR_INTERNET_DISCONNECTED")  # its retries, while offline
    page_a.context.set_offline(True)
    # The socket a page already has survives network emulation; closing it is what going offline does to it.
    page_a.evaluate("() => window.redraft.provider.ws && window.redraft.provider.ws.close()")
    status = page_a.locator("#status")
    expect(status).to_have_attribute("data-state", "offline")
    place_caret(page_a, 0)
    page_a.keyboard.type("zero ")
    place_caret(page_a, utf16_len("zero one two three"))
    page_a.keyboard.type(" four")
    expect(status).to_contain_text("Offline — editing locally")
    expect(status).to_contain_text(re.compile(r"\d+ changes? not sent yet"))
    place_caret(page_b, utf16_len("one two"))
    page_b.keyboard.type(" and a half")
    wait_editor_text(page_b, "one two and a half three")
    screenshot(page_a, "editor-offline")

    page_a.context.set_offline(False)
    expect(status).to_have_attribute("data-state", "connected")
    expected = "zero one two and a half three four"
    wait_editor_text(page_a, expected)
    wait_editor_text(page_b, expected)


def test_undo_reverts_only_local_edits(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/undo")
    wait_connected(page)
    peer = node_peers(server.ws_url, "undo")
    peer.wait_synced()
    peer.insert(0, "theirs ")
    wait_editor_text(page, "theirs ")

    place_caret(page, utf16_len("theirs "))
    page.keyboard.type("mine")
    wait_editor_text(page, "theirs mine")
    page.keyboard.press("Control+z")
    wait_editor_text(page, "theirs ")
    page.keyboard.press("Control+Shift+Z")  # a real keyboard says "Z" with Shift held
    wait_editor_text(page, "theirs mine")
    peer.wait_text("theirs mine")


def test_a_4xxx_close_shows_its_reason(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    token = mint_token(SECRET, "expiring", "edit", ttl_s=3)
    page = open_page(f"{server.http_url}/d/expiring?token={token}")
    wait_connected(page)
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "offline")
    expect(status).to_contain_text("the token has expired")
    expect(status).to_contain_text("(4401)")
    screenshot(page, "editor-closed")


def test_presence_lists_people_and_the_ai_apart(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/presence")
    wait_connected(page)
    expect(page.locator("#presence .count")).to_have_text("1 person here")
    peer = node_peers(server.ws_url, "presence", name="Ada")
    peer.wait_synced()
    expect(page.locator("#presence .count")).to_have_text("2 people here")
    expect(page.locator("#presence .person-name")).to_have_text(["Ada"])
    impostor = node_peers(server.ws_url, "presence")
    impostor.wait_synced()
    impostor.call("set_awareness", field="user", value=AI_USER)  # calling oneself the AI makes one a person
    expect(page.locator("#presence .count")).to_have_text("3 people here")
    expect(page.locator("#presence .person.is-ai")).to_have_count(0)
    impostor.close()
    expect(page.locator("#presence .count")).to_have_text("2 people here")
    show_ai(page, [])  # the server's AI peer: the id the session reserves
    expect(page.locator("#presence .person.is-ai .person-name")).to_have_text("Redraft AI")
    expect(page.locator("#presence .count")).to_have_text("2 people here")  # the AI is not a person
    peer.proc.kill()  # no goodbye from the peer: the server must announce that its user left
    peer.proc.wait(5)
    expect(page.locator("#presence .count")).to_have_text("1 person here")
    expect(page.locator("#presence .person-name")).to_have_text(["Redraft AI"])


def test_a_new_name_reaches_the_others_and_is_remembered(start_server, open_page):
    server = start_server()
    doc_url = f"{server.http_url}/d/names"
    page_a, page_b = two_writers(open_page, doc_url)
    page_a.keyboard.press("Alt+Shift+KeyN")
    expect(page_a.get_by_role("textbox", name="Your name")).to_be_focused()
    page_a.get_by_role("textbox", name="Your name").fill("Katherine")
    page_a.keyboard.press("Enter")
    expect(page_b.locator("#presence .person-name")).to_have_text(["Katherine"])
    page_a.reload()
    wait_connected(page_a)
    expect(page_a.locator("#you-button")).to_contain_text("Katherine")
    assert editor_text(page_a) == ""
