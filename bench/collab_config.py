"""The collaboration benchmark's settings, and when a step counts as holding."""

from __future__ import annotations

from dataclasses import dataclass

from collab_step import StepResult

GOAL_P99_MS = 10.0  # fan-out p99 goal at 50 clients × 10 edits/s
GOAL_SPEEDUP = 1.5  # sustained rate goal against the baseline
NOISY_CPU = 0.25  # cores other processes used during a step: above this its numbers are suspect
MAX_RATE_PER_CLIENT = 1000  # per-client edits/s; Redraft runs with its message rate limit raised above this
BASELINES = ("pycrdt", "baseline")  # pycrdt-websocket, under its current and its old name
HISTORY_MODES = ("on", "off")  # Redraft's --history: record version history, or not
SCENARIOS = ("room", "ramp", "docs", "storm", "idle")
DOCS_CLIENTS = 2  # clients per document in the docs scenario, both recorders
STORM_CHUNK_CHARS = 50_000  # the storm document is written in updates this long (Redraft takes ≤ 1 MiB a message)
STORM_AFTER_S = (1.0, 10.0)  # the storm reports the server's RSS this long after all clients synced
IDLE_SETTLE_S = 2.0  # the idle scenario reads RSS this long after all clients connected


@dataclass(frozen=True)
class BenchConfig:
    servers: tuple[str, ...]
    num_clients: int
    rate: float  # edits/s per client in the goal step
    duration_s: float  # measured seconds of the goal step
    step_duration_s: float  # measured seconds of every other step
    warmup_s: float
    drain_s: float
    ramp: tuple[float, ...]  # per-client rates after the goal step, rising
    ramp_down: tuple[float, ...]  # per-client rates tried when the goal step fails
    num_recorders: int
    p99_limit_ms: float
    num_retries: int
    quiet_wait_s: float
    is_same_doc: bool
    cursors: bool = False  # every edit followed by its client's cursor (an awareness update), as the editor sends
    history: tuple[str, ...] = ("on",)  # Redraft runs once per mode: "on,off" measures what history costs
    scenarios: tuple[str, ...] = SCENARIOS
    num_repeats: int = 3  # every (server, scenario) runs this often, each on a fresh server process
    num_docs: int = 200  # documents in the docs scenario
    docs_rate: float = 2.0  # edits/s per client in the docs scenario
    storm_clients: int = 200
    storm_chars: int = 1_000_000
    idle_connections: int = 1000
    idle_docs: int = 100

    def __post_init__(self) -> None:
        if not self.scenarios or not set(self.scenarios) <= set(SCENARIOS):
            raise ValueError(f"scenarios must be among {','.join(SCENARIOS)}, not {','.join(self.scenarios)!r}")
        counts = (self.num_repeats, self.num_docs, self.storm_clients, self.storm_chars, self.idle_connections,
                  self.idle_docs)  # fmt: skip
        if min(counts) < 1:
            raise ValueError("repeats, docs, storm clients and chars, idle connections and docs must be positive")
        modes = self.history
        if not modes or len(set(modes)) != len(modes) or not set(modes) <= set(HISTORY_MODES):
            raise ValueError(f"history must be on, off or on,off, not {','.join(self.history)!r}")
        if self.num_clients < 2:
            raise ValueError("clients must be at least 2 (someone has to receive)")
        if not 1 <= self.num_recorders <= self.num_clients:
            raise ValueError(f"recorders must be 1..clients, not {self.num_recorders}")
        for rate in (self.rate, *self.ramp, *self.ramp_down, self.docs_rate):
            if not 0 < rate < MAX_RATE_PER_CLIENT:
                raise ValueError(f"per-client rates must be in (0, {MAX_RATE_PER_CLIENT}), not {rate}")
        if self.num_retries < 0 or self.quiet_wait_s < 0:
            raise ValueError("retries and quiet-wait must not be negative")
        if min(self.duration_s, self.step_duration_s) <= 0 or min(self.warmup_s, self.drain_s) < 0:
            raise ValueError("durations must be positive and warmup/drain not negative")

    def runs(self) -> list[tuple[str, str, str]]:
        """(server, history mode, label) for each server process the bench starts, in order. Redraft is
        "redraft" when it runs once (the header says its mode); with both modes, history off is "redraft-off"."""
        runs = []
        for name in self.servers:
            if name != "redraft":
                runs.append((name, "on", name))
                continue
            for mode in self.history:
                is_plain = len(self.history) == 1 or mode == "on"
                runs.append((name, mode, name if is_plain else f"{name}-off"))
        return runs

    def rotated_runs(self, repeat: int) -> list[tuple[str, str, str]]:
        """The runs in one repeat's order: shifted by one each repeat, so no server always runs first."""
        runs = self.runs()
        shift = repeat % len(runs)
        return runs[shift:] + runs[:shift]

    @property
    def top_rate(self) -> float:
        """The highest document rate the ramp offers."""
        return self.num_clients * max((self.rate, *self.ramp))


def step_holds(step: StepResult, config: BenchConfig) -> bool:
    return (
        not step.error
        and step.p99_ms <= config.p99_limit_ms
        and step.achieved_rate >= 0.9 * step.offered_rate
        and step.missing == 0
        and step.disconnects == 0
    )
