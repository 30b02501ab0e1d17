"""Rating benchmark: GetCost in-process, over JSON-RPC TCP (against the echo), and vs prefix count.

GetCost requests are ``--variants`` (1,024) argument objects drawn from the tutorial plan's
traffic (``request_variants``): three callers, the bare numbers and longer numbers under the
plan's prefixes, call lengths from an exponential distribution (mean 120 s) written as
``"130s"``, ``"2m10s"`` or integer ns, answer times spread over a year in UTC and two fixed
offsets, and sms. The tutorial's known costs are checked before any figure.

Parts, each printed as it finishes:

* ``inproc``: ``Rater.get_cost`` on pre-built queries, then the whole ``APIerSv1.GetCost``
  handler through ``MethodRegistry.dispatch`` with wire params, the same with every called
  number new to the rater, then the handler plus the JSON work a server does per request
  (decode the request bytes, encode the reply), and that for ``Bench.Echo``. Per-call latency
  percentiles and CPU per call; each loop stops at ``--calls`` calls or ``--duration`` seconds.
* ``tcp``: an engine (memory storage, the CGRateS tutorial plan, only a TCP listener on
  127.0.0.1, ephemeral port, the garbage collector settled as ``chargeflow engine`` does) in its
  own process, driven with ``APIerSv1.GetCost`` by ``_loadgen`` (``--connections`` x
  ``--inflight`` pipelined), then, back to back on the same stack, the bare ``Bench.Echo``
  server with the same load and the same request params. Repeated ``--rounds`` times; the
  target is GetCost >= 50 % of the echo's throughput. Also prints each server's CPU time per
  request, which other load on the machine distorts less than throughput.
* ``prefixes``: a plan built in code with 1k / 100k / 1M random 6-10 digit prefixes over 100
  destinations, one plan, one profile; reports the Rater build time and ``get_cost`` latency
  for (a) new numbers under any of the prefixes (the rater's per-destination match cache and,
  beyond ~8k prefixes x usages, its rated-call cache miss), (b) new numbers under a fixed
  1,000 of them (same cache behaviour at every size: only the index size changes) and (c)
  1,000 numbers repeated (all caches hit).
* ``instructions`` (only with ``--only instructions``; needs valgrind, takes minutes): the
  instructions a server executes per request (an ``RpcConnection`` reads a pipelined batch:
  decode, handler or reply writer, encode; no sockets) for GetCost and the echo, counted by
  valgrind: deterministic, whatever else runs on the machine (set ``PYTHONHASHSEED=0`` for
  identical runs).

Everything runs on loopback under uvloop; every child process is stopped by PID and the run
stops by itself. Usage::

    python scripts/bench/rating.py [--only inproc|tcp|prefixes|instructions] [-d SECONDS]
        [-c CONNS] [-p INFLIGHT] [--rounds N] [--calls N] [--max-prefixes N] [-k LOAD_PROCS]
        [--variants N] [--plan DIR]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import dataclasses
import functools
import itertools
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from _loadgen import DEFAULT_CONNECTIONS, DEFAULT_INFLIGHT, DEFAULT_WARMUP, run_coroutine
from echo import SYSTEM_SECONDS, cpu_per_request, echo_registry, run_server_bench

from core.api import register_all
from core.cli import settle_garbage_collector
from core.config import Config, EngineConfig, load_config
from core.engine import Engine
from core.rating.rater import CostQuery, Rater
from core.rpc import (
    CallContext,
    MethodRegistry,
    Request,
    RpcConnection,
    decode_message,
    encode_request,
    encode_response,
)
from core.tariffplan.models import (
    Destination,
    DestinationRate,
    DestinationRateEntry,
    Rate,
    RateSlot,
    RatingActivation,
    RatingPlan,
    RatingPlanBinding,
    RatingProfile,
    TariffPlan,
)
from core.types import dumps, loads, parse_duration, parse_time

TUTORIAL_PLAN: Final = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout
GET_COST: Final = "APIerSv1.GetCost"
ECHO: Final = "Bench.Echo"
PARTS: Final = ("inproc", "tcp", "prefixes")
INSTRUCTIONS: Final = "instructions"  # not in the default run: needs valgrind, takes minutes
INSTRUCTION_REQUESTS: Final = 512  # requests per pass of --serve-loop
INSTRUCTION_PASSES: Final = 4
VALGRIND_TIMEOUT: Final = 900.0
DEFAULT_DURATION: Final = 5.0
DEFAULT_CALLS: Final = 200_000
DEFAULT_ROUNDS: Final = 2
DEFAULT_MAX_PREFIXES: Final = 1_000_000
PREFIX_SIZES: Final = (1_000, 100_000, 1_000_000)
PREFIX_DESTINATIONS: Final = 100
PREFIX_RATES: Final = 10
WARM_NUMBERS: Final = 1_000
SAMPLED_PREFIXES: Final = 1_000
FRESH_NUMBERS: Final = 200_000  # distinct called numbers for the "numbers all new" row
WARM_CALLS: Final = 5_000
TARGET_RATIO: Final = 0.5
SEED: Final = 20_240_601
NS_PER_US: Final = 1_000

# The tutorial plan's GetCost traffic, as a pricing front-end or CDR rater sends it: callers,
# called numbers (exact and longer numbers under the plan's prefixes), call lengths and answer
# times all vary. Each tuple: weight, category, subject, destination prefix. 1001 -> 1002 has two
# rate tiers, 1001 -> 1003 a *disconnect MaxCost, sms is priced per unit.
TRAFFIC: Final = (
    (30, "call", "1001", "1002"),
    (15, "call", "1001", "1003"),
    (20, "call", "1002", "1001"),
    (20, "call", "1003", "1001"),
    (15, "sms", "1001", "1003"),
)
DEFAULT_VARIANTS: Final = 1024
MEAN_CALL_SECONDS: Final = 120.0  # call lengths: exponential, whole seconds
MAX_CALL_SECONDS: Final = 3_600
EXTENSION_DIGITS: Final = (0, 0, 4, 6, 8)  # digits after the prefix: the bare number, or longer
ANSWER_YEAR: Final = 2024
SECONDS_PER_YEAR: Final = 366 * 86_400  # 2024 is a leap year
LOCAL_OFFSETS: Final = ("Z", "Z", "Z", "+02:00", "-05:00")  # most clients send UTC
CHECKED_COSTS: Final = (  # the tutorial's known results, checked before any figure
    ({"Subject": "1001", "Destination": "1002", "Usage": "120s"}, "0.7002"),
    ({"Subject": "1001", "Destination": "1002", "Usage": "2m10s"}, "0.7169"),
)


def usage_text(seconds: int, style: int) -> str | int:
    """A call length as clients write it: ``"130s"``, ``"2m10s"`` or integer nanoseconds."""
    if style == 0:
        return f"{seconds}s"
    if style == 1:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest}s" if minutes else f"{rest}s"
    return seconds * 1_000_000_000


def answer_time_text(rng: random.Random) -> str:
    """A second-resolution RFC 3339 answer time somewhere in ``ANSWER_YEAR``."""
    moment = datetime(ANSWER_YEAR, 1, 1, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(SECONDS_PER_YEAR)
    )
    suffix = rng.choice(LOCAL_OFFSETS)
    if suffix != "Z":
        hours, minutes = (int(part) for part in suffix[1:].split(":"))
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if suffix[0] == "-" else 1)
        moment = moment.astimezone(timezone(offset))
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + suffix


def request_variants(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` GetCost argument objects drawn from ``TRAFFIC`` (deterministic for a seed)."""
    rng = random.Random(seed)
    weights = [weight for weight, *_ in TRAFFIC]
    variants = []
    for _ in range(count):
        _, category, subject, prefix = rng.choices(TRAFFIC, weights)[0]
        digits = rng.choice(EXTENSION_DIGITS)
        destination = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        if category == "sms":
            usage: str | int = "1"
        else:
            seconds = min(MAX_CALL_SECONDS, 1 + int(rng.expovariate(1 / MEAN_CALL_SECONDS)))
            usage = usage_text(seconds, rng.choice((0, 0, 0, 1, 2)))
        variants.append(
            {
                "Tenant": "cgrates.org",
                "Category": category,
                "Subject": subject,
                "Destination": destination,
                "AnswerTime": answer_time_text(rng),
                "Usage": usage,
            }
        )
    return variants


def describe_variants(variants: Sequence[dict[str, Any]]) -> str:
    """How much the requests vary: distinct values per field."""
    fields = ("Subject", "Destination", "Usage", "AnswerTime")
    counts = ", ".join(f"{len({str(v[name]) for v in variants}):,} {name}" for name in fields)
    return f"{len(variants):,} requests: {counts}"


# ------------------------------------------------------------------------------------ figures
@dataclasses.dataclass
class Timed:
    """Per-call latencies of one in-process loop."""

    calls: int
    elapsed: float  # seconds, loop overhead included
    latencies_ns: array.array[int]
    cpu: float = 0.0  # process CPU seconds of the loop, timing included

    @property
    def throughput(self) -> float:
        return self.calls / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_per_call(self) -> float:
        """Process CPU µs per call: less disturbed by other load than wall-clock figures."""
        return self.cpu / self.calls * 1e6 if self.calls else 0.0

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile in µs (as ``_loadgen.LoadResult``)."""
        if not self.latencies_ns:
            return 0.0
        ordered = sorted(self.latencies_ns)
        rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[rank] / NS_PER_US

    def row(self, label: str) -> str:
        return (
            f"  {label:<44} {self.throughput:>10,.0f}/s  p50 {self.percentile(0.5):>7.1f} µs  "
            f"p99 {self.percentile(0.99):>7.1f} µs  CPU {self.cpu_per_call:>5.2f} µs/call  "
            f"({self.calls:,} calls)"
        )


def timed_loop(call: Callable[[int], object], max_calls: int, max_seconds: float) -> Timed:
    """Runs ``call(i)`` for i = 0, 1, ... until ``max_calls`` or ``max_seconds``, timing each."""
    latencies: array.array[int] = array.array("q")
    append = latencies.append
    clock = time.perf_counter_ns
    cpu_started = time.process_time()
    started = clock()
    deadline = started + int(max_seconds * 1e9)
    calls = 0
    while calls < max_calls:
        before = clock()
        call(calls)
        after = clock()
        append(after - before)
        calls += 1
        if after >= deadline:
            break
    elapsed = (clock() - started) / 1e9
    return Timed(calls, elapsed, latencies, time.process_time() - cpu_started)


# ------------------------------------------------------------------------------------- engine
def engine_config() -> Config:
    """The default config on memory storage with no listener of its own."""
    config = load_config()
    return dataclasses.replace(
        config,
        storage=dataclasses.replace(config.storage, type="memory"),
        engine=EngineConfig(rpc_json_listen=None, http_listen=None),
    )


async def build_engine(plan_folder: Path = TUTORIAL_PLAN) -> Engine:
    """An Engine on memory storage with ``plan_folder`` loaded and the API registered."""
    engine = Engine(engine_config())
    await engine.open_storage()
    await engine.loader.load_folder(plan_folder)
    register_all(engine.registry, engine)
    return engine


async def engine_registry(
    plan_folder: Path = TUTORIAL_PLAN, variants: Sequence[dict[str, Any]] = ()
) -> MethodRegistry:
    """``ServerProcess`` factory: runs in the server process; the handlers keep the engine.
    Checks that ``variants`` are answered, and the known costs, before serving."""
    registry = (await build_engine(plan_folder)).registry
    if variants:
        check_replies(registry, GET_COST, variants)
    return registry


def check_replies(registry: MethodRegistry, method: str, params: Sequence[dict[str, Any]]) -> None:
    """Fails early if a benchmark request is answered with an error, or the tutorial's known
    costs come out wrong."""
    context = CallContext("bench", "check")
    for item in params:
        registry.dispatch(method, item, context)  # raises RpcError
    if method != GET_COST:
        return
    for fields, expected in CHECKED_COSTS:
        args = {**params[0], "Category": "call", **fields}
        cost = loads(dumps(registry.dispatch(method, args, context)))["Cost"]
        if Decimal(str(cost)) != Decimal(expected):
            raise AssertionError(f"GetCost {fields}: {cost}, expected {expected}")


def cost_query(params: dict[str, Any]) -> CostQuery:
    """The query APIerSv1.GetCost builds from ``params`` (tenant and category given)."""
    return CostQuery(
        params["Tenant"],
        params["Category"],
        params["Subject"],
        params["Destination"],
        parse_time(params["AnswerTime"], UTC),
        parse_duration(params["Usage"]),
        tor="",
    )


# ------------------------------------------------------------------------------------ inproc
async def _inproc(
    plan_folder: Path, variants: Sequence[dict[str, Any]], max_calls: int, max_seconds: float
) -> list[tuple[str, Timed]]:
    engine = await build_engine(plan_folder)
    registry = engine.registry
    check_replies(registry, GET_COST, variants)
    context = CallContext("bench", "inproc")
    size = len(variants)
    rater = engine.rating.rater
    queries = [cost_query(params) for params in variants]
    bodies = [encode_request(GET_COST, params, 7) for params in variants]
    echo = echo_registry()
    dispatch = registry.dispatch

    def rate(index: int) -> object:
        return rater.get_cost(queries[index % size])

    def handler(index: int) -> object:
        return dispatch(GET_COST, variants[index % size], context)

    # The same requests, but every called number is new to the rater (digits appended under
    # the same prefix): its destination match is found, not remembered. Warm-up included, no
    # number is sent twice.
    fresh_count = min(max_calls, FRESH_NUMBERS) + WARM_CALLS
    fresh = []
    for index in range(fresh_count):
        params = variants[index % size]
        fresh.append({**params, "Destination": f"{params['Destination']}9{index}"})
    position = itertools.count()

    def new_numbers(index: int) -> object:
        return dispatch(GET_COST, fresh[next(position) % fresh_count], context)

    def served(index: int) -> object:
        request = decode_message(bodies[index % size])
        assert isinstance(request, Request)
        return encode_response(request.id, dispatch(request.method, request.params, context), None)

    def echoed(index: int) -> object:
        request = decode_message(bodies[index % size])
        assert isinstance(request, Request)
        return encode_response(request.id, echo.dispatch(ECHO, request.params, context), None)

    rows = []
    for label, call in (
        ("rater.get_cost(CostQuery)", rate),
        (f"registry.dispatch({GET_COST})", handler),
        ("same, every called number new", new_numbers),
        ("decode + dispatch GetCost + encode reply", served),
        ("decode + dispatch Bench.Echo + encode reply", echoed),
    ):
        timed_loop(call, min(max_calls, WARM_CALLS), max_seconds)  # warm caches
        rows.append((label, timed_loop(call, max_calls, max_seconds)))
    return rows


def run_inproc(
    plan_folder: Path, variants: Sequence[dict[str, Any]], max_calls: int, max_seconds: float
) -> None:
    print(f"GetCost in-process ({plan_folder.name}, {describe_variants(variants)}):")
    for label, timed in run_coroutine(_inproc(plan_folder, variants, max_calls, max_seconds)):
        print(timed.row(label))


# --------------------------------------------------------------------------------------- tcp
def run_tcp(
    plan_folder: Path,
    variants: Sequence[dict[str, Any]],
    connections: int,
    inflight: int,
    duration: float,
    rounds: int,
    processes: int,
) -> list[float]:
    """GetCost then echo, back to back, ``rounds`` times; returns the ratios."""
    get_cost_bodies = [encode_request(GET_COST, params, 0) for params in variants]
    echo_bodies = [encode_request(ECHO, params, 0) for params in variants]
    sizes = sorted(len(body) for body in get_cost_bodies)
    print(
        f"JSON-RPC over TCP 127.0.0.1, {connections} conns x {inflight} in flight, "
        f"{duration:g} s (+{DEFAULT_WARMUP:g} s warmup), {processes} load process(es); "
        f"requests {sizes[0]}-{sizes[-1]} bytes, round robin over {describe_variants(variants)}:"
    )
    ratios = []
    for round_number in range(1, rounds + 1):
        figures = {}
        cpu = {}
        for method, factory, bodies in (
            (GET_COST, functools.partial(engine_registry, plan_folder, variants), get_cost_bodies),
            (ECHO, echo_registry, echo_bodies),
        ):
            result, status = run_server_bench(
                factory,
                bodies,
                connections=connections,
                inflight=inflight,
                duration=duration,
                processes=processes,
            )
            figures[method] = result.throughput
            cpu[method] = cpu_per_request(status)
            print(
                f"  round {round_number} {method:<17} {result.summary()}; "
                f"server CPU {cpu[method]:.2f} µs/req "
                f"({cpu_per_request(status, SYSTEM_SECONDS):.2f} in the kernel)"
            )
            if result.errors or status.get("errors"):
                print(f"    ERRORS: {result.errors} in the load, server counters {status}")
        ratio = figures[GET_COST] / figures[ECHO] if figures[ECHO] else 0.0
        ratios.append(ratio)
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        cpu_ratio = cpu[ECHO] / cpu[GET_COST] if cpu[GET_COST] else 0.0
        print(
            f"  round {round_number} GetCost/echo = {ratio:.1%} "
            f"(target >= {TARGET_RATIO:.0%}: {verdict}); "
            f"server CPU per request, echo/GetCost = {cpu_ratio:.1%}"
        )
    return ratios


# ---------------------------------------------------------------------------------- prefixes
def random_prefixes(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct numeric prefixes of 6 to 10 digits."""
    seen: set[str] = set()
    while len(seen) < count:
        length = rng.randint(6, 10)
        seen.add(str(rng.randrange(10 ** (length - 1), 10**length)))
    prefixes = list(seen)
    rng.shuffle(prefixes)
    return prefixes


def prefix_plan(prefixes: Sequence[str]) -> TariffPlan:
    """One profile (``*any`` subject) -> one plan -> one destination-rates set over
    ``PREFIX_DESTINATIONS`` destinations sharing ``prefixes``, ``PREFIX_RATES`` rates."""
    plan = TariffPlan()
    second = 1_000_000_000
    for index in range(PREFIX_RATES):
        plan.rates[f"RT_{index}"] = Rate(
            f"RT_{index}",
            (
                RateSlot(Decimal("0.05"), Decimal(index + 1) / 100, 60 * second, 60 * second, 0),
                RateSlot(Decimal(0), Decimal(index + 1) / 200, 60 * second, second, 60 * second),
            ),
        )
    entries = []
    for index in range(PREFIX_DESTINATIONS):
        destination_id = f"DST_{index}"
        plan.destinations[destination_id] = Destination(
            destination_id, tuple(prefixes[index::PREFIX_DESTINATIONS])
        )
        entries.append(
            DestinationRateEntry(
                destination_id, f"RT_{index % PREFIX_RATES}", "*up", 4, Decimal(0), ""
            )
        )
    plan.destination_rates["DR_BENCH"] = DestinationRate("DR_BENCH", tuple(entries))
    plan.rating_plans["RP_BENCH"] = RatingPlan(
        "RP_BENCH", (RatingPlanBinding("DR_BENCH", "*any", Decimal(10)),)
    )
    profile = RatingProfile(
        "cgrates.org",
        "call",
        "*any",
        (RatingActivation(datetime(2014, 1, 1, tzinfo=UTC), "RP_BENCH"),),
    )
    plan.rating_profiles[profile.key] = profile
    return plan


def numbers_under(prefixes: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct numbers, each a random prefix followed by 3-5 random digits."""
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(rng.choice(prefixes) + str(rng.randrange(1_000, 100_000)))
    return list(numbers)


def prefix_queries(numbers: Sequence[str], rng: random.Random) -> Iterator[CostQuery]:
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    for number in numbers:
        yield CostQuery(
            "cgrates.org", "call", "1001", number, start, rng.choice((30, 60, 90, 150)) * 10**9
        )


def time_queries(
    get_cost: Callable[[CostQuery], object],
    queries: Sequence[CostQuery],
    max_calls: int,
    max_seconds: float,
    repeat: bool,
) -> Timed:
    """Times ``get_cost`` over ``queries``: each once, or round robin (after one warm-up pass)
    up to ``max_calls`` when ``repeat``."""
    count = len(queries)
    for query in queries[:10]:
        get_cost(query)  # a wrong plan fails here, before any figure
    if not repeat:
        return timed_loop(lambda index: get_cost(queries[index]), count, max_seconds)
    timed_loop(lambda index: get_cost(queries[index % count]), count, max_seconds)
    return timed_loop(lambda index: get_cost(queries[index % count]), max_calls, max_seconds)


def measure_prefixes(size: int, max_calls: int, max_seconds: float) -> str:
    """Builds the plan and the Rater for ``size`` prefixes, times get_cost; one table row."""
    rng = random.Random(SEED + size)
    prefixes = random_prefixes(size, rng)
    plan = prefix_plan(prefixes)
    started = time.perf_counter()
    rater = Rater.from_plan(plan)
    build = time.perf_counter() - started
    get_cost = rater.get_cost
    figures: list[float] = []
    sample = prefixes[:SAMPLED_PREFIXES]
    for numbers, repeat in (
        (numbers_under(prefixes, max_calls, rng), False),  # new numbers, any prefix
        (numbers_under(sample, max_calls, rng), False),  # new numbers, 1,000 prefixes
        (numbers_under(prefixes, WARM_NUMBERS, rng), True),  # the same 1,000 numbers
    ):
        timed = time_queries(
            get_cost, list(prefix_queries(numbers, rng)), max_calls, max_seconds, repeat
        )
        figures += (timed.percentile(0.5), timed.percentile(0.99))
    return f"  {size:>9,}  {build:>7.2f}  " + "  ".join(f"{value:>7.1f}" for value in figures)


def run_prefixes(max_prefixes: int, max_calls: int, max_seconds: float) -> None:
    sizes = [size for size in PREFIX_SIZES if size <= max_prefixes] or [max_prefixes]
    print(
        f"get_cost vs destination prefixes ({PREFIX_DESTINATIONS} destinations, one plan, one "
        f"profile), µs p50/p99 for: new numbers under any prefix; new numbers under "
        f"{SAMPLED_PREFIXES:,} prefixes; {WARM_NUMBERS:,} numbers repeated:"
    )
    print(
        f"  {'prefixes':>9}  {'build s':>7}  {'any p50':>7}  {'any p99':>7}  {'1k p50':>7}  "
        f"{'1k p99':>7}  {'rep p50':>7}  {'rep p99':>7}"
    )
    for size in sizes:
        print(measure_prefixes(size, max_calls, max_seconds), flush=True)


# ------------------------------------------------------------------------------ instructions
class _NullTransport(asyncio.Transport):
    """A transport that takes the replies and drops them: the server's work without sockets."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False


async def _serve_loop(plan_folder: Path, method: str, passes: int) -> None:
    """What a server does per request, without sockets: an ``RpcConnection`` reads a pipelined
    batch (decode, handler or reply writer, encode) and writes the replies to a transport that
    drops them. Two warm-up passes, then ``passes`` more; run under valgrind twice to count the
    passes' instructions."""
    variants = request_variants(INSTRUCTION_REQUESTS)
    registry = await engine_registry(plan_folder, variants) if method == GET_COST else None
    registry = registry or echo_registry()
    batch = b"".join(encode_request(method, params, index) for index, params in enumerate(variants))
    connection = RpcConnection(registry)
    transport = _NullTransport()
    connection.connection_made(transport)
    settle_garbage_collector()
    for _ in range(2 + passes):
        connection.data_received(batch)
    assert transport.written, "no replies"


def count_instructions(method: str, passes: int, plan_folder: Path) -> int:
    """Instructions valgrind counts for ``--serve-loop method passes`` (start-up included)."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--plan",
        str(plan_folder),
        "--serve-loop",
        method,
        str(passes),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=VALGRIND_TIMEOUT)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind gave no count: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def run_instructions(plan_folder: Path) -> None:
    """Server instructions per request, GetCost and echo: deterministic, so unlike CPU time
    it does not depend on what else runs on the machine."""
    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not installed")
        return
    print(
        f"Instructions per request (valgrind; RpcConnection: decode, handler, encode; "
        f"{INSTRUCTION_REQUESTS} varied requests x {INSTRUCTION_PASSES} passes):"
    )
    figures = {}
    for method in (GET_COST, ECHO):
        with ThreadPoolExecutor(max_workers=2) as pool:  # two runs at a time on a shared box
            runs = [
                pool.submit(count_instructions, method, passes, plan_folder)
                for passes in (0, INSTRUCTION_PASSES)
            ]
            base, loaded = (run.result() for run in runs)
        figures[method] = (loaded - base) / (INSTRUCTION_PASSES * INSTRUCTION_REQUESTS)
        print(f"  {method:<17} {figures[method]:>9,.0f} instructions/request", flush=True)
    print(f"  echo/GetCost = {figures[ECHO] / figures[GET_COST]:.1%}")


# -------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-d",
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help="seconds per TCP load, and the bound of each in-process loop",
    )
    parser.add_argument("-c", "--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("-p", "--inflight", type=int, default=DEFAULT_INFLIGHT)
    parser.add_argument(
        "--only", choices=(*PARTS, INSTRUCTIONS), help="run one part only (instructions: only so)"
    )
    parser.add_argument("--max-prefixes", type=int, default=DEFAULT_MAX_PREFIXES)
    parser.add_argument(
        "--calls", type=int, default=DEFAULT_CALLS, help="bound of each in-process loop, in calls"
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="GetCost/echo TCP pairs, back to back"
    )
    parser.add_argument("-k", "--load-processes", type=int, default=1)
    parser.add_argument(
        "--variants",
        type=int,
        default=DEFAULT_VARIANTS,
        help="distinct GetCost requests, sent round robin",
    )
    parser.add_argument(
        "--plan", type=Path, default=TUTORIAL_PLAN, help="tariff plan folder for GetCost"
    )
    parser.add_argument(
        "--serve-loop", nargs=2, metavar=("METHOD", "PASSES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve_loop:  # the valgrind child of the instructions part
        method, passes = args.serve_loop
        run_coroutine(_serve_loop(args.plan, method, int(passes)))
        return
    parts = (args.only,) if args.only else PARTS
    print(
        f"chargeflow rating bench: Python {platform.python_version()}, "
        f"{sys.platform}, {os.cpu_count()} CPUs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    variants = request_variants(args.variants)
    if "inproc" in parts:
        run_inproc(args.plan, variants, args.calls, args.duration)
    if "tcp" in parts:
        run_tcp(
            args.plan,
            variants,
            args.connections,
            args.inflight,
            args.duration,
            args.rounds,
            args.load_processes,
        )
    if INSTRUCTIONS in parts:
        run_instructions(args.plan)
    if "prefixes" in parts:
        run_prefixes(args.max_prefixes, args.calls, args.duration)


if __name__ == "__main__":
    main()
