"""A made-up documentation corpus for the training tests: what `redraft train --corpus python-docs --corpus-dir`
reads, without the python3.11-doc package."""

from __future__ import annotations

import random

from training.corpus import HELD_OUT_BUCKETS, Document, is_held_out


def synthetic_sources(directory, seed: int = 0):
    """Documentation-like files of made-up words: enough distinct text for an 8192-token BPE, two held out."""
    rng = random.Random(seed)
    syllables = [a + b for a in "bcdfglmnprstv" for b in "aeiou"] + ["ing", "tion", "er", "ly"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(9000)]
    names, index = [], 0
    while sum(is_held_out(Document(n, ())) for n in names) < 2 or len(names) < 30:
        names.append(f"library/mod{index}.rst.txt")
        index += 1
    for name in names:
        paragraphs = []
        for count in [3, 14] * 6:  # short paragraphs to redraft, long ones to fill a held-out canvas
            sentences = [" ".join(rng.choices(words, k=rng.randint(6, 14))).capitalize() + "." for _ in range(count)]
            paragraphs.append(" ".join(sentences))
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Title\n=====\n\n" + "\n\n".join(paragraphs) + "\n")
    (directory / "license.rst.txt").write_text("PSF LICENSE AGREEMENT (test copy)\n")
    assert HELD_OUT_BUCKETS == 25
