"""Training text and examples: reST to prose, the held-out split, the BPE tokenizer, document examples."""

from __future__ import annotations

import random

import pytest

from engine.corpus import Document, is_held_out, rst_paragraphs, sentences
from engine.examples import DocumentExamples, canvas_targets, slip
from engine.tokenizer import SPECIALS, bpe_tokenizer

RST = """\
.. _tut-if:

:keyword:`!if` Statements
=========================

Perhaps the most well-known statement type is the :keyword:`if` statement.  For
example::

   >>> x = int(input("Please enter an integer: "))
   >>> if x < 0:
   ...     x = 0

.. function:: abs(x)

   Return the absolute value of a number.  The argument may be an
   integer, a floating point number, or an object implementing :meth:`~object.__abs__`.

   .. versionadded:: 3.10

.. code-block:: python

   This looks like prose but is inside a code block.

.. note::
   See :pep:`8` and :ref:`the tutorial <tut-if>` for *much* more on ``if`` statements and `links <https://x.org>`_.

* a list item that is long enough to be a paragraph if lists were kept at all
"""


def test_rst_becomes_prose_paragraphs():
    assert rst_paragraphs(RST) == [
        "Perhaps the most well-known statement type is the if statement.",  # "For example:" introduced code
        "Return the absolute value of a number. The argument may be an integer, a floating point number, or an "
        "object implementing __abs__().",
        "See PEP 8 and the tutorial for much more on if statements and links.",
    ]


def test_sentences_do_not_split_after_abbreviations():
    text = "Use a list, e.g. the one above. Then call it! Done (twice)."
    assert sentences(text) == ["Use a list, e.g. the one above.", "Then call it!", "Done (twice)."]


def test_held_out_split_is_by_file_name_only():
    names = [f"library/module{i}.rst.txt" for i in range(200)]
    held = [n for n in names if is_held_out(Document(n, ("x",)))]
    assert held == [n for n in names if is_held_out(Document(n, ("other text",)))]
    assert 2 <= len(held) <= 20  # one in 25 expected


TEXTS = [f"The {w} function returns a {v} value when called with {u} arguments." for w in ("len", "abs", "sum")
         for v in ("new", "float", "string") for u in ("two", "keyword", "no")]


def test_bpe_tokenizer_has_the_engine_specials_and_round_trips():
    tokenizer = bpe_tokenizer(TEXTS, 300)
    assert len(tokenizer) == 300
    assert tokenizer.convert_ids_to_tokens(list(range(len(SPECIALS)))) == list(SPECIALS)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    text = "The len function — ünïcode ok 🙂"
    ids = tokenizer.encode(text)
    assert ids[0] == 2 and tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(tokenizer.encode(TEXTS[0], add_special_tokens=False)) < len(TEXTS[0]) / 2  # merges were learnt
    messages = [{"role": "user", "content": "hi"}]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert chat == "<bos><|turn>user\nhi<turn|>\n<|turn>model\n"
    assert bpe_tokenizer(TEXTS, 300).backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()


def test_bpe_tokenizer_refuses_a_vocabulary_the_text_cannot_fill():
    with pytest.raises(ValueError, match="fewer than vocab_size 5000"):
        bpe_tokenizer(TEXTS, 5000)


def test_canvas_targets_end_and_pad_as_the_sampler_commits():
    assert canvas_targets([5, 6, 7], end_id=1, pad_id=0, canvas_length=4) == [[5, 6, 7, 1]]
    assert canvas_targets([5, 6, 7, 8], end_id=1, pad_id=0, canvas_length=4) == [[5, 6, 7, 8], [1, 0, 0, 0]]
    assert canvas_targets([], end_id=1, pad_id=0, canvas_length=3) == [[1, 0, 0]]


def test_slips_change_the_passage_and_follow_the_seed():
    passage = "Return the absolute value of a number given as the argument."
    slipped = [slip(passage, random.Random(seed), ["zebra"]) for seed in range(20)]
    assert sum(s != passage for s in slipped) >= 15  # a typo drawn on a word under 4 letters changes nothing
    assert slipped == [slip(passage, random.Random(seed), ["zebra"]) for seed in range(20)]


@pytest.fixture(scope="module")
def documents():
    more = " It is documented below. Another sentence follows here."
    return [Document(f"d{i}.rst.txt", tuple(text + more for text in TEXTS[i::3])) for i in range(3)]


def test_document_examples_are_canvases_of_the_chosen_kind(documents):
    tokenizer = bpe_tokenizer(TEXTS, 300)
    whole = " ".join(paragraph for document in documents for paragraph in document.paragraphs)
    examples = DocumentExamples(tokenizer, documents, canvas_length=24, pad_id=0, seed=1)
    for kind in ("plain", "rewrite", "fill"):
        for example in examples.batch(kind, 8):
            assert len(example.target) == 24 and example.prompt[0] == 2
            text = tokenizer.decode(example.prompt)
            assert ("<|turn>user" in text) == (kind != "plain")
            assert ("Passage:" in text) == (kind == "rewrite")
            if kind != "plain":  # a whole sentence, then <turn|> and pad
                end = example.target.index(6)
                assert set(example.target[end + 1 :]) <= {0}
                assert tokenizer.decode(example.target[:end]) in whole
    again = DocumentExamples(tokenizer, documents, canvas_length=24, pad_id=0, seed=1)
    first = DocumentExamples(tokenizer, documents, canvas_length=24, pad_id=0, seed=1).batch("rewrite", 4)
    assert again.batch("rewrite", 4) == first
