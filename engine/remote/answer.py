"""A remote engine's answer as it streams in, at a cost linear in its length however it is cut up.

A hostile or buggy server may send a 2 MiB answer a byte a chunk. Appending each chunk to one string, and
looking for the stop strings in all of it, copied and scanned the whole answer per chunk: quadratic, some
10**12 byte operations for that answer, on the event loop every document shares. Here a chunk is appended
to a list, the stop strings are looked for only where the new chunk can have completed one, and the text
is joined only when it is read (progress, throttled by the caller once the answer is long; the outcome).
"""

from __future__ import annotations

from engine.runtime.redrafts import OutputLimit


class AnswerText:
    def __init__(self, limit: OutputLimit):
        self.limit = limit
        self.num_chars = 0
        self._text = ""
        self._pieces: list[str] = []  # appended after _text, not yet joined
        self._reach = max(map(len, limit.stop), default=1) - 1  # chars before a chunk a stop string may start at

    @property
    def text(self) -> str:
        if self._pieces:
            self._text += "".join(self._pieces)
            self._pieces.clear()
        return self._text

    def append(self, piece: str) -> bool:
        """Adds a chunk; cuts the answer before the first stop string it completes, and says whether it did."""
        self._pieces.append(piece)
        self.num_chars += len(piece)
        if not self.limit.stop:
            return False
        tail = self._tail(len(piece) + self._reach)
        kept, found = self.limit.final(tail)
        if found:
            text = self.text
            self._text = text[: len(text) - len(tail) + len(kept)]
            self.num_chars = len(self._text)
        return found

    def _tail(self, num_chars: int) -> str:
        """The last num_chars characters (fewer when the answer is shorter), joining no more than needed."""
        pieces, size = [], 0
        for piece in reversed(self._pieces):
            pieces.append(piece)
            size += len(piece)
            if size >= num_chars:
                return "".join(reversed(pieces))[-num_chars:]
        return (self._text[-(num_chars - size) :] if num_chars > size else "") + "".join(reversed(pieces))
