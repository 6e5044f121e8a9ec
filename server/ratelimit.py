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
