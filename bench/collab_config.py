"""The collaboration benchmark's settings, and when a step counts as holding."""

from __future__ import annotations

from dataclasses import dataclass

from collab_load import StepResult

GOAL_P99_MS = 10.0  # fan-out p99 goal at 50 clients × 10 edits/s
GOAL_SPEEDUP = 1.5  # sustained rate goal against the baseline
NOISY_CPU = 0.25  # cores other processes used during a step: above this its numbers are suspect
MAX_RATE_PER_CLIENT = 200  # Redraft closes a connection sending more messages/s (max_messages_per_s)
SERVERS = ("redraft", "baseline")
HISTORY_MODES = ("on", "off")  # Redraft's --history: record version history, or not


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
    history: tuple[str, ...] = ("on",)  # Redraft runs once per mode: "on,off" measures what history costs

    def __post_init__(self) -> None:
        for name in self.servers:
            if name not in SERVERS:
                raise ValueError(f"servers must be among {', '.join(SERVERS)}, not {name!r}")
        modes = self.history
        if not modes or len(set(modes)) != len(modes) or not set(modes) <= set(HISTORY_MODES):
            raise ValueError(f"history must be on, off or on,off, not {','.join(self.history)!r}")
        if self.num_clients < 2:
            raise ValueError("clients must be at least 2 (someone has to receive)")
        if not 1 <= self.num_recorders <= self.num_clients:
            raise ValueError(f"recorders must be 1..clients, not {self.num_recorders}")
        for rate in (self.rate, *self.ramp, *self.ramp_down):
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
