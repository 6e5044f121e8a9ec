"""A submitted redraft's life: the engine's snapshots as a live preview, its outcome cleaned and seamed, then
merged into the live document at once (`apply`) or kept as a suggestion, and its end."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from ..room import TooLarge
from . import attribution, merge, revert, seams
from .backends import EngineFailed
from .record import CANCELLED, DONE, EXPIRED, FAILED, FINAL, PENDING, QUEUED, RUNNING, SUGGESTED, Redraft
from .suggestions import SuggestionWatch
from .undo import UndoHistory

log = logging.getLogger(__name__)


class Lifecycle:
    """`show(redraft)` publishes a redraft that changed (awareness and other replicas)."""

    def __init__(
        self, config, metrics, rooms, directory, undo_history: UndoHistory, suggestions: SuggestionWatch, show
    ):
        self.config = config
        self.metrics = metrics
        self.rooms = rooms
        self.directory = directory
        self.undo_history = undo_history
        self.suggestions = suggestions
        self.show = show

    async def run(self, redraft: Redraft) -> None:
        """Follows the redraft's engine job to its end."""
        job = redraft.job
        try:
            async for progress in job:
                self._progress(redraft, progress)
            outcome = await job.result()
        except EngineFailed as exc:
            return self.end(redraft, FAILED, f"the engine failed: {exc}")
        except Exception as exc:  # a bug must not leave the redraft running forever
            log.exception("redraft %s failed", redraft.id)
            return self.end(redraft, FAILED, f"internal error: {exc}")
        finally:
            redraft.job = None
        if outcome["status"] == "cancelled" or redraft.status == CANCELLED:
            return self.end(redraft, CANCELLED, redraft.error or "cancelled")
        self._land(redraft, outcome)

    def _progress(self, redraft: Redraft, progress: dict) -> None:
        if redraft.status == QUEUED:
            redraft.status = RUNNING
            redraft.timings["first_snapshot"] = time.perf_counter() - redraft.started
            self.metrics.redraft_first_snapshot(redraft.timings["first_snapshot"])
        if progress.get("retry"):  # a worker died: the job starts over on another one (progress holds)
            redraft.step, redraft.preview_text, redraft.tokens = 0, "", []
        else:
            redraft.step, redraft.max_steps = progress["step"], progress["max_steps"]
            redraft.preview_text = seams.clean(progress["text"], redraft.original)
            redraft.tokens = progress["tokens"]
            redraft.progress = overall_progress(redraft.progress, progress)
        self.show(redraft)

    def _land(self, redraft: Redraft, outcome: dict) -> None:
        """The engine's outcome: cleaned and seamed text, merged at once or kept as a suggestion."""
        for name in ("queue_s", "prefill_s", "denoise_s"):
            redraft.timings[name.removesuffix("_s")] = outcome["timings"].get(name, 0.0)
        redraft.engine_steps, redraft.engine_tokens = outcome["steps"], outcome["tokens"]
        # the model's EOS may end it before the budget's last canvas (a streaming model counts tokens: they stand)
        if redraft.progress["max_steps"] and not redraft.progress.get("streaming"):
            redraft.progress = {"step": redraft.progress["max_steps"], "max_steps": redraft.progress["max_steps"]}
        self.metrics.redraft_generated(outcome["steps"], outcome["tokens"], outcome["timings"].get("denoise_s", 0.0))
        fork, written = redraft.fork, seams.clean(outcome["text"], redraft.original)
        if not outcome.get("complete", True):  # the budget, not the model, ended it
            written = seams.trim_unfinished(written)
        text = seams.frame(redraft.kind, redraft.original, written, fork.value[: fork.start], fork.value[fork.end :])
        if not text.strip():
            return self.end(redraft, FAILED, "the model returned no text; the passage was left as it was")
        redraft.text = text
        if redraft.mode == "suggest":
            redraft.status = SUGGESTED
            redraft.expires_at = time.time() + self.config.redraft_suggestion_ttl_s
            asyncio.get_running_loop().call_later(self.config.redraft_suggestion_ttl_s, self._expire, redraft)
            self.suggestions.watch(redraft.doc)
            self.suggestions.recheck(redraft.doc)
            self.show(redraft)
            self._finish_timing(redraft)
            self.metrics.redraft_landed(redraft.timings["total"])
            return
        self.merge(redraft)
        if redraft.status == DONE:
            self.metrics.redraft_landed(redraft.timings["total"])

    def merge(self, redraft: Redraft, update: bytes | None = None, client_id: int | None = None) -> None:
        """Lands the redraft's text in the live document, as one change under the origin `redraft:{id}`:
        `update` (made on the fork by `client_id`) when the caller made it already, off the event loop (a
        restore of a long document), else made here."""
        room = self.rooms.loaded(redraft.doc)
        if room is None or room.is_closed:
            # Only a suggestion can outlive its room (accept re-acquires it first).
            return self.end(redraft, FAILED, "the document was closed before the redraft could land")
        started = time.perf_counter()
        if update is None:
            client_id = merge.fresh_client_id(room.writers())
            try:
                update = merge.merge_update(redraft.fork, redraft.text, client_id=client_id)
            except ValueError as exc:  # not valid text: seams.clean should have caught it
                return self.end(redraft, FAILED, f"the model's text could not be merged: {exc}")
        before = room.read_text()
        author, origin = attribution.merge_change(redraft)
        try:
            room.apply_server_update(update, redraft.origin, author, origin)
        except TooLarge as exc:
            return self.end(redraft, FAILED, str(exc))
        redraft.merge_client = client_id
        self.undo_history.keep(room, redraft, revert.observed(before, room.read_text()))
        if self.directory.is_shared:
            self.suggestions.watch(redraft.doc)
        redraft.timings["merge"] = time.perf_counter() - started
        self.end(redraft, DONE)

    def end(self, redraft: Redraft, status: str, error: str | None = None) -> None:
        redraft.status = status
        if error is not None and status in (FAILED, CANCELLED, EXPIRED):
            redraft.error = error
        self._finish_timing(redraft)
        if status in FINAL and redraft.fork.snapshot:  # nothing merges from the fork any more: free the copies
            redraft.fork = dataclasses.replace(redraft.fork, snapshot=b"", value="")
        if not redraft.is_restore:  # the redraft metrics count the engine's work
            self.metrics.redraft_ended(status)
        self.show(redraft)
        self.suggestions.unwatch_if_idle(redraft.doc)

    def _finish_timing(self, redraft: Redraft) -> None:
        redraft.timings["total"] = time.perf_counter() - redraft.started

    def _expire(self, redraft: Redraft) -> None:
        if redraft.status in PENDING:
            self.end(redraft, EXPIRED, f"nobody accepted it within {self.config.redraft_suggestion_ttl_s:g} s")


def overall_progress(shown: dict, progress: dict) -> dict:
    """The redraft's progress over all its canvases, never lower than what was shown: the engine's own
    (canvases done x steps per canvas + this step, over the estimate for all), or the canvas's step; for a
    streaming model, tokens written over max_tokens, with `streaming: true`."""
    overall = progress.get("progress") or {"step": progress["step"], "max_steps": progress["max_steps"]}
    step, max_steps = int(overall["step"]), int(overall["max_steps"])
    max_steps = max(max_steps, shown["max_steps"])
    merged = {"step": min(max(step, shown["step"]), max_steps), "max_steps": max_steps}
    if progress.get("streaming") is True:  # a left-to-right remote model: the editor counts tokens, not steps
        merged["streaming"] = True
    return merged
