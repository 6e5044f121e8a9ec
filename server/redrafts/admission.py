"""Whether a redraft request may start now: the queue's limit, then the rate limits per person and per document."""

from __future__ import annotations

from ..ratelimit import BucketMap
from .request import RedraftError


class Admission:
    def __init__(self, config, metrics):
        self.config = config
        self.metrics = metrics
        self._user_buckets = BucketMap(config.redraft_user_per_min / 60.0, config.redraft_user_burst)
        self._doc_buckets = BucketMap(config.redraft_doc_per_min / 60.0, config.redraft_doc_burst)

    def admit(self, doc: str, user_key: str, num_live: int) -> None:
        """Takes a token from the person's and the document's buckets, or raises a 429 saying when to retry.
        `num_live`: redrafts waiting or running in this process."""
        config = self.config
        if num_live >= config.redraft_queue_max:
            self.metrics.refused("redraft_queue_full")
            raise RedraftError(
                429, "queue_full", f"{num_live} redrafts are waiting or running; try again shortly", retry_after_s=2.0
            )
        for key, buckets, per_min, what in (
            (user_key, self._user_buckets, config.redraft_user_per_min, "you"),
            (doc, self._doc_buckets, config.redraft_doc_per_min, "this document"),
        ):
            bucket = buckets.get(key)
            if not bucket.take():
                self.metrics.refused("redraft_rate_limited")
                raise RedraftError(
                    429,
                    "rate_limited",
                    f"too many redrafts for {what}: at most {per_min:g} a minute",
                    retry_after_s=bucket.seconds_until(),
                )
