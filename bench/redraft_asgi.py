"""Redraft served through one of uvicorn's own websocket implementations, for bench/collab.py to compare.

`redraft serve` hands each websocket to its room (`server/ws_link.py`); under any other implementation
the endpoint falls back to plain ASGI (an awaited send per client per frame, a task awaiting receive per
connection). The bench runs this as "redraft-asgi-<impl>" to measure what the link saves.

    .venv/bin/python bench/redraft_asgi.py websockets-sansio [redraft serve flags...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redraft.cli import build_parser, serve  # noqa: E402

IMPLEMENTATIONS = ("websockets-sansio", "websockets", "wsproto")  # uvicorn's --ws choices, "auto" aside

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in IMPLEMENTATIONS:
        sys.exit(f"usage: redraft_asgi.py {{{','.join(IMPLEMENTATIONS)}}} [redraft serve flags...]")
    sys.exit(serve(build_parser().parse_args(["serve", *sys.argv[2:]]), websockets=sys.argv[1]))
