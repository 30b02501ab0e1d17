"""EnginePool against engines in miniature: RpcServer + MethodRegistry on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from core.rpc import (
    STRATEGY_ROUND_ROBIN,
    CallContext,
    EnginePool,
    MethodRegistry,
    RpcDisconnectedError,
    RpcServer,
    RpcTimeoutError,
    retry_safe,
)
from core.rpc.pool import RECONNECT_JITTER, backoff_delay

WAIT_S = 5.0
SCHEDULING_SLACK_S = 0.1


def fast_pool(
    engines: list[str], handlers: MethodRegistry | None = None, **options: Any
) -> EnginePool:
    """A pool that reconnects quickly and gives up on connecting after 0.5 s."""
    settings: dict[str, Any] = {
        "connect_timeout": 0.5,
        "reconnect_delay_min": 0.01,
        "reconnect_delay_max": 0.1,
        **options,
    }
    return EnginePool(engines, handlers, **settings)


class MiniEngine:
    """An engine in miniature: says who it is, sleeps, records events, calls agents back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: Counter[str] = Counter()
        self.drop_events = False  # ProcessEvent closes every connection instead of answering
        self.registry = MethodRegistry()
        self.registry.register("Test.Who", self.who)
        self.registry.register("Test.Sleep", self.sleep)
        self.registry.register("SessionSv1.ProcessEvent", self.process_event)
        self.registry.register("Test.Drop", self.drop)
        self.server = RpcServer(self.registry)
        self.port = 0

    async def start(self, port: int = 0) -> MiniEngine:
        self.server = RpcServer(self.registry)
        _, self.port = await self.server.start_tcp("127.0.0.1", port)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def who(self, params: Any, ctx: CallContext) -> str:
        self.seen["who"] += 1
        return self.name

    async def sleep(self, params: Any, ctx: CallContext) -> str:
        await asyncio.sleep(params["seconds"])
        return self.name

    async def process_event(self, params: Any, ctx: CallContext) -> str:
        self.seen[params.get("ID", "")] += 1
        if self.drop_events:
            return await self.drop(params, ctx)
        return self.name

    async def drop(self, params: Any, ctx: CallContext) -> str:
        """Closes every connection before answering: the reply never leaves."""
        for connection in self.server.connections:
            connection.close()
        await asyncio.sleep(WAIT_S)
        return self.name


async def eventually(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def engines() -> AsyncIterator[tuple[MiniEngine, MiniEngine]]:
    first, second = await MiniEngine("A").start(), await MiniEngine("B").start()
    yield first, second
    await first.server.close(grace=0)
    await second.server.close(grace=0)


async def test_failover_uses_the_first_engine_then_the_next_when_it_closes(
    engines: tuple[MiniEngine, MiniEngine],
) -> None:
    first, second = engines
    async with fast_pool([first.address, second.address]) as pool:
        assert pool.status() == {first.address: 2, second.address: 2}
        assert [await pool.call("Test.Who", {}) for _ in range(5)] == ["A"] * 5
        await first.server.close(grace=0)
        await eventually(lambda: pool.status()[first.address] == 0)
        assert await pool.call("Test.Who", {}) == "B"


async def test_round_robin_spreads_calls_over_the_engines(
    engines: tuple[MiniEngine, MiniEngine],
) -> None:
    first, second = engines
    async with fast_pool([first.address, second.address], strategy=STRATEGY_ROUND_ROBIN) as pool:
        replies = await asyncio.gather(*(pool.call("Test.Who", {}) for _ in range(20)))
    assert Counter(replies) == {"A": 10, "B": 10}


async def test_reconnects_after_the_engine_restarts_on_the_same_port() -> None:
    engine = await MiniEngine("old").start()
    try:
        async with fast_pool([engine.address]) as pool:
            assert await pool.call("Test.Who", {}) == "old"
            await engine.server.close(grace=0)
            await eventually(lambda: pool.status()[engine.address] == 0)
            with pytest.raises(RpcDisconnectedError):  # nothing to connect to within 0.5 s
                await pool.call("Test.Who", {})
            engine.name = "new"
            await engine.start(engine.port)
            await eventually(lambda: pool.status()[engine.address] == 2)
            assert await pool.call("Test.Who", {}) == "new"
    finally:
        await engine.server.close(grace=0)


async def test_reply_timeout_error_text(engines: tuple[MiniEngine, MiniEngine]) -> None:
    async with fast_pool([engines[0].address], reply_timeout=0.05) as pool:
        with pytest.raises(RpcTimeoutError, match=r"^REPLY_TIMEOUT$"):
            await pool.call("Test.Sleep", {"seconds": 1})
        assert pool.in_flight == 0
        assert await pool.call("Test.Who", {}) == "A"  # the connection is still usable


async def test_callbacks_reach_the_registry_over_every_connection(
    engines: tuple[MiniEngine, MiniEngine],
) -> None:
    first, second = engines
    handlers = MethodRegistry()
    received: list[Any] = []

    async def disconnect(params: Any, ctx: CallContext) -> str:
        received.append(params)
        return "OK"

    handlers.register("AgentV1.DisconnectSession", disconnect)
    async with fast_pool([first.address, second.address], handlers):
        connections = first.server.connections + second.server.connections
        assert len(connections) == 4
        replies = [
            await connection.call("AgentV1.DisconnectSession", {"n": n})
            for n, connection in enumerate(connections)
        ]
    assert replies == ["OK"] * 4
    assert received == [{"n": n} for n in range(4)]


async def test_a_dropped_retry_safe_call_is_sent_again_on_the_next_engine(
    engines: tuple[MiniEngine, MiniEngine],
) -> None:
    first, second = engines
    first.drop_events = True
    async with fast_pool([first.address, second.address]) as pool:
        reply = await pool.call("SessionSv1.ProcessEvent", {"ID": "ev-1", "Event": {}})
    assert reply == "B"
    assert first.seen["ev-1"] >= 1  # the first attempt did reach engine A
    assert second.seen["ev-1"] == 1


async def test_a_dropped_call_that_is_not_retry_safe_fails(
    engines: tuple[MiniEngine, MiniEngine],
) -> None:
    first, second = engines
    first.drop_events = True
    async with fast_pool([first.address, second.address]) as pool:
        with pytest.raises(RpcDisconnectedError, match=r"^DISCONNECTED$"):
            await pool.call("SessionSv1.ProcessEvent", {"Event": {}})  # no event ID
        with pytest.raises(RpcDisconnectedError):
            await pool.call("Test.Drop", {})
    assert second.seen == Counter()


async def test_no_engine_reachable_fails_after_the_connect_timeout() -> None:
    engine = await MiniEngine("gone").start()
    address = engine.address
    await engine.server.close(grace=0)
    pool = EnginePool([address], connect_timeout=0.2, reconnect_delay_max=0.05)
    assert await pool.start() is False
    started = time.monotonic()
    with pytest.raises(RpcDisconnectedError):
        await pool.call("Test.Who", {})
    assert 0.15 < time.monotonic() - started < 2.0
    await pool.close()


async def test_drain_waits_for_calls_in_flight(engines: tuple[MiniEngine, MiniEngine]) -> None:
    async with fast_pool([engines[0].address]) as pool:
        slow = asyncio.create_task(pool.call("Test.Sleep", {"seconds": 0.1}))
        await asyncio.sleep(0.01)
        assert pool.in_flight == 1
        assert await pool.drain(0.001) is False
        assert await pool.drain(WAIT_S) is True
        assert await slow == "A"


@pytest.mark.parametrize(
    ("method", "params", "safe"),
    [
        ("SessionSv1.InitiateSession", {"ID": "abc"}, True),
        ("SessionSv1.TerminateSession", {"ID": "abc", "Tenant": "t"}, True),
        ("SessionSv1.ProcessCDR", {"ID": "abc"}, True),
        ("SessionSv1.InitiateSession", {"ID": ""}, False),
        ("SessionSv1.InitiateSession", {}, False),
        ("SessionSv1.InitiateSession", {"ID": 7}, False),
        ("SessionSv1.ForceDisconnect", {"ID": "abc"}, False),
        ("APIerSv1.AddBalance", {"ID": "abc"}, False),
        ("CDRsV1.ProcessEvent", {"ID": "abc"}, False),
        ("CoreSv1.Ping", {}, True),
    ],
)
def test_retry_rule(method: str, params: Any, safe: bool) -> None:
    assert retry_safe(method, params) is safe


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EnginePool([])
    with pytest.raises(ValueError, match="strategy"):
        EnginePool(["127.0.0.1:2012"], strategy="random")
    with pytest.raises(ValueError, match="HOST:PORT"):
        EnginePool(["localhost"])


def test_backoff_delay_is_jittered_below_the_delay() -> None:
    samples = [backoff_delay(1.0) for _ in range(500)]
    assert all(1.0 - RECONNECT_JITTER <= sample <= 1.0 for sample in samples)
    assert max(samples) - min(samples) > RECONNECT_JITTER / 2  # spread, not one fixed value


async def test_reconnect_backoff_doubles_up_to_the_bound() -> None:
    # An engine that accepts and closes at once: each reconnection is one accept here, and a
    # connection that lived < RECONNECT_STABLE_AFTER does not reset the backoff.
    accepted: list[float] = []

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    low, high = 0.05, 0.4
    pool = EnginePool([f"127.0.0.1:{port}"], connections=1, connect_timeout=0.5,
                      reconnect_delay_min=low, reconnect_delay_max=high)  # fmt: skip
    try:
        await pool.start()
        deadline = time.monotonic() + WAIT_S
        while len(accepted) < 7:
            assert time.monotonic() < deadline, accepted
            await asyncio.sleep(0.01)
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()
    gaps = [later - earlier for earlier, later in itertools.pairwise(accepted)]
    # Gap k waits backoff_delay(min(low * 2**k, high)): within [delay/2, delay] (+ scheduling).
    delays = [min(low * 2**k, high) for k in range(len(gaps))]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
    for gap, delay in zip(gaps, delays, strict=True):
        assert delay * (1 - RECONNECT_JITTER) <= gap <= delay + SCHEDULING_SLACK_S, (gaps, delays)
    assert gaps[3] > 2 * gaps[0]  # it grew ...
    assert max(gaps) <= high + SCHEDULING_SLACK_S  # ... and stays bounded
