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
        self._received: dict[str, tuple] = {}  # source: its (updates, update_bytes) children
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
        self.reads_paused = Counter(
            "redraft_reads_paused", "Times a connection stopped being read while its document's store caught up",
            registry=r,
        )
        self.pending_bytes = Gauge(
            "redraft_pending_bytes", "Bytes of updates held while they wait for changes they depend on", registry=r
        )
        self.redraft_queue = Gauge("redraft_redrafts_live", "Redrafts waiting for or in the engine", registry=r)
        self.redrafts = Counter("redraft_redrafts", "Redrafts that ended, by final status", ["status"], registry=r)
        latency = (0.05, 0.1, 0.2, 0.33, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
        self.redraft_first = Histogram(
            "redraft_first_snapshot_seconds", "Request to the first canvas snapshot", buckets=latency, registry=r
        )
        self.redraft_latency = Histogram(
            "redraft_total_seconds", "Request to the redraft's end (merged, suggested, failed)", buckets=latency,
            registry=r,
        )
        self.redraft_steps = Histogram(
            "redraft_steps_per_canvas", "Denoising steps a canvas took", buckets=(4, 8, 12, 16, 24, 32, 48, 64),
            registry=r,
        )
        self.redraft_speed = Histogram(
            "redraft_tokens_per_second", "Tokens written per second of denoising, per redraft",
            buckets=(10, 30, 100, 300, 1000, 3000, 10000), registry=r,
        )

    def update_received(self, size: int, source: str = "client") -> None:
        # Once per keystroke: the labelled children are looked up once per source (labels() costs microseconds).
        children = self._received.get(source)
        if children is None:
            children = self._received[source] = (self.updates.labels(source), self.update_bytes.labels(source))
        children[0].inc()
        children[1].inc(size)

    def broadcast(self, frame_size: int, num_peers: int) -> None:
        self.sent_bytes.inc(frame_size * num_peers)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def store_append(self, seconds: float) -> None:
        self.store_latency.observe(seconds)

    def store_error(self) -> None:
        self.store_errors.inc()

    def redraft_first_snapshot(self, seconds: float) -> None:
        self.redraft_first.observe(seconds)

    def redraft_generated(self, steps: list[int], tokens: int, denoise_s: float) -> None:
        for count in steps:
            self.redraft_steps.observe(count)
        if denoise_s > 0:
            self.redraft_speed.observe(tokens / denoise_s)

    def redraft_ended(self, status: str) -> None:
        self.redrafts.labels(status).inc()

    def redraft_landed(self, total_s: float) -> None:
        """Request to the change being applied (or the suggestion being ready)."""
        self.redraft_latency.observe(total_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
