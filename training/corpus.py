"""Training text: documentation as plain English prose paragraphs, grouped by file, with a held-out split.

Two corpora (training/corpus_packages.py says where their files are):
- `python-docs`: the reStructuredText sources of the Python documentation (Debian's python3.11-doc, ~11 MB, PSF
  licence);
- `english-docs`: those plus Debian's documentation packages (the Administrator's Handbook, the Reference, the
  Developer's Reference, the FAQ, Policy), HTML or reST, for prose about more than one programming language.
Each file becomes a document: its prose paragraphs in order, reflowed to one line, markup reduced to what a
reader sees (``len()`` and :func:`len` become len(), links their text). Code, tables, lists, titles and
navigation are dropped, and so is any paragraph that is not clean prose (training/corpus_prose.py): this is the
text the small model learns to write. A paragraph found twice (in two packages, or twice in one) is kept once.
The held-out split is by file, from a hash of its name, so it never changes as the sources grow.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from training.corpus_html import html_paragraphs
from training.corpus_packages import CORPUS_SOURCES, PYTHON_DOCS, Source, package_version
from training.corpus_prose import dedup_key, finish_paragraph, sentences  # noqa: F401 (sentences: re-exported)

CORPORA = tuple(CORPUS_SOURCES)
_COMMON_LICENCE = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9.+-]*[A-Za-z0-9])")
PYTHON_DOCS_DIR = PYTHON_DOCS.path()
PYTHON_DOCS_INSTALL = PYTHON_DOCS.install_command()
LICENCE_FILE = "license.rst.txt"
HELD_OUT_BUCKETS = 25  # one file in 25 is held out (a hash of its path picks it)

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
_FOOTNOTE_REFERENCE = re.compile(r"\s*\[(?:#[\w-]*|\*|\d+|[A-Za-z][\w-]*)\]_")  # [1]_, [#note]_, [Ref]_
_INTERPRETED = re.compile(r"`([^`]+)`")  # the default role: shown as plain text
_SUBSTITUTION = re.compile(r"\|([\w-]+)\|_?")
_EMPHASIS = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_CALLABLE_ROLES = {"func", "meth", "c:func", "c:macro"}  # Sphinx shows these with () after the name
_BULLET = re.compile(r"^([*+-]|#\.|\d+\.|\(?[a-z0-9]\))\s")


@dataclass(frozen=True)
class Document:
    name: str  # path relative to the sources directory
    paragraphs: tuple[str, ...]


def load_corpus(name: str, root: Path | None = None) -> list[Document]:
    """Every document of a corpus with at least one paragraph, each paragraph once across the whole corpus.

    Sources in the corpus's order, files sorted by path; the first occurrence of a paragraph is the one kept.
    `root` re-roots the packages' absolute paths (tests). A missing package is an error naming the apt command.
    """
    sources = _sources(name)
    missing = [source for source in sources if not source.path(root).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"corpus {name}: not installed: "
            + "; ".join(f"{source.package} ({source.path(root)})" for source in missing)
            + f" (as root: apt-get install -y --no-install-recommends {' '.join(s.package for s in missing)})"
        )
    seen: set[bytes] = set()
    documents = []
    for source in sources:
        for document in _source_documents(source, root):
            kept = []
            for paragraph in document.paragraphs:
                key = dedup_key(paragraph)
                if key not in seen:
                    seen.add(key)
                    kept.append(paragraph)
            if kept:
                documents.append(Document(document.name, tuple(kept)))
    return documents


def corpus_packages(name: str) -> list[str]:
    """The Debian packages a corpus is made from, in its order."""
    return [source.package for source in _sources(name)]


def corpus_licences(name: str, root: Path | None = None) -> str:
    """For each package of a corpus: its name, its version (when dpkg knows it) and its copyright file.

    The trainer writes this beside the weights (LICENSES.txt): the text they were trained on is under these terms.
    """
    parts = [
        f"The weights and tokenizer beside this file were trained on text from these Debian packages ({name}):"
        f" {', '.join(corpus_packages(name))}. Each package's copyright file follows.\n"
    ]
    for package in corpus_packages(name):
        version = package_version(package) if root is None else None
        copyright_file = Path(root or "/", "usr/share/doc", package, "copyright")
        text = (
            copyright_file.read_text(encoding="utf-8", errors="replace")
            if copyright_file.is_file()
            else f"({copyright_file} was not found)\n"
        )
        heading = f"{package} {version}" if version else package
        parts.append(f"{'=' * 78}\n{heading}\n{'=' * 78}\n{text.rstrip()}\n")
    # Copyright files name Debian's common licences (GPL-2, ...) by path: their texts travel with the weights.
    for name in sorted({match for part in parts for match in _COMMON_LICENCE.findall(part)}):
        licence = Path(root or "/", "usr/share/common-licenses", name)
        if licence.is_file():
            text = licence.read_text(encoding="utf-8", errors="replace").rstrip()
            parts.append(f"{'=' * 78}\n/usr/share/common-licenses/{name}\n{'=' * 78}\n{text}\n")
    return "\n".join(parts)


def corpus_dir(corpus: str, directory: Path | None = None) -> Path:
    """The Python documentation's sources directory (python-docs only; english-docs spans several: load_corpus)."""
    if corpus != "python-docs":
        raise ValueError(f"corpus_dir takes python-docs only, got {corpus!r} (use load_corpus)")
    path = directory or PYTHON_DOCS_DIR
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: the Python documentation sources are not installed (as root: {PYTHON_DOCS_INSTALL})"
        )
    return path


def load_documents(directory: Path) -> list[Document]:
    """Every .rst.txt file under `directory` with at least one prose paragraph, sorted by path."""
    source = Source(PYTHON_DOCS.package, str(directory), PYTHON_DOCS.patterns, "rst", PYTHON_DOCS.exclude, False)
    return list(_source_documents(source, None))


def held_out_sample(documents: list[Document], count: int, shortest: int = 200, longest: int = 700) -> list[str]:
    """`count` held-out paragraphs of shortest..longest characters, spread over packages, sections and files.

    Groups (a name's first part: the package, or the Python docs' section such as library/ or howto/) take
    turns, and within a group its files take turns, each file's paragraphs picked from across it: no single
    source (Python's library reference, one long Policy chapter) fills the sample. Deterministic.
    """
    groups: dict[str, list[list[str]]] = {}
    for document in split_documents(documents)[1]:
        pool = [p for p in document.paragraphs if shortest <= len(p) <= longest]
        if pool:
            groups.setdefault(document.name.split("/")[0], []).append(pool[:: max(1, len(pool) // 4)])
    return _take_turns([_take_turns(pools) for pools in groups.values()])[:count]


def _take_turns(lists: list[list[str]]) -> list[str]:
    """The first of each list, then the second of each, ..."""
    return [items[turn] for turn in range(max(map(len, lists), default=0)) for items in lists if turn < len(items)]


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


def read_paragraph_file(path: Path) -> list[str]:
    """Paragraphs of a plain text file, separated by blank lines (the held-out fixture's format)."""
    text = path.read_text(encoding="utf-8")
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _sources(name: str) -> tuple[Source, ...]:
    if name not in CORPUS_SOURCES:
        raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, got {name!r}")
    return CORPUS_SOURCES[name]


def _source_documents(source: Source, root: Path | None):
    """The documents of one source's files (any paragraphs, before deduplication)."""
    top = source.path(root)
    for path in source.files(root):
        relative = path.relative_to(top).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        if source.kind == "rst":
            paragraphs = rst_paragraphs(text)
        else:
            paragraphs = [p for p in map(finish_paragraph, html_paragraphs(text)) if p is not None]
        if paragraphs:
            yield Document(f"{source.package}/{relative}" if source.prefix_names else relative, tuple(paragraphs))


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
    return finish_paragraph(text)


def _plain(text: str) -> str:
    text = _FOOTNOTE_REFERENCE.sub("", text)
    text = _LITERAL.sub(r"\1", text)
    text = _ROLE.sub(lambda m: _role_text(m.group(0), m.group(1)), text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    text = _SUBSTITUTION.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = text.replace("\\ ", "").replace("\\", "").replace(" --- ", " \u2014 ")  # reST's smart dashes
    return " ".join(text.split())


def _role_text(whole: str, target: str) -> str:
    """:func:`len` -> len(); :ref:`Title <label>` -> Title; :pep:`8` -> PEP 8; :meth:`~a.b` -> b()."""
    role = whole[1 : whole.index(":", 1)]
    shown = re.sub(r"\s*<[^>]*>$", "", target).lstrip("!")
    if shown.startswith("~"):
        shown = shown[1:].rsplit(".", 1)[-1]
    shown = shown.lstrip(".")  # :class:`.HTMLParser`: a name looked up from the current module
    if role in ("pep", "rfc"):
        return f"{role.upper()} {shown}"
    if role in _CALLABLE_ROLES and not shown.endswith(")"):
        return shown + "()"
    return shown
