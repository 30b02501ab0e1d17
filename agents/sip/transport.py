"""SIP over UDP and TCP with the server transactions of RFC 3261 §17.2.

Every request goes through ``TransactionLayer.receive``:

* a message we cannot read gets ``400 Bad Request`` when what was read has Via, From, To,
  Call-ID and CSeq (a response can be built), else it is dropped; both are counted;
* responses (we send no requests) and ACKs matching no transaction are dropped and counted;
* a request matching a live transaction is a retransmission: it gets the last response again
  (or nothing while the first is still being handled), and never reaches the handler twice;
* INVITE (§17.2.1): ``100 Trying`` when the answer takes longer than ``trying_delay``; the final
  answer (3xx-6xx) is retransmitted over UDP with timer G (T1, doubling up to T2) until the ACK
  comes or timer H (64*T1) gives up; after the ACK, timer I (T4; 0 over TCP) absorbs further
  ACKs and retransmissions; over TCP nothing is retransmitted;
* other methods (§17.2.2): the final answer is kept for timer J (64*T1; 0 over TCP) for
  retransmissions;
* CANCEL (§9.2): ``481`` when no INVITE transaction matches; else ``200``, and ``487 Request
  Terminated`` for the INVITE when its answer was not sent yet (that answer is then dropped).

The transaction key is the top Via's branch with its sent-by and the method (ACK and CANCEL
look for the INVITE) when the branch carries the RFC 3261 magic cookie; else (RFC 2543
clients) Call-ID, CSeq number, From tag and the top Via.

Responses (§8.2.6) copy Via (all, in order), From, To (with our tag on non-100 answers),
Call-ID and CSeq; the top Via gets ``received`` when the source address differs from its
sent-by, and ``rport`` filled when the client asked for it (RFC 3581). Over UDP they go to the
source address and port when ``rport`` was asked, else to the source address and the sent-by
port (5060 by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Protocol, cast

from agents.sip import codec
from agents.sip.codec import NameAddr, SipDecodeError, SipMessage

log = logging.getLogger("chargeflow.agents.sip.transport")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 5060
T1: Final = 0.5  # seconds: RTT estimate (RFC 3261 §17.1.1.1)
T2: Final = 4.0  # seconds: the longest retransmit interval of a final answer
T4: Final = 5.0  # seconds: the longest a message stays in the network
TRYING_DELAY: Final = 0.2  # seconds before an INVITE still being handled gets 100 Trying
TIMER_H_FACTOR: Final = 64  # timers H and J are 64*T1
TAG_BYTES: Final = 8
MAX_TRANSACTIONS: Final = 100_000  # beyond it new requests get 503 (a bound on memory)
UDP_RECEIVE_BUFFER: Final = 4 * 1024 * 1024  # bytes asked for the UDP socket's receive buffer
STATUS_TRYING: Final = 100
STATUS_OK: Final = 200
STATUS_BAD_REQUEST: Final = 400
STATUS_NO_TRANSACTION: Final = 481
STATUS_TERMINATED: Final = 487
STATUS_SERVER_ERROR: Final = 500
STATUS_UNAVAILABLE: Final = 503
MIN_FINAL: Final = 200

REASONS: Final = {
    100: "Trying",
    200: "OK",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
}

# counter names
RECEIVED: Final = "received"
ANSWERED: Final = "answered"
RETRANSMITTED: Final = "retransmitted"  # final answers resent on timer G
REPEATED: Final = "repeated_answered"  # retransmitted requests answered from the transaction
ABSORBED: Final = "absorbed"  # retransmissions or ACKs swallowed by a transaction
BAD_REQUEST: Final = "bad_request_answered"
DROPPED_MALFORMED: Final = "dropped_malformed"
DROPPED_RESPONSE: Final = "dropped_response"
DROPPED_ACK: Final = "dropped_unmatched_ack"
DROPPED_LATE: Final = "dropped_late_answer"  # answers for cancelled INVITEs
TIMED_OUT: Final = "timer_h_expired"  # no ACK came for a final answer
HANDLER_FAILED: Final = "handler_failed"


def reason_for(status: int) -> str:
    return REASONS.get(status, "Unknown")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """When timers fire: the event loop, or a fake one in tests."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(frozen=True, slots=True)
class Timers:
    t1: float = T1
    t2: float = T2
    t4: float = T4
    trying_delay: float = TRYING_DELAY


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a request came from and how to answer it."""

    transport: str  # "UDP" | "TCP"
    address: tuple[str, int]  # source address
    send: Callable[[bytes, tuple[str, int]], None]  # (data, destination)

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


@dataclass(slots=True)
class Answer:
    """What the handler answers: a final status and further headers (Contact, Allow ...)."""

    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[SipMessage, Peer], Awaitable[Answer]]


class State(Enum):
    PROCEEDING = "proceeding"  # INVITE or non-INVITE being handled (§17.2.1 "Trying" too)
    COMPLETED = "completed"  # final answer sent
    CONFIRMED = "confirmed"  # INVITE: ACK received
    TERMINATED = "terminated"


@dataclass(slots=True, eq=False)
class ServerTransaction:
    key: tuple[str, ...]
    request: SipMessage
    peer: Peer
    destination: tuple[str, int]
    to_tag: str
    state: State = State.PROCEEDING
    last: bytes | None = None  # the last response sent (100 Trying or the final)
    interval: float = 0.0  # timer G's current interval
    timers: list[TimerHandle] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def invite(self) -> bool:
        return self.request.method == "INVITE"

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


def transaction_key(request: SipMessage, method: str) -> tuple[str, ...]:
    """RFC 3261 §17.2.3 (``method``: the request's, INVITE for ACK and CANCEL lookups)."""
    top = request.vias()[0]
    if top.branch.startswith(codec.BRANCH_MAGIC):
        return (top.branch, top.host, str(top.port or ""), method)
    number, _ = request.cseq()
    return (
        request.first("Call-ID") or "",
        str(number),
        request.tag("From"),
        f"{top.host}:{top.port or ''}",
        top.branch,
        method,
    )


def reply_destination(request: SipMessage, source: tuple[str, int]) -> tuple[str, int]:
    """Where a UDP response goes (RFC 3261 §18.2.2 and RFC 3581 §4)."""
    top = request.vias()[0]
    if "rport" in top.params:
        return source
    return source[0], top.port or DEFAULT_PORT


def build_response(
    request: SipMessage,
    status: int,
    reason: str,
    source: tuple[str, int],
    *,
    to_tag: str = "",
    headers: list[tuple[str, str]] | None = None,
) -> SipMessage:
    """The response to ``request`` (RFC 3261 §8.2.6; received/rport per RFC 3581)."""
    out: list[tuple[str, str]] = []
    first_via = True
    for value in request.values("Via"):
        if first_via:
            value = _stamp_via(value, source)
            first_via = False
        out.append(("Via", value))
    for name in ("From", "To", "Call-ID", "CSeq"):
        copied = request.first(name)
        if copied is None:
            continue
        if name == "To" and status > STATUS_TRYING and to_tag:
            try:
                has_tag = "tag" in NameAddr.parse(copied).params
            except SipDecodeError:
                has_tag = True  # unreadable: copied as it is
            if not has_tag:
                copied = f"{copied};tag={to_tag}"
        out.append((name, copied))
    out.extend(headers or [])
    return SipMessage(status=status, reason=reason or reason_for(status), headers=out)


def _stamp_via(value: str, source: tuple[str, int]) -> str:
    try:
        via = codec.Via.parse(value)
    except SipDecodeError:
        return value
    params = [(k, v) for k, v in _ordered_params(value) if k not in ("received", "rport")]
    rport = "rport" in via.params
    if rport or via.host.strip("[]") != source[0]:
        params.append(("received", source[0]))
    if rport:
        params.append(("rport", str(source[1])))
    sent_by = via.host + (f":{via.port}" if via.port is not None else "")
    return f"SIP/2.0/{via.transport} {sent_by}" + codec.format_params(params)


def _ordered_params(via_value: str) -> list[tuple[str, str | None]]:
    _, _, param_text = via_value.partition(";")
    out: list[tuple[str, str | None]] = []
    for item in codec.split_outside(param_text, ";"):
        name, equals, value = item.partition("=")
        out.append((name.strip().lower(), value.strip() if equals else None))
    return out


class TransactionLayer:
    """Server transactions over any transport: feed it requests with ``receive``."""

    def __init__(
        self,
        handler: Handler,
        *,
        timers: Timers = Timers(),
        clock: Clock | None = None,
        max_transactions: int = MAX_TRANSACTIONS,
    ) -> None:
        self.handler = handler
        self.timers = timers
        self.clock: Clock = clock or LoopClock()
        self.max_transactions = max_transactions
        self.transactions: dict[tuple[str, ...], ServerTransaction] = {}
        self.counters: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------- receiving
    def receive(self, data: bytes, peer: Peer) -> None:
        self.counters[RECEIVED] += 1
        try:
            request = codec.decode(data)
            if not request.is_request:
                self.counters[DROPPED_RESPONSE] += 1
                return
            self._check(request)
        except SipDecodeError as exc:
            self._malformed(exc, peer)
            return
        if request.method == "ACK":
            self._ack(request)
        elif request.method == "CANCEL":
            self._cancel(request, peer)
        else:
            self._request(request, peer)

    @staticmethod
    def _check(request: SipMessage) -> None:
        """What every request needs before a transaction can be made of it."""
        missing = [name for name in codec.REQUIRED_FOR_REPLY if not request.has(name)]
        if missing:
            raise SipDecodeError(f"missing {', '.join(missing)}", request)
        try:
            request.vias()  # every Via readable
            _, method = request.cseq()
            for name in ("From", "To"):
                NameAddr.parse(request.first(name) or "")
        except SipDecodeError as exc:
            raise SipDecodeError(str(exc), request) from None
        if method != request.method:
            raise SipDecodeError(f"CSeq method {method} is not {request.method}", request)

    def _malformed(self, exc: SipDecodeError, peer: Peer) -> None:
        partial = exc.partial
        if partial is None or not partial.replyable() or partial.method == "ACK":
            log.debug("dropped from %s: %s", peer.address, exc)
            self.counters[DROPPED_MALFORMED] += 1
            return
        try:
            destination = reply_destination(partial, peer.address)
        except SipDecodeError:
            self.counters[DROPPED_MALFORMED] += 1  # no Via we could answer along
            return
        status = STATUS_BAD_REQUEST
        reason = str(exc)[:100].replace("\r", " ").replace("\n", " ")
        response = build_response(partial, status, f"Bad Request ({reason})", peer.address,
                                  to_tag=_new_tag())  # fmt: skip
        try:
            data = codec.encode(response)
        except codec.SipEncodeError:
            self.counters[DROPPED_MALFORMED] += 1
            return
        self.counters[BAD_REQUEST] += 1
        peer.send(data, destination)

    def _request(self, request: SipMessage, peer: Peer) -> None:
        key = transaction_key(request, request.method)
        found = self.transactions.get(key)
        if found is not None:
            self._repeat(found)
            return
        transaction = self._new(key, request, peer)
        if len(self.transactions) > self.max_transactions:
            self._final(transaction, Answer(STATUS_UNAVAILABLE, headers=[("Retry-After", "1")]))
            return
        if transaction.invite:
            transaction.timers.append(
                self.clock.call_later(self.timers.trying_delay, lambda: self._trying(transaction))
            )
        task = asyncio.get_running_loop().create_task(self._handle(transaction))
        transaction.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new(self, key: tuple[str, ...], request: SipMessage, peer: Peer) -> ServerTransaction:
        destination = peer.address if peer.reliable else reply_destination(request, peer.address)
        transaction = ServerTransaction(key, request, peer, destination, _new_tag())
        self.transactions[key] = transaction
        return transaction

    def _repeat(self, transaction: ServerTransaction) -> None:
        if transaction.state in (State.PROCEEDING, State.COMPLETED) and transaction.last:
            self.counters[REPEATED] += 1
            self._send(transaction, transaction.last)
        else:
            self.counters[ABSORBED] += 1

    async def _handle(self, transaction: ServerTransaction) -> None:
        try:
            answer = await self.handler(transaction.request, transaction.peer)
        except Exception:
            log.exception("SIP handler failed for %s", transaction.request.method)
            self.counters[HANDLER_FAILED] += 1
            answer = Answer(STATUS_SERVER_ERROR)
        if transaction.state is not State.PROCEEDING:
            self.counters[DROPPED_LATE] += 1  # cancelled meanwhile: 487 went out instead
            return
        self._final(transaction, answer)

    # ------------------------------------------------------------------------- answering
    def _trying(self, transaction: ServerTransaction) -> None:
        if transaction.state is State.PROCEEDING and transaction.last is None:
            self._respond(transaction, Answer(STATUS_TRYING))

    def _respond(self, transaction: ServerTransaction, answer: Answer) -> None:
        response = build_response(
            transaction.request,
            answer.status,
            answer.reason,
            transaction.peer.address,
            to_tag=transaction.to_tag,
            headers=answer.headers,
        )
        try:
            data = codec.encode(response)
        except codec.SipEncodeError as exc:
            log.error("cannot encode the answer to %s: %s", transaction.request.method, exc)
            data = codec.encode(
                build_response(transaction.request, STATUS_SERVER_ERROR, "",
                               transaction.peer.address, to_tag=transaction.to_tag)
            )  # fmt: skip
        transaction.last = data
        self._send(transaction, data)

    def _final(self, transaction: ServerTransaction, answer: Answer) -> None:
        transaction.cancel_timers()
        self._respond(transaction, answer)
        self.counters[ANSWERED] += 1
        transaction.state = State.COMPLETED
        t1 = self.timers.t1
        if transaction.invite:
            if not transaction.peer.reliable:
                transaction.interval = t1
                transaction.timers.append(
                    self.clock.call_later(t1, lambda: self._timer_g(transaction))
                )
            transaction.timers.append(
                self.clock.call_later(TIMER_H_FACTOR * t1, lambda: self._timer_h(transaction))
            )
        else:
            wait = 0.0 if transaction.peer.reliable else TIMER_H_FACTOR * t1  # timer J
            transaction.timers.append(
                self.clock.call_later(wait, lambda: self._terminate(transaction))
            )

    def _timer_g(self, transaction: ServerTransaction) -> None:
        if transaction.state is not State.COMPLETED or transaction.last is None:
            return
        self.counters[RETRANSMITTED] += 1
        self._send(transaction, transaction.last)
        transaction.interval = min(2 * transaction.interval, self.timers.t2)
        transaction.timers.append(
            self.clock.call_later(transaction.interval, lambda: self._timer_g(transaction))
        )

    def _timer_h(self, transaction: ServerTransaction) -> None:
        if transaction.state is State.COMPLETED:
            self.counters[TIMED_OUT] += 1
            log.info("no ACK for %s %s", transaction.request.method, transaction.key[0])
            self._terminate(transaction)

    def _terminate(self, transaction: ServerTransaction) -> None:
        transaction.cancel_timers()
        transaction.state = State.TERMINATED
        if self.transactions.get(transaction.key) is transaction:
            del self.transactions[transaction.key]

    def _send(self, transaction: ServerTransaction, data: bytes) -> None:
        try:
            transaction.peer.send(data, transaction.destination)
        except OSError as exc:  # a closed TCP connection, an unreachable address
            log.info("cannot answer %s: %s", transaction.destination, exc)

    # ------------------------------------------------------------------------ ACK, CANCEL
    def _ack(self, request: SipMessage) -> None:
        transaction = self.transactions.get(transaction_key(request, "INVITE"))
        if transaction is None:
            self.counters[DROPPED_ACK] += 1  # an ACK for a 2xx (never ours) or a stale one
            return
        self.counters[ABSORBED] += 1
        if transaction.state is State.COMPLETED:
            transaction.cancel_timers()
            transaction.state = State.CONFIRMED
            wait = 0.0 if transaction.peer.reliable else self.timers.t4  # timer I
            transaction.timers.append(
                self.clock.call_later(wait, lambda: self._terminate(transaction))
            )

    def _cancel(self, request: SipMessage, peer: Peer) -> None:
        key = transaction_key(request, "CANCEL")
        found = self.transactions.get(key)
        if found is not None:
            self._repeat(found)
            return
        transaction = self._new(key, request, peer)
        invite = self.transactions.get(transaction_key(request, "INVITE"))
        if invite is None:
            self._final(transaction, Answer(STATUS_NO_TRANSACTION))
            return
        self._final(transaction, Answer(STATUS_OK))
        if invite.state is State.PROCEEDING:
            self._final(invite, Answer(STATUS_TERMINATED))

    # ---------------------------------------------------------------------------- closing
    async def close(self) -> None:
        """Waits for the requests being handled; stops every timer."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for transaction in list(self.transactions.values()):
            transaction.cancel_timers()
        self.transactions.clear()


def _new_tag() -> str:
    return secrets.token_hex(TAG_BYTES)


# ---------------------------------------------------------------------------- sockets
class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport: no isinstance
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.layer.receive(data, Peer("UDP", (addr[0], addr[1]), self._send))

    def _send(self, data: bytes, destination: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, destination)


class SipServer:
    """UDP and TCP listeners on one address feeding one TransactionLayer."""

    def __init__(
        self, layer: TransactionLayer, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
        *, udp: bool = True, tcp: bool = True,
    ) -> None:  # fmt: skip
        self.layer = layer
        self.host = host
        self.port = port
        self.udp = udp
        self.tcp = tcp
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def counters(self) -> Counter[str]:
        return self.layer.counters

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.udp:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self.layer), sock=self._udp_socket()
            )
            self._udp = transport
            if self.port == 0:  # an ephemeral port (tests): TCP takes the same number
                self.port = transport.get_extra_info("sockname")[1]
        if self.tcp:
            self._tcp = await asyncio.start_server(self._serve, self.host, self.port)
            if self.port == 0:
                self.port = self._tcp.sockets[0].getsockname()[1]

    def _udp_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # A burst of requests while the loop is busy must wait in the kernel, not be dropped
            # (the client would only retransmit after T1); the kernel caps it at rmem_max.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            sock.bind((self.host, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._connections):
            writer.close()
        await self.layer.close()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        address = writer.get_extra_info("peername")
        source = (str(address[0]), int(address[1]))

        def send(data: bytes, destination: tuple[str, int]) -> None:
            if not writer.is_closing():
                writer.write(data)

        peer = Peer("TCP", source, send)
        buffer = bytearray()
        try:
            while True:
                chunk = await reader.read(codec.MAX_MESSAGE)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    try:
                        length = codec.frame(buffer)
                    except SipDecodeError as exc:
                        # The stream lost its framing: nothing after this can be trusted.
                        log.info("closing TCP %s: %s", source, exc)
                        self.layer.counters[DROPPED_MALFORMED] += 1
                        return
                    if length is None:
                        break
                    message = bytes(buffer[:length])
                    del buffer[:length]
                    if message.strip(b"\r\n"):
                        self.layer.receive(message, peer)
        except (ConnectionError, OSError):
            return
        finally:
            self._connections.discard(writer)
            writer.close()
