"""The text around a redraft joins as a person would write it, seen in the browser: continue and fill add
the separating space or newline, a rewrite keeps the passage's own leading and trailing whitespace, and
a model output with a cut byte sequence (U+FFFD, a lone surrogate) never reaches the document. A real
server whose engine worker is scripted, so the model's exact output is the test's."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.web.conftest import editor_text, two_writers, wait_editor_text


def run(page: Page, engine, option: str, at: tuple[int, int], output: str) -> dict:
    page.evaluate("([a, h]) => { window.redraft.view.focus(); window.redraft.view.dispatch({ selection: { anchor: a, head: h } }) }",
                  list(at))
    before = editor_text(page)
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    palette.get_by_label("Put it in").check()
    palette.get_by_role("option", name=option).click()
    job = engine.next_job()
    job.finish(output)
    page.wait_for_function("(before) => window.redraft.view.state.doc.toString() !== before", arg=before)
    return job.spec


def test_seams_and_invalid_text_from_the_model(scripted_server, open_page):
    server, engine = scripted_server()
    url = f"{server.http_url}/d/seams"
    page, other = two_writers(open_page, url, "It needed to be.")

    # Continue from the end of a sentence: a space, not "be.The".
    end = len("It needed to be.")
    assert run(page, engine, "Continue writing", (end, end), "The rest came later.")["kind"] == "continue"
    wait_editor_text(other, "It needed to be. The rest came later.")

    # Fill in at the start of a new paragraph after a line: a newline where the text has none.
    text = editor_text(page)
    run(page, engine, "Fill in here", (len("It needed to be."), len("It needed to be.")), "Nobody in the town knew.")
    merged = editor_text(page)
    assert "be.Nobody" not in merged and "knew.The" not in merged, merged
    assert merged.replace(" ", "").replace("\n", "") == (text[:16] + "Nobody in the town knew." + text[16:]).replace(" ", "").replace("\n", ""), merged

    # A rewrite of a selection with a trailing space keeps it; the model's cut character never lands.
    page.keyboard.press("Control+End")
    page.keyboard.type("\n\nTheir plan worked well.")
    full = editor_text(page)
    start = full.index("Their plan ")
    output = "Their approach caf\ufffd worked\ud800 "  # a byte-level token cut mid-character, a lone surrogate
    run(page, engine, "Rewrite clearer", (start, start + len("Their plan ")), output.strip())
    final = editor_text(page)
    assert "\ufffd" not in final and not any(0xD800 <= ord(char) <= 0xDFFF for char in final), repr(final)
    assert final.endswith(" worked well.") and "Their approach caf" in final, repr(final)
    wait_editor_text(other, final)
