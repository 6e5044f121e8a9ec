"""Redrafts end to end: a real server with the in-process engine (the `tiny` preset: see MODEL), real Node
Yjs clients, HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from server.auth import mint_token
from server.redrafts.directory import OWNER_GONE
from tests.support.processes import wait_until

SECRET = "s" * 32
ORIGINAL = "Intro line. The passage 😀 to be redrafted, over here. Outro line."
PASSAGE = "The passage 😀 to be redrafted, over here."
TASK = "fix"
# `tiny` (random weights, every task declared) always writes something new: these tests follow a changed passage
# through merge, undo and redo, and the shipped redraft-small's careful fix mostly keeps a passage as it is
# (tests/web/test_redrafts.py and tests/server/test_openai_api.py run the shipped model)
MODEL = "tiny"


def start_engine_server(start_server, *args):
    server = start_server(extra_args=("--engine", "local", "--engine-device", "cpu", "--model", MODEL, *args))
    wait_until(lambda: httpx.get(server.http_url + "/healthz").json()["engine"]["status"] == "ready", 60, "engine")
    return server


def api(server, doc: str, path: str = "") -> str:
    return f"{server.http_url}/api/docs/{doc}/redrafts{path}"


def wait_status(server, doc, redraft_id, statuses, timeout=60, token=None):
    def done():
        body = httpx.get(api(server, doc, f"/{redraft_id}"), params={"token": token} if token else None).json()
        return body if body["status"] in statuses else None

    return wait_until(done, timeout, f"redraft {redraft_id} to reach {statuses}", interval=0.05)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def shared_doc(node_peers, server, doc, text=ORIGINAL):
    a = node_peers(server.ws_url, doc, name="alice")
    b = node_peers(server.ws_url, doc, name="bob")
    a.wait_synced()
    b.wait_synced()
    a.insert(0, text)
    b.wait_text(text)
    return a, b


def passage_range(a, text=ORIGINAL, passage=PASSAGE):
    """The passage's range, and a task the shipped model declares (jobs/tasks.py): a request without one is an
    older client's plain rewrite, which a model that does not declare `rewrite` refuses."""
    start = utf16(text[: text.index(passage)])
    end = start + utf16(passage)
    return {"start": a.relpos(start), "end": a.relpos(end, -1), "task": TASK}


def _ai_log_until(peer, redraft_id, status):
    """The redraft's entries this client saw, once the last one has the given status."""
    log = [entry for entry in peer.ai_log() if entry["id"] == redraft_id]
    return log if log and log[-1]["status"] == status else None


def test_two_clients_see_the_preview_and_the_merged_text_and_undo(start_server, node_peers):
    server = start_engine_server(start_server)
    a, b = shared_doc(node_peers, server, "story")
    response = httpx.post(api(server, "story"), json={**passage_range(a), "steps": 12, "seed": 5,
                                                      "requester": {"name": "alice", "color": "#f00"}})
    assert response.status_code == 202, response.text
    redraft_id = response.json()["id"]
    final = wait_status(server, "story", redraft_id, ("done", "failed"))
    assert final["status"] == "done", final
    assert final["original"] == PASSAGE and final["text"]
    merged = ORIGINAL.replace(PASSAGE, final["text"])
    a.wait_text(merged)
    b.wait_text(merged)
    with httpx.Client() as http:  # the server's replica equals the clients'
        assert http.get(api(server, "story", f"/{redraft_id}")).json()["text"] == final["text"]
    for peer in (a, b):
        # The AI peer's states are throttled: the final one may land a moment after GET says done.
        log = wait_until(lambda: _ai_log_until(peer, redraft_id, "done"), 10, "the done state in awareness")
        running = [entry for entry in log if entry["status"] == "running"]
        assert running and all(entry["ai"] for entry in log)
        assert all(0 < entry["step"] <= entry["max_steps"] == 12 and entry["tokens"] > 0 for entry in running)
        assert log[-1]["status"] == "done" and log[-1]["text"] == final["text"]
        assert peer.resolve(log[-1]["anchors"]["start"]) == utf16("Intro line. ")
    timings = final["timings"]
    assert {"queue", "prefill", "denoise", "merge", "first_snapshot", "total"} <= timings.keys()
    assert final["steps"] == [12] * len(final["steps"])

    undo = httpx.post(api(server, "story", f"/{redraft_id}/undo"))
    assert undo.status_code == 200 and undo.json()["status"] == "undone"
    a.wait_text(ORIGINAL)
    b.wait_text(ORIGINAL)
    assert httpx.post(api(server, "story", f"/{redraft_id}/undo")).status_code == 409
    metrics = httpx.get(server.http_url + "/metrics").text
    assert 'redraft_redrafts_total{status="done"} 1.0' in metrics
    assert "redraft_first_snapshot_seconds_count 1.0" in metrics


def test_concurrent_edits_survive_the_merge_and_undo_removes_only_the_redraft(start_server, node_peers):
    server = start_engine_server(start_server)
    a, b = shared_doc(node_peers, server, "busy")
    # Many steps over several canvases: the redraft runs for seconds, long enough to type meanwhile.
    response = httpx.post(api(server, "busy"), json={**passage_range(a), "steps": 96, "seed": 1})
    redraft_id = response.json()["id"]
    wait_status(server, "busy", redraft_id, ("running",))
    # Bob types inside the passage (before "over"), before it and after it, and deletes a character nearby.
    text = b.text
    b.insert(utf16(text[: text.index("over here")]), "[in🎉]")
    text = b.text
    b.insert(utf16(text[: text.index("Outro")]) + 2, "[out]")
    text = b.text
    b.delete(utf16(text[: text.index("line.")]), 1)  # "Intro line." -> "Intro ine."
    edited = b.text
    a.wait_text(edited)
    assert httpx.get(api(server, "busy", f"/{redraft_id}")).json()["status"] == "running"
    final = wait_status(server, "busy", redraft_id, ("done", "failed"))
    assert final["status"] == "done", final

    merged = a.text
    b.wait_text(merged)
    prefix, suffix = "Intro ine. ", " Ou[out]tro line."
    assert merged.startswith(prefix) and merged.endswith(suffix), merged
    middle = merged[len(prefix) : len(merged) - len(suffix)]
    assert "[in🎉]" in middle and middle.replace("[in🎉]", "", 1) == final["text"]

    b.insert(0, ">> ")  # more typing after the merge
    a.wait_text(">> " + merged)
    assert httpx.post(api(server, "busy", f"/{redraft_id}/undo")).status_code == 200
    a.wait_text(">> " + edited)
    b.wait_text(">> " + edited)


def test_suggestions_wait_for_accept_merge_with_edits_and_conflict_once_the_passage_is_gone(start_server, node_peers):
    server = start_engine_server(start_server)
    a, b = shared_doc(node_peers, server, "suggest")
    first = httpx.post(api(server, "suggest"), json={**passage_range(a), "mode": "suggest", "steps": 12, "seed": 5}).json()
    suggested = wait_status(server, "suggest", first["id"], ("suggested", "failed"))
    assert suggested["status"] == "suggested" and b.text == ORIGINAL  # nothing applied yet
    assert suggested["expires_at"] > suggested["created_at"] and suggested["passage_edited"] is False
    accepted = httpx.post(api(server, "suggest", f"/{first['id']}/accept"))
    assert accepted.status_code == 200 and accepted.json()["status"] == "done"
    merged = ORIGINAL.replace(PASSAGE, suggested["text"])
    b.wait_text(merged)

    assert httpx.post(api(server, "suggest", f"/{first['id']}/undo")).status_code == 200
    b.wait_text(ORIGINAL)
    second = httpx.post(api(server, "suggest"), json={**passage_range(a), "mode": "suggest", "steps": 12, "seed": 5}).json()
    assert wait_status(server, "suggest", second["id"], ("suggested", "conflict", "failed"))["status"] == "suggested"
    # Someone edits inside the passage under the suggestion: it stays valid, says so, and the accept keeps the edit.
    b.insert(utf16(ORIGINAL[: ORIGINAL.index("over")]), "really ")
    edited = wait_until(lambda: (v := httpx.get(api(server, "suggest", f"/{second['id']}")).json())["passage_edited"] and v,
                        10, "the suggestion to see the edit")
    assert edited["status"] == "suggested"
    accepted = httpx.post(api(server, "suggest", f"/{second['id']}/accept"))
    assert accepted.status_code == 200 and accepted.json()["status"] == "done", accepted.text
    wait_until(lambda: "really " in a.text and a.text.replace("really ", "", 1) == merged, 10, "the accept with the edit")
    assert httpx.post(api(server, "suggest", f"/{second['id']}/undo")).status_code == 200
    a.wait_text(ORIGINAL.replace("over", "really over", 1))

    # Once the whole passage is deleted there is nothing to merge into: a conflict, which can be rejected.
    third = httpx.post(api(server, "suggest"), json={**passage_range(a, a.text, PASSAGE.replace("over", "really over")),
                                                     "mode": "suggest", "steps": 12, "seed": 5}).json()
    assert wait_status(server, "suggest", third["id"], ("suggested", "failed"))["status"] == "suggested"
    text = b.text
    b.delete(utf16(text[: text.index("The passage")]), utf16(PASSAGE.replace("over", "really over")))
    wait_status(server, "suggest", third["id"], ("conflict",), timeout=10)
    refused = httpx.post(api(server, "suggest", f"/{third['id']}/accept"))
    assert refused.status_code == 409 and refused.json()["error"] == "conflict"
    rejected = httpx.request("DELETE", api(server, "suggest", f"/{third['id']}"),
                             json={"by": {"name": "bob", "color": "#00ff00"}})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["rejected_by"] == {"name": "bob", "color": "#00ff00"}


def test_the_history_for_readers_undo_of_an_older_redraft_redo_and_who_blocks_an_undo(start_server, node_peers):
    server = start_engine_server(start_server, "--secret", SECRET)
    edit, read = (mint_token(SECRET, "hist", role, None) for role in ("edit", "read"))
    a = node_peers(server.ws_url, "hist", params={"token": edit}, name="alice")
    b = node_peers(server.ws_url, "hist", params={"token": edit}, name="bob")
    a.wait_synced()
    b.wait_synced()
    a.insert(0, ORIGINAL)
    b.wait_text(ORIGINAL)

    def ask(passage, who):
        text = a.text
        body = {**passage_range(a, text, passage), "steps": 12, "seed": 5, "requester": {"name": who, "color": "#123456"}}
        response = httpx.post(api(server, "hist"), json=body, params={"token": edit})
        assert response.status_code == 202, response.text
        final = wait_status(server, "hist", response.json()["id"], ("done", "failed"), token=read)
        assert final["status"] == "done", final
        return final

    first = ask(PASSAGE, "alice")
    a.wait_text(ORIGINAL.replace(PASSAGE, first["text"]))
    b.insert(0, "[bob] ")  # typing between the two redrafts
    a.wait_text("[bob] " + ORIGINAL.replace(PASSAGE, first["text"]))
    second = ask("Outro line.", "bob")
    assert second["text"] != "Outro line."
    both = "[bob] " + ORIGINAL.replace(PASSAGE, first["text"]).replace("Outro line.", second["text"])
    a.wait_text(both)

    listed = httpx.get(api(server, "hist"), params={"token": read})  # a read-only link sees the history
    assert listed.status_code == 200, listed.text
    redrafts = listed.json()["redrafts"]
    assert [(r["id"], r["requester"]["name"], r["kind"], r["mode"], r["status"]) for r in redrafts] == [
        (second["id"], "bob", "rewrite", "apply", "done"), (first["id"], "alice", "rewrite", "apply", "done")]
    assert all(r["can_undo"] and not r["can_redo"] and r["undo_blocked"] is None for r in redrafts)
    page = httpx.get(api(server, "hist"), params={"token": read, "limit": 1}).json()["redrafts"]
    older = httpx.get(api(server, "hist"), params={"token": read, "before": page[-1]["created_at"]}).json()["redrafts"]
    assert [r["id"] for r in page + older] == [second["id"], first["id"]]
    assert httpx.get(api(server, "hist"), params={"token": read, "limit": 0}).json()["error"] == "bad_request"
    assert httpx.post(api(server, "hist", f"/{first['id']}/undo"), params={"token": read}).status_code == 403

    undone = httpx.post(api(server, "hist", f"/{first['id']}/undo"), params={"token": edit})  # the older one
    assert undone.status_code == 200 and undone.json()["status"] == "undone" and undone.json()["can_redo"]
    b.wait_text("[bob] " + ORIGINAL.replace("Outro line.", second["text"]))
    redone = httpx.post(api(server, "hist", f"/{first['id']}/redo"), params={"token": edit})
    assert redone.status_code == 200 and redone.json()["status"] == "done"
    b.wait_text(both)

    # bob rewrites the second redraft's text by hand: undoing it would overwrite him, and says so.
    text = b.text
    at = utf16(text[: text.index(second["text"])])
    b.delete(at, utf16(second["text"]))
    b.insert(at, "Bob wrote this.")
    a.wait_text(both.replace(second["text"], "Bob wrote this."))
    refused = httpx.post(api(server, "hist", f"/{second['id']}/undo"), params={"token": edit})
    assert refused.status_code == 409 and refused.json()["error"] == "cannot_undo", refused.text
    assert re.fullmatch(r"bob has since edited (\d+ of the words|one of the words) this redraft wrote; to undo it "
                        r"now would overwrite that, so it can only be done by hand", refused.json()["detail"])
    view = httpx.get(api(server, "hist", f"/{second['id']}"), params={"token": read}).json()
    assert not view["can_undo"] and view["undo_blocked"] == refused.json()["detail"]


def test_cancel_stops_a_running_redraft_without_touching_the_document(start_server, node_peers):
    server = start_engine_server(start_server)
    a, b = shared_doc(node_peers, server, "cancel")
    redraft_id = httpx.post(api(server, "cancel"), json={**passage_range(a), "steps": 200}).json()["id"]
    wait_status(server, "cancel", redraft_id, ("running",))
    assert httpx.delete(api(server, "cancel", f"/{redraft_id}")).json()["status"] == "cancelled"
    final = wait_status(server, "cancel", redraft_id, ("cancelled",))
    assert final["text"] is None
    # The job's end is counted once the engine has let go of it: from then on nothing of it can land.
    wait_until(lambda: 'redraft_redrafts_total{status="cancelled"} 1.0' in httpx.get(server.http_url + "/metrics").text,
               10, "the cancelled job to end")
    # An edit made after that reaches the other client behind anything the server sent before it: the text is
    # exactly the original and that edit, and the server itself made no change to the document.
    a.insert(0, "[after] ")
    b.wait_text("[after] " + ORIGINAL)
    assert a.text == "[after] " + ORIGINAL
    assert 'redraft_updates_total{source="server"}' not in httpx.get(server.http_url + "/metrics").text


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(start_server, node_peers):
    server = start_engine_server(start_server, "--redraft-max-chars", "30", "--redraft-user-burst", "100",
                                 "--redraft-doc-burst", "100")
    a, _ = shared_doc(node_peers, server, "bad")

    def post(body, doc="bad", **kwargs):
        return httpx.post(api(server, doc), json=body, **kwargs)

    cases = [
        ({"start": "!!notbase64", "end": "AAAA"}, 400, "bad_range"),
        ({"start": "AAAA", "end": "AAAA"}, 400, "bad_range"),  # decodes, but points at nothing here
        ({"start_index": 20, "end_index": 10}, 400, "bad_range"),  # reversed
        ({"start_index": 0, "end_index": 10_000}, 400, "bad_range"),  # beyond the text
        ({"start_index": 23, "end_index": 24}, 400, "bad_range"),  # inside the emoji's surrogate pair
        ({"start_index": 0, "end_index": 60}, 413, "range_too_long"),
        ({"start_index": 5, "end_index": 5}, 400, "bad_range"),  # a passage task needs a passage
        ({"start_index": 0, "end_index": 5, "mode": "force"}, 400, "bad_request"),
        ({"start_index": 0, "end_index": 5, "steps": 0}, 400, "bad_request"),
        ({"start_index": 0, "end_index": 5, "task": "translate"}, 400, "bad_request"),
        ({"start_index": 0, "end_index": 5, "task": "fill"}, 400, "bad_range"),  # fill writes at a cursor
        ({}, 400, "bad_range"),
    ]
    for body, status, code in cases:
        response = post({"task": TASK, **body})
        assert (response.status_code, response.json()["error"]) == (status, code), (body, response.text)
        assert response.json()["detail"]
    assert post({"start_index": 0, "end_index": 5}, doc="never-edited").status_code == 404
    assert httpx.get(api(server, "bad", "/nope")).json()["error"] == "unknown_redraft"
    assert httpx.post(api(server, "bad", "/nope/accept")).status_code == 404
    not_json = httpx.post(api(server, "bad"), content=b"start_index=0", headers={"content-type": "text/plain"})
    assert not_json.status_code == 415
    evil = post({"start_index": 0, "end_index": 5}, headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    # Still serving: a good request goes through.
    assert post({"start_index": 0, "end_index": 5, "steps": 4, "task": TASK}).status_code == 202


def test_tokens_engine_off_and_full_queue(start_server, node_peers):
    secured = start_engine_server(start_server, "--secret", SECRET, "--redraft-queue-max", "1",
                                  "--redraft-user-per-min", "1", "--redraft-user-burst", "1")
    edit = mint_token(SECRET, "q", "edit", None)
    read = mint_token(SECRET, "q", "read", None)
    a = node_peers(secured.ws_url, "q", params={"token": edit})
    a.wait_synced()
    a.insert(0, ORIGINAL)
    body = {"start_index": 0, "end_index": 5, "steps": 200, "task": TASK}
    url = api(secured, "q")
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, params={"token": "garbage"}).status_code == 401
    read_only = httpx.post(url, json=body, params={"token": read})
    assert read_only.status_code == 403 and read_only.json()["error"] == "read_only"
    first = httpx.post(url, json=body, headers={"authorization": f"Bearer {edit}"})
    assert first.status_code == 202
    full = httpx.post(url, json=body, params={"token": edit})
    assert full.status_code == 429 and full.json()["error"] == "queue_full" and int(full.headers["retry-after"]) >= 1
    assert httpx.get(api(secured, "q", f"/{first.json()['id']}"), params={"token": read}).status_code == 200
    assert httpx.delete(api(secured, "q", f"/{first.json()['id']}"), params={"token": edit}).status_code == 200
    wait_status_token = lambda: httpx.get(  # noqa: E731
        api(secured, "q", f"/{first.json()['id']}"), params={"token": edit}
    ).json()["status"] == "cancelled"
    wait_until(wait_status_token, 30, "the cancel")
    limited = httpx.post(url, json=body, params={"token": edit})  # a second admitted request within the minute (burst 1)
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"

    off = start_server("off")  # the default: --engine off
    b = node_peers(off.ws_url, "doc")
    b.wait_synced()
    b.insert(0, "text")
    refused = httpx.post(api(off, "doc"), json={"start_index": 0, "end_index": 4})
    assert refused.status_code == 503 and "--engine" in refused.json()["detail"]
    assert httpx.get(off.http_url + "/healthz").json()["engine"]["status"] == "off"


@pytest.mark.parametrize("grace", ["0.2"])
def test_unloading_a_document_cancels_its_redrafts(start_server, node_peers, grace):
    server = start_engine_server(start_server, "--room-grace-s", grace)
    a, b = shared_doc(node_peers, server, "leaving")
    redraft_id = httpx.post(api(server, "leaving"), json={**passage_range(a), "steps": 250}).json()["id"]
    wait_status(server, "leaving", redraft_id, ("running",))
    a.close()
    b.close()
    final = wait_status(server, "leaving", redraft_id, ("cancelled",), timeout=30)
    assert "closed" in final["error"]


def test_redis_engine_two_servers_and_a_worker_and_either_answers_for_a_redraft(tmp_path, redis_server, start_server, node_peers):
    from tests.support.processes import RedraftWorker

    worker = RedraftWorker(redis_server.url, tmp_path / "worker", name="w1", model=MODEL).start(wait=True)
    try:
        one = start_server("one", redis_url=redis_server.url, extra_args=("--engine", "redis"))
        two = start_server("two", redis_url=redis_server.url, extra_args=("--engine", "redis"))
        wait_until(lambda: httpx.get(one.http_url + "/healthz").json()["engine"]["status"] == "ready", 20, "worker")
        a = node_peers(one.ws_url, "shared", name="alice")
        b = node_peers(two.ws_url, "shared", name="bob")
        a.wait_synced()
        b.wait_synced()
        a.insert(0, ORIGINAL)
        b.wait_text(ORIGINAL)
        response = httpx.post(api(one, "shared"), json={**passage_range(a), "steps": 12, "seed": 2})
        assert response.status_code == 202, response.text
        final = wait_status(one, "shared", response.json()["id"], ("done", "failed"))
        assert final["status"] == "done", final
        merged = ORIGINAL.replace(PASSAGE, final["text"])
        b.wait_text(merged)  # through the other server, via Redis
        a.wait_text(merged)
        seen = wait_until(lambda: _ai_log_until(b, final["id"], "done"), 10, "done in awareness")  # across servers
        assert any(e["status"] == "running" and e["step"] > 0 for e in seen) and seen[-1]["status"] == "done"

        # Behind a load balancer the next request may reach the other replica: it answers for the owner.
        first = final["id"]
        seen_by_two = wait_status(two, "shared", first, ("done",), timeout=10)
        assert (seen_by_two["text"], seen_by_two["steps"]) == (final["text"], final["steps"])
        listed = httpx.get(api(two, "shared")).json()["redrafts"]  # the history lists the owner's redrafts too
        assert [(r["id"], r["status"], r["can_undo"]) for r in listed] == [(first, "done", True)]
        undone = httpx.post(api(two, "shared", f"/{first}/undo"))
        assert undone.status_code == 200 and undone.json()["status"] == "undone", undone.text
        a.wait_text(ORIGINAL)
        b.wait_text(ORIGINAL)
        wait_until(lambda: [(r["status"], r["can_redo"]) for r in httpx.get(api(two, "shared")).json()["redrafts"]]
                   == [("undone", True)], 10, "the undo in the other replica's history")
        again = httpx.post(api(two, "shared", f"/{first}/undo"))  # the owner's refusal, forwarded as it was
        assert (again.status_code, again.json()["error"]) == (409, "not_applied")
        assert httpx.get(api(two, "shared", "/nope")).status_code == 404
        assert httpx.get(api(two, "other-doc", f"/{first}")).status_code == 404

        # The other way round: a suggestion asked of two, accepted through one.
        asked = httpx.post(api(two, "shared"), json={**passage_range(b), "mode": "suggest", "steps": 12, "seed": 2})
        assert asked.status_code == 202, asked.text
        second = asked.json()["id"]
        suggested = wait_status(one, "shared", second, ("suggested", "failed"))
        assert suggested["status"] == "suggested", suggested
        accepted = httpx.post(api(one, "shared", f"/{second}/accept"))
        assert accepted.status_code == 200 and accepted.json()["status"] == "done", accepted.text
        a.wait_text(ORIGINAL.replace(PASSAGE, suggested["text"]))
        b.wait_text(ORIGINAL.replace(PASSAGE, suggested["text"]))
        for server in (one, two):  # each replica lists both, newest first, whichever holds them
            listed = httpx.get(api(server, "shared")).json()["redrafts"]
            assert [r["id"] for r in listed] == [second, first]
        # alice (on one) rewrites the suggestion's words by hand: two, its owner, republishes why it cannot be undone.
        text = a.text
        at = utf16(text[: text.index(suggested["text"])])
        a.delete(at, utf16(suggested["text"]))
        a.insert(at, "Replaced by hand.")
        blocked = wait_until(lambda: httpx.get(api(one, "shared")).json()["redrafts"][0]["undo_blocked"], 10,
                             "the owner's republished undo state")
        assert blocked.startswith("alice has since edited")

        # The owner gone: its redrafts can still be read, but no longer changed.
        two.stop()
        three = start_server("three", redis_url=redis_server.url, extra_args=("--engine", "redis"))
        view = httpx.get(api(three, "shared", f"/{second}")).json()
        assert (view["status"], view["can_undo"], view["undo_blocked"]) == ("done", False, OWNER_GONE)
        listed = {r["id"]: r for r in httpx.get(api(three, "shared")).json()["redrafts"]}
        assert (listed[second]["can_undo"], listed[second]["undo_blocked"]) == (False, OWNER_GONE)
        gone = httpx.post(api(three, "shared", f"/{second}/undo"))
        assert (gone.status_code, gone.json()["error"]) == (503, "owner_unreachable"), gone.text
        assert "the server that ran this redraft has stopped" in gone.json()["detail"]
    finally:
        worker.stop()


def test_a_redraft_counts_against_the_stored_size_not_the_log(start_server, node_peers):
    """Text typed and deleted again grows the log, not the stored document: a redraft still lands (the limit is
    on what compaction stores, as for a client's update)."""
    server = start_engine_server(start_server, "--max-doc-bytes", "6000", "--compact-min-bytes", "1000000")
    a, b = shared_doc(node_peers, server, "roomy")
    for _ in range(3):  # some 9 KB through the log, none of it left in the document
        a.insert(0, "x" * 3000)
        a.delete(0, 3000)
    b.wait_text(ORIGINAL)
    response = httpx.post(api(server, "roomy"), json={**passage_range(a), "steps": 12, "seed": 5})
    assert response.status_code == 202, response.text
    final = wait_status(server, "roomy", response.json()["id"], ("done", "failed"))
    assert final["status"] == "done", final
    b.wait_text(ORIGINAL.replace(PASSAGE, final["text"]))
