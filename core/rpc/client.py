"""Clients for calling a ``MethodRegistry``: over TCP (``RpcClient``) or in-process.

All implement ``EngineClient``, the one method the rest of the suite depends on:
``RpcClient`` (one connection, no reconnection: scripts, ``tp load``), ``EnginePool`` in
``core.rpc.pool`` (agents: several engines, failover or round robin, reconnection, retry of
retry-safe calls) and ``InProcessClient`` (``chargeflow up --single-process`` and tests).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Protocol, Self

from core.rpc.codec import MAX_MESSAGE_SIZE
from core.rpc.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REPLY_TIMEOUT,
    ERROR_DISCONNECTED,
    RpcConnection,
    RpcDisconnectedError,
)
from core.rpc.registry import TRANSPORT_INTERNAL, CallContext, MethodRegistry


class EngineClient(Protocol):
    """Something that runs CGRateS API calls: returns the result or raises ``RpcError`` (the
    engine's error text); over the network also ``RpcTimeoutError`` / ``RpcDisconnectedError``."""

    async def call(self, method: str, params: Any) -> Any: ...


class RpcClient:
    """One TCP connection to a JSON-RPC server; concurrent calls are pipelined on it.

    ``handlers`` serve the calls the server makes back on the same connection (an agent's
    ``AgentV1.*`` methods); without them such calls get "rpc: can't find service ...".
    """

    def __init__(
        self, connection: RpcConnection, *, timeout: float | None = DEFAULT_REPLY_TIMEOUT
    ) -> None:
        self.connection = connection
        self.timeout = timeout

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        handlers: MethodRegistry | None = None,
        *,
        timeout: float | None = DEFAULT_REPLY_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> RpcClient:
        """Connects (raising ``TimeoutError``/``OSError`` on failure); ``timeout`` is the
        per-call reply timeout (``None``: wait forever)."""
        registry = handlers if handlers is not None else MethodRegistry()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            _, connection = await loop.create_connection(
                lambda: RpcConnection(registry, max_message_size=max_message_size), host, port
            )
        return cls(connection, timeout=timeout)

    @property
    def closed(self) -> bool:
        return self.connection.closed

    async def call(self, method: str, params: Any) -> Any:
        """The result of ``method``; raises ``RpcError`` (the server's error text),
        ``RpcTimeoutError`` or ``RpcDisconnectedError``."""
        return await self.connection.call(method, params, self.timeout)

    async def close(self) -> None:
        """Closes the connection and waits until it is closed."""
        self.connection.close()
        await self.connection.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class InProcessLink:
    """The engine's way back to an agent in its own process: calls the agent's ``AgentV1.*``
    handlers as ``RpcConnection.call`` would call them over the wire."""

    def __init__(self, handlers: MethodRegistry, peer: str) -> None:
        self.handlers = handlers
        self.context = CallContext(TRANSPORT_INTERNAL, peer, None)
        self._peer = peer
        self._closed = False

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """After this the engine sees the agent as gone (as a closed connection)."""
        self._closed = True

    async def call(
        self, method: str, params: Any, timeout: float | None = DEFAULT_REPLY_TIMEOUT
    ) -> Any:
        if self._closed:
            raise RpcDisconnectedError(ERROR_DISCONNECTED)
        async with asyncio.timeout(timeout):
            return await self.handlers.call(method, params, self.context)


class InProcessClient:
    """Calls a registry directly, with ``ctx.transport == "internal"``.

    Arguments and results are passed as they are, not through JSON: handlers must return
    JSON-shaped values (as over the wire) and neither side should mutate what it passed on.
    With ``callbacks`` (an agent's ``AgentV1.*`` handlers) the engine can call the agent back,
    as it would over the agent's TCP connection; without, calls come with no connection.
    """

    def __init__(
        self,
        registry: MethodRegistry,
        peer: str = TRANSPORT_INTERNAL,
        callbacks: MethodRegistry | None = None,
    ) -> None:
        self.registry = registry
        self.link = None if callbacks is None else InProcessLink(callbacks, peer)
        self.context = CallContext(TRANSPORT_INTERNAL, peer, self.link)

    async def call(self, method: str, params: Any) -> Any:
        return await self.registry.call(method, params, self.context)

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
