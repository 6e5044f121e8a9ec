"""A token bucket: allows bursts, holds a sustained rate."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self, count: float = 1.0) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens < count:
            return False
        self.tokens -= count
        return True

    def seconds_until(self, count: float = 1.0) -> float:
        """How long until `count` tokens are there (for Retry-After)."""
        return max(0.0, (count - self.tokens) / self.rate_per_s)

    def is_full(self) -> bool:
        """Refilled to its burst: no different from a new bucket, so it may be forgotten."""
        return self.tokens + (self.clock() - self.updated) * self.rate_per_s >= self.burst


class BucketMap:
    """A TokenBucket per key (an address, a user, a document), forgetting the ones that have refilled.

    Keys are the client's to choose (an IPv6 client has 2**64 addresses), so a map that only grows is a
    memory leak an attacker drives; a full bucket is a new one, so dropping it changes no answer. Pruned
    when the map has doubled since the last prune: amortised O(1) a request.
    """

    MIN_PRUNE_AT = 1024

    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic):
        self.rate_per_s, self.burst, self.clock = rate_per_s, burst, clock
        self.buckets: dict[str, TokenBucket] = {}
        self._prune_at = self.MIN_PRUNE_AT

    def __len__(self) -> int:
        return len(self.buckets)

    def get(self, key: str) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self._prune_at:
                self.buckets = {k: b for k, b in self.buckets.items() if not b.is_full()}
                self._prune_at = max(self.MIN_PRUNE_AT, 2 * len(self.buckets))
            bucket = self.buckets[key] = TokenBucket(self.rate_per_s, self.burst, self.clock)
        return bucket
