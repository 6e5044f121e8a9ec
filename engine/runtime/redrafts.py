"""Redraft jobs as text: what the server sends in and what it gets back, both plain JSON-able dicts.

The server never imports torch and never sees token ids: it sends the passage, the instruction and the
surrounding text; the engine builds the prompt with its own tokenizer and context budget, and turns each
step's canvas into text pieces with a confidence per position. The in-process engine (`engine.api`) and the
Redis worker (`worker.run`) share this module, so both placements speak the same dicts.

The spec itself, its kinds and its checks are jobs/spec.py's (the server and the worker read it too); the
progress and outcome dicts have jobs/protocol.py's shape.

An editor's redraft names its task (jobs/tasks.py: fix, shorten, instruct, ...; an older client's is
derived from its kind and instruction): the prompt carries the task's instruction, and a model that declares
its tasks is not asked for others.

Sizing: a rewrite gets room for half again the passage's length (rounded up to whole canvases), so an
"expand" instruction has space and the model's EOS ends shorter answers early; the other kinds get one
canvas unless the request asks for more (`max_canvases`, or `max_tokens` rounded up to whole canvases).
A model that edits passages in place (canvas_init "passage") starts a copy task's canvases from the passage
and its end token, and gets just the canvases they fill; with a lexicon, its fix changes only the words the
lexicon lacks (engine/text/slots.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from engine.errors import RequestError
from engine.text.prompts import PromptTooLongError, RedraftPrompt, encode_messages, encode_prompt, prompt_budget
from jobs.protocol import job_outcome, progress_snapshot
from jobs.spec import API_KINDS, REQUEST_KINDS, RedraftSpec
from jobs.tasks import COPY_TASKS, EVERY_TASK, ModelTasks, instruction_for

MAX_CANVASES = 4  # a redraft is a passage, not a chapter
REWRITE_ROOM = 1.5  # output room as a multiple of the passage's tokens
# Control characters other than tab and newline have no place in a document (an untrained model emits them),
# nor has U+FFFD: byte-level decoders write it for bytes that are not UTF-8, e.g. a character whose first
# bytes are the last tokens of the output and whose rest never came.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")
MAX_CHAR_TOKENS = 4  # a UTF-8 character is at most 4 bytes, so at most 4 byte-level tokens
# A fix with choices denoises only their slots, a word or two each: redraft-small decided them as well in 4, 8
# or 24 steps (80.0, 80.6 and 79.4 % of slips removed on the README's paragraphs, 2026-12-06, before this cap and
# the mid-sentence capitals), and 8 take a third of the time of 24
MAX_CHOICE_STEPS = 8


@dataclass(frozen=True)
class OutputLimit:
    """Where the output ends besides the model's EOS: after max_tokens tokens, before the first stop string."""

    max_tokens: int | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: RedraftSpec) -> "OutputLimit":
        return cls(spec.max_tokens, tuple(spec.stop or ()))

    def ids(self, token_ids: list[int]) -> list[int]:
        return token_ids if self.max_tokens is None else token_ids[: self.max_tokens]

    def final(self, text: str) -> tuple[str, bool]:
        """The text cut before the earliest stop string, and whether one was found."""
        found = [i for i in (text.find(stop) for stop in self.stop) if i >= 0]
        return (text[: min(found)], True) if found else (text, False)

    def settled(self, text: str) -> str:
        """The part of a text still growing that no later text can cut: it ends before the earliest stop
        string, whole or begun at the end (the next canvas may complete "en" into "end")."""
        cut = len(text)
        for stop in self.stop:
            found = text.find(stop)
            if found >= 0:
                cut = min(cut, found)
            for start in range(max(0, len(text) - len(stop) + 1), len(text)):
                if stop.startswith(text[start:]):
                    cut = min(cut, start)
                    break
        return text[:cut]


NO_LIMIT = OutputLimit()


def redraft_prompt(spec: RedraftSpec) -> RedraftPrompt:
    """The editor's prompt (rewrite, fill, continue) with the task's instruction. Raises ValueError."""
    instruction = instruction_for(spec.task, spec.instruction) if spec.task else spec.instruction
    return RedraftPrompt(spec.kind, spec.passage, instruction, spec.before, spec.after)


def build_request(spec: RedraftSpec, tokenizer, args, max_len: int, tasks: ModelTasks = EVERY_TASK, lexicon=None):
    """Prompt ids within the context the cache affords, and the output budget (an engine.runtime.generate.Request);
    for a model whose `tasks` say its passage canvases start from the passage, those starting tokens, and for
    its fix with a `lexicon` (engine.text.spelling.Lexicon) the choices it may make there.
    Raises RequestError, also for a task the model does not declare."""
    from engine.runtime.generate import Request  # torch: the spec checks above serve the torch-free remote engine too

    if tokenizer is None:
        raise RequestError("this model has no tokenizer: it cannot take text redrafts")
    if spec.kind in REQUEST_KINDS and not spec.task:  # a spec made without from_dict
        spec = spec.with_task()
    if spec.task and spec.task not in tasks.tasks:
        raise RequestError(f"this model does not do the {spec.task} task; it does: {', '.join(tasks.tasks)}")
    canvas = args.canvas_length
    init_ids = passage_init_ids(spec, tokenizer, tasks)
    choices, steps = None, spec.steps
    if init_ids is None:
        canvases = _num_canvases(spec, tokenizer, canvas)
    else:
        canvases = _copy_canvases(init_ids, canvas)  # a passage too long is refused before any work per word
        if lexicon is not None and spec.task == "fix":
            init_ids, choices = _fix_choices(spec.passage, tokenizer, lexicon, args.pad_token_id, init_ids[-1])
            canvases = _copy_canvases(init_ids, canvas)
            steps = min(steps or MAX_CHOICE_STEPS, MAX_CHOICE_STEPS)
    max_new_tokens = canvases * canvas
    context = min(args.max_context, max_len)
    budget = context - max_new_tokens
    if budget < 1:
        raise RequestError(
            f"{canvases} canvas(es) of {canvas} tokens leave no room for a prompt in the context of {context} tokens"
        )
    if spec.kind in API_KINDS:
        # No trimming here: the caller wrote the whole prompt, and a cut one would answer another question.
        prompt_ids = _api_prompt_ids(spec, tokenizer)
        if len(prompt_ids) > budget:
            raise RequestError(
                f"the prompt is {len(prompt_ids)} tokens; with {max_new_tokens} tokens of output ({canvases} "
                f"canvas(es) of {canvas}) the context of {context} tokens leaves room for {budget}"
            )
        return Request(prompt_ids, seed=spec.seed % 2**63, max_new_tokens=max_new_tokens, max_denoising_steps=spec.steps)
    try:
        prompt_ids = encode_prompt(tokenizer, redraft_prompt(spec), min(budget, prompt_budget(args, max_new_tokens)))
    except (PromptTooLongError, ValueError) as exc:
        raise RequestError(str(exc)) from exc
    return Request(prompt_ids, seed=spec.seed % 2**63, max_new_tokens=max_new_tokens, max_denoising_steps=steps,
                   init_ids=init_ids, choices=choices)


def passage_init_ids(spec: RedraftSpec, tokenizer, tasks: ModelTasks) -> list[int] | None:
    """The tokens a passage-started model's canvases start from for a copy task: the passage and the end of
    its turn, as its training targets end (training/examples.py). None: the canvases start from noise."""
    if tasks.canvas_init != "passage" or spec.task not in COPY_TASKS:
        return None
    from engine.text.tokenizer import end_of_turn_id  # tokenizers, like Request above

    return [*tokenizer.encode(spec.passage, add_special_tokens=False), end_of_turn_id(tokenizer)]


def _fix_choices(passage: str, tokenizer, lexicon, pad_id: int, end_id: int):
    """A fix's start with a lexicon: the passage's ids word by word and its end, and the choices among its
    words' slots (engine/text/slots.py)."""
    from engine.text.slots import slot_choices

    passage_ids, choices = slot_choices(tokenizer, passage, lexicon, pad_id)
    return [*passage_ids, end_id], choices


def _copy_canvases(init_ids: list[int], canvas: int) -> int:
    """The canvases a passage-started copy fills: no room to grow, since the model edits in place (a deleted
    word becomes pad). A passage too long for them is refused rather than cut: the editor would drop its end."""
    canvases = math.ceil(len(init_ids) / canvas)
    if canvases > MAX_CANVASES:
        raise RequestError(
            f"the passage is {len(init_ids) - 1} tokens; this model edits at most {MAX_CANVASES * canvas - 1} at a "
            f"time: select less"
        )
    return canvases


def _num_canvases(spec: RedraftSpec, tokenizer, canvas: int) -> int:
    """The canvases to reserve: asked for, or room for max_tokens, or sized by the kind. The editor's kinds stay
    within MAX_CANVASES; the API's are bounded by the context alone (a caller may want a long answer)."""
    if spec.max_canvases is not None:
        canvases = spec.max_canvases
    elif spec.max_tokens is not None:
        canvases = math.ceil(spec.max_tokens / canvas)
    elif spec.kind == "rewrite":
        passage_tokens = len(tokenizer.encode(spec.passage, add_special_tokens=False))
        canvases = math.ceil(passage_tokens * REWRITE_ROOM / canvas)
    else:
        canvases = 1
    return max(1, canvases if spec.kind in API_KINDS else min(canvases, MAX_CANVASES))


def _api_prompt_ids(spec: RedraftSpec, tokenizer) -> list[int]:
    if spec.kind == "chat":
        return encode_messages(tokenizer, spec.messages)
    # Raw text with the tokenizer's own specials (<bos>), as vLLM's /v1/completions encodes a prompt.
    ids = tokenizer.encode(spec.prompt, add_special_tokens=True)
    if not ids:
        raise RequestError("the prompt is empty: the encoder needs at least one token")
    return ids


class TextDecoder:
    """Token ids -> text, with the tokenizer's specials (pad, EOS, turn markers) left out."""

    def __init__(self, tokenizer, eos_token_ids: tuple[int, ...]):
        self.tokenizer = tokenizer
        self.eos = set(eos_token_ids)
        self._pieces: dict[int, str] = {}

    def piece(self, token_id: int) -> str:
        """The token's text; "\ufffd" when it is only part of a character (see `pieces`)."""
        piece = self._pieces.get(token_id)
        if piece is None:
            raw = self.tokenizer.decode([token_id], skip_special_tokens=True)
            piece = "\ufffd" if "\ufffd" in raw else CONTROL.sub("", raw)
            self._pieces[token_id] = piece
        return piece

    def pieces(self, token_ids: list[int]) -> list[str]:
        """One piece per token. A character split over several byte-level tokens is given whole to its last
        token (the ones before get ""); bytes that never make a character are dropped."""
        out: list[str] = []
        pending: list[int] = []  # tokens holding the first bytes of a character
        for token in token_ids:
            piece = self.piece(token)
            if piece != "\ufffd" and not pending:
                out.append(piece)
                continue
            pending.append(token)
            joined = self.tokenizer.decode(pending, skip_special_tokens=True)
            if "\ufffd" not in joined or len(pending) >= MAX_CHAR_TOKENS:
                # A whole character (the earlier tokens of it already gave ""), or bytes that never make one:
                # what decodes is kept, the rest dropped.
                out.append(CONTROL.sub("", joined))
                pending = []
            else:
                out.append("")  # its character may complete with the next token
        return out

    def text(self, token_ids: list[int]) -> str:
        """The text up to the first EOS, without bytes that do not make a character."""
        for i, token in enumerate(token_ids):
            if token in self.eos:
                token_ids = token_ids[:i]
                break
        return CONTROL.sub("", self.tokenizer.decode(token_ids, skip_special_tokens=True))


def progress(
    snapshot, committed: list[int], decoder: TextDecoder, num_canvases: int = 1, limit: OutputLimit = NO_LIMIT
) -> dict:
    """A JobSnapshot as the server publishes it: the whole text so far (earlier canvases and this one), and
    the pieces with a confidence: the earlier canvases' text as one piece of confidence 1, then each
    position of this canvas. `progress` counts steps over the whole request: canvases done times steps per
    canvas plus this canvas's step, over the budget's canvases (the model's EOS may end it sooner).

    committed: the ids of the canvases before this one. `committed` in the dict is the text already decided,
    those canvases and this one once it stopped, within the limit: each is a prefix of the next and of the
    final text, so a stream can send what it adds.

    Confidence is exp(-entropy) of the position's distribution: 1 when the model is certain, near 0 for a
    position still spread over many tokens (the editor shimmers those instead of showing a random word).
    """
    canvas = snapshot.token_ids
    ended = next((i for i, token in enumerate(canvas) if token in decoder.eos), len(canvas))
    earlier = decoder.text(committed)
    # Pieces over the committed tail too, so a character cut at the canvas boundary lands whole on this side.
    tail = committed[-(MAX_CHAR_TOKENS - 1) :]
    pieces = decoder.pieces(tail + canvas[:ended])[len(tail) :]
    tokens = [[earlier, 1.0]] if earlier else []
    tokens += [
        [pieces[i] if i < ended else "", round(math.exp(-entropy), 3)]
        for i, entropy in enumerate(snapshot.entropy)
    ]
    num_canvases = max(num_canvases, snapshot.canvas_index + 1)
    decided = committed + canvas if snapshot.stopped else committed
    return progress_snapshot(
        snapshot.step, snapshot.max_steps, snapshot.canvas_index, decoder.text(committed + canvas), tokens,
        snapshot.stopped, snapshot.finished,
        num_canvases=num_canvases,
        progress={
            "step": snapshot.canvas_index * snapshot.max_steps + snapshot.step,
            "max_steps": num_canvases * snapshot.max_steps,
        },
        committed=limit.settled(decoder.text(limit.ids(decided))),
    )


def outcome(
    result, decoder: TextDecoder, timings: dict, prompt_tokens: int = 0, limit: OutputLimit = NO_LIMIT
) -> dict:
    """The final result: committed text, steps per canvas, tokens written, engine-side timings, and whether
    the model ended it (`complete`: an EOS or a stop string) rather than the budget (its last sentence may be
    cut). `finish_reason` says the same in OpenAI's words."""
    ids = limit.ids(result.token_ids)
    tokens = next((i for i, token in enumerate(ids) if token in decoder.eos), len(ids))
    text, is_stopped = limit.final(decoder.text(ids))
    if is_stopped:
        tokens = _tokens_in(decoder, ids[:tokens], len(text))
    complete = is_stopped or tokens < len(ids)
    return job_outcome(result.status, text, list(result.steps), tokens, timings, complete=complete,
                       finish_reason="stop" if complete else "length", prompt_tokens=prompt_tokens)


def _tokens_in(decoder: TextDecoder, token_ids: list[int], num_chars: int) -> int:
    """How many tokens write the first num_chars characters of their text (the one a stop string cuts counts)."""
    written = 0
    for count, piece in enumerate(decoder.pieces(token_ids)):
        if written >= num_chars:
            return count
        written += len(piece)
    return len(token_ids)
