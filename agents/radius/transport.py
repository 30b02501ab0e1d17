"""RADIUS over UDP: listeners, client secrets, the security checks and the duplicate cache.

Every datagram goes through, in order: client lookup by source address (exact address, then the
longest matching CIDR, then ``*default``), framing (``codec.decode``), the Request Authenticator
of hashed requests (Accounting), the Message-Authenticator whenever present and its presence when
the client requires it (BlastRADIUS, CVE-2024-3596; always for Status-Server, RFC 5997, and
EAP, RFC 3579). A packet failing any of them is dropped and counted in ``counters`` (never
answered, never an exception out of the protocol).

Duplicates (RFC 5080 §2.2.2): the key is (source address, source port, Identifier, Request
Authenticator). A retransmission gets the reply cached for that key (``dedup_ttl`` seconds);
one arriving while the first is still being handled is dropped (the NAS retransmits again and
gets the cached reply), so the request is handled, and charged, once.

Replies: the handler gives a code and attributes; the transport adds the request's Proxy-State
attributes (in order, RFC 2865 §5.33) and signs with the Message-Authenticator first.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agents._udp import DatagramListener
from agents.radius import codec
from agents.radius.codec import RadiusDecodeError, RadiusMessage, RawAttribute

log = logging.getLogger("chargeflow.agents.radius.transport")

DEFAULT_AUTH_PORT: Final = 1812
DEFAULT_ACCT_PORT: Final = 1813
DEFAULT_DYNAUTH_PORT: Final = 3799
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_CLIENT: Final = "*default"
DEFAULT_DEDUP_TTL: Final = 30.0  # seconds (RFC 5080 §2.2.2 suggests the retransmission window)
DEFAULT_DEDUP_MAX: Final = 100_000

AUTH_CODES: Final = frozenset({codec.ACCESS_REQUEST, codec.STATUS_SERVER})
ACCT_CODES: Final = frozenset({codec.ACCOUNTING_REQUEST})  # Status-Server: on the auth port

# counter names
UNKNOWN_CLIENT: Final = "dropped_unknown_client"
BAD_PACKET: Final = "dropped_bad_packet"
BAD_CODE: Final = "dropped_bad_code"
BAD_AUTHENTICATOR: Final = "dropped_bad_authenticator"
BAD_MESSAGE_AUTHENTICATOR: Final = "dropped_bad_message_authenticator"
MISSING_MESSAGE_AUTHENTICATOR: Final = "dropped_missing_message_authenticator"
IN_PROGRESS: Final = "dropped_in_progress"
HANDLER_FAILED: Final = "dropped_handler_failed"
DUPLICATES: Final = "duplicates_answered"
RECEIVED: Final = "received"
ANSWERED: Final = "answered"


@dataclass(frozen=True, slots=True)
class Client:
    """A NAS allowed to talk to us."""

    name: str  # the config key (address, CIDR or *default)
    secret: bytes
    require_message_authenticator: bool = True
    dynauth: tuple[str, int] | None = None  # where Disconnect/CoA go (default: its address)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers: a code and the attributes (by name) to send."""

    code: int
    attributes: list[RawAttribute] = field(default_factory=list)


Handler = Callable[[RadiusMessage, Client, tuple[str, int]], Awaitable[Reply | None]]
Send = Callable[[bytes], None]


class ClientTable:
    """Secrets per address or CIDR, with ``*default``."""

    def __init__(self, clients: Mapping[str, Client]) -> None:
        self.exact: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, Client] = {}
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Client]] = []
        self.default: Client | None = None
        for key, client in clients.items():
            if key == DEFAULT_CLIENT:
                self.default = client
            elif "/" in key:
                self.networks.append((ipaddress.ip_network(key, strict=False), client))
            else:
                self.exact[ipaddress.ip_address(key)] = client
        self.networks.sort(key=lambda item: item[0].prefixlen, reverse=True)

    def find(self, address: str) -> Client | None:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        found = self.exact.get(ip)
        if found is not None:
            return found
        for network, client in self.networks:
            if ip.version == network.version and ip in network:
                return client
        return self.default


def parse_clients(options: Any) -> dict[str, Client]:
    """``clients`` config: ``{ADDRESS|CIDR|*default: SECRET | {secret, dynauth,
    require_message_authenticator}}``; raises ValueError for a bad entry."""
    if not isinstance(options, Mapping) or not options:
        raise ValueError("radius clients must be a mapping of address/CIDR/*default to a secret")
    out: dict[str, Client] = {}
    for key, value in options.items():
        name = str(key)
        if name != DEFAULT_CLIENT:
            try:
                if "/" in name:
                    ipaddress.ip_network(name, strict=False)
                else:
                    ipaddress.ip_address(name)
            except ValueError:
                raise ValueError(f"radius client {name!r} is not an address or CIDR") from None
        entry = {"secret": value} if isinstance(value, str) else value
        if not isinstance(entry, Mapping) or not isinstance(entry.get("secret"), str):
            raise ValueError(f"radius client {name!r} needs a secret")
        unknown = set(entry) - {"secret", "require_message_authenticator", "dynauth"}
        if unknown:
            raise ValueError(f"radius client {name!r}: unknown key(s) {', '.join(sorted(unknown))}")
        if not entry["secret"]:
            raise ValueError(f"radius client {name!r}: empty secret")
        dynauth = entry.get("dynauth")
        out[name] = Client(
            name=name,
            secret=str(entry["secret"]).encode(),
            require_message_authenticator=bool(entry.get("require_message_authenticator", True)),
            dynauth=parse_address(str(dynauth), DEFAULT_DYNAUTH_PORT) if dynauth else None,
        )
    return out


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"bad address {text!r}") from None


class DuplicateCache:
    """(address, port, Identifier, Request Authenticator) -> the reply sent (or None while the
    request is in progress), for ``ttl`` seconds, at most ``max_entries``."""

    def __init__(
        self, ttl: float = DEFAULT_DEDUP_TTL, max_entries: int = DEFAULT_DEDUP_MAX
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, int, bytes], tuple[float, bytes | None]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries and (
            len(entries) > self.max_entries or next(iter(entries.values()))[0] < now
        ):
            entries.popitem(last=False)

    def lookup(self, key: tuple[str, int, int, bytes], now: float) -> tuple[bool, bytes | None]:
        """(seen, cached reply). When not seen, the key is reserved (in progress)."""
        self._expire(now)
        found = self._entries.get(key)
        if found is not None:
            return True, found[1]
        self._entries[key] = (now + self.ttl, None)
        return False, None

    def store(self, key: tuple[str, int, int, bytes], reply: bytes, now: float) -> None:
        self._entries[key] = (now + self.ttl, reply)
        self._entries.move_to_end(key)

    def forget(self, key: tuple[str, int, int, bytes]) -> None:
        self._entries.pop(key, None)


class RadiusServer:
    """The auth and accounting listeners of one agent."""

    def __init__(
        self,
        clients: Mapping[str, Client],
        handler: Handler,
        *,
        host: str = DEFAULT_HOST,
        auth_port: int = DEFAULT_AUTH_PORT,
        acct_port: int = DEFAULT_ACCT_PORT,
        dedup: DuplicateCache | None = None,
        tcp: bool = False,
    ) -> None:
        self.clients = ClientTable(clients)
        self.handler = handler
        self.host = host
        self.auth_port = auth_port
        self.acct_port = acct_port
        self.dedup = dedup or DuplicateCache()
        self.counters: Counter[str] = Counter()
        self.tcp = tcp
        self._transports: list[asyncio.DatagramTransport] = []
        self._tcp_servers: list[asyncio.Server] = []
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for port, codes in ((self.auth_port, AUTH_CODES), (self.acct_port, ACCT_CODES)):
            if port < 0:  # -1: that listener is off; 0: any free port (tests)
                continue
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(DatagramListener, self.received, codes, "radius"),
                local_addr=(self.host, port),
            )
            self._transports.append(transport)
            if self.tcp:  # RFC 6613 on the same port number
                bound = int(transport.get_extra_info("sockname")[1])
                server = await asyncio.start_server(
                    functools.partial(self._serve_tcp, codes=codes), self.host, bound
                )
                self._tcp_servers.append(server)
        log.info(
            "radius listening on %s auth %d acct %d", self.host, self.auth_port, self.acct_port
        )

    @property
    def ports(self) -> list[int]:
        return [int(t.get_extra_info("sockname")[1]) for t in self._transports]

    async def stop(self, timeout: float = 5.0) -> None:
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        for server in self._tcp_servers:
            server.close()
        for writer in list(self._tcp_writers):
            writer.close()
        self._tcp_servers.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # ------------------------------------------------------------------------- receiving
    async def _serve_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, codes: frozenset[int]
    ) -> None:
        """RADIUS over TCP (RFC 6613): packets back to back on the connection, each checked
        as a datagram is; a malformed or unauthenticated one closes the connection (§2.6.4)."""
        peer = writer.get_extra_info("peername")
        addr = (str(peer[0]), int(peer[1]))
        self._tcp_writers.add(writer)

        def send(reply: bytes) -> None:
            if not writer.is_closing():
                writer.write(reply)

        try:
            while True:
                header = await reader.readexactly(4)
                length = int.from_bytes(header[2:4], "big")
                if length < codec.MIN_LENGTH or length > codec.MAX_LENGTH:
                    self._drop(BAD_PACKET, addr, f"bad Length {length} over TCP")
                    break
                data = header + await reader.readexactly(length - 4)
                if not self.received(data, addr, codes, send):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()

    def received(
        self,
        data: bytes,
        addr: tuple[str, int],
        codes: frozenset[int],
        send: Send,
    ) -> bool:
        """Checks one packet and, when it passes, handles it in a task (``send`` gets the
        reply). Never raises; False when the packet was dropped."""
        self.counters[RECEIVED] += 1
        try:
            checked = self.check(data, addr, codes)
        except Exception:  # a bug in a check must not kill the listener
            log.exception("radius: unexpected error checking a packet from %s", addr)
            self.counters[BAD_PACKET] += 1
            return False
        if checked is None:
            return False
        request, client = checked
        key = (addr[0], addr[1], request.identifier, request.authenticator)
        now = time.monotonic()
        seen, cached = self.dedup.lookup(key, now)
        if seen:
            if cached is None:
                self.counters[IN_PROGRESS] += 1
            else:
                self.counters[DUPLICATES] += 1
                send(cached)
            return True
        task = asyncio.get_running_loop().create_task(
            self._handle(request, client, addr, key, send)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def check(
        self, data: bytes, addr: tuple[str, int], codes: frozenset[int]
    ) -> tuple[RadiusMessage, Client] | None:
        """The security checks: the request and its client, or None (dropped, counted)."""
        client = self.clients.find(addr[0])
        if client is None:
            return self._drop(UNKNOWN_CLIENT, addr)
        try:
            request = codec.decode(data)
        except RadiusDecodeError as exc:
            return self._drop(BAD_PACKET, addr, str(exc))
        if request.code not in codes:
            return self._drop(BAD_CODE, addr, request.code_name)
        if not codec.verify_request_authenticator(request, client.secret):
            return self._drop(BAD_AUTHENTICATOR, addr)
        if request.has_message_authenticator:
            if not codec.verify_message_authenticator(request, client.secret):
                return self._drop(BAD_MESSAGE_AUTHENTICATOR, addr)
        elif (
            (
                client.require_message_authenticator
                and request.code != codec.ACCOUNTING_REQUEST  # RFC 2866 accounting has none
            )
            or request.code == codec.STATUS_SERVER
            or request.first_raw(codec.ATTR_EAP_MESSAGE)
        ):
            return self._drop(MISSING_MESSAGE_AUTHENTICATOR, addr)
        return request, client

    def _drop(
        self, counter: str, addr: tuple[str, int], detail: str = ""
    ) -> tuple[RadiusMessage, Client] | None:
        self.counters[counter] += 1
        log.info("radius: dropped a packet from %s:%d: %s %s", addr[0], addr[1], counter, detail)
        return None

    async def _handle(
        self,
        request: RadiusMessage,
        client: Client,
        addr: tuple[str, int],
        key: tuple[str, int, int, bytes],
        send: Send,
    ) -> None:
        try:
            reply = await self.handler(request, client, addr)
            if reply is None:
                self.dedup.forget(key)
                return
            data = self.encode(request, client, reply)
        except Exception:  # an encode error or a bug: dropped, counted, logged
            log.exception(
                "radius: %s %d from %s failed", request.code_name, request.identifier, addr
            )
            self.counters[HANDLER_FAILED] += 1
            self.dedup.forget(key)
            return
        self.dedup.store(key, data, time.monotonic())
        self.counters[ANSWERED] += 1
        send(data)

    @staticmethod
    def encode(request: RadiusMessage, client: Client, reply: Reply) -> bytes:
        proxy_states = [
            RawAttribute(codec.ATTR_PROXY_STATE, value)
            for value in request.raw_values(codec.ATTR_PROXY_STATE)
        ]
        attributes = [a for a in reply.attributes if a.code != codec.ATTR_PROXY_STATE]
        return codec.encode_reply(request, reply.code, [*attributes, *proxy_states], client.secret)


# ------------------------------------------------------------------- dynamic authorization
class DynAuthError(Exception):
    """A Disconnect/CoA that got no valid answer."""


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.replies.put_nowait(data)


async def send_request(
    address: tuple[str, int],
    code: int,
    attributes: list[RawAttribute],
    secret: bytes,
    *,
    identifier: int,
    timeout: float = 0.5,
    attempts: int = 3,
    deadline: float | None = None,
) -> RadiusMessage:
    """Sends a Disconnect/CoA-Request and waits for its ACK/NAK: the same packet again after
    ``timeout``, doubling each time (RFC 5080 §2.2.1), up to ``attempts`` sends or ``deadline``
    (monotonic seconds). Replies with a wrong Identifier or authenticator are ignored."""
    data = codec.encode_request(code, identifier, attributes, secret)
    request = codec.decode(data)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_ClientProtocol, remote_addr=address)
    try:
        wait = timeout
        for _ in range(attempts):
            transport.sendto(data)
            until = loop.time() + wait
            if deadline is not None:
                until = min(until, deadline)
            while (left := until - loop.time()) > 0:
                try:
                    raw = await asyncio.wait_for(protocol.replies.get(), left)
                except TimeoutError:
                    break
                try:
                    reply = codec.decode(raw)
                except RadiusDecodeError:
                    continue
                if reply.identifier != identifier or not codec.verify_response_authenticator(
                    reply, request.authenticator, secret
                ):
                    continue
                if reply.has_message_authenticator and not codec.verify_message_authenticator(
                    reply, secret, request
                ):
                    continue
                return reply
            if deadline is not None and loop.time() >= deadline:
                break
            wait *= 2
    finally:
        transport.close()
    raise DynAuthError(f"no answer from {address[0]}:{address[1]}")
