"""One bidirectional JSON-RPC connection over a stream transport (TCP).

Both ends of a CGRateS connection may call the other: an agent calls ``SessionSv1.*`` on the
engine and the engine calls ``AgentV1.*`` back on the same socket. ``RpcConnection`` therefore
serves incoming requests through a ``MethodRegistry`` and also makes its own calls
(``await conn.call(...)``), telling the peer's replies from its requests by their shape.

Hot-path choices: replies of sync handlers are produced inside ``data_received`` without a task
(by the method's reply writer when it has one and it answers) and everything one read produced
goes out in one ``transport.write``; replies of async handlers
and our own requests are queued and flushed once per event-loop iteration. When the transport's
write buffer is full, reading pauses, so a peer cannot pile up unbounded replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from core.rpc.codec import (
    MAX_MESSAGE_SIZE,
    REPLY_TAIL,
    MessageDecoder,
    Request,
    Response,
    RpcProtocolError,
    encode_request,
    encode_response,
    reply_lead,
)
from core.rpc.registry import (
    SERVER_ERROR,
    TRANSPORT_TCP,
    CallContext,
    MethodEntry,
    MethodRegistry,
    RpcError,
    handler_failure,
)

logger = logging.getLogger(__name__)

DEFAULT_REPLY_TIMEOUT: Final = 2.0
"""Seconds to wait for a reply; CGRateS's default ``reply_timeout`` for its RPC connections."""
DEFAULT_CONNECT_TIMEOUT: Final = 1.0
"""Seconds to wait for a TCP connection; CGRateS's default ``connect_timeout``."""

MAX_RUNNING_HANDLERS: Final = 1024
"""Async handlers in progress on one connection beyond which reading pauses (a peer that
pipelines without waiting would otherwise start unbounded tasks)."""

ERROR_REPLY_TIMEOUT: Final = "REPLY_TIMEOUT"  # CGRateS rpcclient's texts
ERROR_DISCONNECTED: Final = "DISCONNECTED"


@mypyc_attr(native_class=False)  # mypyc: a native class cannot derive from OSError
class RpcTimeoutError(TimeoutError):
    """No reply to our call within its timeout (the call is forgotten; a late reply is dropped)."""


@mypyc_attr(native_class=False)
class RpcDisconnectedError(ConnectionError):
    """The connection is closed, or closed while our call waited for its reply."""


class RpcStats:
    """Counters shared by the connections of one server (for ``CoreSv1.Status``)."""

    __slots__ = ("connections", "errors", "requests")

    def __init__(self) -> None:
        self.requests = 0  # requests received (answered or not yet)
        self.errors = 0  # answers carrying an error
        self.connections = 0  # connections accepted, ever

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "errors": self.errors, "connections": self.connections}


def format_peer(peername: Any) -> str:
    """``("127.0.0.1", 5000)`` -> ``"127.0.0.1:5000"`` (IPv6 in brackets), as Go prints it."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "" if peername is None else str(peername)


def encode_result(method: str, request_id: Any, result: Any) -> tuple[bytes, bool]:
    """The reply for a handler's result, and whether it had to become an error because the
    result cannot be encoded as JSON."""
    try:
        return encode_response(request_id, result, None), False
    except TypeError as exc:
        if isinstance(result, Coroutine):
            result.close()
            text = f"{SERVER_ERROR}: handler returned a coroutine; register it with is_async=True"
        else:
            text = f"{SERVER_ERROR}: cannot encode result: {exc}"
        logger.error("%s: %s", method, text)
        return encode_response(request_id, None, text), True


class RpcConnection(asyncio.Protocol):
    """A JSON-RPC connection: serves the peer's requests and makes calls to the peer."""

    def __init__(
        self,
        registry: MethodRegistry,
        *,
        transport_name: str = TRANSPORT_TCP,
        stats: RpcStats | None = None,
        tasks: set[asyncio.Task[None]] | None = None,
        on_close: Callable[[RpcConnection], None] | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_running: int = MAX_RUNNING_HANDLERS,
    ) -> None:
        self._registry = registry
        self._max_running = max_running
        self._lookup = registry.lookup
        self._decoder = MessageDecoder(max_message_size)
        self._transport_name = transport_name
        self._stats = stats if stats is not None else RpcStats()
        # Handler tasks are referenced here until done (the loop keeps only weak references).
        self._tasks: set[asyncio.Task[None]] = tasks if tasks is not None else set()
        self._close_callbacks: list[Callable[[RpcConnection], None]] = []
        if on_close is not None:
            self._close_callbacks.append(on_close)
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: dict[int, tuple[asyncio.Future[Any], asyncio.TimerHandle | None]] = {}
        self._last_id = 0
        self._queued: list[bytes] = []
        self._flush_scheduled = False
        self._paused = False  # the transport's write buffer is full
        self._reading = True
        self._writable: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._closed = False
        self._running = 0  # async handlers still working for this connection
        self._eof = False  # the peer finished sending; close once running handlers answered
        self.peer = ""
        self.context = CallContext(transport_name, "", self)

    # ----------------------------------------------------------------------- public surface
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_calls(self) -> int:
        """Our calls still waiting for the peer's reply."""
        return len(self._calls)

    def add_close_callback(self, callback: Callable[[RpcConnection], None]) -> None:
        """Runs ``callback(connection)`` once the connection is lost (e.g. to drop sessions)."""
        if self._closed:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    async def call(
        self, method: str, params: Any, timeout: float | None = DEFAULT_REPLY_TIMEOUT
    ) -> Any:
        """Calls ``method`` on the peer; returns its result or raises ``RpcError`` with its
        error text, ``RpcTimeoutError`` or ``RpcDisconnectedError``."""
        if self._paused and not self._closed:
            try:
                async with asyncio.timeout(timeout):
                    await self._wait_writable()
            except TimeoutError:
                raise RpcTimeoutError(ERROR_REPLY_TIMEOUT) from None
        transport, loop = self._transport, self._loop
        if self._closed or transport is None or loop is None:
            raise RpcDisconnectedError(ERROR_DISCONNECTED)
        self._last_id += 1
        call_id = self._last_id
        body = encode_request(method, params, call_id)
        future: asyncio.Future[Any] = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, self._expire, call_id)
        # Nothing else in flight: waiting for the end of the loop turn would only add latency
        # (under load, calls still share one write).
        alone = not self._calls and not self._queued and not self._paused
        self._calls[call_id] = (future, timer)
        if alone:
            transport.write(body)
        else:
            self._queue(body)
        try:
            return await future
        except asyncio.CancelledError:
            self._forget(call_id)
            raise

    def close(self) -> None:
        """Closes the connection after writing what is buffered."""
        if self._transport is not None and not self._transport.is_closing():
            self._flush()
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._lost is not None:
            await asyncio.shield(self._lost)

    # -------------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self._lost = self._loop.create_future()
        self.peer = format_peer(transport.get_extra_info("peername"))
        self.context = CallContext(self._transport_name, self.peer, self)
        self._stats.connections += 1

    def data_received(self, data: bytes) -> None:
        items = self._decoder.feed(data)
        out = self._queued  # async replies waiting for their flush go out in the same write
        lookup = self._lookup
        ctx = self.context
        requests = errors = 0
        for item in items:
            if type(item) is Request:
                requests += 1
                entry = lookup(item.method)
                if entry is None:
                    errors += 1
                    text = self._registry.missing_method_error(item.method)
                    out.append(encode_response(item.id, None, text))
                elif entry.is_async:
                    self._start_task(entry, item.params, item.id)
                else:
                    writer = entry.writer
                    try:
                        if writer is not None:  # the result encoded, skipping encode_response
                            parts = writer(item.params, ctx)
                            if parts is not None:  # joined with the other replies by _flush
                                out.append(reply_lead(item.id))
                                out += parts
                                out.append(REPLY_TAIL)
                                continue
                        result = entry.handler(item.params, ctx)
                    except Exception as exc:
                        errors += 1
                        text = handler_failure(entry.name, exc).message
                        out.append(encode_response(item.id, None, text))
                    else:
                        try:
                            out.append(encode_response(item.id, result, None))
                        except TypeError:
                            errors += 1
                            out.append(encode_result(entry.name, item.id, result)[0])
            elif type(item) is Response:
                self._resolve(item)
            elif isinstance(item, RpcProtocolError):  # answer it (id null if unknown), read on
                errors += 1
                out.append(encode_response(item.id, None, item.message))
        if requests or errors:
            stats = self._stats
            stats.requests += requests
            stats.errors += errors
        if out:
            self._flush()
        if self._running >= self._max_running:
            self._update_reading()

    def eof_received(self) -> bool | None:
        # As Go's server: answer the requests still running, then close our side too.
        self._flush()
        if self._running:
            self._eof = True
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._queued.clear()
        self._decoder.reset()
        calls, self._calls = self._calls, {}
        for future, timer in calls.values():
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_exception(RpcDisconnectedError(ERROR_DISCONNECTED))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("close callback of connection %s failed", self.peer)

    def pause_writing(self) -> None:
        self._paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused = False
        self._update_reading()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # ----------------------------------------------------------------------------- helpers
    def _start_task(self, entry: MethodEntry, params: Any, request_id: Any) -> None:
        assert self._loop is not None
        self._running += 1
        task = self._loop.create_task(self._run_async(entry, params, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(self, entry: MethodEntry, params: Any, request_id: Any) -> None:
        try:
            result = await entry.handler(params, self.context)
        except Exception as exc:
            self._stats.errors += 1
            text = handler_failure(entry.name, exc).message
            self._queue(encode_response(request_id, None, text))
        else:
            body, failed = encode_result(entry.name, request_id, result)
            if failed:
                self._stats.errors += 1
            self._queue(body)
        finally:
            self._running -= 1
        if not self._reading:
            self._update_reading()
        if self._eof and not self._running:
            self.close()

    def _update_reading(self) -> None:
        """Reads only while replies can be written and running handlers are few enough."""
        wanted = not self._paused and self._running < self._max_running
        transport = self._transport
        if wanted == self._reading or transport is None or transport.is_closing():
            return
        self._reading = wanted
        if wanted:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def _queue(self, body: bytes) -> None:
        """Writes ``body`` at the end of this loop iteration, with whatever else is queued."""
        if self._closed:
            return
        self._queued.append(body)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._queued
        if not out:
            return
        self._queued = []
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _resolve(self, response: Response) -> None:
        call_id = response.id
        waiter = self._calls.pop(call_id, None) if type(call_id) is int else None
        if waiter is None:
            logger.debug("%s: reply to unknown call id %r dropped", self.peer, call_id)
            return
        future, timer = waiter
        if timer is not None:
            timer.cancel()
        if future.done():
            return
        if response.error is None:
            future.set_result(response.result)
        else:
            future.set_exception(RpcError(response.error))

    def _expire(self, call_id: int) -> None:
        waiter = self._calls.pop(call_id, None)
        if waiter is not None and not waiter[0].done():
            waiter[0].set_exception(RpcTimeoutError(ERROR_REPLY_TIMEOUT))

    def _forget(self, call_id: int) -> None:
        waiter = self._calls.pop(call_id, None)
        if waiter is not None and waiter[1] is not None:
            waiter[1].cancel()

    async def _wait_writable(self) -> None:
        if self._writable is None or self._writable.done():
            assert self._loop is not None
            self._writable = self._loop.create_future()
        await asyncio.shield(self._writable)
