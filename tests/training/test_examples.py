"""Training examples drawn from documents: every kind in its task's prompt, edits aligned to their source."""

from __future__ import annotations

import pytest
import torch

from engine.text.tokenizer import bpe_tokenizer
from jobs.tasks import TASKS
from training.corpus import Document
from training.examples import EXAMPLE_KINDS, DocumentExamples, canvas_targets, collate

PARAGRAPHS = [
    "The committee met on Tuesday (after a short delay) to review the budget. It agreed to cut travel costs. "
    "The next meeting is in March.",
    "Please send the signed forms to the office by Friday. The new schedule, which starts next week, is attached.",
    "Heavy rain is expected in the north tonight. Strong winds will follow along the coast. Take care on the roads.",
    "Our new release makes saving documents faster. It also fixes the bug that lost comments. Thank you for the "
    "reports.",
]
L = 40
END = 6


@pytest.fixture(scope="module")
def setup():
    tokenizer = bpe_tokenizer(PARAGRAPHS * 10, 400)
    documents = [Document(f"d{i}.html", tuple(PARAGRAPHS[i:] + PARAGRAPHS[:i])) for i in range(4)]
    return tokenizer, documents


def test_every_kind_is_a_canvas_in_its_prompt(setup):
    tokenizer, documents = setup
    examples = DocumentExamples(tokenizer, documents, canvas_length=L, pad_id=0, seed=1)
    whole = " ".join(PARAGRAPHS)
    for kind in EXAMPLE_KINDS:
        for example in examples.batch(kind, 12):
            assert len(example.target) == L and example.prompt[0] == 2
            prompt = tokenizer.decode(example.prompt)
            assert ("<|turn>user" in prompt) == (kind != "plain")
            if kind in ("fix", "shorten"):
                assert TASKS[kind][1] in prompt and "Passage:" in prompt
                assert example.source is not None and len(example.source) == L
                assert example.source.index(END) == example.target.index(END)  # aligned: same length
            else:
                assert example.source is None
            if kind == "fill":
                assert "Text before the cursor" in prompt
            if kind in ("fill", "continue", "fix", "shorten"):
                end = example.target.index(END)
                assert set(example.target[end + 1 :]) <= {0}
                written = tokenizer.decode(example.target[:end], skip_special_tokens=True).strip()
                if kind in ("fill", "continue"):
                    assert written in whole


def test_fix_shows_slips_and_asks_for_the_clean_passage(setup):
    tokenizer, documents = setup
    examples = DocumentExamples(tokenizer, documents, canvas_length=L, pad_id=0, seed=3)
    batch = examples.batch("fix", 40)
    sentences_ok = [s for p in PARAGRAPHS for s in p.split(". ")]
    changed = 0
    for example in batch:
        clean = tokenizer.decode(example.target, skip_special_tokens=True)
        shown = tokenizer.decode(example.source, skip_special_tokens=True)
        assert any(part.rstrip(".") in clean for part in sentences_ok)
        changed += clean != shown
    assert 0.5 * len(batch) < changed < len(batch)  # most passages slipped, some shown clean


def test_examples_follow_the_seed(setup):
    tokenizer, documents = setup
    first = DocumentExamples(tokenizer, documents, canvas_length=L, pad_id=0, seed=7)
    again = DocumentExamples(tokenizer, documents, canvas_length=L, pad_id=0, seed=7)
    for kind in EXAMPLE_KINDS:
        assert first.batch(kind, 4) == again.batch(kind, 4)


def test_collate_gives_edits_their_source_and_others_their_target(setup):
    tokenizer, documents = setup
    examples = DocumentExamples(tokenizer, documents, canvas_length=L, pad_id=0, seed=2)
    rows = examples.batch("fix", 2) + examples.batch("fill", 2)
    batch = collate(rows, 0)
    assert batch.has_source.tolist() == [True, True, False, False]
    assert torch.equal(batch.sources[:2], torch.tensor([row.source for row in rows[:2]]))
    assert torch.equal(batch.sources[2:], batch.targets[2:])


def test_canvas_targets_end_and_pad():
    assert canvas_targets([5, 5, 5], END, 0, 4) == [[5, 5, 5, END]]
    assert canvas_targets([5, 5, 5, 5], END, 0, 4) == [[5, 5, 5, 5], [END, 0, 0, 0]]
