"""Reusable closed-loop load generator for CGRateS-style JSON-RPC over TCP.

Each of ``connections`` TCP connections keeps ``inflight`` requests pipelined: every reply
triggers the next request (sent in one write per read). Requests are pre-encoded bodies (as
``core.rpc.encode_request`` writes them, ``"id"`` last); only the id is re-rendered per request.
Latency is per request, from its write to its reply. The run always stops by itself: at
``max_requests`` or after ``warmup + duration`` seconds, whichever comes first, then waits at
most ``drain_timeout`` for the replies in flight.

To keep the generator from being the bottleneck the load can be split over ``processes``
worker processes (connections and request budget divided between them; results merged).

Command line::

    python scripts/bench/_loadgen.py --port 2012 --method Bench.Echo --params '{"a":1}' \\
        -c 4 -p 32 -d 5 -k 1
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import multiprocessing
import multiprocessing.context
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final, TypeVar, cast

from core.rpc.codec import encode_request
from core.types import loads

T = TypeVar("T")

NS_PER_SECOND: Final = 1_000_000_000
NS_PER_MICROSECOND: Final = 1_000
DEFAULT_CONNECTIONS: Final = 4
DEFAULT_INFLIGHT: Final = 32
DEFAULT_DURATION: Final = 5.0
DEFAULT_WARMUP: Final = 0.5
DEFAULT_MAX_REQUESTS: Final = 50_000_000
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_DRAIN_TIMEOUT: Final = 2.0
CONNECT_RETRY_DELAY: Final = 0.05
PROCESS_EXIT_TIMEOUT: Final = 5.0
"""Seconds granted to a worker process beyond its own bound before it is killed."""
ID_PROBE: Final = 918273645

_ID_KEY: Final = b'"id":'
_REPLY_HEAD: Final = b'{"id":'  # Go's and our servers write "id" first...
_REPLY_OK_TAIL: Final = b'"error":null}'  # ...and "error" last
_LINE_END: Final = b"\n"
_REQUEST_END: Final = b"}\n"


def request_template(body: bytes) -> tuple[bytes, bytes]:
    """Splits an encoded request into ``(prefix, suffix)`` around its id value."""
    text = body.rstrip()
    key = text.rfind(_ID_KEY)
    if key < 0 or not text.endswith(b"}"):
        raise ValueError(f"request must end with its id member: {body[:80]!r}")
    prefix = text[: key + len(_ID_KEY)]
    probe = loads(prefix + b"%d" % ID_PROBE + _REQUEST_END)
    if not isinstance(probe, dict) or probe.get("id") != ID_PROBE:
        raise ValueError(f"request must end with its id member: {body[:80]!r}")
    return prefix, _REQUEST_END


@dataclass
class LoadResult:
    """Merged figures. Counts and latencies cover the measurement window only (after warmup)."""

    requests: int = 0  # replies received in the window
    errors: int = 0  # of which carried an error
    elapsed: float = 0.0  # window length in seconds (longest of the workers)
    throughput: float = 0.0  # replies per second, summed over workers
    sent: int = 0  # requests sent in the whole run, warmup and drain included
    received: int = 0  # replies received in the whole run
    latencies_ns: array.array[int] = field(default_factory=lambda: array.array("q"))

    def percentile(self, fraction: float) -> float:
        """Latency percentile in microseconds (nearest rank); 0 without samples."""
        if not self.latencies_ns:
            return 0.0
        ordered = sorted(self.latencies_ns)
        rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[rank] / NS_PER_MICROSECOND

    def merge(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.elapsed = max(self.elapsed, other.elapsed)
        self.throughput += other.throughput
        self.sent += other.sent
        self.received += other.received
        self.latencies_ns.extend(other.latencies_ns)

    def summary(self) -> str:
        return (
            f"{self.throughput:,.0f} req/s  p50 {self.percentile(0.50):,.0f} µs  "
            f"p99 {self.percentile(0.99):,.0f} µs  ({self.requests:,} replies in "
            f"{self.elapsed:.2f} s, {self.errors} errors; sent {self.sent:,}, "
            f"received {self.received:,})"
        )

    def to_wire(self) -> dict[str, Any]:
        """Picklable form for sending from a worker process."""
        return {**self.__dict__, "latencies_ns": self.latencies_ns.tobytes()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> LoadResult:
        latencies = array.array("q")
        latencies.frombytes(data["latencies_ns"])
        return cls(**{**data, "latencies_ns": latencies})


class _Run:
    """State shared by the connections of one worker."""

    def __init__(self, max_requests: int, warmup: float, duration: float) -> None:
        self.max_requests = max_requests
        self.warmup_ns = int(warmup * NS_PER_SECOND)
        self.duration_ns = int(duration * NS_PER_SECOND)
        self.window_start = self.deadline = 0
        self.last_reply = 0
        self.sent = self.received = self.requests = self.errors = 0
        self.latencies: array.array[int] = array.array("q")
        self.open_connections = 0
        self.finished: asyncio.Future[None] | None = None

    def start(self) -> None:
        now = time.perf_counter_ns()
        self.window_start = now + self.warmup_ns
        self.deadline = self.window_start + self.duration_ns
        self.finished = asyncio.get_running_loop().create_future()

    def connection_done(self) -> None:
        self.open_connections -= 1
        if self.open_connections == 0 and self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


class _LoadConnection(asyncio.Protocol):
    def __init__(self, run: _Run, templates: Sequence[tuple[bytes, bytes]], inflight: int):
        self.run = run
        self.templates = templates
        self.inflight = inflight
        self.transport: asyncio.Transport | None = None
        self.sent_at: dict[int, int] = {}
        self.next_id = 0
        self.rest = b""
        self.done = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it

    def send(self, count: int, now: int) -> None:
        run = self.run
        if now >= run.deadline:
            count = 0
        count = min(count, run.max_requests - run.sent)
        if count <= 0:
            if not self.sent_at:
                self.finish()
            return
        parts: list[bytes] = []
        templates = self.templates
        size = len(templates)
        sent_at = self.sent_at
        request_id = self.next_id
        for _ in range(count):
            prefix, suffix = templates[request_id % size]
            parts += (prefix, b"%d" % request_id, suffix)
            sent_at[request_id] = now
            request_id += 1
        self.next_id = request_id
        run.sent += count
        assert self.transport is not None
        self.transport.write(b"".join(parts))

    def data_received(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
        lines = data.split(_LINE_END)
        self.rest = lines.pop()
        now = time.perf_counter_ns()
        run = self.run
        in_window = run.window_start <= now <= run.deadline
        sent_at = self.sent_at
        replies = 0
        for line in lines:
            if not line:
                continue
            try:
                if line.startswith(_REPLY_HEAD):
                    reply_id = int(line[len(_REPLY_HEAD) : line.index(b",", len(_REPLY_HEAD))])
                else:
                    reply_id = loads(line)["id"]
            except (ValueError, KeyError, TypeError):
                continue  # not a reply to one of ours (e.g. "id":null for a framing error)
            started = sent_at.pop(reply_id, None)
            if started is None:
                continue
            replies += 1
            if in_window:
                run.latencies.append(now - started)
                if not line.endswith(_REPLY_OK_TAIL):
                    run.errors += 1
        run.received += replies
        if in_window:
            run.requests += replies
            run.last_reply = now
        if not self.done:
            self.send(replies, now)

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.run.connection_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish()
        if not self.lost.done():
            self.lost.set_result(None)


async def _connect(
    host: str, port: int, factory: Callable[[], _LoadConnection], timeout: float
) -> _LoadConnection:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, protocol = await loop.create_connection(factory, host, port)
            return protocol
        except OSError:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(CONNECT_RETRY_DELAY)


async def _load(
    host: str,
    port: int,
    bodies: Sequence[bytes],
    connections: int,
    inflight: int,
    duration: float,
    warmup: float,
    max_requests: int,
    connect_timeout: float,
    drain_timeout: float,
) -> LoadResult:
    templates = [request_template(body) for body in bodies]
    run = _Run(max_requests, warmup, duration)
    protocols = [
        await _connect(
            host, port, lambda: _LoadConnection(run, templates, inflight), connect_timeout
        )
        for _ in range(connections)
    ]
    run.open_connections = len(protocols)
    run.start()
    assert run.finished is not None
    now = time.perf_counter_ns()
    for protocol in protocols:
        protocol.send(inflight, now)
    with contextlib.suppress(TimeoutError):  # replies still missing: the bound is what matters
        await asyncio.wait_for(asyncio.shield(run.finished), warmup + duration + drain_timeout)
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    await asyncio.wait([protocol.lost for protocol in protocols], timeout=drain_timeout)
    window_end = min(run.deadline, run.last_reply) if run.last_reply else run.window_start
    elapsed = max(0, window_end - run.window_start) / NS_PER_SECOND
    return LoadResult(
        requests=run.requests,
        errors=run.errors,
        elapsed=elapsed,
        throughput=run.requests / elapsed if elapsed else 0.0,
        sent=run.sent,
        received=run.received,
        latencies_ns=run.latencies,
    )


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs ``coroutine`` in a fresh event loop, uvloop's when installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def pin_to(cpus: set[int] | None) -> None:
    """Restricts this process to ``cpus`` when the platform allows it."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


def _worker(channel: Connection, cpus: set[int] | None, arguments: tuple[Any, ...]) -> None:
    pin_to(cpus)
    try:
        channel.send(run_coroutine(_load(*arguments)).to_wire())
    finally:
        channel.close()


def mp_context() -> multiprocessing.context.ForkContext | multiprocessing.context.SpawnContext:
    """Fork where available (fast start, no re-import); call it outside any event loop."""
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def run_load(
    host: str,
    port: int,
    bodies: Sequence[bytes],
    *,
    connections: int = DEFAULT_CONNECTIONS,
    inflight: int = DEFAULT_INFLIGHT,
    duration: float = DEFAULT_DURATION,
    warmup: float = DEFAULT_WARMUP,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    processes: int = 1,
    cpus: set[int] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
) -> LoadResult:
    """Drives the server at ``host:port`` with ``bodies`` round robin; call it outside any
    event loop. With ``processes > 1`` the load runs in that many worker processes (each
    pinned to ``cpus`` if given), which are always waited for and killed if they overrun."""
    if not bodies:
        raise ValueError("no request bodies")
    processes = max(1, min(processes, connections))
    if processes == 1:
        previous = os.sched_getaffinity(0) if cpus and hasattr(os, "sched_getaffinity") else None
        pin_to(cpus)
        try:
            return run_coroutine(
                _load(
                    host,
                    port,
                    bodies,
                    connections,
                    inflight,
                    duration,
                    warmup,
                    max_requests,
                    connect_timeout,
                    drain_timeout,
                )
            )
        finally:
            pin_to(previous)
    context = mp_context()
    workers: list[tuple[Any, Connection]] = []
    budget = warmup + duration + 2 * drain_timeout + connect_timeout + PROCESS_EXIT_TIMEOUT
    try:
        for share, budget_share in zip(
            _split(connections, processes), _split(max_requests, processes), strict=True
        ):
            receiver, sender = context.Pipe(duplex=False)
            arguments = (
                host,
                port,
                list(bodies),
                share,
                inflight,
                duration,
                warmup,
                budget_share,
                connect_timeout,
                drain_timeout,
            )
            process = context.Process(target=_worker, args=(sender, cpus, arguments))
            process.start()
            sender.close()
            workers.append((process, receiver))
        merged = LoadResult()
        deadline = time.monotonic() + budget
        for _, receiver in workers:
            if receiver.poll(max(0.0, deadline - time.monotonic())):
                # EOFError: the worker died; its exit code is reported below
                with contextlib.suppress(EOFError):
                    merged.merge(LoadResult.from_wire(receiver.recv()))
        return merged
    finally:
        for process, receiver in workers:
            receiver.close()
            process.join(PROCESS_EXIT_TIMEOUT)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, 9)
                process.join()
            if process.exitcode:
                print(f"load worker {process.pid} exited with {process.exitcode}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2012)
    parser.add_argument("--method", default="Bench.Echo")
    parser.add_argument("--params", default="{}", help="JSON argument object")
    parser.add_argument("-c", "--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("-p", "--inflight", type=int, default=DEFAULT_INFLIGHT)
    parser.add_argument("-d", "--duration", type=float, default=DEFAULT_DURATION)
    parser.add_argument("-w", "--warmup", type=float, default=DEFAULT_WARMUP)
    parser.add_argument("-n", "--max-requests", type=int, default=DEFAULT_MAX_REQUESTS)
    parser.add_argument("-k", "--processes", type=int, default=1)
    args = parser.parse_args(argv)
    body = encode_request(args.method, loads(args.params), 0)
    result = run_load(
        args.host,
        args.port,
        [body],
        connections=args.connections,
        inflight=args.inflight,
        duration=args.duration,
        warmup=args.warmup,
        max_requests=args.max_requests,
        processes=args.processes,
    )
    print(result.summary())


if __name__ == "__main__":
    main()
