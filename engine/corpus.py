"""Training text: the reStructuredText sources of the Python documentation as plain-prose paragraphs.

Debian's `python3.11-doc` installs them under /usr/share/doc/python3.11/html/_sources (~11 MB, PSF licence).
Each file becomes a document: its prose paragraphs in order, reflowed to one line, inline markup reduced to
what a reader sees (``len()`` and :func:`len` become `len()`, links their text). Code, tables, lists, titles
and directives other than the prose-bearing ones (function, class, note, ...) are dropped. The held-out split is
by file, from a hash of its path, so it never changes as the sources grow.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

CORPORA = ("python-docs",)
PYTHON_DOCS_DIR = Path("/usr/share/doc/python3.11/html/_sources")
PYTHON_DOCS_INSTALL = "apt-get install -y --no-install-recommends python3.11-doc"
LICENCE_FILE = "license.rst.txt"
HELD_OUT_BUCKETS = 25  # one file in 25 is held out (a hash of its path picks it)
MIN_PARAGRAPH_CHARS = 60

# Directives whose indented body is prose worth keeping; every other directive's body is dropped.
PROSE_DIRECTIVES = {
    "function", "method", "class", "attribute", "data", "exception", "decorator", "decoratormethod",
    "classmethod", "staticmethod", "abstractmethod", "coroutinefunction", "coroutinemethod", "module",
    "note", "warning", "important", "tip", "caution", "attention", "seealso", "describe", "opcode",
    "cmdoption", "option", "envvar", "impl-detail", "admonition", "deprecated", "versionchanged",
    "versionadded", "c:function", "c:macro", "c:type", "c:member", "c:var", "pdbcommand", "audit-event",
    "availability", "glossary", "rubric", "topic", "sidebar",
}
_DIRECTIVE = re.compile(r"^\.\.\s+([\w:-]+)::")
_TITLE_RULE = re.compile(r"^([=\-~*^\"#'`+.:_])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:+-]+:`([^`]*)`")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]*?)\s*<[^>]*>`__?")
_REFERENCE = re.compile(r"`([^`]+)`_{1,2}")
_SUBSTITUTION = re.compile(r"\|([\w-]+)\|_?")
_EMPHASIS = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_BULLET = re.compile(r"^([*+-]|#\.|\d+\.|\(?[a-z0-9]\))\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.")


@dataclass(frozen=True)
class Document:
    name: str  # path relative to the sources directory
    paragraphs: tuple[str, ...]


def corpus_dir(corpus: str, directory: Path | None = None) -> Path:
    """The sources directory of a corpus; a clear error (with the install command) when it is absent."""
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    path = directory or PYTHON_DOCS_DIR
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: the Python documentation sources are not installed (as root: {PYTHON_DOCS_INSTALL})"
        )
    return path


def load_documents(directory: Path) -> list[Document]:
    """Every .rst.txt file under `directory` with at least one prose paragraph, sorted by path."""
    documents = []
    for path in sorted(directory.rglob("*.rst.txt")):
        name = path.relative_to(directory).as_posix()
        if name == LICENCE_FILE:
            continue  # legal text, not documentation prose
        paragraphs = tuple(rst_paragraphs(path.read_text(encoding="utf-8", errors="replace")))
        if paragraphs:
            documents.append(Document(name, paragraphs))
    return documents


def is_held_out(document: Document) -> bool:
    digest = hashlib.sha256(document.name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_BUCKETS == 0


def split_documents(documents: list[Document]) -> tuple[list[Document], list[Document]]:
    """(train, held out), by file."""
    held_out = [d for d in documents if is_held_out(d)]
    return [d for d in documents if not is_held_out(d)], held_out


def rst_paragraphs(source: str) -> list[str]:
    """The prose paragraphs of a reST file, each reflowed to one line of plain text."""
    paragraphs = []
    skip_deeper_than: int | None = None  # inside a dropped directive body or literal block
    for indent, lines in _blocks(source):
        if skip_deeper_than is not None:
            if indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        match = _DIRECTIVE.match(lines[0])
        if match:
            if match.group(1) not in PROSE_DIRECTIVES:
                skip_deeper_than = indent
            lines = _after_directive(lines)
            if not lines:
                continue
        elif lines[0].startswith(".."):
            skip_deeper_than = indent  # a comment or a link target, and anything indented under it
            continue
        if lines[-1].rstrip().endswith("::"):
            skip_deeper_than = indent  # the literal block that follows is code
        text = _prose(lines)
        if text is not None:
            paragraphs.append(text)
    return paragraphs


def sentences(paragraph: str) -> list[str]:
    """A paragraph cut at sentence ends (not after e.g., i.e., etc.)."""
    pieces = _SENTENCE_END.split(paragraph)
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(_ABBREVIATIONS):
            merged[-1] += " " + piece
        else:
            merged.append(piece)
    return merged


def read_paragraph_file(path: Path) -> list[str]:
    """Paragraphs of a plain text file, separated by blank lines (the held-out fixture's format)."""
    text = path.read_text(encoding="utf-8")
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _blocks(source: str):
    """(indent, lines) of each run of non-blank lines."""
    lines: list[str] = []
    for line in [*source.splitlines(), ""]:
        if line.strip():
            lines.append(line.rstrip())
        elif lines:
            yield min(len(x) - len(x.lstrip()) for x in lines), lines
            lines = []


def _after_directive(lines: list[str]) -> list[str]:
    """The lines of a directive block after its header and option lines (prose that shares the block)."""
    rest = lines[1:]
    while rest and rest[0].strip().startswith(":") and not _ROLE.match(rest[0].strip()):
        rest = rest[1:]
    return rest


def _prose(lines: list[str]) -> str | None:
    stripped = [line.strip() for line in lines]
    if any(_TITLE_RULE.match(line) for line in stripped):
        return None  # a section title
    first = stripped[0]
    if first.startswith((">>>", "+-", "|", "=", ":")) or _BULLET.match(first):
        return None  # doctest, table, field list or list
    text = _plain(" ".join(stripped))
    if text.endswith("::"):
        text = text[:-2].rstrip()
        text = text + ":" if text and text[-1].isalnum() else text
    letters = sum(c.isalpha() or c.isspace() for c in text)
    if len(text) < MIN_PARAGRAPH_CHARS or letters < 0.8 * len(text) or not text[0].isupper():
        return None
    return text


def _plain(text: str) -> str:
    text = _LITERAL.sub(r"`\1`", text)
    text = _ROLE.sub(lambda m: _role_text(m.group(0), m.group(1)), text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE.sub(r"\1", text)
    text = _SUBSTITUTION.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = text.replace("\\ ", "").replace("\\", "")
    return " ".join(text.split())


def _role_text(whole: str, target: str) -> str:
    """:func:`len` -> `len`; :ref:`Title <label>` -> Title; :pep:`8` -> PEP 8; :func:`~a.b` -> `b`."""
    role = whole[1 : whole.index(":", 1)]
    shown = re.sub(r"\s*<[^>]*>$", "", target).lstrip("!")
    if shown.startswith("~"):
        shown = shown[1:].rsplit(".", 1)[-1]
    if role in ("pep", "rfc"):
        return f"{role.upper()} {shown}"
    if role in ("ref", "term", "doc", "dfn", "abbr", "title-reference", "menuselection", "guilabel", "manpage"):
        return shown
    return f"`{shown}`"
