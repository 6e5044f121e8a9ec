"""Training text: reST to prose, the held-out split, the BPE tokenizer (examples: test_examples.py)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from engine.text.tokenizer import SPECIALS, bpe_tokenizer
from training import corpus
from training.corpus import (
    Document,
    corpus_licences,
    corpus_packages,
    held_out_sample,
    is_held_out,
    load_corpus,
    read_paragraph_file,
    rst_paragraphs,
    sentences,
)
from training.corpus_prose import is_plain_prose

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


# --- load_corpus over a miniature /usr/share (CI installs no documentation packages) ---

PROSE = "The {} keeps every installed package consistent with the others, and it explains why in plain words."


def _page(*paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<html><head><title>T</title></head><body><div class='navheader'><p>Prev Next</p></div>{body}</body></html>"


def held_out_names(pattern: str, count: int) -> list[str]:
    names = (pattern.format(i) for i in range(10_000))
    return [n for n in names if is_held_out(Document(n, ()))][:count]


def debian_docs(root, held_out_python: int = 0):
    """One small file per package where its package puts it, plus files each source must not read."""
    files = {
        "usr/share/doc/debian-handbook/html/en-US/apt.html": _page(
            PROSE.format("handbook"), "The SAME paragraph appears in two packages; the corpus keeps it only once."
        ),
        "usr/share/doc/debian-handbook/html/en-US/index.html": _page(PROSE.format("table of contents")),
        "usr/share/debian-reference/ch02.en.html": _page(PROSE.format("reference"), "Run apt-get -y install x"),
        "usr/share/debian-reference/ch02.fr.html": _page(PROSE.format("French page")),
        "usr/share/developers-reference/_sources/pkgs.rst.txt": f"Title\n=====\n\n{PROSE.format('``dpkg`` tool')}\n",
        "usr/share/doc/debian/FAQ/basic-defs.en.html": _page("The same paragraph appears in two packages: the corpus keeps it only once!"),
        "usr/share/doc/debian/FAQ/basic-defs.html": _page(PROSE.format("FAQ without language")),
        "usr/share/doc/debian-policy/policy.html/ch-scope.html": _page(PROSE.format("policy")),
        "usr/share/doc/debian-policy/policy.html/genindex.html": _page(PROSE.format("index")),
        "usr/share/doc/debian-policy/menu-policy-1.html": _page(PROSE.format("one-page copy")),
        "usr/share/doc/python3.11/html/_sources/library/os.rst.txt": f"{PROSE.format(':mod:`os` module')}\n",
        "usr/share/doc/python3.11/html/_sources/license.rst.txt": PROSE.format("PSF licence") + "\n",
    }
    for name in held_out_names("library/held{}.rst.txt", held_out_python):
        files[f"usr/share/doc/python3.11/html/_sources/{name}"] = "\n\n".join(
            f"The held-out file {name} says thing number {i} in a sentence long enough to be a paragraph."
            + " It goes on." * (i * 10)
            for i in range(4)
        )
    for package in ("debian-handbook", "debian-reference-en", "developers-reference", "debian-faq",
                    "debian-policy", "python3.11-doc"):
        files[f"usr/share/doc/{package}/copyright"] = f"Copyright of {package}: free to use.\n"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_english_docs_reads_each_package_once_in_order(tmp_path):
    documents = load_corpus("english-docs", root=debian_docs(tmp_path))
    assert [(d.name, d.paragraphs) for d in documents] == [
        ("debian-handbook/apt.html", (PROSE.format("handbook"), "The SAME paragraph appears in two packages; the corpus keeps it only once.")),
        ("debian-reference-en/ch02.en.html", (PROSE.format("reference"),)),
        ("developers-reference/pkgs.rst.txt", (PROSE.format("dpkg tool"),)),
        # basic-defs.en.html's only paragraph is a duplicate of the handbook's: the file has none left
        ("debian-policy/policy.html/ch-scope.html", (PROSE.format("policy"),)),
        ("library/os.rst.txt", (PROSE.format("os module"),)),  # unprefixed: python-docs' names and split
    ]
    assert corpus_packages("english-docs") == [
        "debian-handbook", "debian-reference-en", "developers-reference", "debian-faq", "debian-policy",
        "python3.11-doc",
    ]
    assert [d.name for d in load_corpus("python-docs", root=tmp_path)] == ["library/os.rst.txt"]


def test_a_missing_package_is_named_with_its_apt_command(tmp_path):
    debian_docs(tmp_path)
    shutil.rmtree(tmp_path / "usr/share/doc/debian/FAQ")
    shutil.rmtree(tmp_path / "usr/share/developers-reference")
    with pytest.raises(FileNotFoundError) as error:
        load_corpus("english-docs", root=tmp_path)
    assert "apt-get install -y --no-install-recommends developers-reference debian-faq" in str(error.value)
    with pytest.raises(ValueError, match="corpus must be one of python-docs, english-docs, got 'web'"):
        load_corpus("web", root=tmp_path)


def test_licences_give_each_package_its_version_and_copyright(tmp_path, monkeypatch):
    debian_docs(tmp_path)
    handbook = tmp_path / "usr/share/doc/debian-handbook/copyright"
    handbook.write_text(handbook.read_text() + "See /usr/share/common-licenses/GPL-2.\n")
    (tmp_path / "usr/share/common-licenses").mkdir(parents=True)
    (tmp_path / "usr/share/common-licenses/GPL-2").write_text("GNU GENERAL PUBLIC LICENSE, the test's copy\n")
    text = corpus_licences("english-docs", root=tmp_path)
    for package in corpus_packages("english-docs"):
        assert f"\n{package}\n" in text and f"Copyright of {package}: free to use." in text
    assert text.count("GNU GENERAL PUBLIC LICENSE, the test's copy") == 1  # a named common licence, included once
    monkeypatch.setattr(corpus, "package_version", {"debian-faq": "11.1"}.get)
    text = corpus_licences("python-docs")  # the real /usr/share/doc: present or not, the text says which
    assert "\npython3.11-doc\n" in text and ("Python Software Foundation" in text or "was not found" in text)
    assert "\ndebian-faq 11.1\n" in corpus_licences("english-docs")


def test_held_out_sample_takes_turns_between_files():
    names = held_out_names("d{}.html", 3)
    documents = [Document(name, tuple(f"{name} paragraph {i}. " + "x" * 200 for i in range(8))) for name in names]
    documents.append(Document("not-held-out", ("y" * 300,)))
    assert not is_held_out(documents[-1])
    picked = held_out_sample(documents, 5)
    assert [p.split()[0] for p in picked] == [names[0], names[1], names[2], names[0], names[1]]
    assert picked[3].split()[2] == "2." and held_out_sample(documents, 5) == picked  # from across each file
    assert held_out_sample(documents, 5, shortest=1000) == []


def test_export_held_out_writes_english_docs_paragraphs(tmp_path, monkeypatch):
    from redraft.train import main

    debian_docs(tmp_path / "root", held_out_python=2)
    rerooted = {
        name: tuple(replace(s, directory=str(tmp_path / "root" / s.directory.lstrip("/"))) for s in sources)
        for name, sources in corpus.CORPUS_SOURCES.items()
    }
    monkeypatch.setattr(corpus, "CORPUS_SOURCES", rerooted)
    out = tmp_path / "held_out.txt"
    assert main(["--corpus", "english-docs", "--export-held-out", str(out)]) == 0
    paragraphs = read_paragraph_file(out)
    assert len(paragraphs) == 6 and all(200 <= len(p) <= 700 and "held-out file" in p for p in paragraphs)


def test_the_exported_fixture_is_clean_prose():
    paragraphs = read_paragraph_file(Path(__file__).parent / "fixtures" / "english_docs_held_out.txt")
    assert len(paragraphs) == 32 and len(set(paragraphs)) == 32
    assert all(200 <= len(p) <= 700 and is_plain_prose(p) for p in paragraphs)
