"""End-to-end redraft latency: HTTP request -> the merged change arriving at another client.

Starts a real server (in-process engine), two Node Yjs clients on one document, and asks for N redrafts of
one paragraph, one at a time. For each: the wall time until the *other* client holds the merged text, and
the server's own split (queue, prefill, denoise, merge, first snapshot) from GET /redrafts/{id}. Undo after
each so every run rewrites the same passage. Prints a table last and writes JSON under $OUT (or ./bench-out).

    python -m bench.redraft                       # CPU, the shipped redraft-small
    python -m bench.redraft --model diffusiongemma-26b-a4b --device cuda --steps 16   # on a lent GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.node import NodePeer
from tests.support.processes import ServerProcess, wait_until

PARAGRAPH = (
    "Collaborative editors keep every copy of a document in step while people type at the same time. "
    "A redraft rewrites one paragraph in parallel, and everyone watches it resolve."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="redraft-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    out = Path(os.environ.get("OUT", "bench-out"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), extra_args=("--engine", "local", "--model", args.model,
                                                      "--engine-device", args.device)).start()
        try:
            rows = run(server, args)
        finally:
            server.stop()
    summary = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    result = {"model": args.model, "device": args.device, "steps": args.steps, "runs": rows, "p50_ms": summary}
    (out / "redraft.json").write_text(json.dumps(result, indent=2))
    print(f"\nredraft end to end, {args.model} on {args.device}, {args.steps} steps, p50 of {len(rows)} runs (ms)")
    for key, value in summary.items():
        print(f"  {key:<16} {value:9.1f}")


def run(server: ServerProcess, args) -> list[dict]:
    wait_until(lambda: httpx.get(server.http_url + "/healthz").json()["engine"]["status"] == "ready", 1800, "engine")
    asker, watcher = NodePeer(server.ws_url, "bench", name="asker"), NodePeer(server.ws_url, "bench", name="watcher")
    try:
        asker.wait_synced()
        watcher.wait_synced()
        asker.insert(0, PARAGRAPH)
        watcher.wait_text(PARAGRAPH)
        end = len(PARAGRAPH.encode("utf-16-le")) // 2
        body = {"start_index": 0, "end_index": end, "steps": args.steps}
        api = f"{server.http_url}/api/docs/bench/redrafts"
        rows = []
        for seed in range(args.runs + 1):  # the first run warms up and is dropped
            started = time.perf_counter()
            redraft_id = httpx.post(api, json={**body, "seed": seed}).json()["id"]
            status = wait_until(lambda: _finished(api, redraft_id), 600, "the redraft", interval=0.005)
            watcher.wait_text(status["text"], timeout=60)
            arrived = (time.perf_counter() - started) * 1000
            httpx.post(f"{api}/{redraft_id}/undo")
            watcher.wait_text(PARAGRAPH)
            if seed:
                rows.append({"to_other_client": arrived, **status["timings"]})
        return rows
    finally:
        asker.close()
        watcher.close()


def _finished(api: str, redraft_id: str):
    status = httpx.get(f"{api}/{redraft_id}").json()
    if status["status"] == "failed":
        raise RuntimeError(status["error"])
    return status if status["status"] == "done" else None


if __name__ == "__main__":
    main()
