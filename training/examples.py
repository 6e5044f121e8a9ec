"""Training examples as the sampler sees them: a prompt the encoder reads, and one clean canvas to denoise.

A target canvas is exactly what the sampler commits: the tokens, the first end token, then pad to the canvas
length. A response longer than one canvas becomes several examples, each with the canvases before it appended
to the prompt, as `commit` appends them at inference.

Five kinds come from documents (`redraft-small`'s corpus), each in the prompt the engine builds for its task
(jobs/tasks.py, engine/text/prompts.py), with the text around the passage or cursor:
- plain: the text before a point of a document (plain, after <bos>) -> the next canvas of text;
- fix: a passage of whole sentences shown with slips (training/corruption.py) -> the clean passage, aligned to
  the shown one token slot by token slot; the example carries the shown passage's canvas as its `source`,
  which the sampler starts from (a "passage" model) and the loss corrupts half the time in place of the
  target; one passage in five is shown clean, so good text stays as it is;
- shorten: a passage -> the passage without its asides, clauses and fillers, aligned the same way;
- fill: the text before and after one to three sentences -> those sentences;
- continue: the document up to a sentence end -> the sentences that follow, as many as fit one canvas.
The JSONL pairs of a fine-tune go through the chat template as one user turn, as `encode_messages` does.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.text.prompts import RedraftPrompt, build_messages, encode_messages
from engine.text.tokenizer import end_of_turn_id
from jobs.tasks import TASKS, instruction_for
from training.corpus import Document, sentences
from training.corruption import aligned_canvases, fix_pairs, shorten_pairs, shown_text

EXAMPLE_KINDS = ("plain", "fix", "shorten", "fill", "continue")
MAX_CONTEXT_CHARS = 240  # text before and after a passage in the task prompts
MAX_CONTINUE_CONTEXT_CHARS = 600  # the document so far in a continue prompt
MAX_PLAIN_CONTEXT = 64  # tokens before a plain canvas
SLIP_FREE = 0.2  # share of fix passages shown unchanged: good text stays as it is
MAX_TYPO_RATE = 0.15  # a fix passage's share of slipped words is drawn up to this
DOUBLE_RATE = 0.02  # and words shown twice
MAX_FILL_SENTENCES = 3


@dataclass(frozen=True)
class CanvasExample:
    prompt: list[int]
    target: list[int]  # exactly canvas_length ids: text, end token, pad
    score_prompt: bool = True  # the encoder's next-token loss covers this prompt (not mostly a fixed template)
    source: list[int] | None = None  # the passage's own canvas an edit starts from (fix, shorten), aligned


@dataclass(frozen=True)
class Batch:
    prompts: torch.Tensor  # [B, P] right-padded with pad
    prompt_lengths: torch.Tensor  # [B]
    targets: torch.Tensor  # [B, L]
    score_prompt: torch.Tensor  # [B] bool
    sources: torch.Tensor  # [B, L] the source canvas of an edit; the target for rows without one
    has_source: torch.Tensor  # [B] bool


def collate(examples: list[CanvasExample], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    longest = max(len(example.prompt) for example in examples)
    prompts = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    for row, example in enumerate(examples):
        prompts[row, : len(example.prompt)] = torch.tensor(example.prompt, dtype=torch.long)
    lengths = torch.tensor([len(example.prompt) for example in examples], dtype=torch.long)
    targets = torch.tensor([example.target for example in examples], dtype=torch.long)
    scored = torch.tensor([example.score_prompt for example in examples], dtype=torch.bool)
    sources = torch.tensor([example.source or example.target for example in examples], dtype=torch.long)
    has_source = torch.tensor([example.source is not None for example in examples], dtype=torch.bool)
    return Batch(
        prompts.to(device), lengths.to(device), targets.to(device), scored.to(device), sources.to(device),
        has_source.to(device),
    )


def canvas_targets(tokens: list[int], end_id: int, pad_id: int, canvas_length: int) -> list[list[int]]:
    """tokens + end, cut into canvases, the last padded: what the sampler would have committed."""
    ids = [*tokens, end_id]
    count = math.ceil(len(ids) / canvas_length)
    ids += [pad_id] * (count * canvas_length - len(ids))
    return [ids[i * canvas_length : (i + 1) * canvas_length] for i in range(count)]


def response_examples(prompt: list[int], response: list[int], end_id: int, pad_id: int, L: int) -> list[CanvasExample]:
    """One example per canvas of the response; each prompt carries the canvases committed before it."""
    canvases = canvas_targets(response, end_id, pad_id, L)
    return [CanvasExample(prompt + response[: i * L], canvas) for i, canvas in enumerate(canvases)]


def read_pairs(path: Path) -> list[dict[str, str]]:
    """{"prompt", "response"} objects, one per line; errors name the line."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: invalid JSON ({error})") from error
        if not isinstance(pair, dict) or not all(isinstance(pair.get(key), str) for key in ("prompt", "response")):
            raise ValueError(f'{path}:{number}: expected an object with string "prompt" and "response"')
        pairs.append(pair)
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def pair_examples(tokenizer, pairs: list[dict[str, str]], pad_id: int, L: int) -> list[CanvasExample]:
    end_id = end_of_turn_id(tokenizer)
    examples = []
    for pair in pairs:
        prompt = encode_messages(tokenizer, [{"role": "user", "content": pair["prompt"]}])
        response = tokenizer.encode(pair["response"], add_special_tokens=False)
        examples += response_examples(prompt, response, end_id, pad_id, L)
    return examples


class DocumentExamples:
    """Draws examples of every kind from documents, reproducibly from a seed."""

    def __init__(self, tokenizer, documents: list[Document], canvas_length: int, pad_id: int, seed: int):
        self.tokenizer = tokenizer
        self.documents = [document.paragraphs for document in documents if document.paragraphs]
        self.streams = [tokenizer.encode("\n\n".join(p), add_special_tokens=False) for p in self.documents]
        self.L, self.pad_id = canvas_length, pad_id
        self.bos_id, self.eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.end_id = end_of_turn_id(tokenizer)
        self.rng = random.Random(seed)

    def batch(self, kind: str, size: int) -> list[CanvasExample]:
        make = {
            "plain": self.plain, "fix": self.fix, "shorten": self.shorten, "fill": self.fill,
            "continue": self.continue_,
        }[kind]
        return [make() for _ in range(size)]

    def plain(self) -> CanvasExample:
        stream = self.streams[self.rng.randrange(len(self.streams))]
        start = self.rng.randrange(len(stream))
        context = stream[max(0, start - self.rng.randint(0, MAX_PLAIN_CONTEXT)) : start]
        target = stream[start : start + self.L]
        if len(target) < self.L:  # the document ends in this canvas
            target = canvas_targets(target, self.eos_id, self.pad_id, self.L)[0]
        return CanvasExample([self.bos_id, *context], target)

    def fix(self) -> CanvasExample:
        while True:
            document, index, first, last = self._passage()
            words = " ".join(sentences(document[index])[first:last]).split()
            rate = 0.0 if self.rng.random() < SLIP_FREE else self.rng.uniform(0.02, MAX_TYPO_RATE)
            pairs = fix_pairs(words, self.rng, rate, DOUBLE_RATE)
            if rate and all(shown == clean for shown, clean in pairs):
                continue  # a short passage drew no slip: the slip-free share is SLIP_FREE's alone
            example = self._edit("fix", document, index, first, last, pairs)
            if example is not None:
                return example

    def shorten(self) -> CanvasExample:
        while True:
            document, index, first, last = self._passage()
            words = " ".join(sentences(document[index])[first:last]).split()
            example = self._edit("shorten", document, index, first, last, shorten_pairs(words, self.rng))
            if example is not None:
                return example

    def fill(self) -> CanvasExample:
        while True:
            document, index, first, last = self._passage(max_sentences=MAX_FILL_SENTENCES)
            before, after = self._around(document, index, first, last)
            answer = " ".join(sentences(document[index])[first:last])
            answer_ids = self._encode(answer)
            if len(answer_ids) < self.L:
                return self._chat(RedraftPrompt("fill", before=before, after=after), answer_ids)

    def continue_(self) -> CanvasExample:
        while True:
            document, index, first, last = self._passage()
            if first == 0:
                continue  # the editor's continue goes on within a paragraph, after a sentence
            before, _ = self._around(document, index, first, last, MAX_CONTINUE_CONTEXT_CHARS)
            ids = self._encode(" " + " ".join(sentences(document[index])[first:last]))
            # whole sentences that fit end with the end token; a first sentence too long for one canvas is cut
            return self._chat(RedraftPrompt("continue", before=before), ids[: self.L])

    def _edit(self, task: str, document, index: int, first: int, last: int, pairs) -> CanvasExample | None:
        canvases = aligned_canvases(self.tokenizer, pairs, self.L, self.end_id, self.pad_id)
        if canvases is None:
            return None
        source, target = canvases
        before, after = self._around(document, index, first, last)
        prompt = RedraftPrompt(TASKS[task][0], shown_text(pairs), instruction_for(task, ""), before, after)
        ids = encode_messages(self.tokenizer, build_messages(prompt))
        return CanvasExample(ids, target, score_prompt=False, source=source)

    def _chat(self, prompt: RedraftPrompt, answer_ids: list[int]) -> CanvasExample:
        ids = encode_messages(self.tokenizer, build_messages(prompt))
        target = canvas_targets(answer_ids, self.end_id, self.pad_id, self.L)[0]
        # two thirds of such a prompt is the instruction template: not worth the encoder's next-token loss
        return CanvasExample(ids, target, score_prompt=False)

    def _passage(self, max_sentences: int = 8) -> tuple[tuple[str, ...], int, int, int]:
        """A paragraph and a run of its sentences [first, last) that fits a canvas with its end token."""
        while True:
            document = self.documents[self.rng.randrange(len(self.documents))]
            index = self.rng.randrange(len(document))
            parts = sentences(document[index])
            first = self.rng.randrange(len(parts))
            last = first + 1
            wanted = self.rng.randint(1, max_sentences)
            while last < len(parts) and last - first < wanted:
                if len(self._encode(" ".join(parts[first : last + 1]))) >= self.L - 1:
                    break
                last += 1
            if len(self._encode(" ".join(parts[first:last]))) < self.L - 1:
                return document, index, first, last

    def _around(
        self, document, index: int, first: int, last: int, limit: int = MAX_CONTEXT_CHARS
    ) -> tuple[str, str]:
        """The document text before and after sentences [first, last) of a paragraph, up to a random length
        cut at a word: the passage may come with little or much of its document, as in the editor."""
        parts = sentences(document[index])
        before = "\n\n".join([*document[:index], " ".join(parts[:first])]).strip()
        after = "\n\n".join([" ".join(parts[last:]), *document[index + 1 :]]).strip()
        keep = self.rng.randint(0, limit)
        if len(before) > keep:
            before = before[len(before) - keep :]
            before = before[before.find(" ") + 1 :] if " " in before.rstrip() else ""  # start at a word
        keep = self.rng.randint(0, limit)
        if len(after) > keep:
            after = after[:keep]
            after = after[: after.rfind(" ")] if " " in after else ""  # end at a word
        return before, after

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)
