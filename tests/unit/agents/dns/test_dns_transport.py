"""DnsServer over real loopback sockets with a scripted handler: UDP and TCP framing, FORMERR,
drops, the concurrency cap (REFUSED), truncation, pipelined TCP queries answered out of order,
and a failing handler (SERVFAIL)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import dnslib  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.dns import codec
from agents.dns.codec import DnsMessage, DnsReply, Record
from agents.dns.transport import DnsServer

WAIT = 2.0
QUIET = 0.3  # how long "no answer" is waited for


class Script:
    """The handler: per query name, a reply (or an exception), optionally after an event."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.seen: list[str] = []

    async def __call__(self, message: DnsMessage, peer: tuple[str, int], kind: str) -> DnsReply:
        name = message.questions[0].name
        self.seen.append(f"{kind}:{name}")
        gate = self.gates.get(name)
        if gate is not None:
            await gate.wait()
        if name.startswith("boom"):
            raise RuntimeError("handler bug")
        count = 60 if name.startswith("big") else 1  # 60 records: ~1.5 kB
        records = [Record(codec.TYPE_TXT, b"\x0cabcdefghijkl") for _ in range(count)]
        return DnsReply(authoritative=True, answers=records)


@pytest.fixture
async def served() -> AsyncIterator[tuple[DnsServer, Script]]:
    script = Script()
    server = DnsServer(script, host="127.0.0.1", port=0, max_in_flight=2, udp_size=1232)
    await server.start()
    yield server, script
    for gate in script.gates.values():
        gate.set()
    await server.stop()


def make_query(name: str, qtype: str = "TXT", edns: int | None = None, ident: int = 1) -> bytes:
    record = dnslib.DNSRecord(dnslib.DNSHeader(id=ident, rd=1))
    record.add_question(dnslib.DNSQuestion(name, getattr(dnslib.QTYPE, qtype)))
    if edns is not None:
        record.add_ar(dnslib.EDNS0(udp_len=edns))
    return bytes(record.pack())


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


async def udp(port: int) -> tuple[asyncio.DatagramTransport, Client]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    return transport, client


async def exchange(port: int, data: bytes) -> bytes | None:
    transport, client = await udp(port)
    try:
        transport.sendto(data)
        try:
            return await asyncio.wait_for(client.replies.get(), QUIET if len(data) < 12 else WAIT)
        except TimeoutError:
            return None
    finally:
        transport.close()


async def test_udp_answer(served: tuple[DnsServer, Script]) -> None:
    server, _ = served
    data = await exchange(server.port, make_query("a.example.", ident=77))
    assert data is not None
    record = dnslib.DNSRecord.parse(data)
    assert record.header.id == 77 and record.header.aa == 1 and len(record.rr) == 1


async def test_formerr_drop_and_responses(served: tuple[DnsServer, Script]) -> None:
    server, script = served
    broken = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07trunc"
    data = await exchange(server.port, broken)
    assert data is not None
    header = dnslib.DNSRecord.parse(data).header
    assert header.id == 0x4242 and header.rcode == codec.FORMERR
    assert await exchange(server.port, b"\x01\x02\x03") is None  # no header: dropped
    response = bytearray(make_query("r.example."))
    response[2] |= 0x80
    transport, client = await udp(server.port)
    transport.sendto(bytes(response))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.replies.get(), QUIET)
    transport.close()
    assert server.counters["formerr"] == 1 and server.counters["dropped"] == 2
    assert script.seen == []


async def test_over_the_cap_is_refused(served: tuple[DnsServer, Script]) -> None:
    server, script = served
    for name in ("slow1.example.", "slow2.example."):
        script.gates[name] = asyncio.Event()
    transport, client = await udp(server.port)
    transport.sendto(make_query("slow1.example.", ident=1))
    transport.sendto(make_query("slow2.example.", ident=2))
    await asyncio.sleep(0.1)
    transport.sendto(make_query("third.example.", ident=3))
    first = dnslib.DNSRecord.parse(await asyncio.wait_for(client.replies.get(), WAIT))
    assert first.header.id == 3 and first.header.rcode == codec.REFUSED
    for gate in script.gates.values():
        gate.set()
    later = [dnslib.DNSRecord.parse(await asyncio.wait_for(client.replies.get(), WAIT))
             for _ in range(2)]  # fmt: skip
    assert sorted(r.header.id for r in later) == [1, 2]
    assert {r.header.rcode for r in later} == {codec.NOERROR}
    transport.close()
    assert server.counters["refused_busy"] == 1 and server.in_flight == 0


async def test_truncation_over_udp_and_full_over_tcp(served: tuple[DnsServer, Script]) -> None:
    server, _ = served
    plain = await exchange(server.port, make_query("big.example."))
    assert plain is not None and len(plain) <= 512
    record = dnslib.DNSRecord.parse(plain)
    assert record.header.tc == 1 and record.rr == []
    # EDNS0 4096 from the client, but we announce and send at most 1232.
    edns = await exchange(server.port, make_query("big.example.", edns=4096))
    assert edns is not None and len(edns) <= 1232 and dnslib.DNSRecord.parse(edns).header.tc == 1
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    query = make_query("big.example.")
    writer.write(len(query).to_bytes(2, "big") + query)
    size = int.from_bytes(await reader.readexactly(2), "big")
    record = dnslib.DNSRecord.parse(await reader.readexactly(size))
    assert record.header.tc == 0 and len(record.rr) == 60
    writer.close()
    assert server.counters["truncated"] == 2


async def test_tcp_pipelined_queries_answered_as_ready(served: tuple[DnsServer, Script]) -> None:
    server, script = served
    script.gates["late.example."] = asyncio.Event()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for ident, name in ((1, "late.example."), (2, "quick.example.")):
        query = make_query(name, ident=ident)
        writer.write(len(query).to_bytes(2, "big") + query)
    await writer.drain()

    async def read() -> dnslib.DNSRecord:
        size = int.from_bytes(await reader.readexactly(2), "big")
        return dnslib.DNSRecord.parse(await reader.readexactly(size))

    assert (await asyncio.wait_for(read(), WAIT)).header.id == 2
    script.gates["late.example."].set()
    assert (await asyncio.wait_for(read(), WAIT)).header.id == 1
    # A message too short for a header closes the connection.
    writer.write(b"\x00\x03abc")
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()


async def test_tcp_half_close_still_gets_the_answer(served: tuple[DnsServer, Script]) -> None:
    server, script = served
    script.gates["halfclose.example."] = asyncio.Event()
    sock = socket.create_connection(("127.0.0.1", server.port))
    query = make_query("halfclose.example.", ident=9)
    sock.sendall(len(query).to_bytes(2, "big") + query)
    sock.shutdown(socket.SHUT_WR)
    await asyncio.sleep(0.1)
    script.gates["halfclose.example."].set()
    sock.settimeout(WAIT)
    data = await asyncio.to_thread(sock.recv, 4096)
    sock.close()
    assert dnslib.DNSRecord.parse(data[2:]).header.id == 9


async def test_failing_handler_is_servfail(served: tuple[DnsServer, Script]) -> None:
    server, _ = served
    data = await exchange(server.port, make_query("boom.example."))
    assert data is not None and dnslib.DNSRecord.parse(data).header.rcode == codec.SERVFAIL
    assert server.counters["handler_failed"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_get_a_well_formed_answer_or_none(data: bytes, valid_header: bool) -> None:
    """Whatever arrives, ``received`` never raises, and what it sends back is a DNS response
    (framed over TCP) with the query's ID."""
    if valid_header:
        data = struct.pack("!HHHHHH", 0x0A0B, 0x0100, 1, 0, 0, 0) + data

    async def run() -> list[tuple[str, bytes]]:
        server = DnsServer(Script(), host="127.0.0.1", port=0)
        sent: list[tuple[str, bytes]] = []
        for kind in ("udp", "tcp"):
            server.received(data, ("127.0.0.1", 1), kind, lambda out, k=kind: sent.append((k, out)))
        while server._tasks:
            await asyncio.wait(set(server._tasks))
        return sent

    for kind, out in asyncio.run(run()):
        body = out[2:] if kind == "tcp" else out
        if kind == "tcp":
            assert int.from_bytes(out[:2], "big") == len(body)
        answer = codec.decode(body)
        assert answer.is_response and answer.id == int.from_bytes(data[:2], "big")


async def test_idle_tcp_connection_is_closed() -> None:
    server = DnsServer(Script(), host="127.0.0.1", port=0, tcp_idle=0.2)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        query = make_query("idle.example.", ident=4)
        writer.write(len(query).to_bytes(2, "big") + query)
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), WAIT), "big")
        assert dnslib.DNSRecord.parse(await reader.readexactly(size)).header.id == 4
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the server
        assert asyncio.get_running_loop().time() - started >= 0.15
        writer.close()
    finally:
        await server.stop()
