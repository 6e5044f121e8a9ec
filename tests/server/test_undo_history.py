"""UndoHistory follows each loaded room's text through one subscription, failures included."""

from __future__ import annotations

from pycrdt import Doc, Text

from server.redrafts import revert
from server.redrafts.undo import UndoHistory
from server.room import TEXT_NAME


class TextRoom:
    """What UndoHistory reads of a room (server/room.py's read_text and observe_text) on a real pycrdt text."""

    def __init__(self, name: str, value: str):
        self.name, self.doc = name, Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.text += value

    def read_text(self) -> str:
        return str(self.text)

    def observe_text(self, callback):
        return self.text.observe(callback)


def test_after_a_failure_while_following_the_same_subscription_goes_on(monkeypatch, caplog):
    room, history = TextRoom("doc", "hello"), UndoHistory({})
    assert history.follow(room) == "hello"
    real, calls = revert.delta_edits, []

    def failing(*args):
        calls.append(args)
        raise RuntimeError("a bug while following")

    monkeypatch.setattr(revert, "delta_edits", failing)
    room.text += " world"
    assert "following the edits of doc failed" in caplog.text
    monkeypatch.setattr(revert, "delta_edits", lambda *args: (calls.append(args), real(*args))[1])
    assert history.follow(room) == "hello world"  # taken afresh from the room
    calls.clear()
    room.text += "!"
    assert len(calls) == 1  # one subscription: a second one would follow every edit twice
    assert history.follow(room) == "hello world!"
