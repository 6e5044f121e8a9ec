"""The versions panel: two pages on a real server, one types, the other lists the versions, restores one after
a confirmation and the first sees it live, Undo puts it back; a read-only link reads but cannot restore. The
panel's drawing of every kind of version (redrafts, undos, restores, condensed history, forged colours,
unverified names, paging, a version folded away) against a fake of the versions API, on a desktop and at
phone width, axe-clean."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page, Route, expect

from server.auth import mint_token
from tests.web.conftest import editor_text, screenshot, share_link, two_writers, wait_connected, wait_editor_text
from tests.web.test_accessibility import PHONE, SECRET, axe_violations
from tests.web.test_redraft_history import P1, TEXT, redraft

NOW = time.time()


def author(name: str, color: str | None = "#b4233c", verified: bool = False, kind: str = "person") -> dict:
    return {"name": name, "color": color, "verified": verified, "kind": kind}


def version(vid: int, first: int, kind: str, who: dict, at: float, **extra) -> dict:
    return {"id": vid, "first_seq": first, "started_at": at - 30, "ended_at": at, "kind": kind, "author": who,
            "authors": [], "redraft": None, "restored": None, "entries": vid - first + 1, **extra}


ADA = author("Ada", "#00707f")
GRACE = author("Grace", "#b4233c", verified=True)
AI = author("Redraft AI", "#7c3aed", verified=True, kind="ai")
SHORTER = {"id": "r1", "instruction": "Make it shorter", "model": "tiny-diffusion", "requester": GRACE}
# Newest first, as the API lists them: 55 versions, so that a page of 50 leaves 5 for "Older versions".
FAKE = [
    version(120, 118, "restore", author("Grace", "#b4233c", verified=True), NOW - 60, restored=100),
    version(117, 117, "undo", AI, NOW - 120, redraft=SHORTER),
    version(116, 110, "redraft", AI, NOW - 180, redraft=SHORTER),
    version(109, 101, "typing", author("Mallory", "red; background: url(https://evil.example/x)"), NOW - 240),
    version(100, 60, "typing", ADA, NOW - 300),
    *[version(59 - i, 59 - i, "typing", ADA if i % 2 else GRACE, NOW - 400 - 60 * i) for i in range(49)],
    version(10, 1, "merged", author("Ada", "#00707f"), NOW - 86400 * 40,
            authors=[ADA, GRACE, author("Linus", "#1a7f37", verified=True)]),
]
LONG = "The note is long and slow to read."
TEXTS = {116: "The note is short.", 109: LONG, 117: LONG}


def fake_versions_api(page: Page, current: str) -> list[str]:
    """Serves FAKE as the versions API would (paging, a version's text, diffs, a 410 for version 10); returns
    the list of requests the page made, as "METHOD path?query"."""
    asked: list[str] = []

    def handle(route: Route) -> None:
        url = urlparse(route.request.url)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        asked.append(f"{route.request.method} {url.path}{'?' + url.query if url.query else ''}")
        parts = url.path.split("/versions")[1].strip("/").split("/")
        if parts == [""]:
            before = int(query.get("before", 10**9))
            older = [v for v in FAKE if v["id"] < before]
            limit = int(query.get("limit", 50))
            shown = older[:limit]
            body = {"versions": shown, "next": shown[-1]["first_seq"] if len(older) > limit else None}
            return route.fulfill(json=body)
        vid = int(parts[0])
        if route.request.method == "POST":
            refusal = {"error": "unchanged", "detail": f"the text is already that of version {vid}"}
            return route.fulfill(status=409, json=refusal)
        if vid == 10:
            folded = {"error": "folded", "detail": "version 10 was folded into version 30"}
            return route.fulfill(status=410, json=folded)
        text = TEXTS.get(vid, f"Version {vid}.")
        if len(parts) == 1:
            return route.fulfill(json={**next(v for v in FAKE if v["id"] == vid), "text": text})
        against = query["against"]
        other = current if against == "current" else TEXTS.get(int(against), f"Version {against}.")
        # Not a real diff: the whole text out and the other in, which is all the drawing needs.
        return route.fulfill(json={"ops": [["-", text], ["+", other]] if text != other else [["=", text]]})

    page.route(re.compile(r"/api/docs/[^/]+/versions"), handle)
    return asked


def open_versions(page: Page):
    page.keyboard.press("Alt+Shift+KeyV")
    panel = page.get_by_role("dialog", name="Versions")
    expect(panel).to_be_visible()
    return panel


def test_the_panel_draws_every_kind_of_version_on_a_desktop_and_a_phone(start_server, open_page):
    server = start_server()
    page = open_page(f"{server.http_url}/d/fake-versions")
    wait_connected(page)
    page.locator(".cm-content").click()
    page.keyboard.type("The note is long.")
    asked = fake_versions_api(page, "The note is long.")
    open_page.allow(r"status of 4(09|10) ")

    panel = open_versions(page)
    rows = panel.locator(".versions-row")
    expect(rows).to_have_count(50)
    expect(rows.nth(0)).to_be_focused()  # the keyboard lands on the newest version
    restored_when = rows.nth(4).locator(".versions-when").inner_text()
    expect(rows.nth(0)).to_contain_text(f"Restored the version of {restored_when}")
    expect(rows.nth(1)).to_contain_text("Redraft AI for Grace")
    expect(rows.nth(1)).to_contain_text("Undid the redraft “Make it shorter”")
    expect(rows.nth(2)).to_contain_text("Redraft: “Make it shorter”")
    expect(rows.nth(3)).to_contain_text("Mallory (unverified)")
    expect(rows.nth(4)).to_contain_text("Ada (unverified)")
    expect(rows.nth(5)).to_contain_text("Grace")
    expect(rows.nth(5)).not_to_contain_text("unverified")
    dots = panel.locator(".versions-row .history-dot")
    # The forged colour: the default.
    assert dots.nth(3).evaluate("(dot) => dot.style.background") == "rgb(109, 40, 217)"
    assert dots.nth(4).evaluate("(dot) => dot.style.background") == "rgb(0, 112, 127)"
    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_be_focused()
    page.keyboard.press("End")
    expect(rows.nth(49)).to_be_focused()

    # Older versions: the next page, down to the condensed history.
    panel.get_by_role("button", name="Older versions").click()
    expect(rows).to_have_count(55)
    expect(rows.nth(50)).to_be_focused()
    expect(panel.get_by_role("button", name="Older versions")).to_be_hidden()
    expect(rows.nth(54)).to_contain_text("Older edits, kept as one version")
    expect(rows.nth(54)).to_contain_text("Ada (unverified), Grace, Linus")
    assert any("before=" in request for request in asked)

    # The redraft: its instruction, model and requester; the text against now, then before and after.
    rows.nth(2).click()
    detail = panel.locator("#versions-detail")
    expect(detail.get_by_role("heading")).to_have_text(re.compile(r"^Redraft AI for Grace · "))
    expect(detail).to_contain_text("Asked by Grace · model tiny-diffusion")
    diff = detail.get_by_role("region", name=re.compile("changes marked"))
    expect(diff.locator("del")).to_have_text("[removed since: The note is short.]")
    expect(diff.locator("ins")).to_have_text("[added since: The note is long.]")
    assert diff.locator("del").evaluate("(node) => getComputedStyle(node).textDecorationLine") == "line-through"
    assert diff.locator("ins").evaluate("(node) => getComputedStyle(node).textDecorationLine") == "underline"
    expect(detail.get_by_role("button", name="Restore this version")).to_be_enabled()
    screenshot(page, "versions")
    assert axe_violations(page) == []
    detail.get_by_label("Before → after this redraft").check()
    expect(diff.locator("del")).to_have_text(f"[removed: {LONG}]")  # the version before it: first_seq - 1
    expect(diff.locator("ins")).to_have_text("[added: The note is short.]")
    assert "GET /api/docs/fake-versions/versions/109/diff?against=116" in asked
    detail.get_by_label("Compared with now").check()
    # A restore the server refuses says why in the panel (a toast would be under it), and changes nothing.
    detail.get_by_role("button", name="Restore this version").click()
    page.get_by_role("dialog", name="Restore this version?").get_by_role("button", name="Restore", exact=True).click()
    refused = "The version could not be restored: the text is already that of version 116"
    expect(detail.get_by_role("alert")).to_have_text(refused)
    expect(panel).to_be_visible()
    assert editor_text(page) == "The note is long."

    # A version folded away by retention says so, and cannot be restored.
    rows.nth(54).click()
    expect(detail.get_by_role("alert")).to_contain_text("folded into a later one")
    expect(detail.get_by_role("button", name="Restore this version")).to_be_disabled()
    page.emulate_media(color_scheme="dark")
    rows.nth(2).click()
    expect(diff.locator("del")).to_have_count(1)
    assert axe_violations(page) == []
    screenshot(page, "versions-dark")
    page.emulate_media(color_scheme="light")

    # At phone width: full screen, the list, then the chosen version with a way back, touch-sized.
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    page.set_viewport_size(PHONE)
    button = page.get_by_role("button", name="Versions", exact=True)
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    button.click()
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert (box["x"], box["width"]) == (0, PHONE["width"]), box
    detail_back = panel.get_by_role("button", name="← All versions")
    expect(detail.get_by_role("heading")).to_be_focused()  # reopened where it was left: the chosen version
    detail_back.click()
    expect(rows.nth(2)).to_be_focused()
    expect(rows.nth(0)).to_be_visible()
    for index in (0, 3):
        row_box = rows.nth(index).bounding_box()
        assert row_box["height"] >= 44, row_box
        assert row_box["x"] >= 0 and row_box["x"] + row_box["width"] <= PHONE["width"], row_box
    screenshot(page, "phone-versions")
    rows.nth(3).click()
    expect(rows.nth(3)).to_be_hidden()  # the list made way for the version
    expect(detail.get_by_role("heading")).to_be_focused()
    expect(diff.locator("ins")).to_have_text("[added since: The note is long.]")
    for name in ("← All versions", "Restore this version"):
        control = detail.get_by_role("button", name=name).bounding_box()
        assert control["height"] >= 44 and control["x"] + control["width"] <= PHONE["width"], (name, control)
    screenshot(page, "phone-version")
    assert axe_violations(page) == []
    detail_back.click()
    expect(rows.nth(3)).to_be_focused()
    page.get_by_role("button", name="Close versions").click()
    expect(panel).to_be_hidden()


R1 = "The first paragraph reads quickly."
FIRST = "First draft of the plan."
ADDED = " Grace adds a line."


def test_one_page_restores_a_version_the_other_sees_it_live_and_undo_puts_it_back(start_server, open_page):
    server = start_server()
    ada, grace = two_writers(open_page, f"{server.http_url}/d/restore", FIRST)
    grace.keyboard.press("Control+End")
    grace.keyboard.type(ADDED)
    wait_editor_text(ada, FIRST + ADDED)
    restores: list[str] = []
    grace.on("request", lambda request: restores.append(request.url) if request.url.endswith("/restore") else None)

    panel = open_versions(grace)
    rows = panel.locator(".versions-row")
    expect(rows).to_have_count(2)
    name_a = ada.locator("#you-button .you-name").inner_text()
    name_g = grace.locator("#you-button .you-name").inner_text()
    expect(rows.nth(0)).to_contain_text(f"{name_g} (unverified)")  # an awareness name: nobody signed it
    expect(rows.nth(1)).to_contain_text(f"{name_a} (unverified)")
    expect(rows.nth(1)).to_contain_text("Typed")
    ada_when = rows.nth(1).locator(".versions-when").inner_text()
    expect(rows.nth(0)).to_be_focused()
    grace.keyboard.press("ArrowDown")
    grace.keyboard.press("Enter")
    detail = panel.locator("#versions-detail")
    diff = detail.get_by_role("region", name=re.compile("changes marked"))
    expect(diff.locator("ins")).to_have_text(f"[added since: {ADDED}]")
    expect(diff).to_have_text(f"{FIRST}[added since: {ADDED}]")
    expect(detail).to_contain_text(f"{len(ADDED)} characters added, 0 removed.")
    # The newest version is the current text: nothing to restore.
    rows.nth(0).click()
    expect(detail).to_contain_text("Same as the current text.")
    expect(detail.get_by_role("button", name="Restore this version")).to_be_disabled()
    rows.nth(1).click()
    expect(diff.locator("ins")).to_have_count(1)

    # Restore asks first: Escape (or Cancel) leaves the text alone and sends nothing.
    restore = detail.get_by_role("button", name="Restore this version")
    restore.click()
    confirm = grace.get_by_role("dialog", name="Restore this version?")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(f"the version of {ada_when} by {name_a} (unverified).")
    expect(confirm.get_by_role("button", name="Restore", exact=True)).to_be_focused()
    grace.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(panel).to_be_visible()  # the confirmation closes alone, not the panel under it
    expect(restore).to_be_focused()
    assert restores == []
    restore.click()
    screenshot(grace, "versions-confirm")
    assert axe_violations(grace) == []
    confirm.get_by_role("button", name="Restore", exact=True).click()
    wait_editor_text(ada, FIRST)  # live, on the other page
    wait_editor_text(grace, FIRST)
    assert len(restores) == 1
    # Back to the text, where the change is; the toast offers Undo.
    expect(panel).to_be_hidden()
    expect(grace.locator(".cm-content")).to_be_focused()
    toast = grace.locator(".toast").filter(has_text=f"Restored the version of {ada_when}.")
    expect(toast).to_be_visible()
    screenshot(grace, "versions-restored")
    toast.get_by_role("button", name="Undo").click()
    wait_editor_text(ada, FIRST + ADDED)
    wait_editor_text(grace, FIRST + ADDED)

    # The history has both, newest first, by Grace; her chosen version is again what it was.
    open_versions(grace)
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text(f"Undid the restore of the version of {ada_when}")
    expect(rows.nth(1)).to_contain_text(f"Restored the version of {ada_when}")
    expect(rows.nth(1)).to_contain_text(f"{name_g} (unverified)")
    expect(diff.locator("ins")).to_have_text(f"[added since: {ADDED}]")
    rows.nth(1).click()  # the restore: against now, the line is back; what it changed, the line went
    expect(diff).to_have_text(f"{FIRST}[added since: {ADDED}]")
    detail.get_by_label("What this version changed").check()
    expect(diff).to_have_text(f"{FIRST}[removed: {ADDED}]")
    detail.get_by_label("Compared with now").check()
    rows.nth(0).click()
    expect(detail).to_contain_text("Same as the current text.")
    assert axe_violations(grace) == []

    # Ada's panel lists the same versions.
    ada_rows = open_versions(ada).locator(".versions-row")
    expect(ada_rows).to_have_count(4)
    expect(ada_rows.nth(1)).to_contain_text(f"Restored the version of {ada_when}")


def test_a_signed_name_is_verified_and_a_read_only_link_reads_the_versions_but_has_no_restore(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    token = mint_token(SECRET, "minutes", "edit", ttl_s=None, name="Ada Lovelace")
    writer = open_page(f"{server.http_url}/d/minutes?token={token}")
    wait_connected(writer)
    # The link's signed name is the writer's, fixed; her colour stays hers to pick.
    expect(writer.locator("#you-button .you-name")).to_have_text("Ada Lovelace")
    writer.locator("#you-button").click()
    expect(writer.get_by_role("textbox", name="Your name")).to_have_value("Ada Lovelace")
    expect(writer.get_by_role("textbox", name="Your name")).not_to_be_editable()
    expect(writer.locator("#name-signed")).to_contain_text("history shows it as verified")
    writer.keyboard.press("Escape")
    writer.locator(".cm-content").click()
    writer.keyboard.type("Minutes of the meeting.")
    reader = open_page(share_link(server.http_url, SECRET, "minutes", "read"))
    wait_connected(reader)
    wait_editor_text(reader, "Minutes of the meeting.")
    writer.keyboard.type(" Later.")
    wait_editor_text(reader, "Minutes of the meeting. Later.")

    panel = open_versions(reader)
    rows = panel.locator(".versions-row")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).locator("strong")).to_have_text("Ada Lovelace")  # verified: no mark
    rows.nth(0).click()
    detail = panel.locator("#versions-detail")
    expect(detail).to_contain_text("Same as the current text.")
    expect(detail.get_by_role("button", name="Restore this version")).to_have_count(0)
    assert axe_violations(reader) == []


def test_a_redraft_is_its_own_version_with_its_before_and_after(scripted_server, open_page):
    server, engine = scripted_server()
    ada, grace = two_writers(open_page, f"{server.http_url}/d/redraft-versions", TEXT)
    redraft(ada, engine, P1, "Make it quicker", R1)
    wait_editor_text(grace, TEXT.replace(P1, R1))
    name_a = ada.locator("#you-button .you-name").inner_text()

    panel = open_versions(grace)
    rows = panel.locator(".versions-row")
    expect(rows.nth(0)).to_contain_text(f"Redraft AI for {name_a} (unverified)")
    expect(rows.nth(0)).to_contain_text("Redraft: “Make it quicker”")
    expect(rows.nth(1)).to_contain_text("Typed")
    rows.nth(0).click()
    detail = panel.locator("#versions-detail")
    expect(detail).to_contain_text(f"Asked by {name_a} (unverified)")
    expect(detail).to_contain_text("Same as the current text.")
    detail.get_by_label("Before → after this redraft").check()
    diff = detail.get_by_role("region", name=re.compile("changes marked"))
    expect(diff.locator("del")).not_to_have_count(0)
    # Both sides spelled out: what was there before (kept and struck through) and what the AI wrote.
    before, after = diff.evaluate("""(box) => [...box.childNodes].reduce(([before, after], node) => {
        const text = node.nodeType === Node.TEXT_NODE ? node.textContent : node.childNodes[1].textContent
        return [node.nodeName === 'INS' ? before : before + text, node.nodeName === 'DEL' ? after : after + text]
    }, ['', ''])""")
    assert (before, after) == (TEXT, TEXT.replace(P1, R1))
    screenshot(grace, "versions-redraft")
