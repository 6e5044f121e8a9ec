"""Typing never stops for a redraft: the passage stays editable while the AI writes beside it, and the
server's merge keeps what was typed. A real server (`--engine redis`) whose worker is scripted, so the
redraft runs exactly as long as the test needs; two or three real pages."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.web.conftest import editor_text, screenshot, wait_connected, wait_editor_text

PARAGRAPH = "The meeting moved to Thursday. Bring the draft budget and your questions."
TYPED = " GRACE was typing here."


def place_caret(page: Page, start: int, end: int | None = None) -> None:
    page.evaluate("([anchor, head]) => { const view = window.redraft.view; view.focus(); view.dispatch({ selection: { anchor, head } }) }",
                  [start, start if end is None else end])


def canvas_tokens(text: str, confidence: float = 0.9) -> list:
    return [[piece, confidence] for piece in re.findall(r"\s*\S+", text)]


def test_typing_inside_a_paragraph_while_it_is_redrafted_reaches_everyone_and_survives(scripted_server, open_page):
    server, engine = scripted_server()
    url = f"{server.http_url}/d/typing"
    ada, grace, third = open_page(url), open_page(url), open_page(url)
    for page in (ada, grace, third):
        wait_connected(page)
    ada.locator(".cm-content").click()
    ada.keyboard.type(f"# Notes\n\n{PARAGRAPH}\n\nAfter.")
    text = f"# Notes\n\n{PARAGRAPH}\n\nAfter."
    wait_editor_text(grace, text)
    start = text.index(PARAGRAPH)

    # Ada asks, with the caret in the paragraph and a typed instruction: the paragraph is rewritten.
    place_caret(ada, start + 4)
    ada.keyboard.press("Control+k")
    palette = ada.get_by_role("dialog", name="Redraft with AI")
    expect(palette.locator("#palette-scope")).to_have_text("The paragraph at the cursor (12 words).")
    ada.keyboard.type("Make it sound formal")
    expect(palette.locator("#palette-scope")).to_have_text("The paragraph at the cursor (12 words).")
    palette.get_by_label("Put it in").check()
    ada.keyboard.press("Enter")
    job = engine.next_job()
    assert (job.spec["kind"], job.spec["passage"], job.spec["instruction"]) == ("rewrite", PARAGRAPH, "Make it sound formal")

    # Grace's caret is inside the paragraph; the canvas shows under it and the text stays.
    at = start + len("The meeting moved to Thursday.")
    place_caret(grace, at)
    job.progress(3, 12, canvas_tokens("The meeting has moved", 0.9) + [["", 0.1], [" Thursday", 0.2]])
    for page in (ada, grace, third):
        expect(page.locator(".cm-redraft-canvas .cm-redraft-step")).to_have_text("step 3/12")
        expect(page.locator(".cm-content .cm-line", has_text="Bring the draft budget")).to_be_visible()
    expect(grace.locator(".cm-redraft-busy").first).to_be_visible()

    grace.keyboard.type(TYPED)  # as a person types, key by key, while the AI is still writing
    typed_text = text[:at] + TYPED + text[at:]
    for page in (ada, third):
        wait_editor_text(page, typed_text)  # reached the others at once, in order
    wait_editor_text(grace, typed_text)
    assert grace.evaluate("() => window.redraft.view.state.selection.main.head") == at + len(TYPED)
    expect(ada.locator(".cm-redraft-canvas")).to_be_visible()  # still running
    job.progress(9, 12, canvas_tokens("The meeting has been moved to Thursday. Please bring"))
    expect(third.locator(".cm-redraft-canvas .cm-redraft-step")).to_have_text("step 9/12")
    screenshot(grace, "typing-during-redraft")

    rewritten = "The meeting has been moved to Thursday. Please bring the draft budget and your questions."
    job.finish(rewritten)
    for page in (ada, grace, third):
        expect(page.locator(".cm-redraft-canvas")).to_have_count(0)
    merged = editor_text(ada)
    assert TYPED.strip() in merged, merged  # intact: every letter, in order
    assert "Please bring" in merged and merged.startswith("# Notes\n\n") and merged.endswith("\n\nAfter."), merged
    wait_editor_text(grace, merged)
    wait_editor_text(third, merged)
    # Grace keeps typing where her caret is.
    grace.keyboard.type(" More.")
    expect(grace.locator(".cm-content")).to_contain_text(TYPED.strip() + " More.")
    wait_editor_text(ada, editor_text(grace))
