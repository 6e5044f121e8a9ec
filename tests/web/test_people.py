"""People in a document as others see them: a renamed person's caret says the new name at once, a chosen
colour reaches the others, two people never keep one colour by chance, and a read-only viewer shows as a
viewer. Real server, two or three pages."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.web.conftest import share_link, two_pages, two_writers, wait_connected

SECRET = "a-test-secret-of-32-characters!!"


def test_a_rename_and_a_chosen_colour_reach_the_others_cursor_at_once(start_server, open_page):
    server = start_server()
    url = f"{server.http_url}/d/people"
    ada, grace = two_writers(open_page, url, "Some shared text.")
    old = ada.locator("#you-button .you-name").inner_text()
    expect(grace.locator(".cm-ySelectionInfo")).to_have_text(old)

    ada.keyboard.press("Alt+Shift+KeyN")
    panel = ada.get_by_role("dialog", name="Your name")
    expect(ada.get_by_role("textbox", name="Your name")).to_be_focused()
    ada.get_by_role("textbox", name="Your name").fill("Ada")
    panel.get_by_role("radio", name="Colour 3 (#00707f)").check()
    ada.get_by_role("textbox", name="Your name").press("Enter")
    expect(grace.locator(".cm-ySelectionInfo")).to_have_text("Ada")  # not the stale guest name
    expect(grace.locator(".cm-ySelectionCaret")).to_have_css("background-color", "rgb(0, 112, 127)")
    expect(grace.locator("#presence .person-name")).to_have_text(["Ada"])
    ada.reload()
    wait_connected(ada)
    stored = json.loads(ada.evaluate("() => localStorage.getItem('redraft.user')"))
    assert (stored["name"], stored["color"], stored["colorChosen"]) == ("Ada", "#00707f", True)


def test_two_people_with_the_same_colour_end_up_with_two(start_server, open_page):
    server = start_server()
    url = f"{server.http_url}/d/colours"
    pages = []
    for name in ("Ada", "Grace"):  # both were given the same colour by chance, neither chose it
        page = open_page(f"{server.http_url}/")
        page.evaluate("(user) => localStorage.setItem('redraft.user', user)", json.dumps({"name": name, "color": "#b4233c"}))
        pages.append(page)
    for page in pages:
        page.goto(url)
    for page in pages:
        wait_connected(page)
    colours = lambda page: page.evaluate("""() => [...window.redraft.provider.awareness.getStates().values()]
        .filter(s => s && s.user && s.user.name).map(s => s.user.color).sort()""")
    for page in pages:
        page.wait_for_function("""() => { const c = [...window.redraft.provider.awareness.getStates().values()]
            .filter(s => s && s.user && s.user.name).map(s => s.user.color); return c.length === 2 && c[0] !== c[1] }""")
    assert len(set(colours(pages[0]))) == 2
    assert colours(pages[0]) == colours(pages[1])


def test_a_read_only_viewer_shows_as_a_viewer(start_server, open_page):
    server = start_server(extra_args=("--secret", SECRET))
    writer, reader = two_pages(open_page, share_link(server.http_url, SECRET, "minutes", "edit"),
                               share_link(server.http_url, SECRET, "minutes", "read"), "Decisions: ship it.")
    reader.locator(".cm-content").click()
    viewer = writer.locator("#presence .person.is-viewer")
    expect(viewer).to_have_count(1)
    expect(viewer.locator(".person-name")).to_contain_text("viewing")
    expect(writer.locator(".cm-ySelectionCaret.is-viewer .cm-ySelectionInfo")).to_contain_text("(viewing)")
    expect(reader.locator("#presence .person.is-viewer")).to_have_count(0)  # the writer is an editor
