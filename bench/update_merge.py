"""Merging a batch of keystrokes into one update: yrs' merge of all at once against `merge_all`'s rounds
(reported, never asserted).

A room merges every batch that waited behind an append, and retention folds runs of history entries; a
batch grows when the store falls behind. N one-character updates from 50 typists, as the room sees them:

    python -m bench.update_merge                 # 10 to 8,000 updates
    python -m bench.update_merge --sizes 100,2000
"""

from __future__ import annotations

import argparse
import time

from pycrdt import Doc, Text, merge_updates

from server.update_merge import merge_all

TYPISTS = 50


def keystrokes(count: int) -> list[bytes]:
    docs = [Doc(client_id=1000 + i) for i in range(TYPISTS)]
    texts = [doc.get("content", type=Text) for doc in docs]
    updates = []
    for k in range(count):
        doc, text = docs[k % TYPISTS], texts[k % TYPISTS]
        before = doc.get_state()
        text += "x"  # each typist at the end of its own text: one item each, as a keystroke
        updates.append(doc.get_update(before))
    return updates


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500,2000,8000", help="batch sizes, comma-separated")
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        updates = keystrokes(size)
        assert merge_all(updates) == merge_updates(*updates)
        repeats = max(3, min(50, 20_000 // size))
        at_once = best_of(lambda: merge_updates(*updates), repeats)
        rows.append((size, at_once, best_of(lambda: merge_all(updates), repeats)))
    print(f"{'updates':>8}  {'yrs at once':>12}  {'merge_all':>10}")
    for size, at_once, rounds in rows:
        print(f"{size:>8,}  {at_once * 1e3:>9.2f} ms  {rounds * 1e3:>7.2f} ms")


if __name__ == "__main__":
    main()
