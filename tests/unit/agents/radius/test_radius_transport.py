"""agents/radius/transport.py over real UDP sockets: the security checks (dropped and counted,
never answered), the duplicate cache, Proxy-State and the Message-Authenticator in replies,
and Disconnect/CoA retransmission."""

from __future__ import annotations

import asyncio
import hmac
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.radius import codec, transport
from agents.radius.codec import RadiusMessage
from agents.radius.transport import Client, RadiusServer, Reply

SECRET = b"s3cret"


class Handler:
    def __init__(self) -> None:
        self.calls: list[RadiusMessage] = []
        self.delay = 0.0

    async def __call__(
        self, request: RadiusMessage, client: Client, addr: tuple[str, int]
    ) -> Reply | None:
        self.calls.append(request)
        await asyncio.sleep(self.delay)
        if request.code == codec.ACCESS_REQUEST:
            return Reply(codec.ACCESS_ACCEPT, codec.attributes_from([("Session-Timeout", 60)]))
        return Reply(codec.ACCOUNTING_RESPONSE)


@pytest.fixture
async def server() -> AsyncIterator[tuple[RadiusServer, Handler]]:
    handler = Handler()
    clients = transport.parse_clients(
        {
            "127.0.0.1": {"secret": SECRET.decode(), "require_message_authenticator": True},
            "10.0.0.0/8": "other",
        }
    )
    running = RadiusServer(clients, handler, auth_port=0, acct_port=0)
    await running.start()
    yield running, handler
    await running.stop()


async def exchange(port: int, data: bytes, wait: float = 0.3, count: int = 1) -> list[bytes]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    replies: list[bytes] = []
    try:
        for _ in range(count):
            await loop.sock_sendto(sock, data, ("127.0.0.1", port))
        while True:
            try:
                replies.append(await asyncio.wait_for(loop.sock_recv(sock, 4096), wait))
            except TimeoutError:
                return replies
    finally:
        sock.close()


def access_request(*items: tuple[str, Any], secret: bytes = SECRET, ma: bool = True) -> bytes:
    authenticator = bytes(range(16))
    attributes = codec.attributes_from(items)
    if ma:
        attributes = [codec.RawAttribute(codec.ATTR_MESSAGE_AUTHENTICATOR, bytes(16)), *attributes]
    body = b"".join(bytes((a.code, len(a.value) + 2)) + a.value for a in attributes)
    header = struct.pack("!BBH16s", codec.ACCESS_REQUEST, 3, 20 + len(body), authenticator)
    if ma:
        mac = hmac.new(secret, header + body, "md5").digest()
        body = body[:2] + mac + body[18:]
    return header + body


def ports(server: RadiusServer) -> tuple[int, int]:
    auth, acct = server.ports
    return auth, acct


async def test_access_request_answered_with_message_authenticator_first_and_proxy_state(
    server: tuple[RadiusServer, Handler],
) -> None:
    running, _handler = server
    auth, _ = ports(running)
    data = access_request(("User-Name", "u"), ("Proxy-State", b"p1"), ("Proxy-State", b"p2"))
    (raw,) = await exchange(auth, data)
    reply, request = codec.decode(raw), codec.decode(data)
    assert reply.code == codec.ACCESS_ACCEPT
    assert [a.code for a in reply.attributes] == [80, 27, 33, 33]
    assert reply.raw_values(codec.ATTR_PROXY_STATE) == [b"p1", b"p2"]
    assert codec.verify_response_authenticator(reply, request.authenticator, SECRET)
    assert codec.verify_message_authenticator(reply, SECRET, request)


@pytest.mark.parametrize(
    ("data", "counter"),
    [
        (access_request(("User-Name", "u"), ma=False), transport.MISSING_MESSAGE_AUTHENTICATOR),
        (access_request(("User-Name", "u"), secret=b"wrong"), transport.BAD_MESSAGE_AUTHENTICATOR),
        (access_request(("User-Name", "u"))[:-1], transport.BAD_PACKET),
        (b"\x01\x02", transport.BAD_PACKET),
        (
            codec.encode_request(codec.ACCOUNTING_REQUEST, 1, [], SECRET),
            transport.BAD_CODE,  # accounting on the auth port
        ),
    ],
)
async def test_bad_auth_packets_are_dropped_and_counted(
    server: tuple[RadiusServer, Handler], data: bytes, counter: str
) -> None:
    running, handler = server
    auth, _ = ports(running)
    assert await exchange(auth, data, wait=0.2) == []
    assert running.counters[counter] == 1 and not handler.calls


async def test_bad_accounting_authenticator_is_dropped(
    server: tuple[RadiusServer, Handler],
) -> None:
    running, handler = server
    _, acct = ports(running)
    items = codec.attributes_from([("Acct-Status-Type", "Start")])
    wrong = codec.encode_request(codec.ACCOUNTING_REQUEST, 1, items, b"wrong")
    assert await exchange(acct, wrong, wait=0.2) == []
    unsigned = codec.encode_request(
        codec.ACCOUNTING_REQUEST, 2, items, b"wrong", message_authenticator=False
    )
    assert await exchange(acct, unsigned, wait=0.2) == []
    assert running.counters[transport.BAD_AUTHENTICATOR] == 2 and not handler.calls
    # Accounting needs no Message-Authenticator: its Request Authenticator covers the packet.
    good = codec.encode_request(
        codec.ACCOUNTING_REQUEST, 3, items, SECRET, message_authenticator=False
    )
    (raw,) = await exchange(acct, good)
    assert codec.decode(raw).code == codec.ACCOUNTING_RESPONSE


async def test_unknown_client_is_dropped() -> None:
    handler = Handler()
    running = RadiusServer(
        transport.parse_clients({"10.0.0.0/8": "other"}), handler, auth_port=0, acct_port=0
    )
    await running.start()
    try:
        assert await exchange(running.ports[0], access_request(("User-Name", "u")), 0.2) == []
        assert running.counters[transport.UNKNOWN_CLIENT] == 1 and not handler.calls
    finally:
        await running.stop()


async def test_retransmission_gets_the_cached_reply_and_is_handled_once(
    server: tuple[RadiusServer, Handler],
) -> None:
    running, handler = server
    _, acct = ports(running)
    handler.delay = 0.1
    items = codec.attributes_from([("Acct-Status-Type", "Stop"), ("Acct-Session-Time", 9)])
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 4, items, SECRET)
    # Sent three times from one port: the 2nd and 3rd arrive while the 1st is in progress.
    first = await exchange(acct, data, count=3)
    assert len(first) == 1 and len(handler.calls) == 1
    assert running.counters[transport.IN_PROGRESS] == 2


async def test_cached_reply_for_a_later_retransmission(
    server: tuple[RadiusServer, Handler],
) -> None:
    running, handler = server
    _, acct = ports(running)
    data = codec.encode_request(
        codec.ACCOUNTING_REQUEST, 4, codec.attributes_from([("Acct-Status-Type", "Stop")]), SECRET
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    sock.bind(("127.0.0.1", 0))
    try:
        replies = []
        for _ in range(2):
            await asyncio.to_thread(sock.sendto, data, ("127.0.0.1", acct))
            replies.append((await asyncio.to_thread(sock.recvfrom, 4096))[0])
    finally:
        sock.close()
    assert replies[0] == replies[1] and len(handler.calls) == 1
    assert running.counters[transport.DUPLICATES] == 1


def test_client_table_lookup_order() -> None:
    clients = transport.parse_clients(
        {"10.1.2.3": "exact", "10.1.0.0/16": "narrow", "10.0.0.0/8": "wide", "*default": "any"}
    )
    table = transport.ClientTable(clients)
    assert table.find("10.1.2.3") is not None and table.find("10.1.2.3").secret == b"exact"  # type: ignore[union-attr]
    assert table.find("10.1.9.9").secret == b"narrow"  # type: ignore[union-attr]
    assert table.find("10.9.9.9").secret == b"wide"  # type: ignore[union-attr]
    assert table.find("192.0.2.1").secret == b"any"  # type: ignore[union-attr]
    assert table.find("::ffff:10.1.2.3").secret == b"exact"  # type: ignore[union-attr]
    assert (
        transport.ClientTable(transport.parse_clients({"10.0.0.0/8": "x"})).find("1.2.3.4") is None
    )


@pytest.mark.parametrize(
    "bad", [None, {}, {"nope": "x"}, {"1.2.3.4": ""}, {"1.2.3.4": {"secret": "x", "other": 1}}]
)
def test_bad_client_config(bad: Any) -> None:
    with pytest.raises(ValueError):
        transport.parse_clients(bad)


async def test_disconnect_request_retransmitted_until_answered() -> None:
    """A NAS that ignores the first Disconnect-Request and NAKs the second (RFC 5080)."""
    seen: list[bytes] = []

    class Nas(asyncio.DatagramProtocol):
        def connection_made(self, t: asyncio.BaseTransport) -> None:
            self.t: Any = t

        def datagram_received(self, data: bytes, addr: Any) -> None:
            seen.append(data)
            if len(seen) < 2:
                return
            request = codec.decode(data)
            reply = codec.encode_reply(
                request,
                codec.DISCONNECT_NAK,
                codec.attributes_from([("Error-Cause", "Session-Context-Not-Found")]),
                SECRET,
            )
            self.t.sendto(reply, addr)

    loop = asyncio.get_running_loop()
    nas, _ = await loop.create_datagram_endpoint(Nas, local_addr=("127.0.0.1", 0))
    try:
        port = nas.get_extra_info("sockname")[1]
        answer = await transport.send_request(
            ("127.0.0.1", port),
            codec.DISCONNECT_REQUEST,
            codec.attributes_from([("User-Name", "u")]),
            SECRET,
            identifier=7,
            timeout=0.1,
        )
    finally:
        nas.close()
    assert answer.code == codec.DISCONNECT_NAK
    assert answer.get(("Error-Cause",)) == ["Session-Context-Not-Found"]
    assert len(seen) == 2 and seen[0] == seen[1]  # the same packet again
    request = codec.decode(seen[0])
    assert request.attributes[0].code == codec.ATTR_MESSAGE_AUTHENTICATOR
    assert codec.verify_request_authenticator(request, SECRET)


async def test_disconnect_without_answer_fails() -> None:
    with pytest.raises(transport.DynAuthError):
        await transport.send_request(
            ("127.0.0.1", 9),
            codec.DISCONNECT_REQUEST,
            [],
            SECRET,
            identifier=1,
            timeout=0.05,
            attempts=2,
        )


async def test_radius_over_tcp() -> None:
    """RFC 6613: packets back to back on one connection; a bad one closes it."""
    handler = Handler()
    clients = transport.parse_clients({"127.0.0.1": SECRET.decode()})
    running = RadiusServer(clients, handler, auth_port=0, acct_port=-1, tcp=True)
    await running.start()
    try:
        (port,) = running.ports
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        first = access_request(("User-Name", "u"), ("Proxy-State", b"x"))
        replies = []
        for _ in range(2):  # a request, then the same again once answered
            writer.write(first)
            header = await asyncio.wait_for(reader.readexactly(4), 2)
            length = int.from_bytes(header[2:], "big")
            replies.append(header + await reader.readexactly(length - 4))
        assert replies[0] == replies[1]
        assert codec.decode(replies[0]).code == codec.ACCESS_ACCEPT
        assert len(handler.calls) == 1 and running.counters[transport.DUPLICATES] == 1
        writer.write(access_request(("User-Name", "u"), secret=b"wrong"))
        assert await asyncio.wait_for(reader.read(4096), 2) == b""  # closed
        assert running.counters[transport.BAD_MESSAGE_AUTHENTICATOR] == 1
        writer.close()
    finally:
        await running.stop()
