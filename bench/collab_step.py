"""A load step: one sender for one or many sessions on one schedule, and what the step measured.

Every client sends edits on a fixed schedule (client i's k-th edit at
t0 + (k + i/N) / rate over the N clients of all sessions, so the server sees one
edit every 1/(N·rate) s). Sessions are interleaved, so consecutive edits go to
different documents: 200 documents of 2 clients cost one sender, not 200. The
step measures the edits sent in its window (after the warm-up) and waits up to
`drain_s` for them; CPU is sampled from /proc at the window's start and end
(the server's, this process's, and the machine's: what is left is other
processes, noise on a shared machine, which `wait_for_quiet` waits out first).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # collab_load's Session runs its steps through a Load
    from collab_load import Session

MIN_TICK_S = 0.001  # the sender wakes at most this often and sends every edit that fell due


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle, from /proc/stat."""
    with open("/proc/stat") as stat:
        jiffies = [int(x) for x in stat.readline().split()[1:]]
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


async def wait_for_quiet(max_busy_cores: float, timeout_s: float, sample_s: float = 0.5) -> float:
    """Waits until the machine's busy cores drop below `max_busy_cores`, or the timeout; returns the last sample."""
    deadline = time.perf_counter() + timeout_s
    while True:
        before, started = machine_busy_seconds(), time.perf_counter()
        await asyncio.sleep(sample_s)
        busy = (machine_busy_seconds() - before) / (time.perf_counter() - started)
        if busy < max_busy_cores or time.perf_counter() >= deadline:
            return busy


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


@dataclass
class StepResult:
    clients: int
    rate_per_client: float
    offered_rate: float  # edits/s over the whole document
    achieved_rate: float  # edits actually sent per second of the window
    num_samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    missing: int  # (marker, recorder) pairs that never arrived
    disconnects: int
    frames_in_per_s: float  # frames received by all clients together
    send_lag_p99_ms: float  # how late the generator sent, against the schedule
    loop_lag_p99_ms: float  # the generator's own event-loop delay
    server_cpu: float  # cores busy in the server process
    loadgen_cpu: float  # cores busy in this process
    other_cpu: float  # cores busy with anything else on the machine: noise if high
    close_codes: list[int] = field(default_factory=list)
    attempts: int = 1  # runs of this step (a noisy failure is retried)
    doc_edits_before: int = 0  # edits already in the document when the step began
    error: str = ""  # why the step could not run, if it could not

    @classmethod
    def failed(cls, num_clients: int, rate: float, error: str) -> "StepResult":
        nan = float("nan")
        return cls(
            num_clients, rate, rate * num_clients, achieved_rate=0.0, num_samples=0, p50_ms=nan, p99_ms=nan,
            max_ms=nan, missing=0, disconnects=0, frames_in_per_s=nan, send_lag_p99_ms=nan, loop_lag_p99_ms=nan,
            server_cpu=nan, loadgen_cpu=nan, other_cpu=nan, error=error,
        )


class Load:
    """Sessions driven by one sender on one schedule: 200 documents cost one loop, not 200."""

    def __init__(self, sessions: list[Session]):
        self.sessions = sessions
        self.server_pid = sessions[0].server_pid
        longest = max(len(s.clients) for s in sessions)
        # Interleaved by document, so consecutive edits go to different documents.
        self.clients = [s.clients[i] for i in range(longest) for s in sessions if i < len(s.clients)]

    @property
    def frames_in(self) -> int:
        return sum(s.frames_in for s in self.sessions)

    async def run_step(self, rate: float, warmup_s: float, duration_s: float, drain_s: float) -> StepResult:
        """Sends for warmup_s + duration_s, measures the edits sent in the last duration_s."""
        doc_edits_before = sum(c.seq for c in self.clients)
        t0 = time.perf_counter() + 0.01
        start, end = t0 + warmup_s, t0 + warmup_s + duration_s
        for session in self.sessions:
            session.window.reset(len(session.clients), start, end)
        lags: list[float] = []
        monitor = asyncio.create_task(_loop_lag(start, end, lags))
        send_lags, cpu_start, frames_start = await self._send(rate, t0, start, end)
        cpu_end = self._cpu_sample()
        frames = self.frames_in - frames_start
        await self._drain(drain_s)
        await monitor
        result = self._result(rate, duration_s, cpu_start, cpu_end, frames, send_lags, lags)
        result.doc_edits_before = doc_edits_before
        return result

    async def _send(self, rate: float, t0: float, start: float, end: float):
        """Sends edit g at t0 + g/(N·rate) from client g mod N until `end`; samples CPU at `start`."""
        n = len(self.clients)
        interval = 1.0 / (n * rate)
        total = int((end - t0) / interval)
        send_lags: list[float] = []
        cpu_start, frames_start = None, self.frames_in
        g = 0
        while g < total:
            due = min(total, int((time.perf_counter() - t0) / interval) + 1)
            while g < due:
                scheduled = t0 + g * interval
                if cpu_start is None and scheduled >= start:
                    cpu_start, frames_start = self._cpu_sample(), self.frames_in
                client = self.clients[g % n]
                if client.close_code is None:
                    sent = client.send_edit()
                    if start <= sent <= end:
                        client.session.window.sent_by[client.index] += 1
                    if start <= scheduled <= end:
                        send_lags.append(sent - scheduled)
                g += 1
            # Never below a tick: uvloop rounds shorter sleeps to 0 and the loop would spin.
            await asyncio.sleep(max(MIN_TICK_S, t0 + g * interval - time.perf_counter()))
        return send_lags, cpu_start, frames_start

    def _cpu_sample(self) -> tuple[float, float, float, float]:
        return cpu_seconds(self.server_pid), time.process_time(), machine_busy_seconds(), time.perf_counter()

    def _expected(self) -> int:
        return sum(s.expected() for s in self.sessions)

    def _latencies(self) -> list[float]:
        return [latency for s in self.sessions for latency in s.window.latencies]

    async def _drain(self, drain_s: float) -> None:
        deadline = time.perf_counter() + drain_s
        while sum(len(s.window.latencies) for s in self.sessions) < self._expected():
            if time.perf_counter() >= deadline:
                return
            await asyncio.sleep(0.01)

    def _result(self, rate, duration_s, cpu_start, cpu_end, frames, send_lags, lags) -> StepResult:
        latencies = sorted(self._latencies())
        expected = self._expected()
        for session in self.sessions:
            session.window.start = session.window.end = float("inf")  # late arrivals no longer count
        send_lags.sort()
        lags.sort()
        if cpu_start is None:
            cpu_start = (float("nan"),) * 4
        elapsed = cpu_end[3] - cpu_start[3]
        server_cpu, loadgen_cpu, busy = ((e - s) / elapsed for e, s in zip(cpu_end[:3], cpu_start[:3]))
        closed = [code for s in self.sessions for code in s.disconnected()]
        # The load must be what it says: with cursors on, the recorders see the others' cursors.
        cursors_lost = any(s.cursors for s in self.sessions) and not sum(s.cursors_in for s in self.sessions)
        return StepResult(
            clients=len(self.clients),
            rate_per_client=rate,
            offered_rate=rate * len(self.clients),
            achieved_rate=sum(sum(s.window.sent_by) for s in self.sessions) / duration_s,
            num_samples=len(latencies),
            p50_ms=percentile(latencies, 0.50) * 1e3,
            p99_ms=percentile(latencies, 0.99) * 1e3,
            max_ms=(latencies[-1] if latencies else float("nan")) * 1e3,
            missing=max(0, expected - len(latencies)),
            disconnects=len(closed),
            frames_in_per_s=frames / elapsed,
            send_lag_p99_ms=percentile(send_lags, 0.99) * 1e3,
            loop_lag_p99_ms=percentile(lags, 0.99) * 1e3,
            server_cpu=server_cpu,
            loadgen_cpu=loadgen_cpu,
            other_cpu=max(0.0, busy - server_cpu - loadgen_cpu),
            close_codes=sorted(set(closed)),
            error="no cursor reached a recorder" if cursors_lost else "",
        )


async def _loop_lag(start: float, end: float, lags: list[float], period_s: float = 0.005) -> None:
    """Samples how late this event loop wakes up: high values mean the generator is saturated."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    while time.perf_counter() < end:
        before = time.perf_counter()
        await asyncio.sleep(period_s)
        lags.append(time.perf_counter() - before - period_s)
