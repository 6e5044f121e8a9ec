"""The deployment files as the tests read them: docker-compose.yml with its variables filled in as
docker compose fills them, from .env.example plus what a test sets."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = ("redis", "server", "engine", "proxy")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, and $$ for a literal $
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def raw() -> dict:
    """docker-compose.yml as written: variables unfilled."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    variables = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def referenced_variables() -> set[str]:
    return {m["name"] for m in VARIABLE.finditer(COMPOSE_FILE.read_text()) if m["name"]}


def interpolate(value, variables: dict[str, str]):
    """Fills variables in every string of a parsed compose file, as compose does (keys are left alone)."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        found, op, arg = variables.get(match["name"]), match["op"], match["arg"]
        is_missing = found is None or (op is not None and op.startswith(":") and found == "")
        if op in (":?", "?") and is_missing:
            raise ValueError(f"{match['name']}: {arg}")
        if op in (":-", "-") and is_missing:
            return arg
        return found or ""

    return VARIABLE.sub(fill, value)


def resolved(**overrides: str) -> dict:
    """docker-compose.yml with .env.example's values, overridden by `overrides`."""
    return interpolate(raw(), {**env_example(), **overrides})


def flag_value(command: list[str], flag: str) -> str:
    """The value given to `flag` in an exec-form command."""
    index = command.index(flag)
    return command[index + 1]


def with_flags(command: list[str], replacements: dict[str, str]) -> list[str]:
    """The command with the values of the given flags replaced; each flag must be there already."""
    command = list(command)
    for flag, value in replacements.items():
        command[command.index(flag) + 1] = value
    return command
