"""The redraft history: everyone sees who asked what and when, and can undo or redo each redraft that can
still be taken back, after others typed; Ctrl+Z right after one's own redraft undoes it. A real server whose
engine worker is scripted (tests/web/scripted_engine.py), two pages."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import editor_text, screenshot, two_writers, wait_editor_text

P1 = "The first paragraph is slow to read."
P2 = "The middle one stays as people write it."
P3 = "The last paragraph ends the note."
TEXT = f"{P1}\n\n{P2}\n\n{P3}"


def redraft(page: Page, engine, passage: str, instruction: str, result: str) -> None:
    """Asks for a redraft of `passage` (the caret in it: the paragraph is the target) and lets it land."""
    at = editor_text(page).index(passage) + 3
    page.evaluate("(at) => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: at } }) }", at)
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    page.keyboard.type(instruction)
    palette.get_by_label("Put it in").check()
    page.keyboard.press("Enter")
    job = engine.next_job()
    assert job.spec["passage"] == passage
    job.finish(result)
    expect(page.locator(".toast").last).to_contain_text("Redraft applied.")


def test_undo_and_redo_of_several_redrafts_after_others_typed(scripted_server, open_page):
    server, engine = scripted_server()
    url = f"{server.http_url}/d/history"
    ada, grace = two_writers(open_page, url, TEXT)

    r1 = "The first paragraph reads quickly."
    r3 = "The note ends with this paragraph."
    redraft(ada, engine, P1, "Make it quicker", r1)
    redraft(grace, engine, P3, "Turn it around", r3)
    # Grace types in the middle paragraph, after both landed.
    at = editor_text(grace).index(P2) + len(P2)
    grace.evaluate("(at) => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: at } }) }", at)
    grace.keyboard.type(" Grace adds this.")
    typed = f"{r1}\n\n{P2} Grace adds this.\n\n{r3}"
    wait_editor_text(ada, typed)

    # Ada opens the history from the keyboard: newest first, who asked what.
    ada.keyboard.press("Alt+Shift+KeyH")
    panel = ada.get_by_role("dialog", name="Redraft history")
    expect(panel).to_be_visible()
    items = panel.locator(".history-item")
    expect(items).to_have_count(2)
    name_a = ada.locator("#you-button .you-name").inner_text()
    name_g = grace.locator("#you-button .you-name").inner_text()
    expect(items.nth(0)).to_contain_text(name_g)
    expect(items.nth(0)).to_contain_text("“Turn it around”")
    expect(items.nth(1)).to_contain_text(name_a)
    expect(items.nth(1)).to_contain_text("“Make it quicker”")
    expect(items.nth(1)).to_contain_text("just now")
    # The keyboard lands in the panel, on the newest redraft's Undo.
    expect(items.nth(0).get_by_role("button", name="Undo")).to_be_focused()
    screenshot(ada, "history")

    # Undo the older one (Ada's), by keyboard: the newer one and Grace's typing stay.
    undo_first = items.nth(1).get_by_role("button", name="Undo")
    ada.keyboard.press("Tab")
    expect(undo_first).to_be_focused()
    ada.keyboard.press("Enter")
    expected = f"{P1}\n\n{P2} Grace adds this.\n\n{r3}"
    wait_editor_text(ada, expected)
    wait_editor_text(grace, expected)
    expect(items.nth(1).get_by_role("button", name="Redo")).to_be_visible()
    expect(items.nth(1)).to_contain_text("undone")
    # Grace's redraft, undone from Ada's page: anyone in the document may.
    items.nth(0).get_by_role("button", name="Undo").click()
    wait_editor_text(grace, f"{P1}\n\n{P2} Grace adds this.\n\n{P3}")
    # Redo Ada's: back in, around everything else.
    items.nth(1).get_by_role("button", name="Redo").click()
    wait_editor_text(grace, f"{r1}\n\n{P2} Grace adds this.\n\n{P3}")
    # Grace's panel says the same.
    grace.keyboard.press("Alt+Shift+KeyH")
    grace_items = grace.get_by_role("dialog", name="Redraft history").locator(".history-item")
    expect(grace_items.nth(0)).to_contain_text("undone")
    expect(grace_items.nth(1)).to_contain_text("applied")
    # Whatever cannot be undone or redone says why, in words.
    for row in items.all():
        if row.get_by_role("button").count() == 0 and row.get_attribute("data-status") in ("done", "undone"):
            expect(row.locator(".history-blocked")).not_to_be_empty()


def test_ctrl_z_right_after_ones_own_redraft_undoes_it(scripted_server, open_page):
    server, engine = scripted_server()
    url = f"{server.http_url}/d/ctrl-z"
    ada, grace = two_writers(open_page, url, TEXT)
    r2 = "The middle one changes."
    redraft(ada, engine, P2, "Shorter", r2)
    after = TEXT.replace(P2, r2)
    wait_editor_text(grace, after)
    ada.keyboard.press("Control+z")  # undoes the redraft, not Ada's last keystroke
    wait_editor_text(grace, TEXT)
    expect(ada.locator(".toast").last).to_contain_text("The redraft was undone")
    ada.keyboard.press("Control+Shift+KeyZ")  # and puts it back
    wait_editor_text(grace, after)
    # Once Ada types, Ctrl+Z is about her typing again.
    ada.keyboard.press("Control+End")
    ada.keyboard.type("!")
    wait_editor_text(grace, after + "!")
    ada.keyboard.press("Control+z")
    wait_editor_text(grace, after)
