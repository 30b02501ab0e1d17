"""Diameter agent benchmark: CCR-U/s, latency and the agent's CPU per CCR through
``chargeflow agent diameter``, each peer in its own process, all on 127.0.0.1.

Two modes, run one after the other by default (``--mode both``):

* **engine** (the main figure): a real engine (tutorial plan, memory storage, a temporary
  directory) behind the agent. ``--accounts`` accounts (``bench0000``..) get 10^6 money and no
  triggers; the ``call`` category is rated with RP_1001 for any subject.
* **replay** (clearly labelled "AGENT ALONE"): the engine replaced by ``rpc_replay.py`` in its
  own process, which forwards the first call of each method to the real engine, records the
  reply and answers every later call with it at once. Nothing is charged; what is measured is
  the agent's own capacity and overhead, without the engine's limit.

In each mode this process opens ``--connections`` Diameter connections (CER first) and
``--sessions`` voice sessions (CCR-I, 60 s requested), then runs a closed loop of CCR-U (60 s
used, 60 s requested) with ``--window`` requests in flight per connection, for ``--duration``
seconds or ``--count`` requests, whichever first, after ``--warmup`` seconds not measured. The
agent's CPU per CCR-U is its CPU seconds over the measured part only (``/proc``), divided by the
CCR-Us answered then. The same UpdateSession load is then sent straight to the engine (or to the
responder) over JSON-RPC, to estimate the agent's overhead: Diameter latency minus direct
latency, per percentile (an estimate: distributions do not subtract exactly). At saturation
that closed loop measures queueing (512 sessions, 64 in flight), so each side then also runs an
**open loop** at a fixed rate (``--rate``, default the target's 5,000 CCR-U/s, for
``--open-seconds``): requests go out when due whatever the answers' pace and are timed from
when they were due; the overhead at that rate (agent minus direct, p50 and p99) is the
target's measure ("≥ 5,000 CCR/s per agent process, agent overhead p99 < 2 ms"): the replay
part ends with a verdict line for each half of the target. Every session is ended with a
CCR-T; the answers' Result-Codes are counted and printed. The load generator encodes each
session's CCR-U once and patches its CC-Request-Number; its own CPU is printed too
("loadgen"). Every child process is stopped by PID (SIGTERM, then SIGKILL).

``--profile DIR`` runs the agents under cProfile (``DIR/agent-engine.prof``,
``DIR/agent-replay.prof``). The figures include the load generator, which shares the machine
(``nproc`` printed).

Usage::

    .venv/bin/python scripts/bench/diameter.py [-d SECONDS] [-n COUNT] [-c CONNECTIONS]
        [-w WINDOW] [-s SESSIONS] [--accounts N] [--warmup SECONDS] [--rate CCR_PER_S]
        [--open-seconds SECONDS] [--mode engine|replay|both|stack|inproc] [--calls]
        [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import yaml

HERE: Final = Path(__file__).resolve().parent
REPO: Final = HERE.parent.parent
# This file is named like python-diameter's package: its folder must not shadow it.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
STACK_ROOT_FLAG: Final = "--stack-root"


def _code_root() -> Path:
    """The checkout whose agent code is imported: this one, or ``--stack-root``'s (``--mode
    stack`` compares two checkouts side by side)."""
    if STACK_ROOT_FLAG in sys.argv[:-1]:
        return Path(sys.argv[sys.argv.index(STACK_ROOT_FLAG) + 1]).resolve()
    return REPO


CODE_ROOT: Final = _code_root()
sys.path.insert(0, str(CODE_ROOT))

from agents.diameter import codec  # noqa: E402
from agents.diameter.codec import Avp, DiameterMessage, avp  # noqa: E402
from core.rpc import RpcClient  # noqa: E402

TUTORIAL: Final = REPO.parent / "shared" / "tariffplans" / "cgrates_tutorial"
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0
HEADER_LEN: Final = 20
NS: Final = 1_000_000_000
CCR_INITIAL: Final = 1
CCR_UPDATE: Final = 2
CCR_TERMINATE: Final = 3
AVP_CC_REQUEST_NUMBER: Final = 415
AVP_FLAG_VENDOR: Final = 0x80
GRANT_SECONDS: Final = 60
FUNDS: Final = 1_000_000
CLIENT_HOST: Final = "bench.pcef.local"
CLIENT_REALM: Final = "pcef.local"
# Issue 4's target: an agent process answers >= 5,000 CCR/s, and at that rate adds < 2 ms p99.
TARGET_RATE: Final = 5_000.0
TARGET_OVERHEAD_P99_MS: Final = 2.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ------------------------------------------------------------------------------ processes
class Child:
    """A chargeflow process, stopped by its PID."""

    def __init__(self, args: list[str], log: Path, prefix: Sequence[str] = ()) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *prefix, "-m", "core.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_port(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log.name}: exited\n{self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.log.name}: port {port} not open in time")

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()


# ------------------------------------------------------------------------------ Diameter
def ccr(
    session_id: str, account: str, request_type: int, number: int, called: str = "tel:+1002"
) -> bytes:
    units: list[Avp] = []
    if request_type != CCR_TERMINATE:
        units.append(avp("Requested-Service-Unit", {"CC-Time": GRANT_SECONDS}))
    if request_type != CCR_INITIAL:
        units.append(avp("Used-Service-Unit", {"CC-Time": GRANT_SECONDS}))
    avps = [
        avp("Session-Id", session_id),
        avp("Origin-Host", CLIENT_HOST),
        avp("Origin-Realm", CLIENT_REALM),
        avp("Destination-Realm", "localdomain"),
        avp("Auth-Application-Id", codec.APP_CREDIT_CONTROL),
        avp("Service-Context-Id", "32260@3gpp.org"),
        avp("CC-Request-Type", request_type),
        avp("CC-Request-Number", number),
        avp("Subscription-Id", {"Subscription-Id-Type": 0, "Subscription-Id-Data": account}),
        avp("Multiple-Services-Credit-Control", units),
        avp(
            "Service-Information",
            {"IMS-Information": {"Called-Party-Address": called}},
        ),
    ]
    message = DiameterMessage(
        codec.CMD_CREDIT_CONTROL, codec.APP_CREDIT_CONTROL, codec.FLAG_REQUEST, 0, 0, avps
    )
    return codec.encode(message)


def cer(origin_host: str) -> bytes:
    avps = [
        avp("Origin-Host", origin_host),
        avp("Origin-Realm", CLIENT_REALM),
        avp("Host-IP-Address", "127.0.0.1"),
        avp("Vendor-Id", 0),
        avp("Product-Name", "bench"),
        avp("Auth-Application-Id", codec.APP_CREDIT_CONTROL),
    ]
    message = DiameterMessage(codec.CMD_CAPABILITIES_EXCHANGE, 0, codec.FLAG_REQUEST, 1, 1, avps)
    return codec.encode(message)


class CcrUpdates:
    """CCR-U bytes for one session, encoded once: only CC-Request-Number changes per request
    (a 4-byte patch), so the load generator spends little CPU per request."""

    def __init__(self, session_id: str, account: str, called: str = "tel:+1002") -> None:
        self.data = ccr(session_id, account, CCR_UPDATE, 0, called)
        number = codec.decode(self.data).find(AVP_CC_REQUEST_NUMBER)[0]
        self.offset = number._start

    def with_number(self, number: int) -> bytes:
        data, offset = self.data, self.offset
        return data[:offset] + number.to_bytes(4, "big") + data[offset + 4 :]


def result_code_of(frame: bytes) -> int:
    """The top-level Result-Code of an answer, read straight from the AVP headers (0: none)."""
    position, end = HEADER_LEN, len(frame)
    while position + 8 <= end:
        code = int.from_bytes(frame[position : position + 4], "big")
        flags = frame[position + 4]
        length = int.from_bytes(frame[position + 5 : position + 8], "big")
        if length < 8:
            return 0
        if code == codec.AVP_RESULT_CODE and not flags & AVP_FLAG_VENDOR and length == 12:
            return int.from_bytes(frame[position + 8 : position + 12], "big")
        position += length + (-length & 3)
    return 0


def with_hbh(data: bytes, hbh: int) -> bytes:
    return data[:12] + hbh.to_bytes(4, "big") + hbh.to_bytes(4, "big") + data[20:]


@dataclass
class Stats:
    latencies: list[int] = field(default_factory=list)
    results: Counter[int] = field(default_factory=Counter)


class DiameterConnection(asyncio.Protocol):
    """Pipelined requests on one connection; answers matched by hop-by-hop id."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: dict[int, tuple[asyncio.Future[int], int]] = {}
        self.next_hbh = 1000
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("agent closed the connection"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= HEADER_LEN:
            length = int.from_bytes(self.buffer[1:4], "big")
            if len(self.buffer) < length:
                return
            frame = bytes(self.buffer[:length])
            del self.buffer[:length]
            if frame[4] & codec.FLAG_REQUEST:  # DWR: answer it
                self._answer_watchdog(frame)
                continue
            hbh = int.from_bytes(frame[12:16], "big")
            found = self.pending.pop(hbh, None)
            if found is not None:
                future, _ = found
                future.set_result(result_code_of(frame))

    def _answer_watchdog(self, frame: bytes) -> None:
        request = codec.decode(frame)
        answer = codec.answer_to(
            request, codec.DIAMETER_SUCCESS, origin_host=CLIENT_HOST, origin_realm=CLIENT_REALM
        )
        assert self.transport is not None
        self.transport.write(codec.encode(answer))

    async def send(self, data: bytes) -> int:
        self.next_hbh += 1
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending[self.next_hbh] = (future, time.perf_counter_ns())
        assert self.transport is not None
        self.transport.write(with_hbh(data, self.next_hbh))
        return await future


async def open_diameter(port: int, number: int) -> DiameterConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(DiameterConnection, "127.0.0.1", port)
    # One Origin-Host per connection: a second connection from a host replaces the first.
    result = await protocol.send(cer(f"{number}.{CLIENT_HOST}"))
    if result != codec.DIAMETER_SUCCESS:
        raise RuntimeError(f"CEA {result}")
    return protocol


@dataclass
class Session:
    session_id: str
    account: str
    number: int = 0


async def closed_loop(
    workers: list[Any],
    duration: float,
    warmup: float,
    count: int,
    on_measure: Callable[[], None] | None = None,
) -> tuple[Stats, float]:
    """Runs each ``worker()`` coroutine factory until time or count is up; ``on_measure`` is
    called when the warm-up ends (to read CPU counters for the measured part only)."""
    stats = Stats()
    state = {"measuring": False, "stop": False, "done": 0}

    async def run(worker: Any) -> None:
        while not state["stop"]:
            started = time.perf_counter_ns()
            result = await worker()
            if state["measuring"]:
                stats.latencies.append(time.perf_counter_ns() - started)
                stats.results[result] += 1
                state["done"] += 1
                if count and state["done"] >= count:
                    state["stop"] = True

    tasks = [asyncio.create_task(run(worker)) for worker in workers]
    await asyncio.sleep(warmup)
    if on_measure is not None:
        on_measure()
    state["measuring"] = True
    begin = time.perf_counter()
    deadline = begin + duration
    while not state["stop"] and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    state["stop"] = True
    elapsed = time.perf_counter() - begin
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats, elapsed


async def open_loop(
    senders: list[Callable[[], Awaitable[int]]], rate: float, duration: float
) -> tuple[Stats, float, int]:
    """Requests at a fixed ``rate`` for ``duration`` seconds, whatever the answers' pace
    (open loop: below saturation this shows the agent's own latency, not a queue of 512).
    Each sender is one session with at most one request in flight; a request is counted from
    when it was due, so a lagging sender does not hide queueing. Returns the stats, the
    seconds taken (to the last answer) and how many requests were skipped because every
    session was busy."""
    stats = Stats()
    busy: set[int] = set()
    pending: set[asyncio.Task[None]] = set()
    skipped = 0

    async def one(index: int, due_ns: int) -> None:
        try:
            result = await senders[index]()
        finally:
            busy.discard(index)
        stats.latencies.append(time.perf_counter_ns() - due_ns)
        stats.results[result] += 1

    interval_ns = 1e9 / rate
    begin = time.perf_counter_ns()
    turn = 0
    for number in range(int(rate * duration)):
        due = begin + int(number * interval_ns)
        await asyncio.sleep(max(due - time.perf_counter_ns(), 0) / 1e9)
        for _ in range(len(senders)):
            candidate, turn = turn, (turn + 1) % len(senders)
            if candidate not in busy:
                break
        else:
            skipped += 1
            continue
        busy.add(candidate)
        task = asyncio.create_task(one(candidate, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return stats, (time.perf_counter_ns() - begin) / 1e9, skipped


def open_report(name: str, stats: Stats, elapsed: float, skipped: int) -> dict[str, float]:
    p50, p99 = percentile(stats.latencies, 0.5), percentile(stats.latencies, 0.99)
    p999 = percentile(stats.latencies, 0.999)
    print(
        f"{name:<22} {len(stats.latencies):>7} req in {elapsed:5.1f}s   p50 {p50:6.2f} ms  "
        f"p99 {p99:6.2f} ms  p99.9 {p999:6.2f} ms   results {dict(stats.results)}"
        + (f"   SKIPPED {skipped} (every session busy)" if skipped else "")
    )
    return {"open_p50": p50, "open_p99": p99, "open_skipped": float(skipped)}


def open_rate(args: argparse.Namespace) -> float:
    """The open loop's rate: ``--rate``, else the target's. Requests that arrive spread out are
    not answered in bursts (one loop turn, read and write each), so the agent's CPU per CCR-U
    there is higher than at 64 in flight: an agent whose closed loop barely reaches a rate
    cannot hold it in an open loop."""
    return args.rate if args.rate else TARGET_RATE


def percentile(values: list[int], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6  # ms


# --------------------------------------------------------------------------------- setup
async def prepare_engine(port: int, accounts: list[str]) -> None:
    client = await RpcClient.connect("127.0.0.1", port, timeout=30)
    try:
        await client.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})
        await client.call(
            "APIerSv1.SetRatingProfile",
            {
                "Tenant": "cgrates.org",
                "Category": "call",
                "Subject": "*any",
                "Overwrite": True,
                "RatingPlanActivations": [
                    {"ActivationTime": "2014-01-14T00:00:00Z", "RatingPlanId": "RP_1001"}
                ],
            },
        )
        for account in accounts:
            await client.call(
                "APIerSv1.SetAccount",
                {"Tenant": "cgrates.org", "Account": account, "ActionTriggerIDs": []},
            )
            await client.call(
                "APIerSv1.SetBalance",
                {
                    "Tenant": "cgrates.org",
                    "Account": account,
                    "BalanceType": "*monetary",
                    "Value": FUNDS,
                    "Balance": {"ID": "bench"},
                },
            )
    finally:
        await client.close()


def engine_update(session: Session) -> dict[str, Any]:
    """The UpdateSession the voice templates send for one of the bench's CCR-U."""
    session.number += 1
    return {
        "UpdateSession": True,
        "Tenant": "cgrates.org",
        "ID": f"{session.session_id}:{session.number}",
        "Event": {
            "ToR": "*voice",
            "Category": "call",
            "OriginID": session.session_id,
            "OriginHost": CLIENT_HOST,
            "RequestType": "*prepaid",
            "Account": session.account,
            "Subject": session.account,
            "Destination": "1002",
            "Usage": f"{GRANT_SECONDS}s",
            "LastUsed": f"{GRANT_SECONDS}s",
        },
    }


def report(name: str, stats: Stats, elapsed: float, cpu: dict[str, float]) -> dict[str, float]:
    rate = len(stats.latencies) / elapsed if elapsed else 0.0
    p50, p99 = percentile(stats.latencies, 0.5), percentile(stats.latencies, 0.99)
    used = ", ".join(f"{who} {100 * seconds / elapsed:.0f}% CPU" for who, seconds in cpu.items())
    print(
        f"{name:<22} {len(stats.latencies):>7} req in {elapsed:5.1f}s = {rate:8.0f}/s   "
        f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   results {dict(stats.results)}   {used}"
    )
    return {"rate": rate, "p50": p50, "p99": p99}


# ---------------------------------------------------------------------------------- main
class Responder:
    """``rpc_replay.py`` in its own process: replays the engine's recorded replies."""

    def __init__(self, options: list[str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "rpc_replay.py"), *options],
            stdin=subprocess.PIPE,  # closed by stop(): its EOF stops the responder too
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            cwd=REPO,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "ready":
            self.stop()
            raise RuntimeError(f"rpc_replay did not start: {line}\n{log.read_text()[-2000:]}")
        self.port = int(line[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class LoadGenerator:
    """This process (the load generator): its CPU shows when it, not the agent, is the limit."""

    def cpu_seconds(self) -> float:
        return time.process_time()


def _cpu_seconds(pid: int) -> float:
    user, system = _cpu_split(pid)
    return user + system


def _syscalls(pid: int) -> tuple[int, int]:
    """Read and write syscalls made so far by ``pid`` (``/proc/PID/io``; (0, 0) if unreadable)."""
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return 0, 0
    counts = dict(line.split(": ", 1) for line in lines)
    return int(counts.get("syscr", 0)), int(counts.get("syscw", 0))


def _cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` (system time is the kernel's socket work)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def agent_yaml(path: Path, engine_port: int, agent_port: int, args: argparse.Namespace) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine_port}", "http_listen": ""},
                "storage": {"type": "memory"},
                "tariffplans": {"load_on_start": []},
                "agents": {
                    "diameter": {
                        "enabled": True,
                        "listen": f"127.0.0.1:{agent_port}",
                        "connections": args.engine_connections,
                        "data_dir": str(path.parent / f"diameter-{path.stem}"),
                    }
                },
            }
        )
    )
    return path


def start_agent(
    name: str, engine_port: int, args: argparse.Namespace, workdir: Path, children: list[Any]
) -> tuple[Child, int]:
    """An agent process talking to ``engine_port``, under cProfile with ``--profile``."""
    agent_port = free_port()
    config = agent_yaml(workdir / f"{name}.yaml", engine_port, agent_port, args)
    profiler: list[str] = []
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        profiler = ["-m", "cProfile", "-o", str(args.profile / f"{name}.prof")]
    agent = Child(["agent", "diameter", "--config", str(config)], workdir / f"{name}.log", profiler)
    children.append(agent)
    agent.wait_port(agent_port)
    return agent, agent_port


async def diameter_run(
    label: str,
    agent: Child,
    agent_port: int,
    others: dict[str, Any],
    accounts: list[str],
    args: argparse.Namespace,
) -> tuple[dict[str, float], list[Session]]:
    """CER + CCR-I for every session, then the measured closed loop of CCR-U; returns the
    figures (with agent CPU µs per CCR over the measured part only) and the sessions."""
    connections = [await open_diameter(agent_port, n) for n in range(args.connections)]
    sessions = [
        Session(f"{CLIENT_HOST};{label};{n}", accounts[n % len(accounts)])
        for n in range(args.sessions)
    ]
    initial = await asyncio.gather(
        *(
            connections[n % len(connections)].send(ccr(s.session_id, s.account, CCR_INITIAL, 0))
            for n, s in enumerate(sessions)
        )
    )
    print(f"CCR-I: {Counter(initial)}")

    # One worker per in-flight slot; each owns sessions so a session has one CCR at a time.
    slots = args.connections * args.window
    owned = [sessions[n::slots] for n in range(slots)]

    updates = {s.session_id: CcrUpdates(s.session_id, s.account) for s in sessions}

    def diameter_worker(slot: int) -> Any:
        connection = connections[slot % len(connections)]
        mine = owned[slot]
        turn = {"i": 0}

        async def one() -> int:
            session = mine[turn["i"] % len(mine)]
            turn["i"] += 1
            session.number += 1
            return await connection.send(updates[session.session_id].with_number(session.number))

        return one

    processes = {"agent": agent, **others, "loadgen": LoadGenerator()}
    cpu0: dict[str, float] = {}

    split0: list[float] = []

    syscalls0: list[int] = []

    def measuring() -> None:
        cpu0.update({who: child.cpu_seconds() for who, child in processes.items()})
        split0.extend(_cpu_split(agent.pid))
        syscalls0.extend(_syscalls(agent.pid))

    stats, elapsed = await closed_loop(
        [diameter_worker(n) for n in range(slots) if owned[n]],
        args.duration,
        args.warmup,
        args.count,
        measuring,
    )
    cpu = {who: child.cpu_seconds() - cpu0[who] for who, child in processes.items()}
    figures = report(f"CCR-U via agent ({label})", stats, elapsed, cpu)
    ccrs = len(stats.latencies)
    figures["agent_us_per_ccr"] = 1e6 * cpu["agent"] / ccrs if ccrs else 0.0
    user, system = (now - then for now, then in zip(_cpu_split(agent.pid), split0, strict=True))
    print(
        f"  agent CPU per CCR-U (after warm-up): {figures['agent_us_per_ccr']:.0f} µs "
        f"(user {1e6 * user / max(ccrs, 1):.0f}, system {1e6 * system / max(ccrs, 1):.0f}); "
        "read/write syscalls per CCR-U: "
        + "/".join(
            f"{(now - then) / max(ccrs, 1):.2f}"
            for now, then in zip(_syscalls(agent.pid), syscalls0, strict=True)
        )
    )

    rate = open_rate(args)
    if rate > 0 and args.open_seconds > 0:

        def diameter_sender(number: int, session: Session) -> Callable[[], Awaitable[int]]:
            connection = connections[number % len(connections)]
            update = updates[session.session_id]

            def send() -> Awaitable[int]:
                session.number += 1
                return connection.send(update.with_number(session.number))

            return send

        cpu_before, syscalls_before = _cpu_seconds(agent.pid), _syscalls(agent.pid)
        opened = await open_loop(
            [diameter_sender(n, s) for n, s in enumerate(sessions)], rate, args.open_seconds
        )
        answered = max(len(opened[0].latencies), 1)
        figures.update(open_report(f"open loop {rate:.0f}/s via agent", *opened))
        figures["open_rate"] = rate
        print(
            f"  agent CPU per CCR-U at that rate: "
            f"{1e6 * (_cpu_seconds(agent.pid) - cpu_before) / answered:.0f} µs; "
            "read/write syscalls per CCR-U: "
            + "/".join(
                f"{(now - then) / answered:.2f}"
                for now, then in zip(_syscalls(agent.pid), syscalls_before, strict=True)
            )
        )

    final = await asyncio.gather(
        *(
            connections[n % len(connections)].send(
                ccr(s.session_id, s.account, CCR_TERMINATE, s.number + 1)
            )
            for n, s in enumerate(sessions)
        )
    )
    print(f"CCR-T: {Counter(final)}")
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return figures, sessions


async def direct_update(client: RpcClient, session: Session) -> int:
    """One UpdateSession straight to the engine (or responder), as a Result-Code."""
    try:
        await client.call("SessionSv1.UpdateSession", engine_update(session))
    except Exception:
        return 5012
    return codec.DIAMETER_SUCCESS


async def direct_run(
    label: str,
    port: int,
    server: Any,
    accounts: list[str],
    args: argparse.Namespace,
    rate: float = 0.0,
) -> dict[str, float]:
    """The same UpdateSession load sent straight to ``port`` over JSON-RPC (no agent), closed
    loop, then open loop at ``rate`` (when > 0) as the agent had it."""
    clients = [
        await RpcClient.connect("127.0.0.1", port, timeout=30)
        for _ in range(args.engine_connections)
    ]
    slots = args.connections * args.window
    direct_sessions = [
        Session(f"{CLIENT_HOST};direct-{label};{n}", accounts[n % len(accounts)])
        for n in range(args.sessions)
    ]
    direct_owned = [direct_sessions[n::slots] for n in range(slots)]

    def engine_worker(slot: int) -> Any:
        client = clients[slot % len(clients)]
        mine = direct_owned[slot]
        turn = {"i": 0}

        async def one() -> int:
            session = mine[turn["i"] % len(mine)]
            turn["i"] += 1
            return await direct_update(client, session)

        return one

    cpu0: dict[str, float] = {}

    def measuring() -> None:
        cpu0[label] = server.cpu_seconds()

    stats, elapsed = await closed_loop(
        [engine_worker(n) for n in range(slots) if direct_owned[n]],
        args.duration,
        args.warmup,
        args.count,
        measuring,
    )
    cpu = {label: server.cpu_seconds() - cpu0[label]}
    figures = report(f"UpdateSession direct ({label})", stats, elapsed, cpu)
    if rate > 0:

        def direct_sender(number: int, session: Session) -> Callable[[], Awaitable[int]]:
            client = clients[number % len(clients)]
            return lambda: direct_update(client, session)

        opened = await open_loop(
            [direct_sender(n, s) for n, s in enumerate(direct_sessions)], rate, args.open_seconds
        )
        figures.update(open_report(f"open loop {rate:.0f}/s direct", *opened))
    for client in clients:
        await client.close()
    return figures


def overhead(through_agent: dict[str, float], direct: dict[str, float]) -> None:
    print(
        "  agent overhead (estimate, agent minus direct), closed loop (queueing at saturation): "
        f"p50 {through_agent['p50'] - direct['p50']:.2f} ms, "
        f"p99 {through_agent['p99'] - direct['p99']:.2f} ms"
    )
    if "open_p99" in through_agent and "open_p99" in direct:
        print(
            f"  agent overhead at {through_agent['open_rate']:.0f}/s open loop (the target's "
            f"measure): p50 {through_agent['open_p50'] - direct['open_p50']:.2f} ms, "
            f"p99 {through_agent['open_p99'] - direct['open_p99']:.2f} ms"
        )


def verdict(through_agent: dict[str, float], direct: dict[str, float]) -> None:
    """The agent-alone figures against issue 4's target, one line per half."""
    rate = through_agent["rate"]
    print(
        f"agent alone: closed loop {rate:,.0f} CCR-U/s "
        f"(target >= {TARGET_RATE:,.0f}: {'met' if rate >= TARGET_RATE else 'NOT met'})"
    )
    if "open_p99" not in through_agent or "open_p99" not in direct:
        print("agent alone: no open loop run, overhead p99 not measured")
        return
    open_rate, skipped = through_agent["open_rate"], through_agent["open_skipped"]
    extra = through_agent["open_p99"] - direct["open_p99"]
    met = extra < TARGET_OVERHEAD_P99_MS and not skipped and open_rate >= TARGET_RATE
    print(
        f"agent alone: overhead p99 {extra:.2f} ms at {open_rate:,.0f} CCR-U/s open loop"
        + (f", {skipped:.0f} skipped" if skipped else "")
        + f" (target < {TARGET_OVERHEAD_P99_MS:.0f} ms at >= {TARGET_RATE:,.0f}/s: "
        + ("met)" if met else "NOT met)")
    )


# The replies rpc_replay.py recorded from the engine for the voice templates (replay mode
# prints them); the stack mode answers with these, so it needs no engine.
RECORDED_REPLIES: Final = {
    "SessionSv1.InitiateSession": {
        "Attributes": None,
        "ResourceAllocation": None,
        "MaxUsage": GRANT_SECONDS * NS,
        "ThresholdIDs": None,
        "StatQueueIDs": None,
    },
    "SessionSv1.UpdateSession": {"Attributes": None, "MaxUsage": GRANT_SECONDS * NS},
    "SessionSv1.TerminateSession": "OK",
    "SessionSv1.ProcessCDR": "OK",
}


async def stack(args: argparse.Namespace, workdir: Path) -> None:
    """``--mode stack``: the agent in THIS process (the real ``run_agent``: DiameterNode,
    EnginePool, templates, answer cache), ``rpc_replay.py`` answering for the engine in another,
    and the load generator here too (CCR-Us pre-encoded, Result-Code read from the headers: a
    few µs per request). Per round (one CCR-U per session) it reads this process's CPU time:
    the minimum and median over the rounds are the agent's CPU per CCR-U plus that small
    client share. Meant for A/B: run two checkouts at the same time (``--stack-root``), so both
    see the same neighbours on a shared machine."""
    from agents.runtime import run_agent
    from core.config import load_config

    replies = workdir / "replies.json"
    replies.write_text(json.dumps(RECORDED_REPLIES))
    responder = Responder(["--replies", str(replies)], workdir / "rpc_replay.log")
    stop = asyncio.Event()
    task: asyncio.Task[int] | None = None
    try:
        agent_port = free_port()
        config = agent_yaml(workdir / "agent-stack.yaml", responder.port, agent_port, args)
        task = asyncio.create_task(run_agent("diameter", load_config(config), stop=stop))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", agent_port)
            except OSError:
                if task.done() or time.monotonic() > deadline:
                    raise RuntimeError("the in-process agent did not start") from None
                await asyncio.sleep(0.05)
                continue
            probe.close()
            break
        import agents.runtime

        settle = getattr(agents.runtime, "settle_garbage_collector", None)
        if settle is not None:  # as `chargeflow agent` does after start-up (a checkout may lack it)
            settle()
        connections = [await open_diameter(agent_port, n) for n in range(args.connections)]
        sessions = [
            Session(f"{CLIENT_HOST};stack;{n}", f"bench{n % args.accounts:04d}")
            for n in range(args.sessions)
        ]
        initial = await asyncio.gather(
            *(
                connections[n % len(connections)].send(ccr(s.session_id, s.account, 1, 0))
                for n, s in enumerate(sessions)
            )
        )
        print(f"code from {CODE_ROOT}, nproc {os.cpu_count()}; CCR-I: {Counter(initial)}")
        slots = args.connections * args.window
        owned = [sessions[n::slots] for n in range(slots)]
        updates = {s.session_id: CcrUpdates(s.session_id, s.account) for s in sessions}
        results: Counter[int] = Counter()

        async def worker(slot: int) -> None:
            connection = connections[slot % len(connections)]
            for session in owned[slot]:
                session.number += 1
                data = updates[session.session_id].with_number(session.number)
                results[await connection.send(data)] += 1

        async def one_round() -> None:
            await asyncio.gather(*(worker(slot) for slot in range(slots) if owned[slot]))

        warmup_end = time.monotonic() + args.warmup
        while time.monotonic() < warmup_end:
            await one_round()
        results.clear()
        per_ccr: list[float] = []
        end = time.monotonic() + args.duration
        while time.monotonic() < end and len(per_ccr) * len(sessions) < args.count:
            started = time.process_time()
            await one_round()
            per_ccr.append((time.process_time() - started) / len(sessions) * 1e6)
        per_ccr.sort()
        print(
            f"STACK: {len(per_ccr)} rounds of {len(sessions)} CCR-U, {args.connections} x "
            f"{args.window} in flight: process CPU per CCR-U (agent + minimal client) min "
            f"{per_ccr[0]:.0f} µs, q1 {per_ccr[len(per_ccr) // 4]:.0f} µs, median "
            f"{per_ccr[len(per_ccr) // 2]:.0f} µs; results {dict(results)}"
        )
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        responder.stop()


# ------------------------------------------------------------------------------ in-process
class ReplayEngine:
    """The engine for ``--mode inproc``: encodes each call as the JSON-RPC client would and
    answers with a decoded copy of the recorded reply; it also hashes every call's params
    (without the event's ``Time``, which is the clock) so a change that alters what is sent
    to the engine shows in the printed digest."""

    def __init__(self, digest: Any) -> None:
        from core.rpc.codec import encode_request
        from core.types import dumps, loads

        self.encode_request, self.dumps, self.loads = encode_request, dumps, loads
        self.replies = {method: dumps(reply) for method, reply in RECORDED_REPLIES.items()}
        self.digest = digest
        self.calls = 0

    async def call(self, method: str, params: Any) -> Any:
        self.calls += 1
        self.encode_request(method, params, self.calls)
        self.digest.update(method.encode())
        self.digest.update(self.dumps({k: v for k, v in params.items() if k != "Time"}))
        return self.loads(self.replies[method])


class InprocPeer:
    """What ``DiameterAgent.handle`` reads of a peer."""

    address = "127.0.0.1"
    origin_host: str | None = CLIENT_HOST
    origin_realm: str | None = CLIENT_REALM


async def inproc(args: argparse.Namespace, workdir: Path) -> None:
    """``--mode inproc``: no sockets, no other process. ``--sessions`` voice sessions (CCR-I,
    not measured), then rounds of one CCR-U per session until ``--count`` CCR-Us, each as
    the transport treats it: decode, validate, ``DiameterAgent.handle``, encode. Prints the
    process CPU per CCR-U and a sha256 of every CCA plus every engine call's params (answers
    and engine requests must stay byte-identical across a change). Each session has its own
    account and called number. Load-independent counts: ``--calls`` (cProfile's Python
    calls per CCR-U) or valgrind around ``-n N`` and ``-n 0``."""
    import cProfile
    import hashlib
    import pstats

    from agents.base import AgentContext
    from agents.diameter.agent import DiameterAgent
    from core.config import AgentConfig

    digest = hashlib.sha256()
    engine = ReplayEngine(digest)
    config = AgentConfig(name="diameter", options={"data_dir": str(workdir / "answers")})
    agent = DiameterAgent(AgentContext(config, engine))
    agent.answers.open()
    peer = cast(Any, InprocPeer())

    async def one(data: bytes) -> bytes:
        message = codec.decode(data)
        message.validate()
        answer = await agent.handle(message, peer)
        return codec.encode(answer)

    sessions = [
        Session(f"{CLIENT_HOST};inproc;{n}", f"bench{n % args.accounts:04d}")
        for n in range(args.sessions)
    ]
    called = [f"tel:+49{n:07d}" for n in range(len(sessions))]
    for n, session in enumerate(sessions):
        initial = ccr(session.session_id, session.account, CCR_INITIAL, 0, called[n])
        digest.update(await one(initial))
    updates = [CcrUpdates(s.session_id, s.account, called[n]) for n, s in enumerate(sessions)]
    frames: list[bytes] = []
    while len(frames) < args.count:
        for n, session in enumerate(sessions[: args.count - len(frames)]):
            session.number += 1
            frames.append(with_hbh(updates[n].with_number(session.number), len(frames) + 1))
    profiler = cProfile.Profile() if args.calls or args.profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for data in frames:
        digest.update(await one(data))
    if profiler is not None:
        profiler.disable()
    spent = time.process_time() - started
    await agent.answers.close()
    count = max(len(frames), 1)
    print(f"INPROC {CODE_ROOT}: {len(frames)} CCR-U, {spent / count * 1e6:.1f} µs CPU each")
    if profiler is not None:
        calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
        print(f"  Python calls per CCR-U (cProfile): {calls / count:.1f}")
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(args.profile / "inproc.prof")
    print(f"  sha256 of CCAs and engine params: {digest.hexdigest()}")


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    engine_port = free_port()
    engine_config = workdir / "engine.yaml"
    engine_config.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine_port}", "http_listen": ""},
                "storage": {"type": "memory", "data_dir": str(workdir / "data")},
                "tariffplans": {"load_on_start": []},
            }
        )
    )
    accounts = [f"bench{n:04d}" for n in range(args.accounts)]
    children: list[Any] = []
    try:
        engine = Child(["engine", "--config", str(engine_config)], workdir / "engine.log")
        children.append(engine)
        engine.wait_port(engine_port)
        await prepare_engine(engine_port, accounts)
        print(f"engine pid {engine.pid}, nproc {os.cpu_count()}")

        if args.mode in ("engine", "both"):
            print("== real engine: engine + agent + this load generator")
            agent, agent_port = start_agent("agent-engine", engine_port, args, workdir, children)
            through_agent, _ = await diameter_run(
                "engine", agent, agent_port, {"engine": engine}, accounts, args
            )
            direct = await direct_run(
                "engine", engine_port, engine, accounts, args, through_agent.get("open_rate", 0.0)
            )
            overhead(through_agent, direct)
            agent.stop()

        if args.mode in ("replay", "both"):
            print(
                "== AGENT ALONE: the engine replaced by rpc_replay.py (each method's reply "
                "recorded once from the real engine, then replayed; nothing is charged)"
            )
            replies = workdir / "replies.json"
            responder = Responder(
                ["--record", f"127.0.0.1:{engine_port}", "--save", str(replies)],
                workdir / "rpc_replay.log",
            )
            children.append(responder)
            agent, agent_port = start_agent("agent-replay", responder.port, args, workdir, children)
            through_agent, _ = await diameter_run(
                "replay", agent, agent_port, {"responder": responder}, accounts, args
            )
            direct = await direct_run(
                "replay",
                responder.port,
                responder,
                accounts,
                args,
                through_agent.get("open_rate", 0.0),
            )
            overhead(through_agent, direct)
            verdict(through_agent, direct)
            agent.stop()
            responder.stop()
            if replies.exists():
                print(f"  replayed results: {replies.read_text().replace(chr(10), ' ')}")
    except Exception:
        for child in children:
            print(f"--- {child.log.name} (last lines)\n{child.log.read_text()[-3000:]}")
        raise
    finally:
        for child in reversed(children):
            child.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("-n", "--count", type=int, default=200_000, help="max measured CCRs")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("-c", "--connections", type=int, default=4, help="Diameter connections")
    parser.add_argument("-w", "--window", type=int, default=16, help="in flight per connection")
    parser.add_argument("-s", "--sessions", type=int, default=512)
    parser.add_argument("--accounts", type=int, default=64)
    parser.add_argument("--engine-connections", type=int, default=2)
    parser.add_argument(
        "--mode",
        choices=("engine", "replay", "both", "stack", "inproc"),
        default="both",
        help="engine: through the real engine (the main figure); replay: the agent alone, "
        "against rpc_replay.py; both (default): one after the other; stack: the agent in this "
        "process, CPU per CCR-U per round (for side-by-side A/B with --stack-root); inproc: "
        "handle() in a loop without sockets, CPU per CCR-U and a digest of the answers",
    )
    parser.add_argument(
        STACK_ROOT_FLAG,
        type=Path,
        help="stack mode: import the agent code from this checkout (default: this one)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop after the closed one: CCR-U/s (default: the target's 5,000)",
    )
    parser.add_argument(
        "--open-seconds",
        type=float,
        default=3.0,
        help="open loop duration in seconds (0: none)",
    )
    parser.add_argument(
        "--calls", action="store_true", help="inproc mode: count Python calls (cProfile)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the agents under cProfile, writing DIR/agent-*.prof (inproc: DIR/inproc.prof)",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with tempfile.TemporaryDirectory(prefix="bench-diameter-") as tmp:
        modes = {"stack": stack, "inproc": inproc}
        asyncio.run(modes.get(args.mode, bench)(args, Path(tmp)))


if __name__ == "__main__":
    main()
