"""Where each Debian documentation package puts its English text, and in which format.

A corpus is a list of these sources. Paths are absolute on a Debian system; `root` (tests) re-roots them, so a
test can lay out a miniature /usr/share in a temporary directory. Files that are not documentation prose
(indexes, search pages, licence texts, translations) are left out by name.
"""

from __future__ import annotations

import fnmatch
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    package: str  # the Debian package that installs the files (its copyright file is the licence)
    directory: str  # absolute path of the files' top directory
    patterns: tuple[str, ...]  # globs relative to it
    kind: str  # "rst" or "html"
    exclude: tuple[str, ...] = ()  # fnmatch patterns (relative paths) left out
    prefix_names: bool = True  # documents are named "<package>/<relative path>" (the held-out hash input)

    def path(self, root: Path | None = None) -> Path:
        return Path(root, self.directory.lstrip("/")) if root else Path(self.directory)

    def files(self, root: Path | None = None) -> list[Path]:
        top = self.path(root)
        found = {path for pattern in self.patterns for path in top.glob(pattern) if path.is_file()}
        return sorted(
            path for path in found
            if not any(fnmatch.fnmatch(path.relative_to(top).as_posix(), x) for x in self.exclude)
        )

    def install_command(self) -> str:
        return f"apt-get install -y --no-install-recommends {self.package}"


PYTHON_DOCS = Source(
    "python3.11-doc",
    "/usr/share/doc/python3.11/html/_sources",
    ("**/*.rst.txt",),
    "rst",
    exclude=("license.rst.txt",),  # legal text, not documentation prose
    # unprefixed, as the python-docs corpus always named them: the same files are held out in both corpora, so
    # a model trained on python-docs never saw english-docs' held-out Python paragraphs either
    prefix_names=False,
)
DEBIAN_DOCS = (
    Source("debian-handbook", "/usr/share/doc/debian-handbook/html/en-US", ("*.html",), "html",
           exclude=("index.html",)),  # index.html: the table of contents
    Source("debian-reference-en", "/usr/share/debian-reference", ("*.en.html",), "html",
           exclude=("index.en.html",)),
    Source("developers-reference", "/usr/share/developers-reference/_sources", ("*.rst.txt",), "rst",
           exclude=("index.rst.txt",)),
    Source("debian-faq", "/usr/share/doc/debian/FAQ", ("*.en.html",), "html", exclude=("index.en.html",)),
    Source(
        "debian-policy",
        "/usr/share/doc/debian-policy",
        ("*.html", "*/*.html"),
        "html",
        # the one-page copies repeat the chapters; indexes, search and the GPL are not documentation prose
        exclude=("*-1.html", "*/index.html", "*/genindex.html", "*/search.html", "policy.html/ap-license.html"),
    ),
)
CORPUS_SOURCES: dict[str, tuple[Source, ...]] = {
    "python-docs": (PYTHON_DOCS,),
    "english-docs": (*DEBIAN_DOCS, PYTHON_DOCS),
}


def package_version(package: str) -> str | None:
    """The installed version from dpkg, or None where dpkg cannot say (not Debian, not installed)."""
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
