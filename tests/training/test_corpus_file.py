"""training/corpus_file.py: a corpus, its licences and its word list packed into one file and read back."""

from __future__ import annotations

import gzip

import pytest

from training.corpus import Document
from training.corpus_file import CorpusFile, read_corpus_file, write_corpus_file
from training.lexicon import WordList

PACKED = CorpusFile(
    "english-docs",
    [Document("debian-faq/ch-basic.html", ("Debian is an operating system.", "It is “free”: ünïcode kept.")),
     Document("python/library/os.rst.txt", ("The os module.",))],
    "The copyright files.\n",
    WordList(("lunch", "thunderstorm"), "The word list's terms."),
)


def test_what_is_written_reads_back_the_same(tmp_path):
    path = tmp_path / "corpus.json.gz"
    write_corpus_file(PACKED, path)
    assert read_corpus_file(path) == PACKED


@pytest.mark.parametrize("content", [b"not gzip", gzip.compress(b"{not json"), gzip.compress(b'{"format": "x"}'),
                                     gzip.compress(b'{"format": "redraft-corpus/1", "corpus": "c"}')])
def test_anything_else_is_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.json.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.json\.gz: not a corpus file redraft train --export-corpus wrote"):
        read_corpus_file(path)
