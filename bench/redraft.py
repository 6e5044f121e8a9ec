"""End-to-end redraft latency: HTTP request -> the merged change arriving at another client.

For each engine placement asked for, starts a real server, two Node Yjs clients on one document, and asks
for N redrafts of one paragraph, the placements taking turns (run 1 of each, then run 2 of each...), so a
machine that slows down mid-run slows them all alike. For each: the wall time until the *other* client
holds the merged text, and the server's own split (queue, prefill, denoise, merge, first snapshot) from GET
/redrafts/{id}. Undo after each so every run rewrites the same passage. Prints a table last and writes JSON
under $OUT (or ./bench-out).

Placements (`--engines`, comma-separated):
- `local`: the model in the server's process (`--engine local`).
- `redraft-api`: a second server with `--engine openai` streaming from the first one's /v1 (the same model
  on the same device): what the OpenAI-compatible hop costs.
- `llama`: `--engine openai` streaming from llama.cpp's server (tests/support/llama_server.py: a tiny
  random model that always writes its whole 256-token budget; needs .venv-llama, which ./dev test builds).
  A left-to-right model of its own, so not the same model: it shows the path's cost with such a server.
For a remote engine, "prefill" is the wait for the first streamed token and "denoise" the rest of the stream.

    python -m bench.redraft                       # CPU, the shipped redraft-small, all three placements
    python -m bench.redraft --engines local --model diffusiongemma-26b-a4b --device cuda --steps 16   # a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.llama_server import LlamaServer, missing_reason
from tests.support.node import NodePeer
from tests.support.processes import ServerProcess, wait_until

PARAGRAPH = (
    "Collaborative editors keep every copy of a document in step while people type at the same time. "
    "A redraft rewrites one paragraph in parallel, and everyone watches it resolve."
)
ENGINES = ("local", "redraft-api", "llama")
# The bench asks for a redraft every second or so, past the per-user and per-document rates a server keeps
# for people (20 and 60 a minute): raised here, as bench/collab.py raises the message rates.
UNLIMITED = ("--redraft-user-per-min", "100000", "--redraft-user-burst", "1000",
             "--redraft-doc-per-min", "100000", "--redraft-doc-burst", "1000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated: {', '.join(ENGINES)}")
    parser.add_argument("--model", default="redraft-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    engines = [name for name in args.engines.split(",") if name]
    if unknown := set(engines) - set(ENGINES):
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    if "llama" in engines and (reason := missing_reason()):
        print(f"skipping llama: {reason}")
        engines.remove("llama")
    out = Path(os.environ.get("OUT", "bench-out"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers = {name: start(name, Path(tmp), args, stack) for name in engines}
        rows = run(servers, args)
    summary = {name: {key: statistics.median(row[key] for row in runs) for key in runs[0]}
               for name, runs in rows.items()}
    result = {"model": args.model, "device": args.device, "steps": args.steps, "runs": rows, "p50_ms": summary,
              "date": time.strftime("%Y-%m-%d")}
    (out / "redraft.json").write_text(json.dumps(result, indent=2))
    keys = list(next(iter(summary.values())))
    print(f"\nredraft end to end, {args.model} on {args.device}, {args.steps} steps, p50 of {args.runs} runs (ms)")
    print(f"  {'engine':<14}" + "".join(f"{key:>17}" for key in keys))
    for name, values in summary.items():
        print(f"  {name:<14}" + "".join(f"{values[key]:17.1f}" for key in keys))


def start(name: str, tmp: Path, args, stack: contextlib.ExitStack) -> ServerProcess:
    """The server whose redrafts are measured, with whatever it streams from started first."""
    local = ("--engine", "local", "--model", args.model, "--engine-device", args.device, *UNLIMITED)
    if name == "local":
        return _started(ServerProcess(tmp / name, extra_args=local), stack)
    if name == "redraft-api":
        upstream = _started(ServerProcess(tmp / "upstream", extra_args=local), stack)
        _wait_ready(upstream)
        url = upstream.http_url + "/v1"
    else:
        llama = LlamaServer(tmp / "llama").start()
        stack.callback(llama.stop)
        url = llama.base_url
    return _started(ServerProcess(tmp / name, extra_args=("--engine", "openai", "--engine-url", url, *UNLIMITED)),
                    stack)


def _started(server: ServerProcess, stack: contextlib.ExitStack) -> ServerProcess:
    server.start()
    stack.callback(server.stop)
    return server


def _wait_ready(server: ServerProcess) -> None:
    wait_until(lambda: httpx.get(server.http_url + "/healthz").json()["engine"]["status"] == "ready", 1800, "engine")


def run(servers: dict[str, ServerProcess], args) -> dict[str, list[dict]]:
    with contextlib.ExitStack() as stack:
        docs = {}
        for name, server in servers.items():
            _wait_ready(server)
            asker = NodePeer(server.ws_url, "bench", name="asker")
            stack.callback(asker.close)
            watcher = NodePeer(server.ws_url, "bench", name="watcher")
            stack.callback(watcher.close)
            asker.wait_synced()
            watcher.wait_synced()
            asker.insert(0, PARAGRAPH)
            watcher.wait_text(PARAGRAPH)
            docs[name] = (f"{server.http_url}/api/docs/bench/redrafts", watcher)
        rows: dict[str, list[dict]] = {name: [] for name in servers}
        for seed in range(args.runs + 1):  # the first round warms up and is dropped
            for name, (api, watcher) in docs.items():
                row = one_redraft(api, watcher, seed, args.steps)
                if seed:
                    rows[name].append(row)
        return rows


def one_redraft(api: str, watcher: NodePeer, seed: int, steps: int) -> dict:
    end = len(PARAGRAPH.encode("utf-16-le")) // 2
    started = time.perf_counter()
    response = httpx.post(api, json={"start_index": 0, "end_index": end, "steps": steps, "seed": seed})
    if response.status_code != 202:
        raise RuntimeError(f"the redraft was refused: {response.status_code} {response.text}")
    redraft_id = response.json()["id"]
    status = wait_until(lambda: _finished(api, redraft_id), 600, "the redraft", interval=0.005)
    watcher.wait_text(status["text"], timeout=60)
    arrived = (time.perf_counter() - started) * 1000
    httpx.post(f"{api}/{redraft_id}/undo")
    watcher.wait_text(PARAGRAPH)
    return {"to_other_client": arrived, **status["timings"]}


def _finished(api: str, redraft_id: str):
    status = httpx.get(f"{api}/{redraft_id}").json()
    if status["status"] == "failed":
        raise RuntimeError(status["error"])
    return status if status["status"] == "done" else None


if __name__ == "__main__":
    main()
