"""A corpus packed to travel: its documents, its licences and the word list, in one gzip JSON file.

A GPU machine may have no Debian documentation packages and no way to install them, and the weights trained
there still need the corpus's licences and the fix's lexicon beside them. `redraft train --corpus NAME
--export-corpus FILE` packs what the installed packages give here; `--corpus-file FILE` trains from it there
with the same documents in the same order (so the same held-out split), the same licences and the same word
list (bench/gpu_train.sh).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from training.corpus import Document, corpus_licences, load_corpus
from training.lexicon import WordList

FORMAT = "redraft-corpus/1"


@dataclass(frozen=True)
class CorpusFile:
    corpus: str
    documents: list[Document]
    licences: str  # what LICENSES.txt beside the weights starts with (training.corpus.corpus_licences)
    word_list: WordList


def pack(corpus: str) -> CorpusFile:
    """The installed corpus, its licences and the installed word list."""
    return CorpusFile(corpus, load_corpus(corpus), corpus_licences(corpus), WordList.installed())


def write_corpus_file(packed: CorpusFile, path: Path) -> None:
    body = {
        "format": FORMAT,
        "corpus": packed.corpus,
        "licences": packed.licences,
        "word_list": {"words": list(packed.word_list.words), "copyright": packed.word_list.copyright},
        "documents": [{"name": d.name, "paragraphs": list(d.paragraphs)} for d in packed.documents],
    }
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump(body, out, ensure_ascii=False)


def read_corpus_file(path: Path) -> CorpusFile:
    """Raises ValueError (naming the file) for anything but a file write_corpus_file wrote."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as source:
            body = json.load(source)
        if body.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        documents = [Document(str(d["name"]), tuple(map(str, d["paragraphs"]))) for d in body["documents"]]
        words = WordList(tuple(map(str, body["word_list"]["words"])), str(body["word_list"]["copyright"]))
        return CorpusFile(str(body["corpus"]), documents, str(body["licences"]), words)
    except (OSError, EOFError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path}: not a corpus file redraft train --export-corpus wrote ({error})") from error
