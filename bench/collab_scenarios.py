"""The scenarios beyond one busy room: many small documents, a join storm, idle connections.

docs:  --docs documents of 2 clients each, every client a recorder, --docs-rate edits/s per
       client; one Load sends for all of them on one schedule. p50/p99 over all documents.
storm: one writer puts a --storm-chars document on the server (50,000-character updates:
       Redraft takes at most 1 MiB a message) and a probe waits until the server's sync
       step 2 holds all of it. The writer stays connected: the in-memory servers drop a
       document when its last client leaves, and the storm measures joining a document
       the server holds, not loading one. Then --storm-clients clients connect and send
       sync step 1 at once; the figure is the time until every one of them got a sync
       step 2 at least the document's size. The server's RSS is sampled every 10 ms from
       before the storm to 10 s after all synced (clients still connected).
idle:  --idle connections over --idle-docs documents, each client sends one small edit (so
       no document is empty), then nothing; KiB per connection = (RSS 2 s after all
       connected − RSS before, on a fresh server after one warm-up connection has left)
       / connections open then.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field

from collab_config import DOCS_CLIENTS, IDLE_SETTLE_S, NOISY_CPU, STORM_AFTER_S, STORM_CHUNK_CHARS, BenchConfig
from collab_load import EMPTY_STATE_STEP1, EMPTY_UPDATE_STEP2, Session, encode_append, encode_update_message
from collab_servers import ServerProcess
from collab_step import Load, StepResult, cpu_seconds, machine_busy_seconds, wait_for_quiet
from ws_client import connect, new_client

from server.protocol import MESSAGE_SYNC, SYNC_STEP1, SYNC_STEP2

MIB = 1 << 20
CONNECT_TIMEOUT_S = 30.0
STORM_TIMEOUT_S = 60.0  # joiners not synced by then count as unsynced
SETTLE_S = 1.0  # after the document is written, before the storm's "before" RSS
RSS_PERIOD_S = 0.01
STORM_TEXT = b"the quick brown fox jumps over the lazy dog. "  # no "<": never mistaken for a marker


async def docs(server: ServerProcess, config: BenchConfig) -> StepResult:
    sessions = [
        Session(server, f"docs-{d}", DOCS_CLIENTS, DOCS_CLIENTS, config.cursors) for d in range(config.num_docs)
    ]
    await wait_for_quiet(NOISY_CPU, config.quiet_wait_s)
    try:
        failures = [exc for exc in await _connect_all(sessions) if exc is not None]
        if failures:
            clients = DOCS_CLIENTS * config.num_docs
            return StepResult.failed(clients, config.docs_rate, f"{len(failures)} documents: {failures[0]}")
        return await Load(sessions).run_step(config.docs_rate, config.warmup_s, config.duration_s, config.drain_s)
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def _connect_all(sessions: list[Session]) -> list[Exception | None]:
    """Connects every session at once; each one's exception, or None (Session.connect closes a failed one)."""
    results = await asyncio.gather(*(s.connect(CONNECT_TIMEOUT_S) for s in sessions), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancelled or interrupted: not the server's failure
    return [result if isinstance(result, Exception) else None for result in results]


class Joiner:
    """A client that joins a document and notes when a sync step 2 of at least `min_bytes` arrived."""

    def __init__(self, server: ServerProcess, doc: str, min_bytes: int = 0):
        self.dialect = server.dialect
        self.doc = doc
        self.min_bytes = min_bytes
        self.ws = new_client(server.ws_url(doc), self.on_frame)
        self.step2_bytes = 0  # the first sync step 2's size
        self.synced_at: float | None = None
        self.synced = asyncio.Event()

    async def join(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        await connect(self.ws, timeout_s)
        for frame in self.dialect.hello(self.doc):
            self.ws.send(frame)
        self.ws.send(self.dialect.wrap(self.doc, EMPTY_STATE_STEP1))

    def send(self, message: bytes) -> None:
        self.ws.send(self.dialect.wrap(self.doc, message))

    def on_frame(self, frame: bytes, now: float) -> None:
        message = self.dialect.unwrap(frame)
        if message is None or len(message) < 2 or message[0] != MESSAGE_SYNC:
            return
        if message[1] == SYNC_STEP1:  # we hold nothing the server lacks
            self.send(EMPTY_UPDATE_STEP2)
        elif message[1] == SYNC_STEP2 and not self.synced.is_set():
            self.step2_bytes = self.step2_bytes or len(message)
            if len(message) >= self.min_bytes:
                self.synced_at = now
                self.synced.set()


class RssSampler(threading.Thread):
    """Samples a server's RSS every 10 ms in a thread of its own, so a busy event loop does not skip samples."""

    def __init__(self, server: ServerProcess):
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, int]] = []  # (perf_counter, bytes)
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.samples.append((time.perf_counter(), self.server.rss_bytes()))
            except (OSError, RuntimeError):  # the server is gone
                return
            if self.stopping.wait(RSS_PERIOD_S):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    def at(self, moment: float) -> int:
        """The first sample taken at or after `moment` (the last one if none was)."""
        return next((rss for t, rss in self.samples if t >= moment), self.samples[-1][1])

    @property
    def peak(self) -> int:
        return max(rss for _, rss in self.samples)


@dataclass
class StormResult:
    clients: int
    chars: int
    doc_bytes: int  # the probe's sync step 2: what every joiner downloads
    synced_ms: float  # from the storm's start until the last joiner synced; NaN unless all did
    unsynced: int  # joiners with no full sync step 2 within STORM_TIMEOUT_S
    rss_before_mib: float
    rss_peak_mib: float
    rss_after_mib: dict[str, float]  # seconds after all synced ("1", "10") -> RSS
    server_cpu_s: float  # server CPU seconds from the storm's start until all synced
    loadgen_cpu: float  # cores this process used over the same time
    other_cpu: float
    close_codes: list[int] = field(default_factory=list)


async def storm(server: ServerProcess, config: BenchConfig) -> StormResult:
    doc = "storm"
    writer = Joiner(server, doc)
    try:
        await writer.join()
        await asyncio.wait_for(writer.synced.wait(), CONNECT_TIMEOUT_S)
        doc_bytes = await _write_document(server, writer, doc, config.storm_chars)
        await asyncio.sleep(SETTLE_S)
        await wait_for_quiet(NOISY_CPU, config.quiet_wait_s)
        return await _storm(server, doc, config, doc_bytes)
    finally:
        await writer.ws.close()


async def _write_document(server: ServerProcess, writer: Joiner, doc: str, chars: int) -> int:
    """Appends `chars` characters in STORM_CHUNK_CHARS updates; the server's sync step 2 size once it has them."""
    client_id, clock = random.getrandbits(32), 0
    text = STORM_TEXT * (STORM_CHUNK_CHARS // len(STORM_TEXT) + 1)
    while clock < chars:
        chunk = text[: min(STORM_CHUNK_CHARS, chars - clock)]
        writer.send(encode_update_message(encode_append(client_id, clock, chunk)))
        clock += len(chunk)
    deadline = time.perf_counter() + CONNECT_TIMEOUT_S
    while True:
        probe = Joiner(server, doc)
        try:
            await probe.join()
            await asyncio.wait_for(probe.synced.wait(), CONNECT_TIMEOUT_S)
        finally:
            await probe.ws.close()
        if probe.step2_bytes >= chars:
            return probe.step2_bytes
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the server's sync step 2 holds {probe.step2_bytes} bytes of {chars} characters")
        await asyncio.sleep(0.1)


async def _storm(server: ServerProcess, doc: str, config: BenchConfig, doc_bytes: int) -> StormResult:
    joiners = [Joiner(server, doc, config.storm_chars) for _ in range(config.storm_clients)]
    sampler = RssSampler(server)
    sampler.start()
    try:
        rss_before = server.rss_bytes()
        cpu_before = _cpu_sample(server)
        started = time.perf_counter()
        joins = await asyncio.gather(*(j.join() for j in joiners), return_exceptions=True)
        joined = [j for j, error in zip(joiners, joins) if error is None]
        try:
            async with asyncio.timeout(STORM_TIMEOUT_S):
                await asyncio.gather(*(j.synced.wait() for j in joined))
        except TimeoutError:
            pass
        cpu_after = _cpu_sample(server)
        synced = [j.synced_at for j in joiners if j.synced_at is not None]
        all_synced = max(synced) if len(synced) == len(joiners) else time.perf_counter()
        await asyncio.sleep(max(0.0, all_synced + max(STORM_AFTER_S) - time.perf_counter()))
    finally:
        sampler.stop()
        close_codes = sorted({j.ws.close_code for j in joiners if j.ws.close_code is not None})
        await asyncio.gather(*(j.ws.close() for j in joiners))
    elapsed = cpu_after[3] - cpu_before[3]
    server_cpu_s, loadgen_cpu_s, busy_s = (after - before for after, before in zip(cpu_after[:3], cpu_before[:3]))
    return StormResult(
        clients=len(joiners),
        chars=config.storm_chars,
        doc_bytes=doc_bytes,
        synced_ms=(all_synced - started) * 1e3 if len(synced) == len(joiners) else float("nan"),
        unsynced=len(joiners) - len(synced),
        rss_before_mib=rss_before / MIB,
        rss_peak_mib=sampler.peak / MIB,
        rss_after_mib={f"{after:g}": sampler.at(all_synced + after) / MIB for after in STORM_AFTER_S},
        server_cpu_s=server_cpu_s,
        loadgen_cpu=loadgen_cpu_s / elapsed,
        other_cpu=max(0.0, (busy_s - server_cpu_s - loadgen_cpu_s) / elapsed),
        close_codes=close_codes,
    )


def _cpu_sample(server: ServerProcess) -> tuple[float, float, float, float]:
    return cpu_seconds(server.pid), time.process_time(), machine_busy_seconds(), time.perf_counter()


@dataclass
class IdleResult:
    connections: int  # asked for
    docs: int
    connected: int  # open when RSS was read
    failed: int  # refused, not synced (its whole document counts), or closed by the server
    rss_before_mib: float
    rss_after_mib: float
    kib_per_connection: float
    connect_s: float  # from the first connect until every session synced (or failed)
    loadgen_cpu: float  # cores this process used while connecting
    close_codes: list[int] = field(default_factory=list)


async def idle(server: ServerProcess, config: BenchConfig) -> IdleResult:
    warmup = Session(server, "idle-warmup", 1, 0)  # the server's first connection allocates once for all
    await warmup.connect(CONNECT_TIMEOUT_S)
    await warmup.close()
    await asyncio.sleep(SETTLE_S)
    rss_before = server.rss_bytes()
    num_docs = min(config.idle_docs, config.idle_connections)
    per_doc = [len(range(d, config.idle_connections, num_docs)) for d in range(num_docs)]  # spread evenly
    sessions = [Session(server, f"idle-{d}", n, 0) for d, n in enumerate(per_doc)]
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        errors = await _connect_all(sessions)
        connect_s, loadgen_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        clients = [c for s, error in zip(sessions, errors) if error is None for c in s.clients]
        for client in clients:
            client.send_edit()
        await asyncio.sleep(IDLE_SETTLE_S)
        rss_after = server.rss_bytes()
        open_clients = [c for c in clients if c.close_code is None]
        close_codes = sorted({c.close_code for c in clients if c.close_code is not None})
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return IdleResult(
        connections=config.idle_connections,
        docs=num_docs,
        connected=len(open_clients),
        failed=config.idle_connections - len(open_clients),
        rss_before_mib=rss_before / MIB,
        rss_after_mib=rss_after / MIB,
        kib_per_connection=(rss_after - rss_before) / 1024 / len(open_clients) if open_clients else float("nan"),
        connect_s=connect_s,
        loadgen_cpu=loadgen_cpu_s / connect_s,
        close_codes=close_codes,
    )
