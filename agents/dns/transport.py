"""DNS over UDP and TCP: listeners, framing, the concurrency cap, truncation.

* UDP: one asyncio DatagramProtocol (uvloop under ``chargeflow agent``). A datagram is decoded
  at once; a query is handled in a task and answered from the port it came to.
* TCP (RFC 7766): 2-byte length framing, many queries per connection, answered as each is
  ready (possibly out of order: the IDs match them up), an idle connection closed after
  ``tcp_idle`` seconds; a message whose header cannot be read closes the connection.
* Never crashes on input: a message whose header can be read but not the rest is answered
  FORMERR; shorter ones, and responses (QR set: we never answer an answer), are dropped.
* ``max_in_flight`` queries are handled at once; one more is answered REFUSED at once.
* A UDP answer longer than the client takes (its EDNS0 payload size, 512 without EDNS0, capped
  by our own ``udp_size``) is sent without records and with TC set; the client retries over TCP.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final

from agents._udp import DatagramListener
from agents.dns import codec
from agents.dns.codec import DnsDecodeError, DnsEncodeError, DnsMessage, DnsReply

log = logging.getLogger("chargeflow.agents.dns.transport")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 2053
DEFAULT_MAX_IN_FLIGHT: Final = 1024
EPHEMERAL_PORT_ATTEMPTS: Final = 20  # port 0: new UDP+TCP pairs tried when TCP finds it taken
DEFAULT_UDP_SIZE: Final = 1232  # the DNS flag day 2020 payload size: no IP fragmentation
DEFAULT_TCP_IDLE: Final = 10.0  # seconds (RFC 7766 §6.2.3 suggests seconds, not minutes)
LENGTH_PREFIX: Final = 2
UDP: Final = "udp"
TCP: Final = "tcp"

# counter names
RECEIVED: Final = "received"
ANSWERED: Final = "answered"
FORMERR_SENT: Final = "formerr"
REFUSED_BUSY: Final = "refused_busy"
TRUNCATED: Final = "truncated"
DROPPED: Final = "dropped"
FAILED: Final = "handler_failed"

Handler = Callable[[DnsMessage, tuple[str, int], str], Awaitable[DnsReply]]
Send = Callable[[bytes], None]


class DnsServer:
    """The UDP and TCP listeners of one agent, on the same address and port."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        tcp: bool = True,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        udp_size: int = DEFAULT_UDP_SIZE,
        tcp_idle: float = DEFAULT_TCP_IDLE,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.tcp = tcp
        self.max_in_flight = max_in_flight
        self.udp_size = udp_size
        self.tcp_idle = tcp_idle
        self.counters: Counter[str] = Counter()
        self.in_flight = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Port 0 (tests): UDP picks a free number and TCP takes the same one, which a TCP
        # socket elsewhere may already hold; then both try again with a new number.
        attempts = EPHEMERAL_PORT_ATTEMPTS if self.port == 0 else 1
        for attempt in range(1, attempts + 1):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: DatagramListener(self.received, UDP, "dns"),
                local_addr=(self.host, self.port),
            )
            bound = int(transport.get_extra_info("sockname")[1])
            if self.tcp:
                try:
                    self._tcp_server = await asyncio.start_server(self._serve_tcp, self.host, bound)
                except OSError as exc:
                    transport.close()
                    if exc.errno != errno.EADDRINUSE or attempt == attempts:
                        raise
                    continue
            self._udp = transport
            break
        self.port = bound
        log.info("dns listening on %s:%d (udp%s)", self.host, bound, "+tcp" if self.tcp else "")

    async def stop(self, timeout: float = 5.0) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._tcp_server = None
        for writer in list(self._tcp_writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # ------------------------------------------------------------------------- receiving
    def received(
        self,
        data: bytes,
        peer: tuple[str, int],
        transport: str,
        send: Send,
        pending: set[asyncio.Task[None]] | None = None,
    ) -> bool:
        """One message off the wire; the answer (if any) goes to ``send``. Never raises;
        False when the message was dropped (TCP then closes the connection). ``pending``
        collects the task answering it (a TCP connection waits for them before closing)."""
        self.counters[RECEIVED] += 1
        try:
            message = codec.decode(data)
        except DnsDecodeError as exc:
            return self._undecodable(data, peer, transport, send, exc)
        except Exception:  # a bug in the decoder must not kill the listener
            log.exception("dns: unexpected error decoding %d bytes from %s", len(data), peer[0])
            self.counters[DROPPED] += 1
            return False
        if message.is_response:
            self.counters[DROPPED] += 1
            return False
        if self.in_flight >= self.max_in_flight:
            self.counters[REFUSED_BUSY] += 1
            self._answer(message, DnsReply(rcode=codec.REFUSED), transport, send)
            return True
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._handle(message, peer, transport, send))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if pending is not None:
            pending.add(task)
            task.add_done_callback(pending.discard)
        return True

    def _undecodable(
        self,
        data: bytes,
        peer: tuple[str, int],
        transport: str,
        send: Send,
        exc: DnsDecodeError,
    ) -> bool:
        """FORMERR when the header could be read (and is no response), else dropped."""
        header = exc.header
        if header is None or header[2] & 0x80:  # unreadable, or a response: never answer
            self.counters[DROPPED] += 1
            log.debug("dns: dropped %d bytes from %s: %s", len(data), peer[0], exc)
            return False
        self.counters[FORMERR_SENT] += 1
        log.info("dns: FORMERR to %s:%d: %s", peer[0], peer[1], exc)
        send(self._framed(codec.error_reply(header, codec.FORMERR), transport))
        return True

    async def _handle(
        self, message: DnsMessage, peer: tuple[str, int], transport: str, send: Send
    ) -> None:
        try:
            reply = await self.handler(message, peer, transport)
        except Exception:  # a bug in a handler: SERVFAIL, logged, the listener goes on
            log.exception("dns: query %d from %s failed", message.id, peer[0])
            self.counters[FAILED] += 1
            reply = DnsReply(rcode=codec.SERVFAIL)
        finally:
            self.in_flight -= 1
        self._answer(message, reply, transport, send)

    def _answer(self, message: DnsMessage, reply: DnsReply, transport: str, send: Send) -> None:
        limit = (
            min(message.udp_limit, max(self.udp_size, codec.CLASSIC_UDP_SIZE))
            if transport == UDP
            else codec.MAX_MESSAGE - LENGTH_PREFIX
        )
        try:
            data = codec.encode(message, reply, udp_size=self.udp_size, limit=limit)
        except DnsEncodeError as exc:
            log.warning("dns: cannot encode the answer to %d: %s", message.id, exc)
            data = codec.encode(message, DnsReply(rcode=codec.SERVFAIL), udp_size=self.udp_size)
        if data[2] & (codec.TC >> 8):
            self.counters[TRUNCATED] += 1
        self.counters[ANSWERED] += 1
        send(self._framed(data, transport))

    @staticmethod
    def _framed(data: bytes, transport: str) -> bytes:
        return len(data).to_bytes(LENGTH_PREFIX, "big") + data if transport == TCP else data

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = (str(peername[0]), int(peername[1]))
        self._tcp_writers.add(writer)
        pending: set[asyncio.Task[None]] = set()

        def send(reply: bytes) -> None:
            if not writer.is_closing():
                writer.write(reply)

        try:
            while True:
                async with asyncio.timeout(self.tcp_idle):
                    prefix = await reader.readexactly(LENGTH_PREFIX)
                    data = await reader.readexactly(int.from_bytes(prefix, "big"))
                if not self.received(data, peer, TCP, send, pending):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            if pending:  # the client may half-close after its last query: answer it first
                await asyncio.wait(set(pending), timeout=self.tcp_idle)
            self._tcp_writers.discard(writer)
            writer.close()
