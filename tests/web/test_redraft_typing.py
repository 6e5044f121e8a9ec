"""Typing never stops for a redraft: the passage stays editable while the AI writes beside it, and the
server's merge keeps what was typed. A real server (`--engine redis`) whose worker is scripted, so the
redraft runs exactly as long as the test needs; two or three real pages."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.web.conftest import editor_text, screenshot, two_writers, wait_connected, wait_editor_text

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


def test_the_whole_canvas_shows_while_it_resolves_and_the_counter_only_goes_up(scripted_server, open_page):
    server, engine = scripted_server()
    url = f"{server.http_url}/d/long"
    long = "A long paragraph that takes two canvases to rewrite, with many words in it. " * 3
    ada, grace = two_writers(open_page, url, long.strip())
    grace.evaluate("""() => {
        window.seenSteps = []
        new MutationObserver(() => {
            const step = document.querySelector('.cm-redraft-canvas .cm-redraft-step')
            if (step && window.seenSteps[window.seenSteps.length - 1] !== step.textContent) window.seenSteps.push(step.textContent)
        }).observe(document.querySelector('.cm-content'), { childList: true, subtree: true, characterData: true })
    }""")
    place_caret(ada, 5)
    ada.keyboard.press("Control+k")
    ada.get_by_role("option", name="Rewrite clearer").click()
    job = engine.next_job()
    first = "The first canvas wrote this whole sentence."
    second = [[" Then", 0.9], [" the", 0.8], ["", 0.1], [" second", 0.6]]
    job.progress(6, 12, canvas_tokens(first, 0.6), canvas_index=0, text=first, num_canvases=2)
    expect(grace.locator(".cm-redraft-step")).to_have_text(re.compile(r"step \d+/\d+"))
    job.progress(12, 12, canvas_tokens(first, 1.0), canvas_index=0, text=first, num_canvases=2)
    # The second canvas: the first one's text stays on screen before it, and the count goes on from there.
    job.progress(3, 12, [[first, 1.0], *second], canvas_index=1, text=first + " Then the second", num_canvases=2)
    canvas = grace.locator(".cm-redraft-canvas")
    expect(canvas.locator(".cm-redraft-tokens")).to_contain_text(first + " Then the")
    expect(canvas.locator(".cm-redraft-masked")).to_have_count(1)
    job.progress(2, 12, [[first, 1.0], *second], canvas_index=1, text=first + " Then the second", num_canvases=2)  # a late one
    job.progress(9, 12, [[first, 1.0], [" Then", 0.9], [" the", 0.9], [" second", 0.9], [" one.", 0.9]], canvas_index=1,
                 text=first + " Then the second one.", num_canvases=2)
    expect(canvas.locator(".cm-redraft-tokens")).to_contain_text(first + " Then the second one.")
    job.finish(first + " Then the second one.")
    expect(canvas).to_have_count(0)
    seen = grace.evaluate("() => window.seenSteps")
    steps = [re.fullmatch(r"step (\d+)/(\d+)", label) for label in seen]
    fractions = [int(step[1]) / int(step[2]) for step in steps if step]  # before them: "waiting for the AI"
    assert fractions == sorted(fractions) and len(fractions) >= 3, seen
    wait_editor_text(grace, first + " Then the second one.")
