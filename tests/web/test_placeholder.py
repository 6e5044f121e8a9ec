"""The placeholder editor in a real browser against a real server: two-way sync, caret, start screen."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from server.auth import mint_token
from tests.web.conftest import screenshot, wait_connected

SECRET = "a-test-secret-of-32-characters!!"


def utf16_len(text: str) -> int:
    """Textarea and Y.Text offsets count UTF-16 code units: an emoji is two."""
    return len(text.encode("utf-16-le")) // 2


def place_caret(page: Page, start: int, end: int | None = None) -> None:
    page.evaluate(
        "([start, end]) => { const t = document.getElementById('content'); t.focus(); t.setSelectionRange(start, end) }",
        [start, start if end is None else end],
    )


def selection(page: Page) -> list[int]:
    return page.evaluate("() => { const t = document.getElementById('content'); return [t.selectionStart, t.selectionEnd] }")


def test_two_pages_and_the_server_converge(start_server, open_page, node_peers):
    server = start_server()
    doc_url = f"{server.http_url}/d/shared-notes"
    page_a, page_b = open_page(doc_url), open_page(doc_url)
    wait_connected(page_a)
    wait_connected(page_b)
    expect(page_a.locator("#presence .count")).to_have_text("2 people here")
    expect(page_a.locator("#doc-title")).to_have_text("shared-notes")

    typed = "Hello é 😀 world"
    page_a.locator("#content").click()
    page_a.keyboard.type(typed)
    expect(page_b.locator("#content")).to_have_value(typed)

    place_caret(page_b, utf16_len("Hello é 😀"))
    page_b.keyboard.type(" there")
    expected = "Hello é 😀 there world"
    expect(page_b.locator("#content")).to_have_value(expected)
    expect(page_a.locator("#content")).to_have_value(expected)

    peer = node_peers(server.ws_url, "shared-notes")
    peer.wait_synced()
    peer.wait_text(expected)
    assert page_a.evaluate("() => window.redraft.text.toString()") == expected
    screenshot(page_a, "editor")


def test_local_splice_keeps_a_concurrent_insert_in_place(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/concurrent")
    wait_connected(page)
    page.locator("#content").click()
    page.keyboard.type("abc")
    peer = node_peers(server.ws_url, "concurrent")
    peer.wait_synced()
    peer.wait_text("abc")

    peer.disconnect()
    peer.insert(2, "X")  # offline, so the page edits a text that lacks it
    place_caret(page, 0)
    page.keyboard.type("Z")
    expect(page.locator("#content")).to_have_value("Zabc")
    peer.reconnect()
    # Replacing the whole text would have put X after "c"; a minimal splice leaves it between b and c.
    peer.wait_text("ZabXc")
    expect(page.locator("#content")).to_have_value("ZabXc")
    assert selection(page) == [1, 1]


def test_remote_edits_carry_the_selection(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/caret")
    wait_connected(page)
    page.locator("#content").click()
    page.keyboard.type("hello 😀 world")
    peer = node_peers(server.ws_url, "caret")
    peer.wait_synced()
    peer.wait_text("hello 😀 world")
    start = utf16_len("hello 😀 ")
    place_caret(page, start, start + 5)  # "world"

    peer.insert(0, "é> ")
    expect(page.locator("#content")).to_have_value("é> hello 😀 world")
    assert selection(page) == [start + 3, start + 8]
    peer.insert(start + 8, "!")  # at the selection's end: the selection does not grow
    peer.insert(start + 3, "big ")  # at its start: pushed along with it
    expect(page.locator("#content")).to_have_value("é> hello 😀 big world!")
    assert selection(page) == [start + 7, start + 12]

    page.keyboard.type("there")  # replaces the still-selected "world"
    peer.wait_text("é> hello 😀 big there!")


def test_composition_waits_for_its_end(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/ime")
    wait_connected(page)
    page.locator("#content").click()
    page.keyboard.type("abc ")
    peer = node_peers(server.ws_url, "ime")
    peer.wait_synced()
    peer.wait_text("abc ")

    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "に", "selectionStart": 1, "selectionEnd": 1})
    peer.insert(0, "remote ")  # arrives mid-composition: shown only once the composition ends
    page.wait_for_function("() => window.redraft.text.toString().startsWith('remote ')", timeout=10_000)
    assert page.locator("#content").input_value() == "abc に"
    cdp.send("Input.insertText", {"text": "日本"})
    expect(page.locator("#content")).to_have_value("remote abc 日本")
    peer.wait_text("remote abc 日本")
    end = utf16_len("remote abc 日本")
    assert selection(page) == [end, end]


def test_undo_reverts_only_local_edits(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/undo")
    wait_connected(page)
    peer = node_peers(server.ws_url, "undo")
    peer.wait_synced()
    peer.insert(0, "theirs ")
    expect(page.locator("#content")).to_have_value("theirs ")

    place_caret(page, utf16_len("theirs "))
    page.keyboard.type("mine")
    expect(page.locator("#content")).to_have_value("theirs mine")
    page.keyboard.press("Control+z")
    expect(page.locator("#content")).to_have_value("theirs ")
    page.keyboard.press("Control+Shift+z")
    expect(page.locator("#content")).to_have_value("theirs mine")
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


def test_start_page_opens_documents_and_keeps_the_token(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    token = mint_token(SECRET, "*", "edit", ttl_s=None)
    page = open_page(f"{server.http_url}/?token={token}")
    expect(page.get_by_label("Document name")).to_be_focused()
    screenshot(page, "start")

    page.get_by_label("Document name").fill("not a name")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.getElementById('doc-name').validationMessage") != ""
    assert page.url == f"{server.http_url}/?token={token}"

    page.get_by_label("Document name").fill("meeting-notes")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.http_url}/d/meeting-notes?token={token}")
    wait_connected(page)  # the token reached the websocket: this server refuses connections without one

    page.get_by_role("link", name="Redraft").click()
    page.get_by_role("button", name="New document").click()
    page.wait_for_url(re.compile(re.escape(server.http_url) + r"/d/draft-[0-9a-z]{12}\?token=" + re.escape(token)))
    wait_connected(page)


def test_presence_counts_people_coming_and_going(start_server, open_page, node_peers):
    server = start_server()
    page = open_page(f"{server.http_url}/d/presence")
    wait_connected(page)
    expect(page.locator("#presence .count")).to_have_text("1 person here")
    peer = node_peers(server.ws_url, "presence", name="Ada")
    peer.wait_synced()
    expect(page.locator("#presence .count")).to_have_text("2 people here")
    expect(page.locator("#presence")).to_have_attribute("title", re.compile(r"Ada"))
    peer.proc.kill()  # no goodbye from the peer: the server must announce that its user left
    peer.proc.wait(5)
    expect(page.locator("#presence .count")).to_have_text("1 person here")
