"""Session benchmark: full *prepaid calls over JSON-RPC TCP against an engine in its own process.

One full call is the sequence an agent sends, on one connection, each request after the
previous reply:

1. ``SessionSv1.AuthorizeEvent`` with GetMaxUsage (no Usage: the engine grants max_call_duration)
2. ``SessionSv1.InitiateSession`` Usage 60s
3. ``SessionSv1.UpdateSession`` Usage 60s, LastUsed 60s
4. ``SessionSv1.UpdateSession`` Usage 60s, LastUsed 60s
5. ``SessionSv1.TerminateSession`` Usage 150s
6. ``SessionSv1.ProcessCDR`` Usage 150s

Account ``b0000``.. (a pool of ``--accounts`` accounts) or ``1001`` alone (every call on one
account: per-account locks serialize the debits), Subject 1001, Destination 1002, so each call
costs 0.4 + 0.2 + 90 x 0.00167 = 0.7503 in the CGRateS tutorial plan. The engine (the tutorial
plan loaded on start, memory or sqlite storage in a temporary directory, no listener of its
own) runs in a child process (``echo.ServerProcess``), stopped by PID at the end of each run.
Every request carries its own event ID, as agents send them (the reply cache is exercised).

Per storage x account layout, on a fresh engine each time:

* closed loop: ``--concurrency`` calls always in progress (each finished call starts the next),
  over ``--connections`` ``RpcClient`` connections; gives the max calls/s;
* open loop: calls started at a fixed ``--rate`` (default: half the best closed-loop figure of
  the same configuration); per-request latency from its send, per-call from its scheduled start.

Figures cover the measured window only (after ``--warmup``): completed full calls per second,
p50/p99 per method and per whole call, the CPU used by the server, by this (generator) process
and by the rest of the machine (the machine is shared: before each run the bench waits up to
``--wait-idle`` seconds for other processes to go quiet, and flags a run they disturbed), and
the server's garbage-collector pauses (a ``gc.callbacks`` hook served as ``Bench.GcPauses``,
added by this bench to the server's registry). After each run the load is drained and checked:
every call has its ``*default`` CDR (``CDRsV1.GetCDRsCount``), every one costs exactly the
expected 0.7503, the money taken from the accounts equals calls x 0.7503 (the expected cost is
worked out from the tutorial's rates and must equal the engine's ``APIerSv1.GetCost``), and no
session is left; printed as OK or MISMATCH.

``--profile CALLS`` instead runs CALLS full calls in this process, through the server's per
request path (decode the request bytes, ``MethodRegistry.call``, encode the reply) without TCP:
per-method µs and the CPU per call of the whole process (every thread, so the storage's writer
thread too: the figure the machine's other load distorts least), then a cProfile of the same
run (event-loop thread only), top functions by own time. ``--profile-concurrency N`` keeps N
calls in progress, so group commits batch as they do under load.

Everything is on 127.0.0.1 and bounded in time and count. Usage::

    python scripts/bench/sessions.py [--storage memory|sqlite|both] [--spread pool|one|both]
        [-d SECONDS] [-w SECONDS] [-c N[,N...]] [--rate CALLS_PER_S] [--accounts N]
        [--connections N] [--wait-idle SECONDS] [--profile CALLS [--profile-concurrency N]]
        [--server-gc-freeze] [--server-gc-threshold N]

Exits 1 when a run's check finds a MISMATCH.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import cProfile
import dataclasses
import functools
import gc
import itertools
import os
import platform
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any, Final

from _loadgen import run_coroutine
from echo import ServerProcess

from core.config import Config, EngineConfig, TariffPlansConfig, load_config
from core.engine import Engine
from core.rpc import (
    CallContext,
    MethodRegistry,
    Request,
    Response,
    RpcClient,
    decode_message,
    encode_request,
    encode_response,
)

TUTORIAL_PLAN: Final = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout
TENANT: Final = "cgrates.org"
SUBJECT: Final = "1001"  # rating subject: RP_1001, 1001 -> 1002 at RT_20CNT
DESTINATION: Final = "1002"
ONE_ACCOUNT: Final = "1001"  # the tutorial's account (it has STANDARD_TRIGGERS)
POOL_PREFIX: Final = "b"
SETUP_TIME: Final = "2023-01-07T17:00:00Z"
ANSWER_TIME: Final = "2023-01-07T17:00:10Z"
START_MONEY: Final = 1_000_000
BALANCE_ID: Final = "test"  # the tutorial's top-up balance of 1001
NS: Final = 1_000_000_000
MS: Final = 1_000_000
SECOND_NS: Final = NS
CALL_SECONDS: Final = 150

STORAGES: Final = ("memory", "sqlite")
SPREADS: Final = ("pool", "one")
DEFAULT_DURATION: Final = 10.0
DEFAULT_WARMUP: Final = 1.0
DEFAULT_CONCURRENCY: Final = (50, 200)
DEFAULT_CONNECTIONS: Final = 8
DEFAULT_ACCOUNTS: Final = 100
DRAIN_TIMEOUT: Final = 30.0  # seconds granted to the calls in progress after the window
REPLY_TIMEOUT: Final = 30.0
SETUP_CONCURRENCY: Final = 20
MAX_OUTSTANDING_PER_RATE: Final = 2.0  # open loop: at most rate x this many calls in progress
MIN_OUTSTANDING: Final = 1_000
TARGET_CALLS_PER_S: Final = 1_000
TARGET_P99_MS: Final = 10.0
PROFILE_TOP: Final = 25
PROFILE_GC_THRESHOLD: Final = 10_000  # --profile runs with the collector set as the load runs
GC_PAUSES: Final = "Bench.GcPauses"
COMMITS: Final = "Bench.Commits"  # the server's group commits so far, per SQLite store
GENERATOR_SATURATED: Final = 0.85  # share of one core above which the generator may limit
BUSY_MACHINE: Final = 0.15  # share of a core used by other processes that spoils a run
IDLE_PROBE_S: Final = 1.0
IDLE_QUIET_PROBES: Final = 3
DEFAULT_WAIT_IDLE: Final = 120.0

# The steps of one full call: (label, method).
STEPS: Final = (
    ("AuthorizeEvent", "SessionSv1.AuthorizeEvent"),
    ("InitiateSession", "SessionSv1.InitiateSession"),
    ("UpdateSession#1", "SessionSv1.UpdateSession"),
    ("UpdateSession#2", "SessionSv1.UpdateSession"),
    ("TerminateSession", "SessionSv1.TerminateSession"),
    ("ProcessCDR", "SessionSv1.ProcessCDR"),
)
MAX_CALL_DURATION_NS: Final = 3 * 3600 * SECOND_NS  # sessions.max_call_duration default
MINUTE_NS: Final = 60 * SECOND_NS
# What each step must answer (a dict: those keys of the result; a string: the result).
EXPECTED_REPLIES: Final[tuple[dict[str, int] | str, ...]] = (
    {"MaxUsage": MAX_CALL_DURATION_NS},
    {"MaxUsage": MINUTE_NS},
    {"MaxUsage": MINUTE_NS},
    {"MaxUsage": MINUTE_NS},
    "OK",
    "OK",
)


# ------------------------------------------------------------------------------ expected cost
def expected_call_cost() -> Decimal:
    """The cost of one call from the tutorial's RT_20CNT (1001 -> 1002), worked out by hand.

    Slot 1: ConnectFee 0.4, then 0.2 per 60 s in 60 s increments. Slot 2 from 60 s: 0.1 per
    60 s in 1 s increments, each increment rounded up to general.rounding_decimals (5):
    0.00166.. -> 0.00167. The DestinationRate rounds the total *up to 4 decimals.
    """
    connect_fee = Decimal("0.4")
    first_minute = Decimal("0.2")
    per_second = (Decimal("0.1") / 60).quantize(Decimal("0.00001"), rounding=ROUND_UP)
    cost = connect_fee + first_minute + (CALL_SECONDS - 60) * per_second
    cost = cost.quantize(Decimal("0.0001"), rounding=ROUND_UP)
    assert per_second == Decimal("0.00167"), per_second
    assert cost == Decimal("0.7503"), cost
    return cost


# --------------------------------------------------------------------------------- the calls
def base_event(account: str, origin_id: str, usage: str, **extra: str) -> dict[str, str]:
    return {
        "Account": account, "Subject": SUBJECT, "Destination": DESTINATION,
        "OriginID": origin_id, "RequestType": "*prepaid", "SetupTime": SETUP_TIME,
        "AnswerTime": ANSWER_TIME, "Usage": usage, **extra,
    }  # fmt: skip


def call_requests(tag: str, index: int, account: str) -> list[dict[str, Any]]:
    """The params of the six requests of call ``index`` (one per STEPS entry)."""
    origin = f"{tag}-{index}"
    authorize_event = base_event(account, origin, "")
    del authorize_event["Usage"], authorize_event["AnswerTime"]
    update = base_event(account, origin, "60s", LastUsed="60s")
    return [
        {"GetMaxUsage": True, "Tenant": TENANT, "ID": f"{origin}-a", "Event": authorize_event},
        {"InitSession": True, "Tenant": TENANT, "ID": f"{origin}-i",
         "Event": base_event(account, origin, "60s")},
        {"UpdateSession": True, "Tenant": TENANT, "ID": f"{origin}-u1", "Event": update},
        {"UpdateSession": True, "Tenant": TENANT, "ID": f"{origin}-u2", "Event": dict(update)},
        {"TerminateSession": True, "Tenant": TENANT, "ID": f"{origin}-t",
         "Event": base_event(account, origin, f"{CALL_SECONDS}s")},
        {"Tenant": TENANT, "ID": f"{origin}-c",
         "Event": base_event(account, origin, f"{CALL_SECONDS}s")},
    ]  # fmt: skip


def reply_problem(step: int, result: Any) -> str | None:
    """Why ``result`` is not what step ``step`` must answer; None when it is."""
    expected = EXPECTED_REPLIES[step]
    if isinstance(expected, str):
        return None if result == expected else f"{result!r}"
    if not isinstance(result, dict):
        return f"{result!r}"
    for key, value in expected.items():
        if result.get(key) != value:
            return f"{key}={result.get(key)!r}"
    return None


Caller = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass
class Samples:
    """Every call of one run: timings of the completed ones, counts of the others."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # Per completed call: its reference start (send, or schedule in open loop) and end, ns.
    call_start: array.array[int] = field(default_factory=lambda: array.array("q"))
    call_end: array.array[int] = field(default_factory=lambda: array.array("q"))
    # Per completed call and step: latency in ns (row-major, len(STEPS) per call).
    steps: array.array[int] = field(default_factory=lambda: array.array("q"))

    async def run_call(self, call: Caller, params: list[dict[str, Any]], start: int) -> None:
        self.started += 1
        clock = time.perf_counter_ns
        latencies = []
        try:
            for step, ((label, method), args) in enumerate(zip(STEPS, params, strict=True)):
                before = clock()
                result = await call(method, args)
                latencies.append(clock() - before)
                problem = reply_problem(step, result)
                if problem is not None:
                    raise ValueError(f"{label}: unexpected reply {problem}")
        except Exception as exc:  # counted and reported; the run goes on
            self.failed += 1
            self.errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
            return
        self.completed += 1
        self.call_start.append(start)
        self.call_end.append(clock())
        self.steps.extend(latencies)


# -------------------------------------------------------------------------------- load modes
def cpu_of(pid: int, thread: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, or by its thread ``thread``
    alone (Linux /proc; the main thread's id is the process id)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    with open(path, "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(CPU seconds used by every process on the machine, seconds stolen by the hypervisor)
    so far, from /proc/stat."""
    with open("/proc/stat", "rb") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


@dataclass
class Window:
    """The measured window and the CPU each side used in it."""

    start_ns: int
    end_ns: int
    server_cpu: float = 0.0  # seconds
    server_loop_cpu: float = 0.0  # the server's event-loop (main) thread alone
    server_commits: list[int] = field(default_factory=list)  # per SQLite store, in the window
    generator_cpu: float = 0.0
    other_cpu: float = 0.0  # used by the rest of the machine (neighbours)
    steal: float = 0.0  # stolen by the hypervisor
    server_gc: dict[str, Any] = field(default_factory=dict)  # Bench.GcPauses in the window

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / NS

    async def measure(self, probe: Probe) -> None:
        """Samples both processes' CPU and the server's GC pauses at the window's start and
        end (run as a task)."""
        await asyncio.sleep(max(0.0, (self.start_ns - time.perf_counter_ns()) / NS))
        pid = probe.server_pid
        server0 = cpu_of(pid) if pid else 0.0
        loop0 = cpu_of(pid, pid) if pid else 0.0
        generator0 = time.process_time()
        busy0, steal0 = machine_busy()
        await probe.control(GC_PAUSES, {"Reset": True})
        commits0 = await probe.control(COMMITS, {})
        await asyncio.sleep(max(0.0, (self.end_ns - time.perf_counter_ns()) / NS))
        self.server_cpu = (cpu_of(pid) if pid else 0.0) - server0
        self.server_loop_cpu = (cpu_of(pid, pid) if pid else 0.0) - loop0
        commits1 = await probe.control(COMMITS, {})
        self.server_commits = [b - a for a, b in zip(commits0, commits1, strict=True)]
        self.generator_cpu = time.process_time() - generator0
        busy1, steal1 = machine_busy()
        self.other_cpu = max(0.0, busy1 - busy0 - self.server_cpu - self.generator_cpu)
        self.steal = steal1 - steal0
        self.server_gc = await probe.control(GC_PAUSES, {})


@dataclass(frozen=True)
class Probe:
    """How to observe the server: its PID (CPU) and a connection for ``Bench.GcPauses``."""

    server_pid: int | None
    control: Caller


async def closed_loop(
    callers: Sequence[Caller],
    plan: CallPlan,
    samples: Samples,
    concurrency: int,
    warmup: float,
    duration: float,
    probe: Probe,
) -> Window:
    """``concurrency`` calls in progress at all times until the window ends, then drains."""
    now = time.perf_counter_ns()
    window = Window(now + int(warmup * NS), now + int((warmup + duration) * NS))
    meter = asyncio.ensure_future(window.measure(probe))
    counter = itertools.count()

    async def worker(slot: int) -> None:
        call = callers[slot % len(callers)]
        while time.perf_counter_ns() < window.end_ns:
            index = next(counter)
            await samples.run_call(call, plan.params(index), time.perf_counter_ns())

    workers = [asyncio.ensure_future(worker(slot)) for slot in range(concurrency)]
    _, pending = await asyncio.wait(workers, timeout=warmup + duration + DRAIN_TIMEOUT)
    for task in pending:
        task.cancel()
    await asyncio.gather(*workers, meter, return_exceptions=True)
    if pending:
        samples.errors[f"{len(pending)} call(s) still running after the drain"] += 1
    return window


async def open_loop(
    callers: Sequence[Caller],
    plan: CallPlan,
    samples: Samples,
    rate: float,
    warmup: float,
    duration: float,
    probe: Probe,
) -> tuple[Window, int]:
    """Starts call i at ``start + i / rate``; returns the window and the calls not started
    because too many were in progress (the server fell behind)."""
    now = time.perf_counter_ns()
    window = Window(now + int(warmup * NS), now + int((warmup + duration) * NS))
    meter = asyncio.ensure_future(window.measure(probe))
    interval = NS / rate
    total = int(rate * (warmup + duration))
    limit = max(MIN_OUTSTANDING, int(rate * MAX_OUTSTANDING_PER_RATE))
    running: set[asyncio.Future[None]] = set()
    skipped = 0
    for index in range(total):
        due = now + int(index * interval)
        ahead = due - time.perf_counter_ns()
        if ahead > 0:
            await asyncio.sleep(ahead / NS)
        if len(running) >= limit:
            skipped += 1
            continue
        task = asyncio.ensure_future(
            samples.run_call(callers[index % len(callers)], plan.params(index), due)
        )
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        _, pending = await asyncio.wait(set(running), timeout=DRAIN_TIMEOUT)
        for late in pending:
            late.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            samples.errors[f"{len(pending)} call(s) still running after the drain"] += 1
    await asyncio.gather(meter, return_exceptions=True)
    return window, skipped


# ------------------------------------------------------------------------------------ engine
def engine_config(storage: str, data_dir: Path | None) -> Config:
    """The default config with ``storage``, the tutorial plan loaded on start, no listener."""
    config = load_config()
    if storage != "memory" and data_dir is None:
        raise ValueError(f"{storage} storage needs a data directory")
    return dataclasses.replace(
        config,
        storage=dataclasses.replace(
            config.storage, type=storage, data_dir=data_dir or config.storage.data_dir
        ),
        engine=EngineConfig(rpc_json_listen=None, http_listen=None),
        tariffplans=TariffPlansConfig(load_on_start=(TUTORIAL_PLAN,)),
    )


async def start_engine(storage: str, data_dir: Path | None) -> Engine:
    engine = Engine(engine_config(storage, data_dir))
    await engine.start()
    return engine


class GcPauses:
    """The server process's garbage-collector pauses, per generation (a ``gc.callbacks``
    entry); served as ``Bench.GcPauses`` (params ``{"Reset": true}`` starts over)."""

    def __init__(self) -> None:
        self.started = 0
        self.pauses: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self.started = now
        elif self.started:
            self.pauses[info["generation"]].append(now - self.started)

    def report(self, params: Any, ctx: CallContext) -> dict[str, Any]:
        reply: dict[str, Any] = {
            f"gen{generation}": {
                "count": len(values),
                "total_ms": sum(values) / MS,
                "max_ms": max(values, default=0) / MS,
            }
            for generation, values in self.pauses.items()
        }
        if isinstance(params, dict) and params.get("Reset"):
            for values in self.pauses.values():
                values.clear()
        else:
            reply["tracked"] = len(gc.get_objects())  # O(objects): only at the window's end
        return reply


async def engine_registry(
    storage: str, data_dir: Path | None, gc_freeze: bool = False, gc_threshold: int = 0
) -> MethodRegistry:
    """``ServerProcess`` factory: runs in the server process; the handlers keep the engine.
    Adds ``Bench.GcPauses`` (bench-only, on this registry) to watch the collector. To try
    collector settings without touching the engine: ``gc_freeze`` moves everything alive after
    start-up (the plan, the caches) out of the collector's reach; ``gc_threshold`` > 0 sets
    the young-generation threshold (CPython's default is 700)."""
    engine = await start_engine(storage, data_dir)
    registry = engine.registry
    if gc_freeze:
        gc.collect()
        gc.freeze()
    if gc_threshold > 0:
        gc.set_threshold(gc_threshold, *gc.get_threshold()[1:])
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    registry.register(GC_PAUSES, pauses.report)
    registry.register(COMMITS, lambda params, ctx: store_commits(engine))
    return registry


@dataclass(frozen=True)
class CallPlan:
    """Which accounts the calls of one run go to, and their OriginID tag."""

    tag: str
    accounts: tuple[str, ...]

    def params(self, index: int) -> list[dict[str, Any]]:
        return call_requests(self.tag, index, self.accounts[index % len(self.accounts)])


def accounts_for(spread: str, pool: int) -> tuple[str, ...]:
    if spread == "one":
        return (ONE_ACCOUNT,)
    return tuple(f"{POOL_PREFIX}{number:04d}" for number in range(pool))


async def money_of(call: Caller, account: str) -> Decimal:
    reply = await call("APIerSv2.GetAccount", {"Tenant": TENANT, "Account": account})
    balances = reply["BalanceMap"].get("*monetary") or []
    return sum((Decimal(str(balance["Value"])) for balance in balances), Decimal(0))


async def setup_accounts(call: Caller, accounts: Sequence[str]) -> dict[str, Decimal]:
    """Removes each account's triggers (creating it), sets its money; returns the money."""
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(account: str) -> None:
        async with limit:
            reply = await call(
                "APIerSv1.SetAccount",
                {"Tenant": TENANT, "Account": account, "ActionTriggerIDs": [],
                 "ActionTriggerOverwrite": True},
            )  # fmt: skip
            assert reply == "OK", (account, reply)
            reply = await call(
                "APIerSv1.SetBalance",
                {"Tenant": TENANT, "Account": account, "BalanceType": "*monetary",
                 "Value": START_MONEY, "Balance": {"ID": BALANCE_ID}},
            )  # fmt: skip
            assert reply == "OK", (account, reply)

    await asyncio.gather(*(one(account) for account in accounts))
    return await moneys(call, accounts)


async def moneys(call: Caller, accounts: Sequence[str]) -> dict[str, Decimal]:
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(account: str) -> Decimal:
        async with limit:
            return await money_of(call, account)

    values = await asyncio.gather(*(one(account) for account in accounts))
    return dict(zip(accounts, values, strict=True))


async def engine_call_cost(call: Caller) -> Decimal:
    """APIerSv1.GetCost of one call: the engine's own figure for the expected cost."""
    reply = await call(
        "APIerSv1.GetCost",
        {"Tenant": TENANT, "Category": "call", "Subject": SUBJECT, "Destination": DESTINATION,
         "AnswerTime": ANSWER_TIME, "Usage": f"{CALL_SECONDS}s"},
    )  # fmt: skip
    return Decimal(str(reply["Cost"]))


async def verify(
    call: Caller,
    accounts: Sequence[str],
    before: dict[str, Decimal],
    samples: Samples,
    cost: Decimal,
) -> tuple[bool, str]:
    """Every call has its CDR at ``cost``, the money taken is calls x ``cost``, no session is
    left. Returns (ok, the figures)."""
    calls = samples.completed
    account_list = list(accounts)
    cdrs = await call("CDRsV1.GetCDRsCount", {"RunIDs": ["*default"], "Accounts": account_list})
    exact = await call(
        "CDRsV1.GetCDRsCount",
        {"RunIDs": ["*default"], "Accounts": account_list, "MinCost": str(cost),
         "MaxCost": str(cost + Decimal("0.0001"))},
    )  # fmt: skip
    active = await call("SessionSv1.GetActiveSessionsCount", {})
    after = await moneys(call, accounts)
    taken = sum((before[account] - after[account] for account in accounts), Decimal(0))
    expected = calls * cost
    problems = []
    if samples.failed or samples.started != samples.completed:
        problems.append(f"{samples.failed} failed of {samples.started} started")
    if cdrs != calls:
        problems.append(f"{cdrs} CDRs for {calls} calls")
    if exact != calls:
        problems.append(f"{exact} CDRs cost exactly {cost}")
    if taken != expected:
        problems.append(f"money taken {taken} != {expected}")
    if active != 0:
        problems.append(f"{active} active sessions left")
    places = Decimal("0.0001")
    figures = (
        f"{calls:,} calls, {cdrs:,} CDRs ({exact:,} at {cost}), money taken "
        f"{taken.quantize(places):,} = {calls:,} x {cost} expected {expected.quantize(places):,}, "
        f"{active} active sessions"
    )
    if problems:
        return False, f"MISMATCH: {'; '.join(problems)} ({figures})"
    return True, f"OK ({figures})"


# ---------------------------------------------------------------------------------- figures
def percentile(values: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile of ns values, in ms."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank] / MS


@dataclass
class RunResult:
    storage: str
    spread: str
    mode: str  # "closed N=50" / "open 500/s"
    calls_per_s: float
    calls: int
    window_s: float
    step_p50: list[float]
    step_p99: list[float]
    call_p50: float
    call_p99: float
    server_cpu: float  # share of one core
    server_loop_cpu: float  # share of one core used by the server's event-loop thread
    server_commits: list[int]  # group commits in the window, per SQLite store
    generator_cpu: float
    other_cpu: float
    steal: float
    verified: bool
    verdict: str
    skipped: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    server_gc: dict[str, Any] = field(default_factory=dict)

    def gc_text(self) -> str:
        """The server's collector pauses in the window, per generation."""
        pauses = ", ".join(
            f"{name} {item['count']}x total {item['total_ms']:.0f} ms max {item['max_ms']:.1f} ms"
            for name, item in sorted(self.server_gc.items())
            if isinstance(item, dict)
        )
        return f"{pauses}; {self.server_gc.get('tracked', 0):,} objects tracked at the end"

    def cpu_text(self) -> str:
        """The server's CPU and group commits per completed call: the load-independent view
        (the writer threads' commits and their fsyncs count in the server's CPU)."""
        calls = max(1, self.calls)
        per_call = self.server_cpu * self.window_s / calls * 1e6
        loop = self.server_loop_cpu * self.window_s / calls * 1e6
        text = (
            f"server CPU per call {per_call:,.0f} µs (event-loop thread {loop:,.0f}, "
            f"other threads {per_call - loop:,.0f})"
        )
        if self.server_commits:
            stores = ", ".join(
                f"{name} {count / calls:.3f}"
                for name, count in zip(("DataDB", "StorDB"), self.server_commits, strict=False)
            )
            text += f"; group commits per call: {stores}"
        return text

    @property
    def request_p99(self) -> float:
        """The worst per-method p99."""
        return max(self.step_p99) if self.step_p99 else 0.0

    def lines(self) -> list[str]:
        header = (
            f"[{self.storage} | {self.spread} | {self.mode}] {self.calls_per_s:,.0f} calls/s "
            f"({self.calls:,} calls in {self.window_s:.1f} s, "
            f"{self.calls_per_s * len(STEPS):,.0f} req/s); CPU: server "
            f"{self.server_cpu:.0%}, generator {self.generator_cpu:.0%}, other processes "
            f"{self.other_cpu:.0%} of a core, steal {self.steal:.0%}"
        )
        if self.other_cpu >= BUSY_MACHINE:
            header += "  <- OTHER PROCESSES were busy: figures unreliable"
        if self.generator_cpu >= GENERATOR_SATURATED:
            header += "  <- the generator is near a full core: it may be the limit"
        if self.skipped:
            header += f"; {self.skipped:,} calls not started (too many in progress)"
        rows = [header, f"    {'method':<18} {'p50 ms':>8} {'p99 ms':>8}"]
        for (label, _), p50, p99 in zip(STEPS, self.step_p50, self.step_p99, strict=True):
            rows.append(f"    {label:<18} {p50:>8.2f} {p99:>8.2f}")
        rows.append(f"    {'whole call':<18} {self.call_p50:>8.2f} {self.call_p99:>8.2f}")
        rows.append(f"    {self.cpu_text()}")
        if self.server_gc:
            rows.append(f"    server GC pauses in the window: {self.gc_text()}")
        for error, count in self.errors.most_common(5):
            rows.append(f"    error x{count}: {error}")
        rows.append(f"    verify: {self.verdict}")
        return rows


def summarize(
    storage: str,
    spread: str,
    mode: str,
    samples: Samples,
    window: Window,
    selected: Callable[[int, int], bool],
    verdict: tuple[bool, str],
    skipped: int = 0,
) -> RunResult:
    """The figures of the calls ``selected(start, end)`` keeps (the window's)."""
    width = len(STEPS)
    chosen = [
        index
        for index, (start, end) in enumerate(zip(samples.call_start, samples.call_end, strict=True))
        if selected(start, end)
    ]
    whole = [samples.call_end[index] - samples.call_start[index] for index in chosen]
    per_step = [[samples.steps[index * width + step] for index in chosen] for step in range(width)]
    seconds = window.seconds
    return RunResult(
        storage=storage,
        spread=spread,
        mode=mode,
        calls_per_s=len(chosen) / seconds if seconds else 0.0,
        calls=len(chosen),
        window_s=seconds,
        step_p50=[percentile(values, 0.5) for values in per_step],
        step_p99=[percentile(values, 0.99) for values in per_step],
        call_p50=percentile(whole, 0.5),
        call_p99=percentile(whole, 0.99),
        server_cpu=window.server_cpu / seconds if seconds else 0.0,
        server_loop_cpu=window.server_loop_cpu / seconds if seconds else 0.0,
        server_commits=window.server_commits,
        generator_cpu=window.generator_cpu / seconds if seconds else 0.0,
        other_cpu=window.other_cpu / seconds if seconds else 0.0,
        steal=window.steal / seconds if seconds else 0.0,
        verified=verdict[0],
        verdict=verdict[1],
        skipped=skipped,
        errors=samples.errors,
        server_gc=window.server_gc,
    )


# ------------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Settings:
    duration: float
    warmup: float
    connections: int
    accounts: int
    gc_freeze: bool = False
    gc_threshold: int = 0
    wait_idle: float = DEFAULT_WAIT_IDLE


async def drive(
    port: int,
    server_pid: int | None,
    storage: str,
    spread: str,
    settings: Settings,
    *,
    concurrency: int = 0,
    rate: float = 0.0,
) -> RunResult:
    """One run on a fresh engine: set up, load (closed loop with ``concurrency`` or open loop
    at ``rate``), drain, verify."""
    clients = [
        await RpcClient.connect("127.0.0.1", port, timeout=REPLY_TIMEOUT)
        for _ in range(settings.connections)
    ]
    try:
        control = clients[0].call
        cost = expected_call_cost()
        engine_cost = await engine_call_cost(control)
        if engine_cost != cost:
            raise SystemExit(f"MISMATCH: the engine rates the call at {engine_cost}, not {cost}")
        plan = CallPlan(
            f"{spread}-{concurrency or int(rate)}", accounts_for(spread, settings.accounts)
        )
        before = await setup_accounts(control, plan.accounts)
        samples = Samples()
        callers = [client.call for client in clients]
        probe = Probe(server_pid, control)
        skipped = 0
        if rate:
            mode = f"open {rate:,.0f}/s"
            window, skipped = await open_loop(
                callers, plan, samples, rate, settings.warmup, settings.duration, probe
            )

            def selected(start: int, end: int) -> bool:  # by scheduled start
                return window.start_ns <= start < window.end_ns
        else:
            mode = f"closed N={concurrency}"
            window = await closed_loop(
                callers, plan, samples, concurrency, settings.warmup, settings.duration,
                probe,
            )  # fmt: skip

            def selected(start: int, end: int) -> bool:  # by completion
                return window.start_ns <= end < window.end_ns

        verdict = await verify(control, plan.accounts, before, samples, cost)
        return summarize(storage, spread, mode, samples, window, selected, verdict, skipped)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


def others_busy(seconds: float = IDLE_PROBE_S) -> float:
    """The share of a core the machine's processes used over ``seconds`` (nothing of ours
    runs meanwhile)."""
    busy0, _ = machine_busy()
    own0 = time.process_time()
    time.sleep(seconds)
    busy1, _ = machine_busy()
    return max(0.0, busy1 - busy0 - (time.process_time() - own0)) / seconds


def wait_idle(bound: float) -> None:
    """Waits (at most ``bound`` seconds) until other processes have left the CPUs alone for
    IDLE_QUIET_PROBES probes in a row (neighbours such as test suites come in bursts)."""
    deadline = time.monotonic() + bound
    quiet = 0
    busy = 0.0
    announced = False
    while quiet < IDLE_QUIET_PROBES:
        busy = others_busy()
        quiet = quiet + 1 if busy < BUSY_MACHINE else 0
        if quiet == 0 and not announced:
            announced = True
            print(
                f"  (other processes use {busy:.0%} of a core; waiting up to {bound:g} s)",
                flush=True,
            )
        if time.monotonic() >= deadline:
            print(f"  (still {busy:.0%} busy; measuring anyway)", flush=True)
            return


def run_one(
    storage: str, spread: str, settings: Settings, *, concurrency: int = 0, rate: float = 0.0
) -> RunResult:
    """Starts a fresh engine process (sqlite: in a new temporary directory), drives one run,
    stops the process by PID."""
    wait_idle(settings.wait_idle)
    with contextlib.ExitStack() as stack:
        data_dir = None
        if storage != "memory":
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cf-bench-")))
        server = ServerProcess(
            functools.partial(
                engine_registry, storage, data_dir, settings.gc_freeze, settings.gc_threshold
            )
        )
        stack.enter_context(server)
        result = run_coroutine(
            drive(
                server.port,
                server.pid,
                storage,
                spread,
                settings,
                concurrency=concurrency,
                rate=rate,
            )
        )
    if server.status.get("errors"):
        result.errors[f"server counters: {server.status}"] += 1
    for line in result.lines():
        print(line, flush=True)
    return result


def run_matrix(
    storages: Sequence[str],
    spreads: Sequence[str],
    concurrencies: Sequence[int],
    rates: Sequence[float],
    settings: Settings,
) -> list[RunResult]:
    results = []
    for storage in storages:
        for spread in spreads:
            best = 0.0
            for concurrency in concurrencies:
                result = run_one(storage, spread, settings, concurrency=concurrency)
                results.append(result)
                best = max(best, result.calls_per_s)
            for rate in rates or ([best / 2] if best else []):
                if rate > 0:
                    results.append(run_one(storage, spread, settings, rate=round(rate)))
    return results


def print_table(results: Sequence[RunResult], settings: Settings) -> None:
    print()
    print(
        "| storage | accounts | load | calls/s | worst method p50 / p99 ms | whole call p50 / "
        "p99 ms | CPU server / generator / others | check |"
    )
    print("|---|---|---|---:|---|---|---|---|")
    for result in results:
        accounts = "1 (1001)" if result.spread == "one" else f"{settings.accounts}"
        worst = max(range(len(STEPS)), key=lambda step: result.step_p99[step])
        print(
            f"| {result.storage} | {accounts} | {result.mode} | {result.calls_per_s:,.0f} | "
            f"{result.step_p50[worst]:.2f} / {result.step_p99[worst]:.2f} ({STEPS[worst][0]}) | "
            f"{result.call_p50:.2f} / {result.call_p99:.2f} | "
            f"{result.server_cpu:.0%} / {result.generator_cpu:.0%} / {result.other_cpu:.0%} | "
            f"{'OK' if result.verified else 'MISMATCH'} |"
        )
    for storage in dict.fromkeys(result.storage for result in results):
        closed = [r.calls_per_s for r in results if r.storage == storage and "closed" in r.mode]
        if closed:
            best = max(closed)
            verdict = "met" if best >= TARGET_CALLS_PER_S else "NOT met"
            print(
                f"{storage}: best closed-loop figure {best:,.0f} calls/s "
                f"(target >= {TARGET_CALLS_PER_S:,}: {verdict})"
            )
    for result in results:
        if "open" in result.mode:
            verdict = "met" if result.request_p99 < TARGET_P99_MS else "NOT met"
            print(
                f"{result.storage}/{result.spread} {result.mode}: worst per-method p99 "
                f"{result.request_p99:.2f} ms (target < {TARGET_P99_MS:g} ms: {verdict})"
            )


# ---------------------------------------------------------------------------------- profile
async def _profile(
    storage: str, data_dir: Path | None, spread: str, accounts: int, calls: int, concurrency: int
) -> None:
    engine = await start_engine(storage, data_dir)
    # As the served engine in the load runs (--server-gc-freeze --server-gc-threshold 10000).
    gc.collect()
    gc.freeze()
    gc.set_threshold(PROFILE_GC_THRESHOLD, *gc.get_threshold()[1:])
    registry = engine.registry
    context = CallContext("bench", "inproc")
    clock = time.perf_counter_ns

    async def served(method: str, params: dict[str, Any]) -> Any:
        """The server's per-request work without the socket: decode, call, encode."""
        request = decode_message(encode_request(method, params, 1))
        assert isinstance(request, Request)
        result = await registry.call(request.method, request.params, context)
        reply = decode_message(encode_response(request.id, result, None))
        assert isinstance(reply, Response)
        return reply.result  # as a client reads it (a handler may answer pre-encoded JSON)

    try:
        plan = CallPlan(f"prof-{spread}", accounts_for(spread, accounts))
        cost = expected_call_cost()
        assert await engine_call_cost(served) == cost
        before_money = await setup_accounts(served, plan.accounts)

        async def run(tag: str, count: int, call: Caller) -> tuple[Samples, float, float, float]:
            """(samples, wall seconds, CPU seconds of this process: every thread, so the
            storage's writer threads count too, CPU seconds of the event loop's thread alone:
            the one thread every request needs, so the one that bounds throughput)."""
            samples = Samples()
            tagged = CallPlan(tag, plan.accounts)
            counter = itertools.count()
            started = time.perf_counter()
            cpu_started = time.process_time()
            loop_started = time.thread_time()

            async def worker() -> None:
                while (index := next(counter)) < count:
                    await samples.run_call(call, tagged.params(index), clock())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return (
                samples,
                time.perf_counter() - started,
                time.process_time() - cpu_started,
                time.thread_time() - loop_started,
            )

        await run("warm", min(calls, 1_000), served)
        commits_before = store_commits(engine)
        samples, elapsed, cpu, loop_cpu = await run("timed", calls, served)
        commits = [b - a for a, b in zip(commits_before, store_commits(engine), strict=True)]
        width = len(STEPS)
        done = max(1, samples.completed)
        if commits:
            print(
                f"    group commits per call: DataDB {commits[0] / done:.3f}, "
                f"StorDB {commits[1] / done:.3f}"
            )
        print(
            f"in-process, {storage} storage, {spread} ({len(plan.accounts)} account(s)), "
            f"{concurrency} call(s) at a time: {samples.completed:,} calls in "
            f"{elapsed:.2f} s = {samples.completed / elapsed:,.0f} calls/s, "
            f"{elapsed / done * 1e6:,.0f} µs wall, {cpu / done * 1e6:,.0f} µs CPU (all "
            f"threads), {loop_cpu / done * 1e6:,.0f} µs CPU of the event-loop thread per call "
            f"(decode + handler + encode, no socket); failed {samples.failed}"
        )
        for step, (label, _) in enumerate(STEPS):
            values = samples.steps[step::width]
            mean = sum(values) / len(values) / 1_000 if values else 0.0
            print(f"    {label:<18} {mean:>8.1f} µs")
        profiler = cProfile.Profile()
        profiler.enable()
        profiled, profiled_elapsed, _cpu, _loop_cpu = await run("prof", calls, served)
        profiler.disable()
        print(
            f"cProfile of {profiled.completed:,} more calls ({profiled_elapsed:.2f} s with the "
            f"profiler on), top {PROFILE_TOP} by own time, µs per full call:"
        )
        stats = pstats.Stats(profiler)
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
        per = max(1, profiled.completed)
        total_own = sum(value[2] for _, value in rows)
        print(f"    total own time {total_own / per * 1e6:,.1f} µs per call (profiler-inflated)")
        # Python calls per call: the load-independent count the sessions work decides on.
        print(f"    Python calls per call {stats.total_calls / per:,.1f}")  # type: ignore[attr-defined]
        dump_to = os.environ.get("CHARGEFLOW_PROFILE_DUMP")
        if dump_to:  # the whole profile, for pstats (the table shows only the top)
            stats.dump_stats(dump_to)
        print(f"    {'calls/call':>10} {'own µs':>8} {'cum µs':>8}  function")
        for (filename, line, name), (_, ncalls, own, cumulative, _) in rows[:PROFILE_TOP]:
            where = f"{Path(filename).name}:{line}" if line else filename
            print(
                f"    {ncalls / per:>10.2f} {own / per * 1e6:>8.1f} {cumulative / per * 1e6:>8.1f}"
                f"  {name} ({where})"
            )
        total_calls = samples.completed + profiled.completed + min(calls, 1_000)
        after = await moneys(served, plan.accounts)
        taken = sum((before_money[key] - after[key] for key in plan.accounts), Decimal(0))
        check = "OK" if taken == total_calls * cost else "MISMATCH"
        print(
            f"    money taken {taken.quantize(Decimal('0.0001')):,} for {total_calls:,} calls "
            f"x {cost}: {check}"
        )
    finally:
        await engine.stop()


def store_commits(engine: Engine) -> list[int]:
    """Transactions committed so far by the DataDB and StorDB writer threads (SQLite; [] for
    a store that does not count them)."""
    counts = [getattr(store, "commits", None) for store in (engine.datadb, engine.stordb)]
    return [count for count in counts if isinstance(count, int)]


def run_profile(
    storages: Sequence[str], spreads: Sequence[str], accounts: int, calls: int, concurrency: int
) -> None:
    for storage in storages:
        for spread in spreads:
            with tempfile.TemporaryDirectory(prefix="cf-bench-") as directory:
                data_dir = Path(directory) if storage != "memory" else None
                run_coroutine(_profile(storage, data_dir, spread, accounts, calls, concurrency))


# -------------------------------------------------------------------------------------- main
def concurrencies(text: str) -> list[int]:
    """``50,200`` -> [50, 200]; ``0`` -> [] (no closed-loop run)."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return [value for value in values if value > 0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=(*STORAGES, "both"), default="both")
    parser.add_argument(
        "--spread", choices=(*SPREADS, "both"), default="both",
        help="pool: calls spread over --accounts accounts; one: every call on account 1001",
    )  # fmt: skip
    parser.add_argument("-d", "--duration", type=float, default=DEFAULT_DURATION,
                        help="measured seconds per run")  # fmt: skip
    parser.add_argument("-w", "--warmup", type=float, default=DEFAULT_WARMUP)
    parser.add_argument(
        "-c", "--concurrency", type=concurrencies, default=list(DEFAULT_CONCURRENCY),
        help="closed-loop runs: calls in progress, comma-separated (e.g. 50,200; 0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=float, action="append",
        help="open-loop run at this many calls/s (repeatable; default: half the best "
        "closed-loop figure of the same configuration; 0: no open-loop run)",
    )  # fmt: skip
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS)
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument(
        "--wait-idle", type=float, default=DEFAULT_WAIT_IDLE, metavar="SECONDS",
        help="before each run, wait at most this long for other processes to go quiet",
    )  # fmt: skip
    parser.add_argument(
        "--server-gc-freeze", action="store_true",
        help="experiment: gc.freeze() in the server process after start-up",
    )  # fmt: skip
    parser.add_argument(
        "--server-gc-threshold", type=int, default=0, metavar="N",
        help="experiment: the server's young-generation GC threshold (CPython: 700)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=int, metavar="CALLS",
        help="instead of the load: CALLS full calls in-process, timed, then under cProfile",
    )  # fmt: skip
    parser.add_argument(
        "--profile-concurrency", type=int, default=1, metavar="N",
        help="--profile: N calls in progress at a time (group commits batch them)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.accounts <= 0 or args.connections <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--accounts, --connections, --duration must be > 0, --warmup >= 0")
    if not args.concurrency and not any(rate > 0 for rate in args.rate or []):
        parser.error("no run: give a --concurrency > 0 or a --rate > 0")
    storages = STORAGES if args.storage == "both" else (args.storage,)
    spreads = SPREADS if args.spread == "both" else (args.spread,)
    print(
        f"chargeflow sessions bench: Python {platform.python_version()}, {sys.platform}, "
        f"nproc {os.cpu_count()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; tutorial plan, "
        f"expected cost per call {expected_call_cost()}"
    )
    if args.profile:
        run_profile(storages, spreads, args.accounts, args.profile, args.profile_concurrency)
        return
    settings = Settings(
        args.duration,
        args.warmup,
        args.connections,
        args.accounts,
        args.server_gc_freeze,
        args.server_gc_threshold,
        args.wait_idle,
    )
    gc_note = ""
    if settings.gc_freeze or settings.gc_threshold:
        gc_note = (
            f"; server GC experiment: freeze {settings.gc_freeze}, "
            f"gen0 threshold {settings.gc_threshold or 'default'}"
        )
    print(
        f"{args.connections} connections, {args.warmup:g} s warm-up + {args.duration:g} s "
        f"measured per run, a fresh engine process per run{gc_note}"
    )
    results = run_matrix(storages, spreads, args.concurrency, args.rate or [], settings)
    print_table(results, settings)
    if not all(result.verified for result in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
