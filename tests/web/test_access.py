"""The start page, recent documents, share links and read-only links, in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from server.auth import mint_token, verify_token
from tests.web.conftest import editor_text, screenshot, share_link, two_pages, wait_connected, wait_editor_text

SECRET = "a-test-secret-of-32-characters!!"


def test_start_page_opens_documents_and_keeps_the_token(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    token = mint_token(SECRET, "*", "edit", ttl_s=None)
    page = open_page(f"{server.http_url}/?token={token}")
    expect(page.get_by_label("Document name")).to_be_focused()
    expect(page.locator("#recent")).to_be_hidden()  # nothing opened yet in this browser

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
    created = page.url.split("/d/")[1].split("?")[0]

    page.get_by_role("link", name="Redraft").click()
    recent = page.locator("#recent-list .recent-name")
    expect(recent).to_have_text([created, "meeting-notes"])  # newest first
    screenshot(page, "start")
    page.get_by_role("link", name=re.compile("^meeting-notes")).click()
    page.wait_for_url(f"{server.http_url}/d/meeting-notes?token={token}")
    wait_connected(page)
    page.go_back()
    page.get_by_role("button", name=f"Remove {created} from recent documents").click()
    expect(recent).to_have_text(["meeting-notes"])


def test_a_read_only_link_shows_the_text_but_takes_no_typing(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    writer, reader = two_pages(open_page, share_link(server.http_url, SECRET, "minutes", "edit"),
                               share_link(server.http_url, SECRET, "minutes", "read"), "Decisions: ship it.")

    expect(reader.locator("#readonly-badge")).to_have_text("Read-only link")
    notice = reader.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("read-only link")
    expect(notice).to_contain_text("Ask whoever shared it for an edit link")
    expect(reader.get_by_role("button", name=re.compile("Redraft"))).to_be_hidden()
    reader.locator(".cm-content").click()
    reader.keyboard.type("vandalism")
    reader.keyboard.press("Backspace")
    expect(notice).to_have_class(re.compile(r"\bis-nudged\b"))  # the page points at why nothing happened
    assert editor_text(reader) == "Decisions: ship it."
    reader.keyboard.press("Control+k")  # the palette too says why, rather than opening
    expect(reader.locator(".toast")).to_contain_text("read-only link")
    expect(reader.locator("#palette")).not_to_be_visible()
    writer.keyboard.type(" Today.")
    wait_editor_text(reader, "Decisions: ship it. Today.")
    assert editor_text(writer) == "Decisions: ship it. Today."
    screenshot(reader, "editor-read-only")


def test_share_makes_edit_and_read_links(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    page = open_page(f"{server.http_url}/d/plans?token={mint_token(SECRET, '*', 'edit', ttl_s=None)}")
    wait_connected(page)
    page.get_by_role("button", name="Share").click()
    page.get_by_role("button", name="Read-only link").click()
    link = page.get_by_role("textbox", name="Read-only link")
    expect(link).to_have_value(re.compile(re.escape(f"{server.http_url}/d/plans?token=")))
    read_url = link.input_value()
    assert verify_token(SECRET, read_url.split("token=")[1], "plans").role == "read"
    page.get_by_role("button", name="Edit link").click()
    edit_link = page.get_by_role("textbox", name="Edit link")
    expect(edit_link).to_be_focused()
    assert verify_token(SECRET, edit_link.input_value().split("token=")[1], "plans").role == "edit"
    screenshot(page, "share")
    page.keyboard.press("Escape")
    expect(page.locator("#share-panel")).to_be_hidden()

    reader = open_page(read_url)
    wait_connected(reader)
    expect(reader.locator("#readonly-badge")).to_be_visible()
    reader.keyboard.press("Alt+Shift+KeyS")  # a reader may pass on read links, not edit ones
    expect(reader.get_by_role("button", name="Edit link")).to_be_disabled()
    expect(reader.locator("#share-panel")).to_contain_text("read-only links only")


def test_share_without_a_secret_explains_the_address_is_the_link(start_server, open_page):
    server = start_server()
    page = open_page(f"{server.http_url}/d/local")
    wait_connected(page)
    page.get_by_role("button", name="Share").click()
    expect(page.locator("#share-panel")).to_contain_text("runs without a secret")
    expect(page.get_by_role("textbox", name="This page’s address")).to_have_value(f"{server.http_url}/d/local")
