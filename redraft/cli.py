"""The `redraft` command line. Every flag also reads REDRAFT_<FLAG> from the environment."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from redraft import generate, train
from redraft import worker as worker_command
from redraft.flags import env_name, env_value
from redraft.logs import RedactTokens, start_logging, uvicorn_log_config
from server.auth import ROLES, mint_engine_token, mint_token
from server.config import ServerConfig

log = logging.getLogger("redraft")


def _add(parser: argparse.ArgumentParser, flag: str, default=None, **kwargs) -> None:
    help_text = kwargs.pop("help", "")
    parser.add_argument(
        f"--{flag}", default=env_value(flag, default), help=f"{help_text} [env {env_name(flag)}]".strip(), **kwargs
    )


_PARSERS = {
    "int": int,
    "float": float,
    "Path": Path,
    "str": str,
    "str | None": lambda raw: raw or None,
    "tuple[str, ...]": lambda raw: tuple(item.strip() for item in raw.split(",") if item.strip()),
}


def _config_fields():
    return [f for f in dataclasses.fields(ServerConfig) if f.metadata.get("cli", True)]


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the collaboration server (and the editor)")
    for f in _config_fields():
        default = "" if f.default in (None, ()) else f.default
        p.add_argument(
            *_flags(f),
            dest=f.name,
            default=None,
            choices=f.metadata.get("choices"),
            help=f"{f.metadata['help']} (default {default!s}) [env {env_name(f.name)}]",
        )
    _add(p, "log-level", "info", choices=("debug", "info", "warning", "error"))


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Flags win over REDRAFT_* variables, which win over the dataclass defaults."""
    values = {}
    for f in _config_fields():
        raw = getattr(args, f.name)
        for name in (f.name, *f.metadata.get("aliases", ())):  # REDRAFT_<FLAG> for the flag, then its aliases
            if raw is None:
                raw = env_value(name)
        if raw is None:
            continue
        try:
            values[f.name] = _PARSERS[f.type](raw)
        except ValueError as exc:
            raise ValueError(f"--{f.name.replace('_', '-')}: cannot read {raw!r} ({exc})") from None
    return ServerConfig(**values)


def _token_parser(sub) -> None:
    p = sub.add_parser("token", help="print a share token (--doc) or an engine token for the /v1 API (--engine)")
    _add(p, "doc", None, help="document name, or * for every document")
    # No REDRAFT_ENGINE here: that variable is `serve --engine`'s mode, set in every compose service's environment.
    p.add_argument("--engine", action="store_true", help="a token for the OpenAI-compatible API; it opens no document")
    _add(p, "role", "edit", choices=ROLES)
    _add(p, "secret", None, help="the server's secret")
    _add(p, "ttl", None, type=float, help="seconds until the token expires (default: never)")
    # No REDRAFT_NAME either: that variable is `worker --name`'s consumer name, and a token's holder is named
    # on purpose, never picked up from a shell or a container's environment.
    p.add_argument("--name", default=None,
                   help="the holder's display name (at most 64 characters): history shows it as verified")


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = ["| flag | environment | default | what it sets |", "|---|---|---|---|"]
    for flag, env, default, what in rows:
        flags = ", ".join(f"`{name}`" for name in flag.split(", "))  # a flag and its aliases
        lines.append(f"| {flags} | `{env}` | {f'`{default}`' if default else ''} | {what} |")
    return lines


def serve_flags() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, what it sets) for each `redraft serve` setting."""
    rows = []
    for f in _config_fields():
        default = f.default
        if f.name == "web_dir":
            default = "web/dist"  # resolved against the install; shown relative
        shown = "" if default in (None, ()) else str(default)
        choices = f.metadata.get("choices")
        what = f.metadata["help"] + (f" ({' / '.join(choices)})" if choices else "")
        rows.append((", ".join(_flags(f)), env_name(f.name), shown, what))
    return rows


def _flags(f: dataclasses.Field) -> list[str]:
    """A field's flag, then its aliases."""
    return ["--" + name.replace("_", "-") for name in (f.name, *f.metadata.get("aliases", ()))]


def worker_flags() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, what it sets) for each `redraft worker` flag."""
    return [(f"--{flag}", env_name(flag), default or "", what) for flag, what, default in worker_command.FLAGS]


def config_reference() -> str:
    """The configuration tables of the README, made from the code's own configuration: `redraft serve`'s
    dataclass and `redraft worker`'s flags."""
    return "\n".join([
        "`redraft serve`:", "", *_table(serve_flags()), "",
        "`redraft worker` (the GPU engine worker of `--engine redis`):", "", *_table(worker_flags()),
    ])


# The commands of the engine, the worker and training: help, the function adding its flags, the one running it.
# Their flag modules are cheap (torch, redis and httpx load only when a command runs).
ENGINE_COMMANDS = {
    "generate": ("one generation from the command line (needs the engine extra)",
                 generate.add_generate_arguments, generate.run_generate),
    "worker": ("a GPU engine worker: takes redraft jobs from Redis (--engine redis)",
               worker_command.add_worker_arguments, worker_command.run_worker),
    "train": ("train the small model, LoRA-fine-tune a checkpoint, or evaluate one",
              train.add_train_arguments, train.run_train),
    "worker-health": ("exit 0 when this host's engine worker is ready (a container health check; needs redis only)",
                      worker_command.add_worker_health_arguments, worker_command.run_worker_health),
}
# What the engine extra installs: a command that needs one of them on a collaboration-only install says so.
ENGINE_EXTRA = {"torch", "transformers", "safetensors", "tokenizers"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redraft", description="Redraft: collaborative editing with AI redrafts")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _token_parser(sub)
    sub.add_parser("config-reference", help="print the configuration tables of serve and worker (Markdown)")
    for name, (help, add_arguments, _) in ENGINE_COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help))
    return parser


def websocket_options(config: ServerConfig, websockets=None) -> dict:
    """uvicorn's websocket settings for `redraft serve` (`websockets`: see `serve`)."""
    from server.ws_link import LinkProtocol

    return {
        "ws": websockets or LinkProtocol,  # rooms read and write frames without ASGI's round trips (ws_link)
        # Headroom so the room closes with its own code and reason; uvicorn's 1009 only guards memory against
        # absurd frames.
        "ws_max_size": 4 * config.max_message_bytes,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        # No permessage-deflate: a browser offers it, and its compression contexts cost 46 KiB a connection
        # (10 without); broadcasts go out uncompressed anyway (ws_link) and a keystroke's update is tens of bytes.
        "ws_per_message_deflate": False,
    }


def serve(args: argparse.Namespace, websockets=None) -> int:
    """`redraft serve`; `websockets` names another of uvicorn's websocket implementations (bench/collab.py
    measures what ws_link saves against them), else rooms take their connections over (ws_link)."""
    import uvicorn

    from redraft.engines import engine_loader
    from server.app import create_app

    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"redraft serve: {exc}", file=sys.stderr)
        return 2
    start_logging(args.log_level, RedactTokens())
    if config.engine == "openai":
        from engine.api import PASSWORD_ON_COMMAND_LINE, password_on_command_line  # torch-free; the worker says it too

        if password_on_command_line(config.engine_url):
            log.warning(PASSWORD_ON_COMMAND_LINE)
    if config.secret is None:
        log.warning(
            "no --secret: every document is open to anyone who can reach %s:%d, so only loopback is served",
            config.host,
            config.port,
        )
    log.info("editor at http://%s:%d/", config.host, config.port)
    app = create_app(config, engine_loader(config))
    uvicorn.run(app, **websocket_options(config, websockets), host=config.host, port=config.port,
                log_level=args.log_level, log_config=uvicorn_log_config(), lifespan="on")
    return 0


def token(args: argparse.Namespace) -> int:
    if not args.secret:
        print("redraft token: --secret (or REDRAFT_SECRET) is required", file=sys.stderr)
        return 2
    if (args.doc is None) == (not args.engine):  # REDRAFT_DOC in the environment counts as --doc
        print("redraft token: give either --doc NAME (a share token) or --engine (a /v1 API token)", file=sys.stderr)
        return 2
    try:
        if args.engine:
            if args.name is not None:
                raise ValueError("--name names a document token's holder; an engine token has none")
            print(mint_engine_token(args.secret, args.ttl))
        else:
            print(mint_token(args.secret, args.doc, args.role, args.ttl, name=args.name))
    except ValueError as exc:
        print(f"redraft token: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config-reference":
        print(config_reference())
        return 0
    if args.command in ENGINE_COMMANDS:
        try:
            return ENGINE_COMMANDS[args.command][2](args)
        except ModuleNotFoundError as error:
            if error.name not in ENGINE_EXTRA:
                raise
            print(f"redraft {args.command}: the engine is not installed (pip install 'redraft[engine]')",
                  file=sys.stderr)
            return 2
    return {"serve": serve, "token": token}[args.command](args)
