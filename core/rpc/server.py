"""The engine's JSON-RPC listeners: raw TCP (``*json`` in CGRateS, port 2012) and HTTP
(``POST /jsonrpc``, port 2080).

HTTP behaviour, decided here: the body is one request object and the reply is one response
object, always with HTTP 200 and ``Content-Type: application/json`` -- also for RPC errors (as
CGRateS) and for a body that is not valid JSON-RPC, which gets
``{"id":null,"result":null,"error":"jsonrpc: invalid JSON: ..."}`` (id kept when readable), so
JSON-RPC clients always find an answer to parse. Other paths give 404, other verbs 405.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any, Final, cast

from aiohttp import web

from core.rpc.codec import (
    ERROR_MISSING_METHOD,
    MAX_MESSAGE_SIZE,
    Response,
    RpcDecodeError,
    decode_message,
    encode_response,
)
from core.rpc.connection import RpcConnection, RpcStats, encode_result, format_peer
from core.rpc.registry import TRANSPORT_HTTP, TRANSPORT_TCP, CallContext, MethodRegistry, RpcError

logger = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_TCP_PORT: Final = 2012
DEFAULT_HTTP_PORT: Final = 2080
HTTP_PATH: Final = "/jsonrpc"
CLOSE_GRACE: Final = 5.0
"""Seconds ``close`` lets running async handlers finish (and answer) before cancelling them."""
JSON_CONTENT_TYPE: Final = "application/json"


class RpcServer:
    """Serves one ``MethodRegistry`` over TCP and HTTP; tracks live TCP connections and counters."""

    def __init__(self, registry: MethodRegistry, *, max_message_size: int = MAX_MESSAGE_SIZE):
        self.registry = registry
        self.stats = RpcStats()
        self.max_message_size = max_message_size
        self._connections: set[RpcConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tcp_servers: list[asyncio.Server] = []
        self._http_runners: list[web.AppRunner] = []

    # ---------------------------------------------------------------------------- listeners
    async def start_tcp(
        self, host: str = DEFAULT_HOST, port: int = DEFAULT_TCP_PORT
    ) -> tuple[str, int]:
        """Listens for JSON-RPC over TCP; returns the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._new_connection, host, port, reuse_address=True)
        self._tcp_servers.append(server)
        # Typed as a tuple, but uvloop's is a list: read untyped (mypyc would check for a tuple).
        sockets: Sequence[socket.socket] = cast(Any, server).sockets
        bound = sockets[0].getsockname()
        logger.info("JSON-RPC over TCP listening on %s:%s", bound[0], bound[1])
        return str(bound[0]), int(bound[1])

    async def start_http(
        self, host: str = DEFAULT_HOST, port: int = DEFAULT_HTTP_PORT, path: str = HTTP_PATH
    ) -> tuple[str, int]:
        """Serves ``POST path`` with aiohttp; returns the bound address."""
        app = web.Application(client_max_size=self.max_message_size)
        app.router.add_post(path, self._handle_http)
        runner = web.AppRunner(app, access_log=None)  # no per-request logging
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        failure: OSError | None = None
        try:
            await site.start()
        except OSError as exc:
            failure = exc
        if failure is not None:
            # Cleaned up outside the handler: compiled code must not suspend while handling
            # an exception (tests/unit/test_native.py says why).
            await runner.cleanup()
            raise failure
        self._http_runners.append(runner)
        bound = runner.addresses[0]
        logger.info("JSON-RPC over HTTP listening on http://%s:%s%s", bound[0], bound[1], path)
        return str(bound[0]), int(bound[1])

    # -------------------------------------------------------------------------- connections
    @property
    def connections(self) -> list[RpcConnection]:
        """Live TCP connections (a copy)."""
        return list(self._connections)

    def find_connection(self, peer: str) -> RpcConnection | None:
        """The live connection from ``peer`` (``"host:port"``), if any."""
        for connection in self._connections:
            if connection.peer == peer:
                return connection
        return None

    def status(self) -> dict[str, Any]:
        """Counters for ``CoreSv1.Status``."""
        return {**self.stats.as_dict(), "live_connections": len(self._connections)}

    def _new_connection(self) -> RpcConnection:
        connection = RpcConnection(
            self.registry,
            transport_name=TRANSPORT_TCP,
            stats=self.stats,
            tasks=self._tasks,
            on_close=self._connections.discard,
            max_message_size=self.max_message_size,
        )
        self._connections.add(connection)
        return connection

    # --------------------------------------------------------------------------------- HTTP
    async def _handle_http(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.stats.requests += 1
        try:
            message = decode_message(body)
            if isinstance(message, Response):
                raise RpcDecodeError(ERROR_MISSING_METHOD, message.id)
        except RpcDecodeError as exc:
            self.stats.errors += 1
            return _json_response(encode_response(exc.id, None, exc.message))
        peer = format_peer(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        ctx = CallContext(TRANSPORT_HTTP, peer, None)
        try:
            result = await self.registry.call(message.method, message.params, ctx)
        except RpcError as error:  # a name of its own: mypyc types each name once
            self.stats.errors += 1
            return _json_response(encode_response(message.id, None, error.message))
        reply, failed = encode_result(message.method, message.id, result)
        if failed:
            self.stats.errors += 1
        return _json_response(reply)

    # ------------------------------------------------------------------------------ closing
    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Stops listening, lets running handlers answer for up to ``grace`` seconds, cancels
        the rest, then closes every connection."""
        for server in self._tcp_servers:
            server.close()
        runners, self._http_runners = self._http_runners, []
        for runner in runners:
            await runner.cleanup()
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()
        servers, self._tcp_servers = self._tcp_servers, []
        for server in servers:
            await server.wait_closed()


def _json_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=JSON_CONTENT_TYPE)
