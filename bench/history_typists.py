"""The typing bench/history.py replays: three people taking turns at one document over weeks of a fake clock."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from pycrdt import Doc, Text

TEXT_NAME = "content"
NUM_AUTHORS = 3
DAY_S = 86_400.0
LETTERS = "etaoinshrdlucmfwypvbgkqjxz"


@dataclass(frozen=True)
class Edit:
    author: int  # 0..NUM_AUTHORS-1
    at: float  # unix seconds on the fake clock
    update: bytes  # the Yjs update the author's client sent


class Typists:
    """Three clients, each with its own replica, typing in turns; every edit reaches the others at once.

    A session: one author puts the cursor somewhere and types there, mostly single letters, some backspaces
    and pasted words, a keystroke every 0.1-0.6 s and now and then a pause longer than the version pause.
    Sessions are spread evenly over `days`, so the last edit lands `days` after the first."""

    def __init__(self, num_edits: int, days: float, seed: int, start: float):
        self.rng = random.Random(seed)
        self.num_edits = num_edits
        self.replicas = [Doc(client_id=1000 + i) for i in range(NUM_AUTHORS)]
        self.texts = [replica.get(TEXT_NAME, type=Text) for replica in self.replicas]
        # What a client sends is its transaction's update (y-websocket's doc.on("update")), not a diff against a
        # state vector: that one repeats the whole delete set every time (490 bytes a keystroke at 3,000 edits).
        self.sent: list[bytes] = []
        self._observers = [replica.observe(lambda event: self.sent.append(event.update)) for replica in self.replicas]
        self.session_len = max(20, min(400, num_edits // 50))  # about 50 sessions at any size
        num_sessions = max(1, num_edits // self.session_len)
        self.session_gap_s = days * DAY_S / num_sessions
        self.now = start

    def edits(self):
        made = 0
        while made < self.num_edits:
            author = self.rng.randrange(NUM_AUTHORS)
            text = self.texts[author]
            cursor = self.rng.randint(0, len(text))
            for _ in range(min(self.num_edits - made, self.rng.randint(1, 2 * self.session_len))):
                self.now += self.rng.uniform(0.1, 0.6) if self.rng.random() > 0.01 else self.rng.uniform(61, 600)
                update, cursor = self._keystroke(author, cursor)
                made += 1
                yield Edit(author, self.now, update)
            self.now += self.rng.uniform(0.5, 1.5) * self.session_gap_s

    def _keystroke(self, author: int, cursor: int) -> tuple[bytes, int]:
        text = self.texts[author]
        self.sent.clear()
        roll = self.rng.random()
        if roll < 0.1 and cursor > 0:  # backspace
            del text[cursor - 1 : cursor]
            cursor -= 1
        elif roll < 0.15:  # a pasted word
            word = "".join(self.rng.choice(LETTERS) for _ in range(self.rng.randint(3, 12))) + " "
            text.insert(cursor, word)
            cursor += len(word)
        else:
            text.insert(cursor, self.rng.choice(LETTERS) if self.rng.random() > 0.18 else " ")
            cursor += 1
        (update,) = self.sent  # one transaction, one update
        for i, other in enumerate(self.replicas):
            if i != author:
                other.apply_update(update)
        self.sent.clear()  # the others' transactions, applying it
        return update, cursor

    @property
    def text(self) -> str:
        return str(self.texts[0])


def make_edits(num_edits: int, days: float, seed: int) -> tuple[list[Edit], dict[int, str]]:
    """The edits, and the text after the oldest, middle and newest (by index), for checking rebuilds."""
    start = time.time() - days * DAY_S  # ends about now, so the server's own clock agrees with the fake one
    typists = Typists(num_edits, days, seed, start)
    wanted = {0, num_edits // 2, num_edits - 1}
    edits, texts = [], {}
    for i, edit in enumerate(typists.edits()):
        edits.append(edit)
        if i in wanted:
            texts[i] = typists.text
    return edits, texts
