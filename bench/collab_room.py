"""The room and ramp scenarios: N clients on one document at a fixed rate, and at rising rates.

room: the goal step, --clients × --rate edits/s for --duration s after --warmup s.
ramp: the per-client rate rises through --rate, then --ramp, --step-duration s each, and
stops at the first step that does not hold (`step_holds`); the highest offered rate that
held is the server's sustained rate. If the first step fails, the lower rates of
--ramp-down are tried until one holds. Each step runs on a fresh document with N fresh
clients (--same-doc: one document that keeps growing through the steps).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from collab_config import GOAL_P99_MS, NOISY_CPU, BenchConfig, step_holds
from collab_load import Session
from collab_report import NAME_WIDTH, format_step
from collab_servers import ServerProcess
from collab_step import StepResult, wait_for_quiet


@dataclass
class RampResult:
    steps: list[StepResult]
    sustained_rate: float  # the highest offered document rate that held; 0 when none did
    is_ceiling: bool  # the top of the ramp held: the real limit is higher


async def room(server: ServerProcess, config: BenchConfig) -> StepResult:
    """The goal step; rerun (up to --retries) when it failed or missed the goal while the machine was busy."""
    (step,) = await _run_rates(server, config, "room", [config.rate], config.duration_s, GOAL_P99_MS, False)
    return step


async def ramp(server: ServerProcess, config: BenchConfig) -> RampResult:
    rising = [config.rate, *config.ramp]
    steps = await _run_rates(server, config, "ramp", rising, config.step_duration_s, config.p99_limit_ms, False)
    if not step_holds(steps[0], config) and config.ramp_down:
        falling = sorted((r for r in config.ramp_down if r < config.rate), reverse=True)
        steps += await _run_rates(server, config, "low", falling, config.step_duration_s, config.p99_limit_ms, True)
    held = [s for s in steps if step_holds(s, config)]
    return RampResult(
        steps=steps,
        sustained_rate=max((s.offered_rate for s in held), default=0.0),
        is_ceiling=any(s.offered_rate >= config.top_rate for s in held),
    )


class Documents:
    """Hands each step its session: N fresh clients on a fresh document, or one shared (--same-doc)."""

    def __init__(self, server: ServerProcess, config: BenchConfig, prefix: str):
        self.server = server
        self.config = config
        self.prefix = prefix
        self.num_opened = 0
        self.shared: Session | None = None

    async def open(self) -> Session:
        if self.shared is not None:
            return self.shared
        self.num_opened += 1
        config = self.config
        doc = f"{self.prefix}-{self.num_opened}"
        session = Session(self.server, doc, config.num_clients, config.num_recorders, config.cursors)
        await session.connect()
        if config.is_same_doc:
            self.shared = session
        return session

    async def release(self, session: Session) -> None:
        if session is not self.shared:
            await session.close()

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


async def _run_rates(server, config, prefix, rates, duration_s, retry_above_ms, until_hold) -> list[StepResult]:
    """Runs the rates in order; stops at the first step that fails (or, with until_hold, holds)."""
    documents = Documents(server, config, prefix)
    steps: list[StepResult] = []
    try:
        for rate in rates:
            step = await _run_step(documents, rate, duration_s, config, retry_above_ms)
            steps.append(step)
            if step_holds(step, config) == until_hold:
                break
    finally:
        await documents.close()
    return steps


async def _run_step(
    documents: Documents, rate: float, duration: float, config: BenchConfig, retry_above_ms: float
) -> StepResult:
    """One step; a step that failed while other processes were busy is run again, up to --retries times."""
    for attempt in range(1 + config.num_retries):
        await wait_for_quiet(NOISY_CPU, config.quiet_wait_s)
        try:
            session = await documents.open()
        except (OSError, RuntimeError) as exc:  # the server refused or dropped the clients
            step = StepResult.failed(config.num_clients, rate, f"connect: {exc}")
            print(f"{documents.server.name:{NAME_WIDTH}} {step.error}", file=sys.stderr, flush=True)
            return step
        try:
            step = await session.run_step(rate, config.warmup_s, duration, config.drain_s)
        finally:
            await documents.release(session)
        step.attempts = attempt + 1
        print(format_step(documents.server.name, step, step_holds(step, config)), file=sys.stderr, flush=True)
        is_good = step_holds(step, config) and step.p99_ms <= retry_above_ms
        if is_good or step.other_cpu <= NOISY_CPU or step.disconnects:
            break
    return step
