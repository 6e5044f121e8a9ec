"""REDRAFT_<FLAG>: every `redraft` flag takes its default from the environment, as compose files set them.

One spelling for every subcommand: `--engine-url` and `engine_url` both read REDRAFT_ENGINE_URL.
"""

from __future__ import annotations

import os

TRUE = ("1", "true", "yes", "on")


def env_name(flag: str) -> str:
    return "REDRAFT_" + flag.lstrip("-").upper().replace("-", "_")


def env_value(flag: str, default: str | None = None) -> str | None:
    """The flag's REDRAFT_<FLAG>, else `default`."""
    return os.environ.get(env_name(flag), default)


def env_flag(flag: str) -> bool:
    """A switch (store_true) set from the environment: 1, true, yes or on."""
    return (env_value(flag) or "").strip().lower() in TRUE
