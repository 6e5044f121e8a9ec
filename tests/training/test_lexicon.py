"""training/lexicon.py: the words a passage model's fix knows, from its training text and a word list."""

from __future__ import annotations

import json

import pytest

from engine.text.spelling import Lexicon
from training.corpus import Document
from training.lexicon import LEXICON_FILE, WordList, build_lexicon, write_lexicon

DOCUMENTS = [Document("a.txt", ("The kernel loads the module.", "The module (a driver) loads firmware.")),
             Document("b.txt", ("Firmware loads once.",))]


@pytest.fixture
def word_list(tmp_path):
    path, copyright_file = tmp_path / "words", tmp_path / "copyright"
    path.write_text("driver\nkernel\n\nlunch\nAaron's\nmodule's\n")
    copyright_file.write_text("The word list's terms.\n")
    return WordList.installed(path, copyright_file)


def test_the_training_words_seen_twice_and_the_word_lists_words(word_list):
    lexicon = build_lexicon(DOCUMENTS + [Document("c.txt", ("The module's name.",))], word_list)
    assert lexicon.counts == {
        "The": 3, "loads": 3, "module": 2,  # the corpus's, twice or more ("the" once, "firmware" once)
        "kernel": 1, "driver": 1, "lunch": 1,  # the word list's, one more each
    }
    # a possessive only when the corpus has it ("module's" once: dropped there, and not taken from the list)
    assert "Aaron's" not in lexicon.counts and "module's" not in lexicon.counts


def test_a_missing_word_list_names_its_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y wamerican"):
        WordList.installed(tmp_path / "none")


def test_written_beside_the_weights_declared_and_licensed_once(tmp_path, word_list):
    (tmp_path / "config.json").write_text(json.dumps({"redraft": {"tasks": ["fix"], "canvas_init": "passage"}}))
    (tmp_path / "LICENSES.txt").write_text("the corpus's licences\n")
    for _ in range(2):
        path = write_lexicon(DOCUMENTS, tmp_path, word_list)
    assert path == tmp_path / LEXICON_FILE
    assert Lexicon.read(path).counts == build_lexicon(DOCUMENTS, word_list).counts
    assert json.loads((tmp_path / "config.json").read_text())["redraft"] == {
        "tasks": ["fix"], "canvas_init": "passage", "lexicon": LEXICON_FILE}
    licences = (tmp_path / "LICENSES.txt").read_text()
    assert licences.startswith("the corpus's licences\n")
    assert licences.count("wamerican (the word list in lexicon.txt)") == 1  # its copyright file, once
    assert licences.rstrip().endswith("The word list's terms.")
