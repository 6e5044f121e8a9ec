"""What covers what, and where the selection goes: the palette opens beside the passage it will rewrite, the
floating Redraft button sits in the margin (not over the next line), toasts never hide the caret, a new
suggestion is scrolled into view, and a selected passage stays selected when its redraft lands or is undone.
A real server whose engine worker is scripted; Chromium at desktop size."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import editor_text, screenshot, two_writers, wait_connected, wait_editor_text

FILLER = "\n\n".join(f"Paragraph {n} is here so that the document is longer than the window." for n in range(1, 16))


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def text_box(page: Page, start: int, end: int) -> dict:
    """The bounding box of the text [start, end) on screen."""
    return page.evaluate("""([s, e]) => {
        const view = window.redraft.view
        const a = view.coordsAtPos(s, 1), b = view.coordsAtPos(e, -1)
        const left = view.contentDOM.getBoundingClientRect().left, right = view.contentDOM.getBoundingClientRect().right
        return { x: left, y: a.top, width: right - left, height: b.bottom - a.top }
    }""", [start, end])


def select(page: Page, anchor: int, head: int) -> None:
    page.evaluate("([a, h]) => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: a, head: h }, scrollIntoView: true }) }",
                  [anchor, head])


def selection(page: Page) -> list[int]:
    return page.evaluate("() => { const s = window.redraft.view.state.selection.main; return [s.from, s.to] }")


def test_nothing_covers_the_text_being_worked_on(scripted_server, open_page):
    server, engine = scripted_server()
    page = open_page(f"{server.http_url}/d/layout")
    wait_connected(page)
    page.evaluate("(text) => window.redraft.view.dispatch({ changes: { from: 0, insert: text }, userEvent: 'input.paste' })", FILLER)
    text = editor_text(page)
    target = text.index("Paragraph 3 ")
    end = text.index("\n\n", target)

    # The floating button: in the margin, level with the selection's last line, over no text.
    select(page, target + 5, end - 5)
    button = page.locator(".cm-redraft-float button")
    expect(button).to_be_in_viewport()
    box = button.bounding_box()
    next_line = text_box(page, end + 2, text.index("\n\n", end + 2))
    assert not overlaps(box, next_line), (box, next_line)
    assert not overlaps(box, text_box(page, target, end)), box
    screenshot(page, "float-button")

    # The palette: beside the paragraph it will rewrite, not over it.
    select(page, target + 3, target + 3)
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    expect(palette).to_be_visible()
    assert not overlaps(palette.bounding_box(), text_box(page, target, end)), palette.bounding_box()
    screenshot(page, "palette-beside")
    page.keyboard.press("Escape")

    # Toasts never hide the caret: typing on the last line with a toast up keeps the caret above it.
    page.keyboard.press("Control+End")
    page.keyboard.press("Control+Shift+Enter")  # no suggestion waiting: a toast says so
    toast = page.locator(".toast")
    expect(toast).to_be_visible()
    page.keyboard.type(" And one more line typed at the very end.")
    caret = page.evaluate("() => { const v = window.redraft.view; return v.coordsAtPos(v.state.selection.main.head) }")
    assert caret["bottom"] <= toast.bounding_box()["y"], (caret, toast.bounding_box())

    # A suggestion of one's own lower down is scrolled into view, clear of the toasts.
    page.evaluate("() => window.scrollTo(0, 0)")
    last = editor_text(page).rindex("Paragraph 15")
    select(page, last, len(editor_text(page)))
    page.evaluate("() => window.scrollTo(0, 0)")
    page.keyboard.press("Control+k")
    page.keyboard.type("tighter")
    palette.get_by_text("Suggest first").click()
    expect(palette.get_by_label("Suggest first")).to_be_checked()
    page.keyboard.press("Enter")
    engine.next_job().finish("Paragraph 15 ends it.")
    suggestion = page.locator(".cm-redraft-suggestion")
    expect(suggestion).to_be_in_viewport()
    expect(suggestion.get_by_role("button", name="Accept")).to_be_in_viewport()


def test_a_selected_passage_stays_selected_when_its_redraft_lands_and_is_undone(scripted_server, open_page):
    server, engine = scripted_server()
    url = f"{server.http_url}/d/select"
    text = "Intro.\n\nThe slow old passage that everyone wanted rewritten.\n\nOutro."
    page, other = two_writers(open_page, url, text)
    start, end = text.index("The slow"), text.index("\n\nOutro")
    select(page, start, end)
    page.keyboard.press("Control+k")
    page.get_by_role("option", name="Rewrite clearer").click()
    new = "A quick new passage."
    job = engine.next_job()
    expect(page.locator(".cm-redraft-busy")).to_have_text(text[start:end])  # shown as being redrafted (a real one takes seconds)
    job.finish(new)
    wait_editor_text(page, text.replace(text[start:end], new))
    assert selection(page) == [start, start + len(new)]  # the new passage, not a piece of it
    expect(page.locator(".toast").last).to_contain_text("Redraft applied.")  # the page knows it landed
    page.keyboard.press("Control+z")  # right after: undoes the redraft
    wait_editor_text(page, text)
    assert selection(page) == [start, end]
    # Someone else's caret inside the passage stays where it was typed.
    assert "Intro." in editor_text(other)
