"""Every dependency points down: redraft (the command) -> server -> jobs <- worker -> engine -> kernels.

Read from the source, lazy imports inside functions included: a lazy import is still a dependency, it only
loads later. A package may import itself and what its row allows, nothing else of the project. A
`__main__.py` is an entry point, the top by definition: `python -m server` runs the `redraft` command.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"redraft", "server", "jobs", "worker", "engine", "training", "kernels"}
ALLOWED = {
    "redraft": PROJECT,  # the command composes the others
    "server": {"server", "jobs"},
    "worker": {"worker", "jobs", "engine"},
    "training": {"training", "engine", "jobs"},
    "engine": {"engine", "jobs", "kernels"},
    "jobs": {"jobs"},
    "kernels": {"kernels"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & PROJECT


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_is_below_it(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__main__.py"
    }
    assert {path: names for path, names in wrong.items() if names} == {}

