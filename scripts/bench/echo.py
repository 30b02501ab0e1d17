"""Echo benchmark of the JSON-RPC transport: ``Bench.Echo`` returns its params.

The server runs in its own process (optionally pinned to one CPU) and ``_loadgen`` drives it
from this one. ``ServerProcess`` and ``run_server_bench`` are meant for reuse by other benches
(e.g. rating): give them a factory that builds the registry inside the server process::

    from echo import run_server_bench
    result, status = run_server_bench(make_rating_registry, [body], duration=5)

Usage: ``python scripts/bench/echo.py [-d SECONDS] [-c CONNS] [-p INFLIGHT] [-k PROCS] [--pin]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Final, Self

from _loadgen import (
    DEFAULT_CONNECTIONS,
    DEFAULT_DURATION,
    DEFAULT_INFLIGHT,
    DEFAULT_WARMUP,
    LoadResult,
    mp_context,
    pin_to,
    run_coroutine,
    run_load,
)

from core.cli import settle_garbage_collector
from core.rpc import CallContext, MethodRegistry, RpcServer, encode_request

RegistryFactory = Callable[[], MethodRegistry | Awaitable[MethodRegistry]]

HOST: Final = "127.0.0.1"
STARTUP_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 10.0
SERVER_CLOSE_GRACE: Final = 1.0
SERVER_CPU: Final = 0
CPU_SECONDS: Final = "cpu_seconds"
"""Status key: the server process's CPU time from ready to stop (load, warm-up, drain)."""
SYSTEM_SECONDS: Final = "system_seconds"
"""Status key: the part of ``cpu_seconds`` spent in the kernel (socket reads and writes)."""
ECHO_PARAMS: Final = {"Tenant": "cgrates.org", "ID": "bench", "Event": {"Account": "1001"}}


def _server_main(
    factory: RegistryFactory,
    host: str,
    port: int,
    channel: Connection,
    parent_end: Connection,
    cpu: int | None,
) -> None:
    parent_end.close()  # inherited by fork: only the parent may hold it, so its death gives EOF
    pin_to(None if cpu is None else {cpu})
    run_coroutine(_serve(factory, host, port, channel))


async def _serve(factory: RegistryFactory, host: str, port: int, channel: Connection) -> None:
    made = factory()
    registry = await made if inspect.isawaitable(made) else made
    assert isinstance(registry, MethodRegistry)
    settle_garbage_collector()  # as `chargeflow engine` does once started
    server = RpcServer(registry)
    _, bound = await server.start_tcp(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_reader(channel.fileno(), stop.set)  # the parent closed its end or died
    channel.send(("ready", bound))
    # The server's own CPU per request is the figure that other load on a shared machine
    # distorts least (throughput also depends on who else gets the cores).
    cpu_started = time.process_time()
    system_started = os.times().system
    await stop.wait()
    cpu_seconds = time.process_time() - cpu_started
    system_seconds = os.times().system - system_started
    loop.remove_reader(channel.fileno())
    await server.close(grace=SERVER_CLOSE_GRACE)
    with contextlib.suppress(OSError):  # nobody is listening any more
        status = {**server.status(), CPU_SECONDS: cpu_seconds, SYSTEM_SECONDS: system_seconds}
        channel.send(("stopped", status))
    channel.close()


class ServerProcess:
    """An ``RpcServer`` in a child process; ``stop`` terminates it by PID and waits for it."""

    def __init__(
        self, factory: RegistryFactory, host: str = HOST, port: int = 0, cpu: int | None = None
    ) -> None:
        self.factory = factory
        self.host = host
        self.requested_port = port
        self.cpu = cpu
        self.port = 0
        self.pid: int | None = None
        self.status: dict[str, Any] = {}
        self._process: Any = None
        self._channel: Connection | None = None

    def start(self) -> int:
        """Starts the process and returns the port it listens on."""
        context = mp_context()
        receiver, sender = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_server_main,
            args=(self.factory, self.host, self.requested_port, sender, receiver, self.cpu),
        )
        self._process.start()
        sender.close()
        self._channel = receiver
        self.pid = self._process.pid
        try:
            if not receiver.poll(STARTUP_TIMEOUT):
                raise RuntimeError(f"bench server {self.pid} did not start")
            kind, port = receiver.recv()
        except (EOFError, RuntimeError) as exc:
            self.stop()
            raise RuntimeError(f"bench server {self.pid} did not start") from exc
        assert kind == "ready"
        self.port = int(port)
        return self.port

    def stop(self) -> int | None:
        """SIGTERM by PID, collects the server's counters, waits; SIGKILL if it hangs."""
        process, channel = self._process, self._channel
        if process is None or self.pid is None:
            return None
        if process.is_alive():
            os.kill(self.pid, signal.SIGTERM)
        if channel is not None:
            try:
                if channel.poll(STOP_TIMEOUT):
                    kind, status = channel.recv()
                    if kind == "stopped":
                        self.status = status
            except (EOFError, OSError):
                pass
            channel.close()
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            os.kill(self.pid, signal.SIGKILL)
            process.join()
        self._process = self._channel = None
        return int(process.exitcode)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_server_bench(
    factory: RegistryFactory,
    bodies: Sequence[bytes],
    *,
    connections: int = DEFAULT_CONNECTIONS,
    inflight: int = DEFAULT_INFLIGHT,
    duration: float = DEFAULT_DURATION,
    warmup: float = DEFAULT_WARMUP,
    processes: int = 1,
    server_cpu: int | None = None,
) -> tuple[LoadResult, dict[str, Any]]:
    """Starts a server process from ``factory``, loads it with ``bodies``, stops it.

    With ``server_cpu`` the server is pinned to that CPU and the load to the others. Off by
    default: on a shared 2-core machine a busy neighbour on the pinned CPU costs the server
    whole scheduler slices (p99 ~4 ms instead of ~0.6 ms). Returns the load figures and the
    server's final ``status()`` counters.
    """
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if server_cpu is not None and server_cpu not in available:
        server_cpu = None
    load_cpus = available - {server_cpu} if server_cpu is not None else None
    with ServerProcess(factory, cpu=server_cpu) as server:
        result = run_load(
            HOST,
            server.port,
            bodies,
            connections=connections,
            inflight=inflight,
            duration=duration,
            warmup=warmup,
            processes=processes,
            cpus=load_cpus or None,
        )
    return result, server.status


def cpu_per_request(status: dict[str, Any], key: str = CPU_SECONDS) -> float:
    """Server CPU µs per request received, from a stopped server's status (0 if unknown);
    ``key`` SYSTEM_SECONDS gives the kernel's part."""
    requests = status.get("requests") or 0
    return status.get(key, 0.0) / requests * 1e6 if requests else 0.0


def echo_registry() -> MethodRegistry:
    registry = MethodRegistry()

    def echo(params: Any, ctx: CallContext) -> Any:
        return params

    registry.register("Bench.Echo", echo)
    return registry


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="JSON-RPC echo benchmark")
    parser.add_argument("-c", "--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("-p", "--inflight", type=int, default=DEFAULT_INFLIGHT)
    parser.add_argument("-d", "--duration", type=float, default=DEFAULT_DURATION)
    parser.add_argument("-w", "--warmup", type=float, default=DEFAULT_WARMUP)
    parser.add_argument("-k", "--processes", type=int, default=1, help="load processes")
    parser.add_argument("--pin", action="store_true", help=f"pin the server to CPU {SERVER_CPU}")
    args = parser.parse_args(argv)
    body = encode_request("Bench.Echo", ECHO_PARAMS, 0)
    result, status = run_server_bench(
        echo_registry,
        [body],
        connections=args.connections,
        inflight=args.inflight,
        duration=args.duration,
        warmup=args.warmup,
        processes=args.processes,
        server_cpu=SERVER_CPU if args.pin else None,
    )
    print(
        f"Bench.Echo {args.connections} conns x {args.inflight} in flight, "
        f"{len(body)}-byte request: {result.summary()}"
    )
    print(f"server counters: {status}; server CPU {cpu_per_request(status):.2f} µs/request")


if __name__ == "__main__":
    main()
