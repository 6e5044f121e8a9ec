"""The lexicon a passage model's fix knows (engine/text/spelling.py), written beside its weights.

Words from two sources, each with a count:
- the corpus's training documents (never its held-out ones), each word seen at least twice, with how often;
- Debian's `wamerican` word list (/usr/share/dict/american-english), one more each, so that ordinary words a
  documentation corpus never uses ("thunderstorm", "lunch") are known too. Possessives ("Aaron's") are left
  out unless the corpus has them: no slip makes one.
The word list's copyright file is added to the LICENSES.txt beside the weights.

    python -m training.lexicon --corpus english-docs --out engine/models/redraft-small
writes lexicon.txt into a trained checkpoint and declares it in its config.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.text.spelling import Lexicon
from training.corpus import Document, load_corpus, split_documents

WORD_LIST = Path("/usr/share/dict/american-english")
WORD_LIST_PACKAGE = "wamerican"
WORD_LIST_COPYRIGHT = Path("/usr/share/doc", WORD_LIST_PACKAGE, "copyright")
LEXICON_FILE = "lexicon.txt"
MIN_CORPUS_COUNT = 2


@dataclass(frozen=True)
class WordList:
    """A word list's words and its copyright file's text (Debian's, or one packed with a corpus to travel)."""

    words: tuple[str, ...]
    copyright: str

    @classmethod
    def installed(cls, path: Path = WORD_LIST, copyright_file: Path = WORD_LIST_COPYRIGHT) -> "WordList":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not installed (as root: apt-get install -y {WORD_LIST_PACKAGE})")
        words = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        terms = copyright_file.read_text(encoding="utf-8", errors="replace") if copyright_file.is_file() else ""
        return cls(words, terms)


def build_lexicon(documents: list[Document], word_list: WordList) -> Lexicon:
    """The training documents' words (seen at least MIN_CORPUS_COUNT times) and the word list's."""
    counts = Lexicon.from_texts((p for d in documents for p in d.paragraphs), MIN_CORPUS_COUNT).counts
    for word in word_list.words:
        if not (word.endswith("'s") and word not in counts):
            counts[word] = counts.get(word, 0) + 1
    return Lexicon(counts)


def write_lexicon(documents: list[Document], directory: Path, word_list: WordList) -> Path:
    """lexicon.txt beside the weights, its word list's copyright appended to LICENSES.txt (once), and the file
    named in config.json's redraft declaration."""
    path = directory / LEXICON_FILE
    build_lexicon(documents, word_list).write(path)
    licences = directory / "LICENSES.txt"
    if licences.is_file() and word_list.copyright:
        text = licences.read_text(encoding="utf-8")
        heading = f"{WORD_LIST_PACKAGE} (the word list in {LEXICON_FILE})"
        if heading not in text:
            rule = "=" * 78
            licences.write_text(f"{text.rstrip()}\n\n{rule}\n{heading}\n{rule}\n{word_list.copyright.rstrip()}\n")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("redraft", {})["lexicon"] = LEXICON_FILE
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write a passage model's fix lexicon beside its weights")
    parser.add_argument("--corpus", required=True, help="the corpus the model was trained on (its training split)")
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint directory")
    options = parser.parse_args(argv)
    train, _ = split_documents(load_corpus(options.corpus))
    path = write_lexicon(train, options.out, WordList.installed())
    print(f"{path}: {sum(1 for _ in path.open(encoding='utf-8')):,} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
