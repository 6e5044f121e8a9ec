"""Prometheus metrics of one server process, in a registry of its own (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("redraft_connections", "Open websocket connections", registry=r)
        self.rooms = Gauge("redraft_rooms", "Documents loaded in memory", registry=r)
        self.updates = Counter(
            "redraft_updates", "Document updates integrated", ["source"], registry=r
        )
        self.update_bytes = Counter(
            "redraft_update_bytes", "Bytes of integrated document updates", ["source"], registry=r
        )
        self.sent_bytes = Counter("redraft_sent_bytes", "Bytes of updates broadcast to clients", registry=r)
        self.refusals = Counter(
            "redraft_refusals", "Messages or connections refused", ["reason"], registry=r
        )
        self.store_latency = Histogram(
            "redraft_store_append_seconds",
            "Time to append a batch of updates durably",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.store_errors = Counter("redraft_store_errors", "Failed store appends", registry=r)

    def update_received(self, size: int, source: str = "client") -> None:
        self.updates.labels(source).inc()
        self.update_bytes.labels(source).inc(size)

    def broadcast(self, frame_size: int, num_peers: int) -> None:
        self.sent_bytes.inc(frame_size * num_peers)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def store_append(self, seconds: float) -> None:
        self.store_latency.observe(seconds)

    def store_error(self) -> None:
        self.store_errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
