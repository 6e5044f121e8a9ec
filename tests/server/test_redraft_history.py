"""The redraft service in process with a scripted engine: history, undo of any redraft and redo around
others' typing, expiry, seams and progress over canvases. The engine writes what each test says, so the
outcomes are exact; the rooms, store, merge and AI peer are the real ones."""

from __future__ import annotations

import asyncio
import json

import anyio
import pytest
from pycrdt import Doc, Text

from server.config import ServerConfig
from server.redrafts import merge
from server.redrafts.ai_peer import MAX_SHOWN, MAX_STATE_BYTES, bounded_state
from server.redrafts.engine_model import UNKNOWN
from server.redrafts.lifecycle import overall_progress
from server.redrafts.record import Redraft
from server.redrafts.request import RedraftError
from server.services import Services


@pytest.fixture
def anyio_backend():
    return "asyncio"


class ScriptedJob:
    """Plays `num_canvases` canvases of `steps` steps, each canvas showing its share of the text, then the text."""

    def __init__(self, text: str, num_canvases: int, steps: int, gate: asyncio.Event):
        self.text, self.num_canvases, self.steps, self.gate = text, num_canvases, steps, gate
        self.is_cancelled = False

    def __aiter__(self):
        return self._progress()

    async def _progress(self):
        share = -(-len(self.text) // self.num_canvases)
        for canvas in range(self.num_canvases):
            for step in range(1, self.steps + 1):
                await asyncio.sleep(0)
                written = self.text[: share * canvas + share * step // self.steps]
                current = written[share * canvas :]
                yield {"step": step, "max_steps": self.steps, "canvas_index": canvas,
                       "text": written, "tokens": [[current, 0.5]], "stopped": step == self.steps, "finished": False,
                       "progress": {"step": canvas * self.steps + step, "max_steps": self.num_canvases * self.steps}}
        await self.gate.wait()

    async def result(self) -> dict:
        status = "cancelled" if self.is_cancelled else "done"
        return {"status": status, "text": self.text, "complete": True, "steps": [self.steps] * self.num_canvases,
                "tokens": len(self.text), "timings": {}}

    def cancel(self) -> None:
        self.is_cancelled = True
        self.gate.set()


class ScriptedBackend:
    mode = "scripted"

    def __init__(self):
        self.answers: list[str] = []  # the next jobs' texts, in order
        self.gate = asyncio.Event()
        self.gate.set()
        self.num_canvases = 1

    async def start(self):
        pass

    async def close(self):
        pass

    def status(self):
        return {"mode": self.mode, "status": "ready"}

    def model(self):
        return UNKNOWN  # every task: the scripted answers stand for any model

    async def submit(self, spec):
        return ScriptedJob(self.answers.pop(0), self.num_canvases, 4, self.gate)


@pytest.fixture
async def service(tmp_path):
    config = ServerConfig(data_dir=tmp_path, redraft_suggestion_ttl_s=0.5, redraft_user_burst=100, redraft_doc_burst=100)
    services = Services.build(config)
    backend = services.redrafts.backend = ScriptedBackend()
    await services.start()
    room = await services.rooms.acquire("doc")
    services.redrafts.script = backend
    services.redrafts.room = room
    yield services.redrafts
    services.rooms.release(room)
    await services.close()


def type_text(room, at: int, text: str = "", delete: int = 0) -> None:
    """A collaborator's edit (a client of their own) at a code point index."""
    other = Doc()
    other.apply_update(room.doc.get_update())
    value = str(room.text)
    content = other.get("content", type=Text)
    before = other.get_state()
    offset = len(value[:at].encode())
    if delete:
        del content[offset : offset + len(value[at : at + delete].encode())]
    if text:
        content.insert(offset, text)
    update = other.get_update(before)
    room.local_change(lambda: room.doc.apply_update(update))


async def redraft(service, passage: str, answer: str, **body) -> str:
    """Asks for a redraft of `passage` (or at the index just after it for continue/fill), waits for its end."""
    service.script.answers.append(answer)
    value = str(service.room.text)
    start = value.index(passage)
    end = start + len(passage)
    if body.get("kind") in ("continue", "fill"):
        start = end
    redraft = await service.create("doc", {"start_index": start, "end_index": end, **body}, "user")
    with anyio.fail_after(5):
        while redraft.status in ("queued", "running"):
            await asyncio.sleep(0.01)
    return redraft.id


TEXT = "Intro. The quick brown fox jumps. Middle text here. The lazy dog sleeps now. Outro."


@pytest.mark.anyio
async def test_several_redrafts_undo_the_older_one_after_typing_redo_and_a_blocked_undo(service):
    room = service.room
    room.local_change(lambda: room.text.insert(0, TEXT))
    first = await redraft(service, "The quick brown fox jumps.", "A swift red fox leaps high.",
                          requester={"name": "Ada", "color": "#112233"}, instruction="livelier")
    type_text(room, str(room.text).index("Middle"), "Grace typed. ")
    second = await redraft(service, "The lazy dog sleeps now.", "A tired hound naps.")
    type_text(room, str(room.text).index("Outro"), "More. ")
    assert str(room.text) == "Intro. A swift red fox leaps high. Grace typed. Middle text here. A tired hound naps. More. Outro."

    # The document's edits were followed as they happened: both changes stand on the text as it is now.
    followed = service.undo_history.texts["doc"]
    assert followed == str(room.text) and all(service.redrafts[i].change.landed is followed for i in (first, second))
    listed = (await service.history("doc"))
    assert [r["id"] for r in listed] == [second, first]  # newest first
    assert listed[1]["requester"] == {"name": "Ada", "color": "#112233", "verified": False} and listed[1]["instruction"] == "livelier"
    assert all(r["can_undo"] and not r["can_redo"] and r["undo_blocked"] is None for r in listed)
    assert listed[0]["created_at"] >= listed[1]["created_at"]

    undone = await service.command("doc", first, "undo")  # the older one
    assert undone["status"] == "undone" and undone["can_redo"] and not undone["can_undo"]
    assert str(room.text) == "Intro. The quick brown fox jumps. Grace typed. Middle text here. A tired hound naps. More. Outro."
    type_text(room, 0, ">> ")
    redone = await service.command("doc", first, "redo")
    assert redone["status"] == "done" and redone["can_undo"]
    assert str(room.text) == ">> Intro. A swift red fox leaps high. Grace typed. Middle text here. A tired hound naps. More. Outro."

    # Someone edits two of the words the second redraft wrote: undoing it would overwrite them.
    value = str(room.text)
    type_text(room, value.index("tired hound"), "very, very ", delete=len("tired "))
    view = await service.view("doc", second)
    assert not view["can_undo"] and view["undo_blocked"].endswith(
        "has since edited one of the words this redraft wrote; to undo it now would overwrite that, "
        "so it can only be done by hand")
    with pytest.raises(RedraftError) as refused:
        await service.command("doc", second, "undo")
    assert refused.value.status == 409 and refused.value.detail == view["undo_blocked"]
    assert (await service.command("doc", first, "undo"))["status"] == "undone"  # the other one still can


@pytest.mark.anyio
async def test_a_later_redraft_over_the_same_words_is_named_and_undone_first(service):
    room = service.room
    room.local_change(lambda: room.text.insert(0, TEXT))
    first = await redraft(service, "The quick brown fox jumps.", "A swift red fox leaps high.")
    later = await redraft(service, "A swift red fox leaps high.", "One swift red fox jumped high.",
                          requester={"name": "Grace", "color": "#445566"})
    view = await service.view("doc", first)
    assert view["undo_blocked"] == ("a later redraft asked by Grace has since rewritten 2 of the words this "
                                    "redraft wrote: undo that one first")
    await service.command("doc", later, "undo")
    await service.command("doc", first, "undo")
    assert str(room.text) == TEXT


@pytest.mark.anyio
async def test_seams_of_continue_fill_and_rewrite(service):
    room = service.room
    room.local_change(lambda: room.text.insert(0, "It was what it needed to be.\n\nTheir house stood.\n"))
    await redraft(service, "needed to be.", "The22 others came.", kind="continue")
    await redraft(service, "Their", "A,", kind="fill")
    await redraft(service, "\n\nTheir", "  Our ", kind="rewrite")
    assert str(room.text) == "It was what it needed to be. The22 others came.\n\nOur A, house stood.\n"


@pytest.mark.anyio
async def test_suggestions_expire_and_accept_keeps_edits_inside_the_passage(service):
    room = service.room
    room.local_change(lambda: room.text.insert(0, TEXT))
    kept = await redraft(service, "The lazy dog sleeps now.", "The lazy hound sleeps now.", mode="suggest")
    type_text(room, str(room.text).index("sleeps"), "really ")  # inside the suggested passage
    await asyncio.sleep(0.05)
    assert (await service.view("doc", kept))["passage_edited"] is True
    accepted = await service.command("doc", kept, "accept")
    assert accepted["status"] == "done"
    assert str(room.text) == TEXT.replace("The lazy dog sleeps now.", "The lazy hound really sleeps now.")

    # Rewriting the very words a suggestion rewrites is a conflict: both would land side by side.
    clash = await redraft(service, "Intro.", "Prologue.", mode="suggest")
    type_text(room, 0, "Opening", delete=len("Intro"))
    await asyncio.sleep(0.05)
    view = await service.view("doc", clash)
    assert view["status"] == "conflict" and view["passage_edited"]
    with pytest.raises(RedraftError) as refused:
        await service.command("doc", clash, "accept")
    assert refused.value.status == 409 and "the words it rewrites were changed" in refused.value.detail

    expiring = await redraft(service, "Middle text here.", "Middle text there.", mode="suggest")
    view = await service.view("doc", expiring)
    assert view["status"] == "suggested" and view["expires_at"] - view["created_at"] == pytest.approx(0.5, abs=0.2)
    with anyio.fail_after(3):
        while (await service.view("doc", expiring))["status"] != "expired":
            await asyncio.sleep(0.05)
    with pytest.raises(RedraftError) as refused:
        await service.command("doc", expiring, "accept")
    assert refused.value.status == 409
    assert "Middle text here." in str(room.text)


@pytest.mark.anyio
async def test_progress_only_goes_up_across_canvases_and_the_preview_holds_the_whole_text(service):
    room = service.room
    room.local_change(lambda: room.text.insert(0, TEXT))
    service.script.num_canvases = 3
    service.script.gate.clear()  # hold the end: look at the last preview first
    answer = "A long answer that takes three canvases to write, one after another."
    service.script.answers.append(answer)
    value = str(room.text)
    redraft = await service.create("doc", {"start_index": value.index("The quick"),
                                           "end_index": value.index(" Middle")}, "user")
    seen = []
    with anyio.fail_after(5):
        while len(seen) < 12:
            if redraft.progress["step"] and (not seen or seen[-1][0] != redraft.progress):
                seen.append((dict(redraft.progress), redraft.preview_text))
            await asyncio.sleep(0)
    steps = [progress["step"] for progress, _ in seen]
    assert steps == sorted(steps) and steps[-1] == 12 and {p["max_steps"] for p, _ in seen} == {12}
    assert seen[-1][1] == answer  # the whole text so far, not the last canvas's share
    entry = redraft.to_awareness()
    assert entry["progress"] == {"step": 12, "max_steps": 12} and entry["text"] == answer
    service.script.gate.set()


def record(number: int, status: str, passage: str) -> Redraft:
    return Redraft(id=f"r{number}", doc="doc", kind="rewrite", mode="apply", instruction="", requester={"name": "A"},
                   user_key="k", anchors=(b"\x00", b"\x00"), fork=merge.Fork(b"", 0, len(passage), passage, passage),
                   steps=None, seed=0, status=status, preview_text=passage, tokens=[["word ", 0.5]] * 256)


def test_the_ai_peer_state_stays_bounded_and_keeps_the_newest_running_canvas():
    passage = "A paragraph of some length. " * 100  # 2,800 characters
    redrafts = [record(i, "running" if i % 2 else "suggested", passage) for i in range(30)]
    state = json.loads(bounded_state(redrafts))
    assert len(json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_STATE_BYTES
    shown = state["redrafts"]
    assert 1 <= len(shown) <= MAX_SHOWN and shown[0]["id"] == "r29" and len(shown[0]["tokens"]) == 256
    assert [entry["status"] for entry in shown] == sorted((e["status"] for e in shown), key=lambda s: s != "running")


def test_progress_never_goes_back_even_from_an_old_worker_or_a_retry():
    shown = {"step": 0, "max_steps": 0}
    seen = []
    for progress in [{"step": 3, "max_steps": 4}, {"step": 4, "max_steps": 4},
                     {"step": 1, "max_steps": 4},  # an old worker's second canvas: no overall progress
                     {"step": 5, "max_steps": 4, "progress": {"step": 6, "max_steps": 8}},
                     {"step": 2, "max_steps": 4, "progress": {"step": 2, "max_steps": 8}}]:  # a retry starting over
        shown = overall_progress(shown, progress)
        seen.append(shown)
    assert seen == [{"step": 3, "max_steps": 4}, {"step": 4, "max_steps": 4}, {"step": 4, "max_steps": 4},
                    {"step": 6, "max_steps": 8}, {"step": 6, "max_steps": 8}]


@pytest.mark.anyio
async def test_two_undos_or_accepts_at_once_act_once_while_the_document_loads(tmp_path):
    config = ServerConfig(data_dir=tmp_path, room_grace_s=0.01)
    services = Services.build(config)
    service = services.redrafts
    service.script = services.redrafts.backend = ScriptedBackend()
    await services.start()
    try:
        room = service.room = await services.rooms.acquire("doc")
        room.local_change(lambda: room.text.insert(0, TEXT))
        applied = await redraft(service, "The quick brown fox jumps.", "A swift red fox leaps high.")
        suggested = await redraft(service, "Middle text here.", "Middle text there.", mode="suggest")
        services.rooms.release(room)
        with anyio.fail_after(5):
            while "doc" in services.rooms.rooms:  # unloaded: each command below waits for the load
                await asyncio.sleep(0.01)
        for redraft_id, action in ((applied, "undo"), (suggested, "accept")):
            results = await asyncio.gather(*(service.command("doc", redraft_id, action) for _ in range(2)),
                                           return_exceptions=True)
            assert sorted(type(r).__name__ for r in results) == ["RedraftError", "dict"], results
        room = await services.rooms.acquire("doc")
        assert str(room.text) == TEXT.replace("Middle text here.", "Middle text there.")
        services.rooms.release(room)
    finally:
        await services.close()
