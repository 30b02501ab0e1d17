"""Rating benchmark: GetCost in-process, over JSON-RPC TCP (against the echo), and vs prefix count.

Three parts, each printed as it finishes:

* ``inproc``: ``Rater.get_cost`` on pre-built queries, then the whole ``APIerSv1.GetCost``
  handler through ``MethodRegistry.dispatch`` with wire params (time/duration parsing and the
  EventCost), then the same plus the JSON work a server does per request (decode the request
  bytes, encode the reply). Per-call latency percentiles; each loop stops at ``--calls`` calls
  or ``--duration`` seconds.
* ``tcp``: an engine (memory storage, the CGRateS tutorial plan, only a TCP listener on
  127.0.0.1, ephemeral port) in its own process, driven with ``APIerSv1.GetCost`` by
  ``_loadgen`` (``--connections`` x ``--inflight`` pipelined), then, back to back on the same
  stack, the bare ``Bench.Echo`` server with the same load and the same request params. Repeated
  ``--rounds`` times; the target is GetCost >= 50 % of the echo's throughput.
* ``prefixes``: a plan built in code with 1k / 100k / 1M random 6-10 digit prefixes over 100
  destinations, one plan, one profile; reports the Rater build time and ``get_cost`` latency
  for (a) new numbers under any of the prefixes (the rater's per-destination match cache and,
  beyond ~8k prefixes x usages, its rated-call cache miss), (b) new numbers under a fixed
  1,000 of them (same cache behaviour at every size: only the index size changes) and (c)
  1,000 numbers repeated (all caches hit).

Everything runs on loopback under uvloop; every child process is stopped by PID and the run
stops by itself. Usage::

    python scripts/bench/rating.py [--only inproc|tcp|prefixes] [-d SECONDS] [-c CONNS]
        [-p INFLIGHT] [--rounds N] [--calls N] [--max-prefixes N] [-k LOAD_PROCS] [--plan DIR]
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import functools
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from _loadgen import DEFAULT_CONNECTIONS, DEFAULT_INFLIGHT, DEFAULT_WARMUP, run_coroutine
from echo import echo_registry, run_server_bench

from core.api import register_all
from core.config import Config, EngineConfig, load_config
from core.engine import Engine
from core.rating.rater import CostQuery, Rater
from core.rpc import (
    CallContext,
    MethodRegistry,
    Request,
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
from core.types import parse_duration, parse_time

TUTORIAL_PLAN: Final = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout
GET_COST: Final = "APIerSv1.GetCost"
ECHO: Final = "Bench.Echo"
PARTS: Final = ("inproc", "tcp", "prefixes")
DEFAULT_DURATION: Final = 5.0
DEFAULT_CALLS: Final = 200_000
DEFAULT_ROUNDS: Final = 2
DEFAULT_MAX_PREFIXES: Final = 1_000_000
PREFIX_SIZES: Final = (1_000, 100_000, 1_000_000)
PREFIX_DESTINATIONS: Final = 100
PREFIX_RATES: Final = 10
WARM_NUMBERS: Final = 1_000
SAMPLED_PREFIXES: Final = 1_000
TARGET_RATIO: Final = 0.5
SEED: Final = 20_240_601
NS_PER_US: Final = 1_000

# The tutorial plan's GetCost traffic: several subjects, destinations, usages and answer times
# (1001 -> 1002 is split at 60 s, 1001 -> 1003 has a *disconnect MaxCost, sms is per unit).
GET_COST_PARAMS: Final[tuple[dict[str, Any], ...]] = (
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1001", "Destination": "1002",
     "AnswerTime": "2014-08-04T13:00:00Z", "Usage": "120s"},
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1001", "Destination": "1002",
     "AnswerTime": "2024-03-01T08:15:30Z", "Usage": "130s"},
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1001", "Destination": "1003",
     "AnswerTime": "2024-03-01T21:59:10Z", "Usage": "90s"},
    {"Tenant": "cgrates.org", "Category": "sms", "Subject": "1001", "Destination": "1003",
     "AnswerTime": "2024-03-02T10:00:00Z", "Usage": "1"},
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1002", "Destination": "1001",
     "AnswerTime": "2024-03-02T17:45:00+02:00", "Usage": "75s"},
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1003", "Destination": "1001",
     "AnswerTime": "2024-03-03T00:00:05Z", "Usage": "3m"},
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1001", "Destination": "1002",
     "AnswerTime": "2024-03-03T12:30:00Z", "Usage": "45s"},
    {"Tenant": "cgrates.org", "Category": "call", "Subject": "1001", "Destination": "1003",
     "AnswerTime": "2024-03-04T09:00:00Z", "Usage": "10s"},
)  # fmt: skip


# ------------------------------------------------------------------------------------ figures
@dataclasses.dataclass
class Timed:
    """Per-call latencies of one in-process loop."""

    calls: int
    elapsed: float  # seconds, loop overhead included
    latencies_ns: array.array[int]

    @property
    def throughput(self) -> float:
        return self.calls / self.elapsed if self.elapsed else 0.0

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
            f"p99 {self.percentile(0.99):>7.1f} µs  ({self.calls:,} calls)"
        )


def timed_loop(call: Callable[[int], object], max_calls: int, max_seconds: float) -> Timed:
    """Runs ``call(i)`` for i = 0, 1, ... until ``max_calls`` or ``max_seconds``, timing each."""
    latencies: array.array[int] = array.array("q")
    append = latencies.append
    clock = time.perf_counter_ns
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
    return Timed(calls, (clock() - started) / 1e9, latencies)


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


async def engine_registry(plan_folder: Path = TUTORIAL_PLAN) -> MethodRegistry:
    """``ServerProcess`` factory: runs in the server process; the handlers keep the engine."""
    return (await build_engine(plan_folder)).registry


def check_replies(registry: MethodRegistry, method: str, params: Sequence[dict[str, Any]]) -> None:
    """Fails early if a benchmark request is answered with an error."""
    context = CallContext("bench", "check")
    for item in params:
        registry.dispatch(method, item, context)  # raises RpcError


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
async def _inproc(plan_folder: Path, max_calls: int, max_seconds: float) -> list[tuple[str, Timed]]:
    engine = await build_engine(plan_folder)
    registry = engine.registry
    check_replies(registry, GET_COST, GET_COST_PARAMS)
    context = CallContext("bench", "inproc")
    size = len(GET_COST_PARAMS)
    rater = engine.rating.rater
    queries = [cost_query(params) for params in GET_COST_PARAMS]
    bodies = [encode_request(GET_COST, params, 7) for params in GET_COST_PARAMS]
    echo = echo_registry()
    dispatch = registry.dispatch

    def rate(index: int) -> object:
        return rater.get_cost(queries[index % size])

    def handler(index: int) -> object:
        return dispatch(GET_COST, GET_COST_PARAMS[index % size], context)

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
        ("decode + dispatch GetCost + encode reply", served),
        ("decode + dispatch Bench.Echo + encode reply", echoed),
    ):
        timed_loop(call, min(max_calls, 5_000), max_seconds)  # warm caches
        rows.append((label, timed_loop(call, max_calls, max_seconds)))
    return rows


def run_inproc(plan_folder: Path, max_calls: int, max_seconds: float) -> None:
    print(f"GetCost in-process ({plan_folder.name}, {len(GET_COST_PARAMS)} request variants):")
    for label, timed in run_coroutine(_inproc(plan_folder, max_calls, max_seconds)):
        print(timed.row(label))


# --------------------------------------------------------------------------------------- tcp
def run_tcp(
    plan_folder: Path,
    connections: int,
    inflight: int,
    duration: float,
    rounds: int,
    processes: int,
) -> list[float]:
    """GetCost then echo, back to back, ``rounds`` times; returns the ratios."""
    get_cost_bodies = [encode_request(GET_COST, params, 0) for params in GET_COST_PARAMS]
    echo_bodies = [encode_request(ECHO, params, 0) for params in GET_COST_PARAMS]
    sizes = sorted(len(body) for body in get_cost_bodies)
    print(
        f"JSON-RPC over TCP 127.0.0.1, {connections} conns x {inflight} in flight, "
        f"{duration:g} s (+{DEFAULT_WARMUP:g} s warmup), {processes} load process(es); "
        f"requests {sizes[0]}-{sizes[-1]} bytes, {len(get_cost_bodies)} variants:"
    )
    ratios = []
    for round_number in range(1, rounds + 1):
        figures = {}
        for method, factory, bodies in (
            (GET_COST, functools.partial(engine_registry, plan_folder), get_cost_bodies),
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
            print(f"  round {round_number} {method:<17} {result.summary()}")
            if result.errors or status.get("errors"):
                print(f"    ERRORS: {result.errors} in the load, server counters {status}")
        ratio = figures[GET_COST] / figures[ECHO] if figures[ECHO] else 0.0
        ratios.append(ratio)
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(
            f"  round {round_number} GetCost/echo = {ratio:.1%} "
            f"(target >= {TARGET_RATIO:.0%}: {verdict})"
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
    parser.add_argument("--only", choices=PARTS, help="run one part only")
    parser.add_argument("--max-prefixes", type=int, default=DEFAULT_MAX_PREFIXES)
    parser.add_argument(
        "--calls", type=int, default=DEFAULT_CALLS, help="bound of each in-process loop, in calls"
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="GetCost/echo TCP pairs, back to back"
    )
    parser.add_argument("-k", "--load-processes", type=int, default=1)
    parser.add_argument(
        "--plan", type=Path, default=TUTORIAL_PLAN, help="tariff plan folder for GetCost"
    )
    args = parser.parse_args(argv)
    parts = (args.only,) if args.only else PARTS
    print(
        f"chargeflow rating bench: Python {platform.python_version()}, "
        f"{sys.platform}, {os.cpu_count()} CPUs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    if "inproc" in parts:
        run_inproc(args.plan, args.calls, args.duration)
    if "tcp" in parts:
        run_tcp(
            args.plan,
            args.connections,
            args.inflight,
            args.duration,
            args.rounds,
            args.load_processes,
        )
    if "prefixes" in parts:
        run_prefixes(args.max_prefixes, args.calls, args.duration)


if __name__ == "__main__":
    main()
