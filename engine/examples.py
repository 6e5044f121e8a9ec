"""Training examples as the sampler sees them: a prompt the encoder reads, and one clean canvas to denoise.

A target canvas is exactly what the sampler commits: the tokens, the first end token, then pad to the canvas
length. A response longer than one canvas becomes several examples, each with the canvases before it appended
to the prompt, as `commit` appends them at inference.

Three kinds come from documents (`redraft-small`'s corpus):
- plain: the text before a point of a document (plain, after <bos>) -> the next canvas of text;
- rewrite: a sentence shown with synthetic slips (dropped, doubled or swapped words, typos) in the
  engine's rewrite prompt, with the text around it -> the original sentence;
- fill: the text before and after a sentence in the engine's fill prompt -> the sentence.
The JSONL pairs of a fine-tune go through the chat template as one user turn, as `encode_messages` does.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.corpus import Document, sentences
from engine.prompts import RedraftPrompt, build_messages, encode_messages
from engine.tokenizer import EOS, TURN_END

EXAMPLE_KINDS = ("plain", "rewrite", "fill")
MAX_CONTEXT_CHARS = 160  # text before and after a passage in rewrite and fill prompts
MAX_PLAIN_CONTEXT = 64  # tokens before a plain canvas
SLIP_FREE = 0.2  # share of rewrite passages shown unchanged: good text stays as it is


@dataclass(frozen=True)
class CanvasExample:
    prompt: list[int]
    target: list[int]  # exactly canvas_length ids: text, end token, pad
    score_prompt: bool = True  # the encoder's next-token loss covers this prompt (not mostly a fixed template)


@dataclass(frozen=True)
class Batch:
    prompts: torch.Tensor  # [B, P] right-padded with pad
    prompt_lengths: torch.Tensor  # [B]
    targets: torch.Tensor  # [B, L]
    score_prompt: torch.Tensor  # [B] bool


def collate(examples: list[CanvasExample], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    longest = max(len(example.prompt) for example in examples)
    prompts = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    for row, example in enumerate(examples):
        prompts[row, : len(example.prompt)] = torch.tensor(example.prompt, dtype=torch.long)
    lengths = torch.tensor([len(example.prompt) for example in examples], dtype=torch.long)
    targets = torch.tensor([example.target for example in examples], dtype=torch.long)
    scored = torch.tensor([example.score_prompt for example in examples], dtype=torch.bool)
    return Batch(prompts.to(device), lengths.to(device), targets.to(device), scored.to(device))


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


def end_of_turn_id(tokenizer) -> int:
    """The token a model turn ends with (<turn|>), or <eos> for a tokenizer without turn markers."""
    turn_end = tokenizer.convert_tokens_to_ids(TURN_END)
    if turn_end is None or turn_end == tokenizer.unk_token_id:
        return tokenizer.convert_tokens_to_ids(EOS)
    return turn_end


class DocumentExamples:
    """Draws plain, rewrite and fill examples from documents, reproducibly from a seed."""

    def __init__(self, tokenizer, documents: list[Document], canvas_length: int, pad_id: int, seed: int):
        self.tokenizer = tokenizer
        self.texts = ["\n\n".join(document.paragraphs) for document in documents]
        self.streams = [tokenizer.encode(text, add_special_tokens=False) for text in self.texts]
        self.units = [_sentence_spans(text) for text in self.texts]  # (start, end) of each short sentence
        self.L, self.pad_id = canvas_length, pad_id
        self.bos_id, self.eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.end_id = end_of_turn_id(tokenizer)
        self.words = sorted({word for text in self.texts[:50] for word in text.split() if word.isalpha()})
        self.rng = random.Random(seed)

    def batch(self, kind: str, size: int) -> list[CanvasExample]:
        make = {"plain": self.plain, "rewrite": self.rewrite, "fill": self.fill}[kind]
        return [make() for _ in range(size)]

    def plain(self) -> CanvasExample:
        stream = self.streams[self.rng.randrange(len(self.streams))]
        start = self.rng.randrange(len(stream))
        context = stream[max(0, start - self.rng.randint(0, MAX_PLAIN_CONTEXT)) : start]
        target = stream[start : start + self.L]
        if len(target) < self.L:  # the document ends in this canvas
            target = canvas_targets(target, self.eos_id, self.pad_id, self.L)[0]
        return CanvasExample([self.bos_id, *context], target)

    def rewrite(self) -> CanvasExample:
        text, start, end = self._sentence()
        passage = text[start:end]
        shown = passage if self.rng.random() < SLIP_FREE else slip(passage, self.rng, self.words)
        before, after = self._around(text, start, end)
        return self._chat(RedraftPrompt("rewrite", passage=shown, before=before, after=after), passage)

    def fill(self) -> CanvasExample:
        text, start, end = self._sentence()
        before, after = self._around(text, start, end)
        return self._chat(RedraftPrompt("fill", before=before, after=after), text[start:end])

    def _chat(self, prompt: RedraftPrompt, answer: str) -> CanvasExample:
        ids = encode_messages(self.tokenizer, build_messages(prompt))
        target = self.tokenizer.encode(answer, add_special_tokens=False)
        # two thirds of such a prompt is the instruction template: not worth the encoder's next-token loss
        return CanvasExample(ids, canvas_targets(target, self.end_id, self.pad_id, self.L)[0], score_prompt=False)

    def _sentence(self) -> tuple[str, int, int]:
        while True:
            index = self.rng.randrange(len(self.texts))
            if self.units[index]:
                start, end = self.rng.choice(self.units[index])
                text = self.texts[index]
                if len(self.tokenizer.encode(text[start:end], add_special_tokens=False)) < self.L:
                    return text, start, end

    def _around(self, text: str, start: int, end: int) -> tuple[str, str]:
        before = text[max(0, start - self.rng.randint(0, MAX_CONTEXT_CHARS)) : start]
        after = text[end : end + self.rng.randint(0, MAX_CONTEXT_CHARS)]
        if start - len(before) > 0:
            before = before[before.find(" ") + 1 :] if " " in before else ""  # start at a word
        if end + len(after) < len(text):
            after = after[: after.rfind(" ")] if " " in after else ""  # end at a word
        return before, after


def slip(passage: str, rng: random.Random, words: list[str]) -> str:
    """The passage with one to three slips: a dropped, doubled, swapped or foreign word, or a typo (two letters
    swapped; drawn on a word under 4 letters it changes nothing, so a few passages come back unchanged)."""
    tokens = passage.split(" ")
    for _ in range(rng.randint(1, 3)):
        if len(tokens) < 3:
            break
        i = rng.randrange(len(tokens) - 1)
        kind = rng.randrange(5)
        if kind == 0:
            del tokens[i]
        elif kind == 1:
            tokens.insert(i, tokens[i])
        elif kind == 2:
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif kind == 3 and words:
            tokens[i] = rng.choice(words)
        elif len(tokens[i]) >= 4:
            j = rng.randrange(len(tokens[i]) - 1)
            word = tokens[i]
            tokens[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(tokens)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of a document that fit a short canvas (< 200 chars)."""
    spans = []
    offset = 0
    for paragraph in text.split("\n\n"):
        cursor = offset
        for sentence in sentences(paragraph):
            start = text.index(sentence, cursor)
            cursor = start + len(sentence)
            if 20 <= len(sentence) < 200:
                spans.append((start, cursor))
        offset += len(paragraph) + 2
    return spans
