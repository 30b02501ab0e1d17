"""Diameter peer transport (RFC 6733 over TCP, asyncio): framing, capabilities exchange,
watchdog (RFC 3539), disconnect, dispatch of application requests to a handler, and requests
sent to a connected peer with answer correlation.

The server side accepts peers; ``connect`` opens a connection out to one. Bytes are parsed only
by ``codec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

from . import codec
from .codec import (
    APP_RELAY,
    AVP_ACCT_APPLICATION_ID,
    AVP_AUTH_APPLICATION_ID,
    AVP_DISCONNECT_CAUSE,
    AVP_FIRMWARE_REVISION,
    AVP_HOST_IP_ADDRESS,
    AVP_INBAND_SECURITY_ID,
    AVP_ORIGIN_HOST,
    AVP_ORIGIN_REALM,
    AVP_ORIGIN_STATE_ID,
    AVP_PRODUCT_NAME,
    AVP_RESULT_CODE,
    AVP_SUPPORTED_VENDOR_ID,
    AVP_VENDOR_ID,
    AVP_VENDOR_SPECIFIC_APPLICATION_ID,
    CMD_CAPABILITIES_EXCHANGE,
    CMD_CREDIT_CONTROL,
    CMD_DEVICE_WATCHDOG,
    CMD_DISCONNECT_PEER,
    DIAMETER_APPLICATION_UNSUPPORTED,
    DIAMETER_COMMAND_UNSUPPORTED,
    DIAMETER_INVALID_MESSAGE_LENGTH,
    DIAMETER_MISSING_AVP,
    DIAMETER_NO_COMMON_APPLICATION,
    DIAMETER_SUCCESS,
    DIAMETER_TOO_BUSY,
    DIAMETER_UNABLE_TO_COMPLY,
    DIAMETER_UNKNOWN_PEER,
    FLAG_REQUEST,
    HEADER_LEN,
    Avp,
    DiameterDecodeError,
    DiameterMessage,
)

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 3868
DEFAULT_WATCHDOG: Final = 30.0
MISSED_WATCHDOGS_BEFORE_CLOSE: Final = 3
DISCONNECT_CAUSE_REBOOTING: Final = 0
DISCONNECT_CAUSE_DO_NOT_WANT_TO_TALK: Final = 2
INBAND_SECURITY_NO: Final = 0
DRAIN_ABOVE: Final = 16 * 1024  # bytes buffered for a peer beyond which an answer waits
READ_SIZE: Final = 64 * 1024


class PeerInfo(Protocol):
    """What a request handler reads of the peer that sent the request: a ``Peer``, or a
    stand-in (dry runs, benchmarks). A Protocol, so compiled handlers take either."""

    @property
    def address(self) -> str: ...

    @property
    def origin_host(self) -> str | None: ...

    @property
    def origin_realm(self) -> str | None: ...


Handler = Callable[[DiameterMessage, PeerInfo], Awaitable[DiameterMessage | None]]


class DiameterTransportError(Exception):
    """A request could not be sent or was not answered (no peer, closed, timeout)."""


@dataclass(frozen=True, slots=True)
class AllowedPeer:
    """A peer allowed in: its Origin-Host, and the source addresses it may come from
    (empty: any address)."""

    origin_host: str
    addresses: frozenset[str] = frozenset()


@dataclass(slots=True)
class DiameterConfig:
    origin_host: str
    origin_realm: str
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    vendor_id: int = 0
    product_name: str = "chargeflow"
    firmware_revision: int = 1
    auth_application_ids: tuple[int, ...] = (codec.APP_CREDIT_CONTROL,)
    acct_application_ids: tuple[int, ...] = ()
    # (Vendor-Id, Auth-Application-Id) pairs advertised in Vendor-Specific-Application-Id.
    vendor_specific_application_ids: tuple[tuple[int, int], ...] = ()
    supported_vendor_ids: tuple[int, ...] = (codec.VENDOR_3GPP,)
    # Application requests we handle (command codes); anything else gets 3001.
    commands: frozenset[int] = frozenset({CMD_CREDIT_CONTROL})
    # None: any peer may connect; otherwise only these.
    allowed_peers: tuple[AllowedPeer, ...] | None = None
    watchdog_interval: float = DEFAULT_WATCHDOG
    # RFC 3539 §3.4.1 jitters Tw by ±2 s so peers do not fall into step; None: ±2 s, but at
    # most a quarter of Tw (tests use Tw far below 6 s).
    watchdog_jitter: float | None = None
    cer_timeout: float = 10.0
    request_timeout: float = 5.0
    max_message_size: int = 1 << 20
    max_in_flight: int = 1024  # application requests being handled at once, all peers
    # TLS from the first byte (RFC 6733 §2.1, port 5658 by convention): a server-side context
    # for listening, a client-side one for connecting out. None: plain TCP. The older in-band
    # upgrade (Inband-Security-Id TLS after CER/CEA) is not supported: we advertise NO_INBAND.
    tls_server: ssl.SSLContext | None = None
    tls_client: ssl.SSLContext | None = None
    origin_state_id: int = field(default_factory=lambda: int(time.time()) & 0xFFFFFFFF)


class PeerState(enum.Enum):
    WAIT_CER = "wait-cer"
    WAIT_CEA = "wait-cea"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def _advertised_apps(config: DiameterConfig) -> set[int]:
    apps = set(config.auth_application_ids) | set(config.acct_application_ids)
    apps.update(app for _, app in config.vendor_specific_application_ids)
    return apps


def _capabilities(config: DiameterConfig) -> list[Avp]:
    """Our side of CER/CEA after Origin-Host/Realm (RFC 6733 §5.3.1)."""
    mandatory = codec.AVP_FLAG_MANDATORY
    avps = [Avp(AVP_HOST_IP_ADDRESS, 0, mandatory, ip) for ip in config.host_ip_addresses]
    avps.append(Avp(AVP_VENDOR_ID, 0, mandatory, config.vendor_id))
    avps.append(Avp(AVP_PRODUCT_NAME, 0, 0, config.product_name))
    avps.append(Avp(AVP_ORIGIN_STATE_ID, 0, mandatory, config.origin_state_id))
    avps.extend(Avp(AVP_SUPPORTED_VENDOR_ID, 0, mandatory, v) for v in config.supported_vendor_ids)
    avps.extend(Avp(AVP_AUTH_APPLICATION_ID, 0, mandatory, a) for a in config.auth_application_ids)
    avps.extend(Avp(AVP_ACCT_APPLICATION_ID, 0, mandatory, a) for a in config.acct_application_ids)
    for vendor, app in config.vendor_specific_application_ids:
        inner = [
            Avp(AVP_VENDOR_ID, 0, mandatory, vendor),
            Avp(AVP_AUTH_APPLICATION_ID, 0, mandatory, app),
        ]
        avps.append(Avp(AVP_VENDOR_SPECIFIC_APPLICATION_ID, 0, mandatory, inner))
    avps.append(Avp(AVP_INBAND_SECURITY_ID, 0, mandatory, INBAND_SECURITY_NO))
    avps.append(Avp(AVP_FIRMWARE_REVISION, 0, 0, config.firmware_revision))
    return avps


def _peer_apps(cer: DiameterMessage) -> set[int]:
    apps = {item.value for item in cer.find(AVP_AUTH_APPLICATION_ID)}
    apps.update(item.value for item in cer.find(AVP_ACCT_APPLICATION_ID))
    for group in cer.find(AVP_VENDOR_SPECIFIC_APPLICATION_ID):
        for item in group.children:
            if item.code in (AVP_AUTH_APPLICATION_ID, AVP_ACCT_APPLICATION_ID) and not item.vendor:
                apps.add(item.value)
    return apps


def _common_apps(ours: set[int], theirs: set[int]) -> set[int]:
    if APP_RELAY in theirs or APP_RELAY in ours:
        return ours | theirs
    return ours & theirs


class _FrameProtocol(asyncio.StreamReaderProtocol):
    """A stream protocol that hands received bytes straight to its peer's framing
    (``Peer._received``) instead of queueing them in the StreamReader for the peer's task to
    wake up and take: one task wake-up less per read, which below saturation is per request.
    Bytes received before the peer attaches are kept for it; the end of the connection still
    reaches the StreamReader, which ``Peer.run`` waits on."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
        | None = None,
    ) -> None:
        super().__init__(reader, connected, loop=asyncio.get_running_loop())
        self._consumer: Callable[[bytes], None] | None = None
        self._early: list[bytes] = []

    def attach(self, consumer: Callable[[bytes], None]) -> None:
        self._consumer = consumer
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        consumer = self._consumer
        if consumer is None:
            self._early.append(data)
            return
        try:
            consumer(data)
        except Exception:
            # As an exception in the reading task did: this connection ends, not the agent.
            log.exception("closing a Diameter connection after an unexpected error")
            transport = self._transport  # type: ignore[attr-defined]
            if transport is not None:
                transport.close()


class Peer:
    """One connection to a Diameter peer, either side."""

    def __init__(
        self,
        node: DiameterNode,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        initiator: bool,
    ) -> None:
        self.node = node
        self.config = node.config
        self.reader = reader
        self.writer = writer
        self.initiator = initiator
        peername = writer.get_extra_info("peername")
        self.address: str = peername[0] if peername else ""
        self.state = PeerState.WAIT_CEA if initiator else PeerState.WAIT_CER
        self.origin_host: str | None = None
        self.origin_realm: str | None = None
        self.applications: set[int] = set()
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._pending: dict[int, asyncio.Future[DiameterMessage]] = {}
        self._hbh = itertools.count(random.getrandbits(31))
        self._e2e = itertools.count((int(time.time()) & 0xFFF) << 20 | random.getrandbits(20))
        self._last_rx = time.monotonic()
        self._missed_dwa = 0
        self._dwr_outstanding = False
        # Watchdog and disconnect traffic seen, for tests and monitoring.
        self.dwr_received = 0
        self.dwa_received = 0
        self.dpr_received = 0
        # Answers finished in one turn of the event loop while others are in flight go out
        # in one write (one send syscall instead of one per answer: under load they finish
        # in bursts, as engine replies arrive together); every write goes through this
        # queue, so the order is kept.
        self._outgoing: list[bytes] = []
        self._tasks: set[asyncio.Future[None]] = set()
        # Received bytes not yet a whole frame; set once a frame length is refused.
        self._unframed = b""
        self._refused = False
        self._watchdog: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Peer({self.origin_host or '?'}@{self.address}, {self.state.value})"

    # ------------------------------------------------------------------------------ sending
    def next_ids(self) -> tuple[int, int]:
        return next(self._hbh) & 0xFFFFFFFF, next(self._e2e) & 0xFFFFFFFF

    def send(self, message: DiameterMessage) -> None:
        if self.state is PeerState.CLOSED or self.writer.is_closing():
            return
        self._write(codec.encode(message))

    def _write(self, data: bytes, *, later: bool = False) -> None:
        """Writes ``data`` after what is queued: now, or (``later``) at the end of this turn
        of the event loop with whatever else is written until then."""
        outgoing = self._outgoing
        outgoing.append(data)
        if not later:
            self._flush()
        elif len(outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        outgoing = self._outgoing
        if not outgoing:
            return
        data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
        outgoing.clear()
        if not self.writer.is_closing():
            self.writer.write(data)

    async def request(
        self, message: DiameterMessage, timeout: float | None = None
    ) -> DiameterMessage:
        """Sends a request and waits for its answer (matched by hop-by-hop id)."""
        if self.state is not PeerState.OPEN and message.code != CMD_CAPABILITIES_EXCHANGE:
            raise DiameterTransportError(f"{self!r} is not open")
        message.flags |= FLAG_REQUEST
        if not message.hbh:
            message.hbh, fresh_e2e = self.next_ids()
            message.e2e = message.e2e or fresh_e2e
        future: asyncio.Future[DiameterMessage] = asyncio.get_running_loop().create_future()
        self._pending[message.hbh] = future
        try:
            self.send(message)
            return await asyncio.wait_for(future, timeout or self.config.request_timeout)
        except TimeoutError:
            raise DiameterTransportError(f"no answer from {self!r} in time") from None
        finally:
            self._pending.pop(message.hbh, None)

    def _new_request(self, code: int, avps: list[Avp]) -> DiameterMessage:
        hbh, e2e = self.next_ids()
        head = [
            Avp(AVP_ORIGIN_HOST, 0, codec.AVP_FLAG_MANDATORY, self.config.origin_host),
            Avp(AVP_ORIGIN_REALM, 0, codec.AVP_FLAG_MANDATORY, self.config.origin_realm),
        ]
        return DiameterMessage(code, codec.APP_COMMON, FLAG_REQUEST, hbh, e2e, head + avps)

    def _answer(self, request: DiameterMessage, result: int, avps: list[Avp] | None = None) -> None:
        answer = codec.answer_to(
            request,
            result,
            avps,
            origin_host=self.config.origin_host,
            origin_realm=self.config.origin_realm,
        )
        if 3000 <= result < 4000:
            answer.flags |= codec.FLAG_ERROR
        self.send(answer)

    def _error(self, request: DiameterMessage, result: int, failed: Avp | None = None) -> None:
        self.send(
            codec.error_answer(
                request,
                result,
                failed,
                origin_host=self.config.origin_host,
                origin_realm=self.config.origin_realm,
            )
        )

    # ------------------------------------------------------------------------------ running
    async def run(self) -> None:
        """Reads and dispatches until the connection ends, then tears the connection down.

        No ``await`` in an exception handler or ``finally`` here: compiled by mypyc (2.4), a
        coroutine suspended in one, awaited by another compiled coroutine, lets an exception
        thrown into it (a future failing, e.g. the socket's close waiter with BrokenPipeError)
        past the ``try``/``except`` of the coroutine it awaits (here ``_teardown``'s)."""
        try:
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except Exception:
            log.exception("%r: closing after an unexpected error", self)  # one peer, not all
        except BaseException:  # cancelled: torn down without waiting for the socket to close
            self._close_down()
            self.closed.set()
            raise
        await self._teardown()

    async def _serve(self) -> None:
        if self.initiator:
            self._start_task(self._send_cer())
        else:
            self._start_task(self._cer_deadline())
        protocol = self.writer.transport.get_protocol()
        if isinstance(protocol, _FrameProtocol):
            # Frames are dispatched from the protocol as bytes arrive; the reader then only
            # sees the end of the connection.
            protocol.attach(self._received)
        read = self.reader.read
        while self.state is not PeerState.CLOSED and not self._refused:
            data = await read(READ_SIZE)
            if not data:
                break
            self._received(data)

    def _received(self, data: bytes) -> None:
        """Dispatches every whole frame in what was received so far; keeps the rest."""
        if self._refused:
            return
        if self._unframed:
            data = self._unframed + data
        self._last_rx = time.monotonic()
        self._missed_dwa = 0
        size = len(data)
        start = 0
        while size - start >= HEADER_LEN:
            length = int.from_bytes(data[start + 1 : start + 4], "big")
            if length < HEADER_LEN or length > self.config.max_message_size or length % 4:
                self._refuse_length(data[start : start + HEADER_LEN], length)
                self._unframed = b""
                return
            end = start + length
            if end > size:
                break
            self._dispatch(data if start == 0 and end == size else data[start:end])
            start = end
        self._unframed = data[start:] if start < size else b""

    def _refuse_length(self, head: bytes, length: int) -> None:
        """The stream cannot be re-synchronised: answers if it was a request, then closes."""
        with contextlib.suppress(DiameterDecodeError):
            request = codec.decode_header(head)
            if request.is_request:
                self._error(request, DIAMETER_INVALID_MESSAGE_LENGTH)
        log.warning("%r: message length %d refused, closing", self, length)
        self.state = PeerState.CLOSING
        self._refused = True
        self.writer.close()  # what was written still goes out first

    def _dispatch(self, data: bytes) -> None:
        message: DiameterMessage | None = None
        try:
            message = codec.decode(data)
            message.validate()
            self._route(message)
        except DiameterDecodeError as exc:
            # Raised by decode/validate, or by a base-protocol value read in _route (CER, ...).
            exc.message = exc.message or message
            self._decode_failed(exc)

    def _route(self, message: DiameterMessage) -> None:
        if not message.is_request:
            self._on_answer(message)
            return
        code = message.code
        if self.state is PeerState.WAIT_CER:
            if code == CMD_CAPABILITIES_EXCHANGE:
                self._on_cer(message)
            else:
                log.warning("%r: %d before CER, closing", self, code)
                self._close_soon()
            return
        if self.state is not PeerState.OPEN:
            return
        if code == CMD_DEVICE_WATCHDOG:
            self.dwr_received += 1
            self._answer(message, DIAMETER_SUCCESS, [self._state_id()])
        elif code == CMD_DISCONNECT_PEER:
            self.dpr_received += 1
            self._answer(message, DIAMETER_SUCCESS)
            self._close_soon()
        elif code == CMD_CAPABILITIES_EXCHANGE:
            self._error(message, codec.DIAMETER_UNABLE_TO_COMPLY)  # CER on an open connection
        elif code not in self.config.commands or self.node.handler is None:
            self._error(message, DIAMETER_COMMAND_UNSUPPORTED)
        elif message.app_id not in self.applications and APP_RELAY not in self.applications:
            self._error(message, DIAMETER_APPLICATION_UNSUPPORTED)
        elif self.node.in_flight >= self.config.max_in_flight:
            self._error(message, DIAMETER_TOO_BUSY)
        else:
            # Counted down by a done callback: a task cancelled before it starts runs no finally.
            self.node.in_flight += 1
            task: asyncio.Future[None] = asyncio.ensure_future(self._handle(message))
            self._tasks.add(task)
            task.add_done_callback(self._request_done)  # one callback: one loop handle less

    def _request_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        self.node.request_done(task)

    def _decode_failed(self, exc: DiameterDecodeError) -> None:
        log.info("%r: undecodable message: %s", self, exc.reason)
        answer = codec.answer_for_error(
            exc, origin_host=self.config.origin_host, origin_realm=self.config.origin_realm
        )
        if answer is not None:
            self.send(answer)
        if self.state is not PeerState.OPEN:
            self._close_soon()

    def _state_id(self) -> Avp:
        return Avp(AVP_ORIGIN_STATE_ID, 0, codec.AVP_FLAG_MANDATORY, self.config.origin_state_id)

    async def _handle(self, request: DiameterMessage) -> None:
        handler = self.node.handler
        assert handler is not None
        try:
            answer = await handler(request, self)
            data = codec.encode(answer) if answer is not None else None
        except DiameterDecodeError as exc:
            # The handler read a malformed value: answer as for any undecodable request.
            exc.message = request
            log.info("%r: command %d: %s", self, request.code, exc.reason)
            error = codec.answer_for_error(
                exc, origin_host=self.config.origin_host, origin_realm=self.config.origin_realm
            )
            data = codec.encode(error) if error is not None else None
        except Exception:
            # A handler bug or an unencodable reply tree: the peer still gets an answer.
            log.exception("%r: no answer to command %d", self, request.code)
            failed = codec.answer_to(
                request,
                DIAMETER_UNABLE_TO_COMPLY,
                origin_host=self.config.origin_host,
                origin_realm=self.config.origin_realm,
            )
            data = codec.encode(failed)
        if data is not None and not self.writer.is_closing():
            # Alone, an answer goes out at once: waiting for the end of the turn would only
            # add latency; with others in flight, theirs may join it in one write.
            self._write(data, later=self.node.in_flight > 1)
            # drain() is two coroutine calls per answer; it only waits once the buffer passed
            # the transport's high-water mark, so it is called only then.
            if self.writer.transport.get_write_buffer_size() >= DRAIN_ABOVE:
                with contextlib.suppress(ConnectionError):
                    await self.writer.drain()

    def _on_answer(self, answer: DiameterMessage) -> None:
        if answer.code == CMD_DEVICE_WATCHDOG:
            self._dwr_outstanding = False
            self.dwa_received += 1
        future = self._pending.get(answer.hbh)
        if future is not None and not future.done():
            future.set_result(answer)
        elif answer.code not in (CMD_DEVICE_WATCHDOG, CMD_DISCONNECT_PEER):
            log.info("%r: unexpected answer hbh=%d", self, answer.hbh)

    # --------------------------------------------------------------------- capabilities
    def _on_cer(self, cer: DiameterMessage) -> None:
        origin_host = cer.first(AVP_ORIGIN_HOST)
        origin_realm = cer.first(AVP_ORIGIN_REALM)
        if not origin_host or not origin_realm:
            missing = AVP_ORIGIN_HOST if not origin_host else AVP_ORIGIN_REALM
            self._error(cer, DIAMETER_MISSING_AVP, Avp(missing, 0, codec.AVP_FLAG_MANDATORY, b""))
            self._close_soon()
            return
        self.origin_host, self.origin_realm = origin_host, origin_realm
        if not self.node.allows(origin_host, self.address):
            log.warning("%r: unknown peer, refused", self)
            self._cea(cer, DIAMETER_UNKNOWN_PEER)
            self._close_soon()
            return
        common = _common_apps(_advertised_apps(self.config), _peer_apps(cer))
        if not common:
            self._cea(cer, DIAMETER_NO_COMMON_APPLICATION)
            self._close_soon()
            return
        self.applications = common
        self._cea(cer, DIAMETER_SUCCESS)
        self._open()

    def _cea(self, cer: DiameterMessage, result: int) -> None:
        self._answer(cer, result, _capabilities(self.config))

    def _open(self) -> None:
        self.state = PeerState.OPEN
        assert self.origin_host is not None
        self.node.register(self)
        self.opened.set()
        self._watchdog = asyncio.create_task(self._watchdog_loop())
        log.info("%r: open, applications %s", self, sorted(self.applications))

    async def _send_cer(self) -> None:
        cer = self._new_request(CMD_CAPABILITIES_EXCHANGE, _capabilities(self.config))
        try:
            cea = await self.request(cer, self.config.cer_timeout)
            result = cea.first(AVP_RESULT_CODE)
            if result != DIAMETER_SUCCESS:
                log.warning("%r: CEA result %s, closing", self, result)
                self._close_soon()
                return
            self.origin_host = cea.first(AVP_ORIGIN_HOST)
            self.origin_realm = cea.first(AVP_ORIGIN_REALM)
            self.applications = _common_apps(_advertised_apps(self.config), _peer_apps(cea))
        except (DiameterTransportError, DiameterDecodeError) as exc:
            log.warning("%r: capabilities exchange failed: %s", self, exc)
            self._close_soon()
            return
        self._open()

    async def _cer_deadline(self) -> None:
        await asyncio.sleep(self.config.cer_timeout)
        if self.state is PeerState.WAIT_CER:
            log.warning("%r: no CER in %.0fs, closing", self, self.config.cer_timeout)
            self._close_soon()

    # ------------------------------------------------------------------------- watchdog
    async def _watchdog_loop(self) -> None:
        """RFC 3539: a DWR after Tw of silence; each Tw without an answer counts as missed."""
        interval = self.config.watchdog_interval
        jitter = self.config.watchdog_jitter
        if jitter is None:
            jitter = min(2.0, interval / 4)
        while self.state is PeerState.OPEN:
            tw = max(interval / 2, interval + random.uniform(-jitter, jitter))
            wait = self._last_rx + tw - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self._dwr_outstanding:
                self._missed_dwa += 1
                if self._missed_dwa >= MISSED_WATCHDOGS_BEFORE_CLOSE:
                    log.warning("%r: %d watchdogs unanswered, closing", self, self._missed_dwa)
                    self._close_soon()
                    return
            self._dwr_outstanding = True
            self.send(self._new_request(CMD_DEVICE_WATCHDOG, [self._state_id()]))
            await asyncio.sleep(tw)

    # ---------------------------------------------------------------------------- closing
    async def disconnect(self, cause: int = DISCONNECT_CAUSE_REBOOTING) -> None:
        """DPR, wait briefly for the DPA, close."""
        if self.state is PeerState.OPEN:
            dpr = self._new_request(
                CMD_DISCONNECT_PEER, [Avp(AVP_DISCONNECT_CAUSE, 0, codec.AVP_FLAG_MANDATORY, cause)]
            )
            with contextlib.suppress(DiameterTransportError):
                await self.request(dpr, min(self.config.request_timeout, 2.0))
        self._close_soon()
        await self.closed.wait()

    def _close_soon(self) -> None:
        if self.state is PeerState.CLOSED:
            return
        self.state = PeerState.CLOSING
        # Let queued answers (a CEA with an error, a DPA) reach the peer before closing.
        self._flush()
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
        self.writer.close()

    async def _teardown(self) -> None:
        self._close_down()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self.closed.set()

    def _close_down(self) -> None:
        self.state = PeerState.CLOSED
        self.node.unregister(self)
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in list(self._tasks):
            task.cancel()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DiameterTransportError(f"{self!r} closed"))
        self._flush()  # what was answered before the end still goes out
        self.writer.close()

    def _start_task(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task: asyncio.Future[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class DiameterNode:
    """Our Diameter node: a listening server and/or outgoing connections, sharing one config,
    one handler, one peer table and one concurrency cap."""

    def __init__(self, config: DiameterConfig, handler: Handler | None = None) -> None:
        self.config = config
        self.handler = handler
        self.in_flight = 0
        self.peers: dict[str, Peer] = {}
        self._all: set[Peer] = set()
        self._server: asyncio.Server | None = None
        self._runners: set[asyncio.Task[None]] = set()
        self._maintainers: set[asyncio.Task[None]] = set()
        self._allowed: Mapping[str, frozenset[str]] | None = (
            None
            if config.allowed_peers is None
            else {p.origin_host.lower(): p.addresses for p in config.allowed_peers}
        )

    def request_done(self, _: object) -> None:
        self.in_flight -= 1

    # ------------------------------------------------------------------------------ peers
    def allows(self, origin_host: str, address: str) -> bool:
        if self._allowed is None:
            return True
        addresses = self._allowed.get(origin_host.lower())
        return addresses is not None and (not addresses or address in addresses)

    def register(self, peer: Peer) -> None:
        assert peer.origin_host is not None
        old = self.peers.get(peer.origin_host)
        if old is not None and old is not peer:
            # A newer connection from the same host wins (the old one is presumably dead).
            old._close_soon()
        self.peers[peer.origin_host] = peer

    def unregister(self, peer: Peer) -> None:
        self._all.discard(peer)
        if peer.origin_host is not None and self.peers.get(peer.origin_host) is peer:
            del self.peers[peer.origin_host]

    async def send_request(
        self, origin_host: str, message: DiameterMessage, timeout: float | None = None
    ) -> DiameterMessage:
        """Sends a request (e.g. ASR, RAR) to a connected peer and returns its answer."""
        peer = self.peers.get(origin_host)
        if peer is None or peer.state is not PeerState.OPEN:
            raise DiameterTransportError(f"no open connection to {origin_host}")
        return await peer.request(message, timeout)

    # ----------------------------------------------------------------------------- server
    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _FrameProtocol(asyncio.StreamReader(), self._accept),
            self.config.listen_host,
            self.config.listen_port,
            ssl=self.config.tls_server,
            ssl_handshake_timeout=self.config.cer_timeout if self.config.tls_server else None,
        )

    @property
    def port(self) -> int:
        """The bound port (useful with ``listen_port=0``)."""
        assert self._server is not None
        # Read as Any: typeshed says a tuple, uvloop's server gives a list, and a compiled
        # (mypyc) read of a declared tuple checks that it is one.
        sockets: Any = cast(Any, self._server).sockets
        assert sockets
        port: int = sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(self, reader, writer, initiator=False)
        self._all.add(peer)
        await peer.run()

    # ----------------------------------------------------------------------------- client
    async def connect(
        self, host: str, port: int = DEFAULT_PORT, *, server_hostname: str | None = None
    ) -> Peer:
        """Connects out, exchanges capabilities, returns the open peer (runs in background).

        With ``tls_client`` the peer's certificate is checked against ``server_hostname``
        (default ``host``), typically the peer's DiameterIdentity."""
        tls = self.config.tls_client
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _FrameProtocol(reader),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=(server_hostname or host) if tls else None,
                ),
                self.config.cer_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise DiameterTransportError(f"cannot connect to {host}:{port}: {exc}") from None
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        peer = Peer(self, reader, writer, initiator=True)
        self._all.add(peer)
        runner = asyncio.create_task(peer.run())
        opened = asyncio.create_task(peer.opened.wait())
        await asyncio.wait({runner, opened}, return_when=asyncio.FIRST_COMPLETED)
        if not peer.opened.is_set():
            opened.cancel()
            raise DiameterTransportError(f"capabilities exchange with {host}:{port} failed")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return peer

    def maintain(self, host: str, port: int = DEFAULT_PORT, retry: float = 30.0) -> None:
        """Keeps a connection to ``host:port`` up: connects, and reconnects ``retry`` seconds
        (RFC 6733 Tc) after a failure or a close, until ``stop``."""

        async def keep() -> None:
            while True:
                try:
                    peer = await self.connect(host, port)
                except DiameterTransportError as exc:
                    log.info("%s:%d: %s; retry in %.1fs", host, port, exc, retry)
                else:
                    await peer.closed.wait()
                    if peer.dpr_received:
                        log.info("%r disconnected us (DPR); retry in %.1fs", peer, retry)
                await asyncio.sleep(retry)

        task = asyncio.create_task(keep())
        self._maintainers.add(task)
        task.add_done_callback(self._maintainers.discard)

    async def stop(self, peers: Iterable[Peer] | None = None) -> None:
        """Stops listening and reconnecting, disconnects every peer (DPR/DPA)."""
        if peers is None:
            for task in list(self._maintainers):
                task.cancel()
        if self._server is not None:
            self._server.close()
        targets = list(self._all if peers is None else peers)
        await asyncio.gather(*(p.disconnect() for p in targets), return_exceptions=True)
        if self._server is not None and peers is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
