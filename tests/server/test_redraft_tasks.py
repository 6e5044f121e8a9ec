"""Tasks on the server: a request names one (or its kind and instruction imply one), the model must declare it,
and the session tells the editor which model runs and what it declares (jobs/tasks.py), from the in-process
engine's checkpoint or from what the newest Redis worker publishes."""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest
import redis

from jobs.tasks import ALL_TASKS, EVERY_TASK, TASKS, ModelTasks
from server.auth import mint_token
from server.redrafts.engine_model import UNKNOWN, EngineModel, display_name, from_status
from server.redrafts.redis_backend import RedisBackend
from server.redrafts.request import RedraftError, parse_options
from tests.support.processes import RedraftWorker, wait_until

SECRET = "t" * 32
NOTE = "A small local model: it fixes spelling, shortens, fills in and continues."
DECLARED = {"tasks": ["fix", "shorten", "continue", "fill"], "canvas_init": "passage", "note": NOTE}
SMALL_SAYS = "shorten, fix spelling, continue, fill in"  # in jobs/tasks.py's order, in plain words
TEXT = "Teh meeting moved to Thursday. Bring the draft budget."


def refused(body: dict) -> str:
    with pytest.raises(RedraftError) as caught:
        parse_options(body)
    assert (caught.value.status, caught.value.code) == (400, "bad_request"), caught.value.detail
    return caught.value.detail


def test_a_task_must_be_one_of_the_tasks_and_match_its_kind():
    kind, task, *_ = parse_options({"task": "fix"})
    assert (kind, task) == ("rewrite", "fix")  # no kind: the task's
    assert parse_options({"task": "fill", "kind": "fill"})[:2] == ("fill", "fill")
    assert parse_options({"kind": "continue"})[:2] == ("continue", None)  # an older client: no task
    assert parse_options({"task": None})[:2] == (None, None)  # null is "not given", as for kind
    assert parse_options({"task": "instruct", "instruction": "Make it formal."})[:2] == ("rewrite", "instruct")
    for value in (7, True, [], ["fix"], {"task": "fix"}, "", "FIX", "fix ", "grammar", "x" * 100_000):
        detail = refused({"task": value})
        assert detail == f"task must be one of {', '.join(ALL_TASKS)}"  # the hostile value is not echoed back
    assert refused({"task": "fill", "kind": "rewrite"}) == "task fill is a fill, not a rewrite"
    assert refused({"task": "shorten", "kind": "continue"}) == "task shorten is a rewrite, not a continue"
    assert "needs an instruction" in refused({"task": "instruct"})
    assert "needs an instruction" in refused({"task": "instruct", "instruction": "   "})
    assert refused({"task": "fix", "kind": "summarise"}).startswith("kind must be one of")


def test_a_model_refuses_in_plain_words_what_it_does_not_declare():
    small = EngineModel("redraft-small", ModelTasks(("shorten", "fix", "continue", "fill"), "passage", NOTE))
    assert small.refusal("fix") is None
    assert small.refusal("instruct") == f"redraft-small does not take free instructions; it does: {SMALL_SAYS}"
    assert small.refusal("rewrite") == f"redraft-small does not rewrite passages more clearly; it does: {SMALL_SAYS}"
    assert small.refusal("expand") == f"redraft-small does not expand passages; it does: {SMALL_SAYS}"
    assert all(UNKNOWN.refusal(task) is None for task in ALL_TASKS)  # not known yet: every task
    assert small.to_json() == {"name": "redraft-small", "tasks": ["shorten", "fix", "continue", "fill"], "note": NOTE}
    assert UNKNOWN.to_json() == {"name": None, "tasks": list(ALL_TASKS), "note": ""}

    assert display_name("/srv/models/redraft-small/") == "redraft-small"
    assert display_name("tiny") == "tiny" and display_name(None) is None
    assert from_status({"model": "/m/small", "model_name": "small", "tasks": DECLARED}).to_json() == {
        "name": "small", "tasks": ["shorten", "fix", "continue", "fill"], "note": NOTE}
    assert from_status({"model_name": "org/model", "tasks": EVERY_TASK.to_dict()}).name == "org/model"  # an upstream's
    # A status that declares nothing (a loading worker, an older one), or something malformed, counts as none.
    for status in ({"model": "m"}, {"model": "m", "tasks": None}, {"model": "m", "tasks": ["fix"]},
                   {"model": "m", "tasks": {"tasks": ["fly"]}}, {"model": "m", "tasks": {"tasks": []}},
                   {"model": "m", "tasks": {"note": "x" * 1000}}, {"model": "m", "tasks": {"canvas_init": "zero"}}):
        assert from_status(status) is None, status
    assert from_status({"model_name": 5, "tasks": DECLARED}).name is None  # a name that is no text is not shown
    assert len(from_status({"model_name": "x" * 10_000, "tasks": DECLARED}).name) == 128


@pytest.fixture(scope="module")
def declared_checkpoint(tmp_path_factory):
    """A tiny random checkpoint whose config.json declares redraft-small's tasks."""
    pytest.importorskip("torch", reason="the in-process engine needs the engine extra (torch)")
    from tests.engine.tiny import TinySpec, write_checkpoint

    directory = write_checkpoint(TinySpec(), tmp_path_factory.mktemp("ckpt") / "small-fixer")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "redraft": DECLARED}))
    return directory


def api(server, doc: str) -> str:
    return f"{server.http_url}/api/docs/{doc}/redrafts"


def ask(server, token: str, body: dict, doc: str = "tasks") -> httpx.Response:
    return httpx.post(api(server, doc), json=body, params={"token": token})


def ended(server, token: str, redraft_id: str) -> dict | None:
    body = httpx.get(f"{api(server, 'tasks')}/{redraft_id}", params={"token": token}).json()
    return body if body["status"] in ("suggested", "failed") else None


def assert_serves_only_its_tasks(server, node_peers, name: str, edit: str, read: str) -> None:
    """The session names the model and its tasks; undeclared tasks get a 400 that says what it does."""
    session = httpx.get(f"{server.http_url}/api/docs/tasks/session", params={"token": edit}).json()
    assert session["model"] == {"name": name, "tasks": ["shorten", "fix", "continue", "fill"], "note": NOTE}
    peer = node_peers(server.ws_url, "tasks", params={"token": edit})
    peer.wait_synced()
    peer.insert(0, TEXT)
    # Suggestions: the text stays as it is for the next request (the tiny model writes anything).
    passage = {"start_index": 0, "end_index": len("Teh meeting moved to Thursday."), "steps": 2, "seed": 1, "mode": "suggest"}
    cursor = {"start_index": len(TEXT), "end_index": len(TEXT), "steps": 2, "seed": 1, "mode": "suggest"}

    for body, what in (
        ({**passage, "task": "instruct", "instruction": "Make it formal."}, "take free instructions"),
        ({**passage, "kind": "rewrite", "instruction": "Make it formal."}, "take free instructions"),  # older client
        ({**passage}, "rewrite passages more clearly"),  # an older client's plain rewrite
        ({**passage, "task": "expand"}, "expand passages"),
    ):
        response = ask(server, edit, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json() == {"error": "task_not_supported",
                                   "detail": f"{name} does not {what}; it does: {SMALL_SAYS}"}
    for body in ({**passage, "task": "fill", "kind": "rewrite"}, {**passage, "task": 3}, {**passage, "task": "x" * 5000}):
        response = ask(server, edit, body)
        assert (response.status_code, response.json()["error"]) == (400, "bad_request"), (body, response.text)
    read_only = ask(server, read, {**passage, "task": "fix"})
    assert (read_only.status_code, read_only.json()["error"]) == (403, "read_only")

    fixing = ask(server, edit, {**passage, "task": "fix", "instruction": "ignored: the task has its own"})
    assert fixing.status_code == 202, fixing.text
    filling = ask(server, edit, {**cursor, "task": "fill"})
    assert filling.status_code == 202, filling.text
    for response, kind, task in ((fixing, "rewrite", "fix"), (filling, "fill", "fill")):
        final = wait_until(lambda response=response: ended(server, read, response.json()["id"]), 60, "the redraft")
        assert (final["kind"], final["task"], final["instruction"]) == (kind, task, TASKS[task][1])
        assert final["status"] == "suggested", final


def test_the_in_process_engine_serves_only_what_its_checkpoint_declares(start_server, node_peers, declared_checkpoint):
    server = start_server(extra_args=("--engine", "local", "--engine-device", "cpu", "--model", str(declared_checkpoint),
                                      "--secret", SECRET))
    edit, read = mint_token(SECRET, "tasks", "edit", None), mint_token(SECRET, "tasks", "read", None)
    wait_until(lambda: httpx.get(server.http_url + "/healthz").json()["engine"]["status"] == "ready", 60, "engine")
    assert httpx.get(server.http_url + "/healthz").json()["engine"]["tasks"] == {
        "tasks": ["shorten", "fix", "continue", "fill"], "canvas_init": "passage", "note": NOTE}
    assert_serves_only_its_tasks(server, node_peers, "small-fixer", edit, read)


def test_redis_workers_publish_their_model_and_the_server_reads_it(tmp_path, redis_server, start_server, node_peers,
                                                                   declared_checkpoint):
    server = start_server(redis_url=redis_server.url, extra_args=("--engine", "redis", "--secret", SECRET))
    edit, read = mint_token(SECRET, "tasks", "edit", None), mint_token(SECRET, "tasks", "read", None)
    session = httpx.get(f"{server.http_url}/api/docs/tasks/session", params={"token": edit}).json()
    assert session["model"] == {"name": None, "tasks": list(ALL_TASKS), "note": ""}  # no worker seen: every task
    worker = RedraftWorker(redis_server.url, tmp_path / "worker", name="w1", model=str(declared_checkpoint))
    try:
        status = worker.start(wait=True).status()
        assert status["tasks"] == {"tasks": ["shorten", "fix", "continue", "fill"], "canvas_init": "passage",
                                   "note": NOTE}
        wait_until(lambda: httpx.get(server.http_url + "/healthz").json()["engine"]["status"] == "ready", 20, "worker")
        assert_serves_only_its_tasks(server, node_peers, "small-fixer", edit, read)
    finally:
        worker.stop()
    # Gone, the worker's model is still the one the server assumes (the next worker most likely serves it too).
    wait_until(lambda: httpx.get(server.http_url + "/healthz").json()["engine"]["status"] == "unavailable", 20, "gone")
    session = httpx.get(f"{server.http_url}/api/docs/tasks/session", params={"token": edit}).json()
    assert session["model"]["name"] == "small-fixer"


def publish(client: redis.Redis, prefix: str, name: str, **status) -> None:
    """A worker's liveness entry, as worker/run.py writes it."""
    value = {"name": name, "ready": True, "stopping": False, "model": f"/models/{name}", "model_name": name, "running": 0,
             "max_batch": 1, **status}
    client.set(f"{prefix}:engine:worker:{name}", json.dumps(value), px=5000)
    client.sadd(f"{prefix}:engine:workers", name)


@pytest.mark.anyio
async def test_the_newest_live_worker_that_declares_a_model_is_the_one_the_server_assumes(redis_server):
    prefix = "newest"
    backend = RedisBackend(redis_server.url, prefix, poll_s=0.05)
    await backend.start()
    try:
        with redis.Redis.from_url(redis_server.url) as client, anyio.fail_after(10):
            async def until(predicate):
                while not predicate(backend.model()):
                    await anyio.sleep(0.02)

            publish(client, prefix, "loading", ready=False, started_at=time.time())  # declares nothing yet
            while backend.status()["status"] != "loading":
                await anyio.sleep(0.02)
            assert backend.model() == UNKNOWN
            now = time.time()
            publish(client, prefix, "old", started_at=now - 60, tasks=EVERY_TASK.to_dict())
            publish(client, prefix, "new", started_at=now, tasks=DECLARED)
            publish(client, prefix, "forged", started_at=now + 60, tasks={"tasks": ["everything"]})  # malformed: ignored
            await until(lambda model: model.name == "new")
            assert backend.model().tasks.tasks == ("shorten", "fix", "continue", "fill")
            client.delete(f"{prefix}:engine:worker:new")  # the new one died: the old one is the newest live one
            await until(lambda model: model.name == "old")
            assert backend.model().tasks == EVERY_TASK
    finally:
        await backend.close()


@pytest.fixture
def anyio_backend():
    return "asyncio"
