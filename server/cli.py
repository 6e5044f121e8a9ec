"""The `redraft` command line. Every flag also reads REDRAFT_<FLAG> from the environment."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .auth import ROLES, mint_token
from .config import ENGINE_MODES, ServerConfig

log = logging.getLogger("redraft")


def _env(flag: str, default=None):
    return os.environ.get("REDRAFT_" + flag.upper().replace("-", "_"), default)


def _add(parser: argparse.ArgumentParser, flag: str, default=None, **kwargs) -> None:
    env_name = "REDRAFT_" + flag.upper().replace("-", "_")
    help_text = kwargs.pop("help", "")
    parser.add_argument(
        f"--{flag}", default=_env(flag, default), help=f"{help_text} [env {env_name}]".strip(), **kwargs
    )


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the collaboration server (and the editor)")
    _add(p, "host", "127.0.0.1", help="address to bind")
    _add(p, "port", "8000", type=int, help="port to bind")
    _add(p, "data-dir", "./data", type=Path, help="where the embedded SQLite store lives")
    _add(p, "redis-url", None, help="redis://... to keep documents in Redis and scale out")
    _add(p, "redis-prefix", "redraft", help="prefix of every Redis key")
    _add(p, "engine", "off", choices=ENGINE_MODES, help="where redrafts run")
    _add(p, "secret", None, help="signing secret for share tokens; without it only loopback is served")
    _add(p, "allowed-origins", "", help="comma-separated browser origins allowed besides the server's own")
    _add(p, "log-level", "info", choices=("debug", "info", "warning", "error"))


def _token_parser(sub) -> None:
    p = sub.add_parser("token", help="print a share token")
    _add(p, "doc", None, required=_env("doc") is None, help="document name, or * for every document")
    _add(p, "role", "edit", choices=ROLES)
    _add(p, "secret", None, help="the server's secret")
    _add(p, "ttl", None, type=float, help="seconds until the token expires (default: never)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redraft", description="Redraft: collaborative editing with AI redrafts")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _token_parser(sub)
    return parser


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            redis_url=args.redis_url or None,
            redis_prefix=args.redis_prefix,
            engine=args.engine,
            secret=args.secret or None,
            allowed_origins=tuple(o.strip() for o in args.allowed_origins.split(",") if o.strip()),
        )
    except ValueError as exc:
        print(f"redraft serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.secret is None:
        log.warning(
            "no --secret: every document is open to anyone who can reach %s:%d, so only loopback is served",
            config.host,
            config.port,
        )
    log.info("editor at http://%s:%d/", config.host, config.port)
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level=args.log_level,
        ws_max_size=config.max_message_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="on",
    )
    return 0


def token(args: argparse.Namespace) -> int:
    if not args.secret:
        print("redraft token: --secret (or REDRAFT_SECRET) is required", file=sys.stderr)
        return 2
    try:
        print(mint_token(args.secret, args.doc, args.role, args.ttl))
    except ValueError as exc:
        print(f"redraft token: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"serve": serve, "token": token}[args.command](args)
