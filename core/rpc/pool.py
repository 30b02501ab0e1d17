"""``EnginePool``: an agent's client for one or more engines.

Per engine it keeps a few TCP connections (``connections``, default 2) open in the background,
reconnecting with bounded, jittered exponential backoff; concurrent calls are pipelined over them.
Engines are chosen by ``strategy``: ``failover`` (the first engine with a live connection, the
next one when it has none) or ``round_robin`` (calls spread over every engine that is up).

Every connection serves the same ``handlers`` registry, so the engine's ``AgentV1.*`` callbacks
reach the agent whichever connection opened the session.

The retry rule (``retry_safe``): a call whose connection dropped *before its reply* may or may
not have run on the engine, so it is sent again -- on another connection of the same engine
first, then on the next engine -- only when running it twice cannot charge twice:

* ``SessionSv1`` charging calls with a non-empty event ``ID``: the engine's reply cache answers a
  repetition of (method, tenant, ID) within ``sessions.reply_cache_ttl`` with the first outcome.
  That cache lives in one engine process: it covers a retry on the same engine; a retry that
  lands on *another* engine is only deduplicated if the engines share that state (they do not
  today), which is why a live connection to the same engine is preferred.
* ``*.Ping`` and ``CoreSv1.Status``, which change nothing.

Everything else fails with ``RpcDisconnectedError``, and no call is retried after
``RpcTimeoutError`` (the engine may still be working on it); the caller decides. A call that
finds no live connection waits up to ``connect_timeout`` for one; it was never sent, so that is
safe for any method.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

from core.rpc.codec import MAX_MESSAGE_SIZE
from core.rpc.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REPLY_TIMEOUT,
    ERROR_DISCONNECTED,
    RpcConnection,
    RpcDisconnectedError,
)
from core.rpc.registry import MethodRegistry

logger = logging.getLogger(__name__)

STRATEGY_FAILOVER: Final = "failover"
STRATEGY_ROUND_ROBIN: Final = "round_robin"
STRATEGIES: Final = (STRATEGY_FAILOVER, STRATEGY_ROUND_ROBIN)
DEFAULT_POOL_CONNECTIONS: Final = 2

RECONNECT_DELAY_MIN: Final = 0.05
"""Seconds before the first reconnection attempt; doubled after each failure..."""
RECONNECT_DELAY_MAX: Final = 5.0
"""...up to this bound, so a restarted engine is found again within seconds."""
RECONNECT_JITTER: Final = 0.5
"""Each delay is drawn from [delay * (1 - jitter), delay]: agents restarted together do not
reconnect in lockstep."""
RECONNECT_STABLE_AFTER: Final = 5.0
"""A connection that lived this long resets the backoff; one dropped sooner keeps growing it (an
engine that accepts and closes at once is not hammered)."""

REPLY_CACHED_METHODS: Final = frozenset(
    f"SessionSv1.{name}"
    for name in (
        "AuthorizeEvent",
        "AuthorizeEventWithDigest",
        "InitiateSession",
        "InitiateSessionWithDigest",
        "UpdateSession",
        "TerminateSession",
        "ProcessCDR",
        "ProcessMessage",
        "ProcessEvent",
    )
)
"""The engine answers a repetition of these (same tenant and event ``ID``) from its reply cache."""
SIDE_EFFECT_FREE_METHODS: Final = frozenset(
    {"CoreSv1.Ping", "CoreSv1.Status", "SessionSv1.Ping", "APIerSv1.Ping"}
)
EVENT_ID_KEY: Final = "ID"


def retry_safe(method: str, params: Any) -> bool:
    """Whether a call that may already have run on the engine can be sent again (module doc)."""
    if method in SIDE_EFFECT_FREE_METHODS:
        return True
    if method not in REPLY_CACHED_METHODS or not isinstance(params, Mapping):
        return False
    event_id = params.get(EVENT_ID_KEY)
    return isinstance(event_id, str) and event_id != ""


def parse_engine_address(value: str | tuple[str, int]) -> tuple[str, int]:
    """``"127.0.0.1:2012"`` or ``("127.0.0.1", 2012)`` -> ``("127.0.0.1", 2012)``."""
    if isinstance(value, tuple):
        host, port = value
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise ValueError(f"engine address must be HOST:PORT, got {value!r}")
        host, port = host.strip("[]"), int(port_text)
    if not 0 < port <= 65535:
        raise ValueError(f"engine port out of range: {port}")
    return host, port


def backoff_delay(delay: float) -> float:
    """``delay`` with jitter (see ``RECONNECT_JITTER``)."""
    return random.uniform(delay * (1.0 - RECONNECT_JITTER), delay)


class _Engine:
    """One engine address and its connection slots (``None`` while reconnecting)."""

    __slots__ = ("address", "label", "slots")

    def __init__(self, address: tuple[str, int], size: int) -> None:
        self.address = address
        self.label = f"{address[0]}:{address[1]}"
        self.slots: list[RpcConnection | None] = [None] * size

    def best(self, exclude: set[RpcConnection] | None) -> RpcConnection | None:
        """The live connection with the fewest calls waiting (pipelining evens the load)."""
        chosen: RpcConnection | None = None
        for connection in self.slots:
            if connection is None or connection.closed:
                continue
            if exclude is not None and connection in exclude:
                continue
            if chosen is None or connection.pending_calls < chosen.pending_calls:
                chosen = connection
        return chosen

    def live(self) -> int:
        return sum(1 for c in self.slots if c is not None and not c.closed)


class EnginePool:
    """An ``EngineClient`` over several engines (see the module docstring for the rules)."""

    def __init__(
        self,
        engines: Sequence[str | tuple[str, int]],
        handlers: MethodRegistry | None = None,
        *,
        strategy: str = STRATEGY_FAILOVER,
        connections: int = DEFAULT_POOL_CONNECTIONS,
        reply_timeout: float | None = DEFAULT_REPLY_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        reconnect_delay_min: float = RECONNECT_DELAY_MIN,
        reconnect_delay_max: float = RECONNECT_DELAY_MAX,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        if not engines:
            raise ValueError("EnginePool needs at least one engine address")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections}")
        self.handlers = handlers if handlers is not None else MethodRegistry()
        self.strategy = strategy
        self.reply_timeout = reply_timeout
        self.connect_timeout = connect_timeout
        self._delay_min = reconnect_delay_min
        self._delay_max = max(reconnect_delay_max, reconnect_delay_min)
        self._max_message_size = max_message_size
        self._engines = [_Engine(parse_engine_address(a), connections) for a in engines]
        self._max_attempts = len(self._engines) * connections
        self._next = 0  # round robin: index of the engine the next call starts at
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._live = 0
        self._any_live: asyncio.Event | None = None
        self._in_flight = 0
        self._idle: asyncio.Event | None = None

    # ----------------------------------------------------------------------- lifecycle
    async def start(self) -> bool:
        """Starts connecting every slot in the background and waits for each slot's first
        attempt (at most ``connect_timeout``); returns whether any engine is connected. Engines
        that are down are retried in the background, so this never fails."""
        if self._tasks:
            raise RuntimeError("EnginePool already started")
        self._any_live = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        loop = asyncio.get_running_loop()
        first_attempts: list[asyncio.Future[None]] = []
        for engine in self._engines:
            for index in range(len(engine.slots)):
                attempted: asyncio.Future[None] = loop.create_future()
                first_attempts.append(attempted)
                self._tasks.append(
                    loop.create_task(
                        self._keep_connected(engine, index, attempted),
                        name=f"engine-pool {engine.label}#{index}",
                    )
                )
        await asyncio.wait(first_attempts)
        if not self._live:
            logger.warning(
                "no engine reachable yet (%s); retrying in the background",
                ", ".join(e.label for e in self._engines),
            )
        return self._live > 0

    async def drain(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the calls in flight to finish; whether they did."""
        if self._idle is None or self._idle.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("%d engine call(s) in flight after %.1fs", self._in_flight, timeout)
            return False
        return True

    async def close(self) -> None:
        """Stops reconnecting and closes every connection (calls still waiting fail with
        ``RpcDisconnectedError``)."""
        self._closing = True
        connections = [c for engine in self._engines for c in engine.slots if c is not None]
        for connection in connections:
            connection.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections:
            await connection.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------- queries
    @property
    def in_flight(self) -> int:
        """Calls sent (or waiting for a connection) and not answered yet."""
        return self._in_flight

    def status(self) -> dict[str, int]:
        """Live connections per engine, ``{"127.0.0.1:2012": 2, ...}``."""
        return {engine.label: engine.live() for engine in self._engines}

    # ---------------------------------------------------------------------------- call
    async def call(self, method: str, params: Any) -> Any:
        """The result of ``method`` on an engine; raises ``RpcError`` (the engine's error text),
        ``RpcTimeoutError`` ("REPLY_TIMEOUT") or ``RpcDisconnectedError`` ("DISCONNECTED")."""
        self._in_flight += 1
        if self._idle is not None:
            self._idle.clear()
        try:
            return await self._call(method, params)
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._idle is not None:
                self._idle.set()

    async def _call(self, method: str, params: Any) -> Any:
        tried: set[RpcConnection] | None = None
        last_engine: _Engine | None = None
        while True:
            picked = self._pick(tried, last_engine)
            if picked is None:
                if tried is not None:  # every connection tried dropped the call
                    raise RpcDisconnectedError(ERROR_DISCONNECTED)
                picked = await self._wait_for_connection()
            engine, connection = picked
            try:
                return await connection.call(method, params, self.reply_timeout)
            except RpcDisconnectedError:
                # The request may have reached the engine: resend only what cannot charge twice.
                if not retry_safe(method, params):
                    raise
                if tried is None:
                    tried = set()
                tried.add(connection)
                if len(tried) >= self._max_attempts:
                    raise
                last_engine = engine
                logger.info(
                    "%s: connection to %s dropped before the reply; retrying (retry-safe)",
                    method,
                    engine.label,
                )

    def _pick(
        self, exclude: set[RpcConnection] | None, prefer: _Engine | None
    ) -> tuple[_Engine, RpcConnection] | None:
        if prefer is not None:  # the same engine's reply cache recognises the retransmission
            connection = prefer.best(exclude)
            if connection is not None:
                return prefer, connection
        engines = self._engines
        count = len(engines)
        start = 0
        if self.strategy == STRATEGY_ROUND_ROBIN:
            start = self._next
            self._next = (start + 1) % count
        for offset in range(count):
            engine = engines[(start + offset) % count]
            connection = engine.best(exclude)
            if connection is not None:
                return engine, connection
        return None

    async def _wait_for_connection(self) -> tuple[_Engine, RpcConnection]:
        if self._any_live is None:
            raise RuntimeError("EnginePool.start() was not awaited")
        deadline = time.monotonic() + self.connect_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                raise RpcDisconnectedError(ERROR_DISCONNECTED)
            try:
                async with asyncio.timeout(remaining):
                    await self._any_live.wait()
            except TimeoutError:
                raise RpcDisconnectedError(ERROR_DISCONNECTED) from None
            picked = self._pick(None, None)
            if picked is not None:
                return picked
            await asyncio.sleep(0)  # a connection went up and down again: look once more

    # ---------------------------------------------------------------------- reconnects
    async def _keep_connected(
        self, engine: _Engine, index: int, attempted: asyncio.Future[None]
    ) -> None:
        loop = asyncio.get_running_loop()
        host, port = engine.address
        delay = self._delay_min
        failures = 0
        try:
            while not self._closing:
                connection: RpcConnection | None = None
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        _, connection = await loop.create_connection(
                            lambda: RpcConnection(
                                self.handlers, max_message_size=self._max_message_size
                            ),
                            host,
                            port,
                        )
                except (OSError, TimeoutError) as exc:
                    if not attempted.done():
                        attempted.set_result(None)
                    failures += 1
                    if failures == 1:  # once per outage, not once per attempt
                        logger.warning("cannot connect to engine %s: %s", engine.label, exc)
                # Back off outside the handler: compiled code must not suspend while
                # handling an exception (tests/unit/test_native.py says why).
                if connection is None:
                    await asyncio.sleep(backoff_delay(delay))
                    delay = min(delay * 2, self._delay_max)
                    continue
                if failures:
                    logger.info("connected to engine %s again", engine.label)
                failures = 0
                connected_at = time.monotonic()
                engine.slots[index] = connection
                self._connection_up()
                if not attempted.done():
                    attempted.set_result(None)
                try:
                    await connection.wait_closed()
                finally:
                    engine.slots[index] = None
                    self._connection_down()
                if self._closing:
                    return
                logger.warning("connection to engine %s lost; reconnecting", engine.label)
                if time.monotonic() - connected_at >= RECONNECT_STABLE_AFTER:
                    delay = self._delay_min
                await asyncio.sleep(backoff_delay(delay))
                delay = min(delay * 2, self._delay_max)
        finally:
            if not attempted.done():
                attempted.set_result(None)

    def _connection_up(self) -> None:
        self._live += 1
        if self._any_live is not None:
            self._any_live.set()

    def _connection_down(self) -> None:
        self._live -= 1
        if not self._live and self._any_live is not None:
            self._any_live.clear()
