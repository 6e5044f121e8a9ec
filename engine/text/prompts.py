"""Redraft requests (rewrite, fill, continue) -> chat messages -> prompt ids, within the context budget.

The trimming (`fit_prompt`) counts through a `TokenCounter`: the tokenizer itself for the local engine, an
estimate for a remote server whose tokenizer we do not have (engine/remote/engine.py).

The surrounding document is context, not a must: when the prompt would not leave room for the requested
canvases, the text before the passage is cut from its start and the text after it from its end (the parts
nearest the passage survive). The instruction and the passage itself are never cut: if they alone do not
fit, the request is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from engine.model.config import ModelArgs
from jobs.spec import REQUEST_KINDS  # the spec's editor kinds, each with a prompt below

DEFAULT_INSTRUCTIONS = {
    "rewrite": "Improve the clarity and flow of the passage while keeping its meaning.",
    "fill": "Write the text that belongs at the cursor so that it joins the text before and after it.",
    "continue": "Continue the document in the same voice.",
}
REPLY_WITH = {
    "rewrite": "Reply with the rewritten passage only.",
    "fill": "Reply with the inserted text only.",
    "continue": "Reply with the continuation only.",
}


class PromptTooLongError(ValueError):
    """The instruction and passage alone leave no room for the requested output."""


@dataclass(frozen=True)
class RedraftPrompt:
    kind: str  # one of REQUEST_KINDS
    passage: str = ""  # rewrite: the text to redraft
    instruction: str = ""  # free text from the user; a default per kind when empty
    before: str = ""  # document text before the passage or cursor
    after: str = ""  # document text after it (not used by "continue")

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_KINDS:
            raise ValueError(f"RedraftPrompt.kind must be one of {REQUEST_KINDS}, got {self.kind!r}")
        if self.kind == "rewrite" and not self.passage.strip():
            raise ValueError("RedraftPrompt.passage is required for a rewrite")


def build_messages(prompt: RedraftPrompt) -> list[dict[str, str]]:
    """One user turn: the task, the instruction, and the document parts in labelled blocks."""
    instruction = prompt.instruction.strip() or DEFAULT_INSTRUCTIONS[prompt.kind]
    parts = [f"{_task(prompt.kind)} {instruction} {REPLY_WITH[prompt.kind]}"]
    if prompt.kind == "rewrite":
        parts += [_block("Text before the passage", prompt.before), _block("Passage", prompt.passage)]
        parts.append(_block("Text after the passage", prompt.after))
    elif prompt.kind == "fill":
        parts += [_block("Text before the cursor", prompt.before), _block("Text after the cursor", prompt.after)]
    else:
        parts.append(_block("Document so far", prompt.before))
    return [{"role": "user", "content": "\n\n".join(parts)}]


def encode_messages(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Through the tokenizer's chat template, with the model turn opened (the template adds <bos>)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


def prompt_budget(args: ModelArgs, max_new_tokens: int) -> int:
    """Prompt tokens that leave room for the canvases max_new_tokens needs."""
    return args.max_context - math.ceil(max_new_tokens / args.canvas_length) * args.canvas_length


class TokenCounter(Protocol):
    """Counts prompt tokens: the exact tokenizer (TokenizerCounter) or a remote server's estimate."""

    def messages(self, messages: list[dict[str, str]]) -> int: ...

    def text(self, text: str) -> int: ...


class TokenizerCounter:
    """Exact counts through a tokenizer and its chat template; keeps the last prompt's ids for encode_prompt."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.last: tuple[list[dict[str, str]], list[int]] | None = None

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        if self.last is None or self.last[0] != messages:
            self.last = (messages, encode_messages(self.tokenizer, messages))
        return self.last[1]

    def messages(self, messages: list[dict[str, str]]) -> int:
        return len(self.encode(messages))

    def text(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0


def encode_prompt(tokenizer, prompt: RedraftPrompt, max_prompt_tokens: int) -> list[int]:
    """Prompt ids of at most max_prompt_tokens, trimming the surrounding text if needed."""
    counter = TokenizerCounter(tokenizer)
    return counter.encode(build_messages(fit_prompt(counter, prompt, max_prompt_tokens)))


def fit_prompt(counter: TokenCounter, prompt: RedraftPrompt, max_prompt_tokens: int) -> RedraftPrompt:
    """The prompt with its surrounding text trimmed until counter says it takes at most max_prompt_tokens."""
    if counter.messages(build_messages(prompt)) <= max_prompt_tokens:
        return prompt
    core = RedraftPrompt(prompt.kind, prompt.passage, prompt.instruction)
    spare = max_prompt_tokens - counter.messages(build_messages(core))
    if spare < 0:
        raise PromptTooLongError(
            f"the instruction and passage need {max_prompt_tokens - spare} prompt tokens, the budget is "
            f"{max_prompt_tokens} (context minus the requested output)"
        )
    # Share the spare tokens between the two sides; a side that needs less hands the rest to the other.
    before_need, after_need = counter.text(prompt.before), counter.text(prompt.after)
    before_share = min(before_need, max(spare // 2, spare - after_need))
    before_keep = _keep(counter, prompt.before, before_share, from_end=True)
    after_keep = _keep(counter, prompt.after, spare - counter.text(before_keep), from_end=False)
    while True:  # tokens can merge differently at the cut: shave until the whole prompt fits
        trimmed = RedraftPrompt(prompt.kind, prompt.passage, prompt.instruction, before_keep, after_keep)
        if counter.messages(build_messages(trimmed)) <= max_prompt_tokens:
            return trimmed
        if len(before_keep) >= len(after_keep):
            before_keep = before_keep[1:]
        else:
            after_keep = after_keep[:-1]


def _task(kind: str) -> str:
    return {
        "rewrite": "Rewrite the passage below.",
        "fill": "Write the text that goes at the cursor, between the two parts of the document below.",
        "continue": "Continue the document below from where it ends.",
    }[kind]


def _block(label: str, text: str) -> str:
    return f"{label}:\n<<<\n{text}\n>>>"


def _keep(counter: TokenCounter, text: str, budget: int, from_end: bool) -> str:
    """The longest suffix (from_end) or prefix of text whose token count is within budget (binary search)."""
    if budget <= 0 or not text:
        return ""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        piece = text[len(text) - mid :] if from_end else text[:mid]
        if counter.text(piece) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[len(text) - low :] if from_end else text[:low]
