"""Per-key token buckets: the rate holds per key, and keys a client invents do not grow the map for ever."""

from __future__ import annotations

from server.ratelimit import BucketMap


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_keeps_its_bucket_while_it_is_not_refilled():
    clock = Clock()
    buckets = BucketMap(rate_per_s=1.0, burst=2, clock=clock)
    assert [buckets.get("a").take() for _ in range(3)] == [True, True, False]
    clock.now = 1.0
    assert buckets.get("a").take() and not buckets.get("a").take()


def test_buckets_of_keys_that_went_quiet_are_forgotten():
    clock = Clock()
    buckets = BucketMap(rate_per_s=1.0, burst=2, clock=clock)
    for i in range(10_000):  # a client spraying source addresses, one request from each
        assert buckets.get(f"2001:db8::{i:x}").take()
        clock.now += 0.01  # 100 a second: each bucket is full again 1 s after its request
    assert len(buckets) <= 2 * BucketMap.MIN_PRUNE_AT
    busy = buckets.get("busy")  # a key still limited is never forgotten, however many come after it
    assert busy.take() and busy.take() and not busy.take()
    for i in range(5_000):  # no time passes: none of these is full again, and neither is busy's
        buckets.get(f"2001:db8:1::{i:x}").take()
    assert buckets.get("busy") is busy and not busy.take()
