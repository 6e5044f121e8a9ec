"""A passage's words in the token slots of its canvas, and the choices a fix leaves the sampler in them.

A passage-started model edits in place: each word keeps its own token slots, and an edit that needs fewer
tokens fills the rest with pad (training/corruption.py `aligned_canvases`). So a word that may be a slip
(engine/text/spelling.py) becomes a `SlotChoice`: where its slots start in the passage's tokens, and each
option as exactly that many tokens. The sampler denoises those slots from noise, as it would a masked word,
and commits the option the model scores highest with its prior (engine/runtime/generate.py `choose`).

Import-cheap (no torch): only the tokenizer is used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from engine.text.spelling import Lexicon, split_word

_PIECE = re.compile(r"(\s*)(\S+)")
# The weight of a word's log frequency against the model's log-probability of it. On 65 held-out paragraphs the
# README's evaluation does not use, redraft-small removed 84.2 % of slips with 0 (the model alone), 84.2 % with 1
# and 83.7 % with 100 (frequency alone), changing no correct word: equal weight keeps both voices.
PRIOR_WEIGHT = 1.0


@dataclass(frozen=True)
class SlotChoice:
    """Slots [start, start + len(options[0])) of a passage's tokens; options[0] is the passage's own
    tokens, each option padded to the same length, with its prior (a log weight added to the model's
    score)."""

    start: int
    options: tuple[tuple[int, ...], ...]
    priors: tuple[float, ...]

    @property
    def length(self) -> int:
        return len(self.options[0])


def word_slots(tokenizer, passage: str) -> tuple[list[int], list[tuple[str, int, int]]]:
    """The passage's ids word by word, and per word (whitespace before it, first slot, slot count).

    The ids are each word's with the whitespace before it, then any whitespace after the last: they decode to
    the passage. They are what the canvas starts from, rather than the whole passage's ids, which differ
    where the tokenizer merges across a word's edge (a trailing space, a newline): training aligned its
    edits word by word the same way (training/corruption.py `aligned_canvases`)."""
    slots, ids = [], []
    for space, word in _PIECE.findall(passage):
        word_ids = tokenizer.encode(space + word, add_special_tokens=False)
        slots.append((space, len(ids), len(word_ids)))
        ids += word_ids
    trailing = passage[len(passage.rstrip()) :] if passage.strip() else passage
    if trailing:
        ids += tokenizer.encode(trailing, add_special_tokens=False)
    return ids, slots


def slot_choices(tokenizer, passage: str, lexicon: Lexicon, pad_id: int) -> tuple[list[int], tuple[SlotChoice, ...]]:
    """The ids a fix's canvas starts from (`word_slots`), and the slips it may correct there, as choices among
    token sequences of their word slots.

    An option that needs more tokens than the shown word has is left out (the model was never trained to
    grow a word); a choice left with the shown word alone is none. The prior of an option is
    PRIOR_WEIGHT * log(1 + how often the lexicon has seen it); a deletion (a doubled word) gets the shown
    word's, so the model alone decides it."""
    ids, slots = word_slots(tokenizer, passage)
    found = []
    for choice in lexicon.choices(passage):
        space, start, length = slots[choice.index]
        options, priors = [], []
        kept = lexicon.count(split_word(choice.options[0])[1])
        for option in choice.options:
            option_ids = tokenizer.encode(space + option, add_special_tokens=False) if option else []
            if len(option_ids) > length:
                continue
            options.append(tuple(option_ids) + (pad_id,) * (length - len(option_ids)))
            count = lexicon.count(split_word(option)[1]) if option else kept
            priors.append(PRIOR_WEIGHT * math.log1p(count))
        if len(options) > 1:
            found.append(SlotChoice(start, tuple(options), tuple(priors)))
    return ids, tuple(found)
