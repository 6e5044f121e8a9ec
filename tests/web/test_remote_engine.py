"""The editor with `--engine openai`: two people watch a left-to-right model's answer fill in, and a broken
stream ends with the upstream's message and the document untouched (the upstream is
tests/support/openai_faults.py, slowed so that every chunk is seen)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.support.openai_faults import FaultServer
from tests.support.processes import wait_until

from .conftest import editor_text, screenshot, two_writers, wait_editor_text
from .test_redrafts import select

ORIGINAL = "The meeting moved to Thursday. Bring the draft budget and your questions."
PASSAGE = "Bring the draft budget and your questions."
REPLY = ["Please ", "bring ", "the ", "draft ", "budget ", "and ", "any ", "questions."]


def ask_rewrite(page, text: str, passage: str) -> None:
    start = text.index(passage)
    select(page, start, start + len(passage))
    page.keyboard.press("Control+k")
    palette = page.get_by_role("dialog", name="Redraft with AI")
    palette.get_by_label("Put it in").check()
    palette.get_by_role("option", name="Rewrite clearer").click()


def test_a_streaming_engine_fills_in_from_the_left_for_everyone(start_server, open_page):
    with FaultServer() as faults:
        faults.reply, faults.chunk_delay_s = REPLY, 0.25
        server = start_server(extra_args=("--engine", "openai", "--engine-url", faults.url))
        wait_until(lambda: httpx.get(f"{server.http_url}/healthz").json()["engine"]["status"] == "ready", 20,
                   "the engine server")
        page_a, page_b = two_writers(open_page, f"{server.http_url}/d/remote", ORIGINAL)
        ask_rewrite(page_a, ORIGINAL, PASSAGE)
        # B sees the answer so far, labelled as a left-to-right writer with its token count, never a step count
        label = page_b.locator(".cm-redraft-step")
        expect(label).to_have_text(re.compile(r"writing left to right · [3-7] tokens"))
        expect(page_b.locator(".cm-redraft-canvas")).to_contain_text("Please bring the")
        screenshot(page_b, "remote-engine-streaming")
        expect(page_a.locator(".toast")).to_contain_text("Redraft applied.")
        merged = ORIGINAL.replace(PASSAGE, "".join(REPLY))
        wait_editor_text(page_a, merged)
        wait_editor_text(page_b, merged)
        expect(page_b.locator(".cm-redraft-canvas")).to_have_count(0)

        faults.mode = "error_mid_stream"  # two chunks, then the upstream's error event
        ask_rewrite(page_a, merged, "".join(REPLY))
        toast = page_a.locator(".toast-error")
        expect(toast).to_contain_text("the engine server failed mid-stream: CUDA error")
        expect(toast).to_contain_text("Nothing was changed.")
        screenshot(page_a, "remote-engine-failed")
        assert editor_text(page_a) == merged and editor_text(page_b) == merged
