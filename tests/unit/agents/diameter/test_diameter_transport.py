"""agents.diameter.transport over real sockets on 127.0.0.1.

The far side is python-diameter's message classes over a raw asyncio stream: an independent
encoder/decoder for CER, DWR, DPR, CCR and the answers.
(Named test_diameter_transport.py for a unique basename under pytest's default import mode.)
"""

from __future__ import annotations

import asyncio
import itertools
import random
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from diameter.message import Message
from diameter.message import constants as C
from diameter.message.avp import Avp as PdAvp
from diameter.message.commands import (
    CapabilitiesExchangeRequest,
    CreditControlRequest,
    DeviceWatchdogAnswer,
    DeviceWatchdogRequest,
    DisconnectPeerRequest,
    ReAuthAnswer,
    ReAuthRequest,
)

from agents.diameter import codec
from agents.diameter.codec import DiameterMessage
from agents.diameter.transport import (
    AllowedPeer,
    DiameterConfig,
    DiameterNode,
    DiameterTransportError,
    Peer,
    PeerState,
)

TIMEOUT = 5.0
OUR_HOST = "ocs.chargeflow.test"
OUR_REALM = "chargeflow.test"


def config(**overrides: Any) -> DiameterConfig:
    values: dict[str, Any] = {
        "origin_host": OUR_HOST,
        "origin_realm": OUR_REALM,
        "listen_port": 0,
        "cer_timeout": 2.0,
        "request_timeout": 1.0,
    }
    values.update(overrides)
    return DiameterConfig(**values)


async def cca_handler(request: DiameterMessage, peer: Peer) -> DiameterMessage:
    return codec.answer_to(
        request,
        codec.DIAMETER_SUCCESS,
        {
            "Auth-Application-Id": 4,
            "CC-Request-Type": request.first(416),
            "CC-Request-Number": request.first(415),
        },
        origin_host=OUR_HOST,
        origin_realm=OUR_REALM,
    )


class RawPeer:
    """A bare Diameter client: python-diameter encodes and decodes, we only frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.hbh = 100

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, message: Any) -> None:
        self.hbh += 1
        if message.header.is_request and not message.header.hop_by_hop_identifier:
            message.header.hop_by_hop_identifier = self.hbh
            message.header.end_to_end_identifier = self.hbh
        self.send_raw(message.as_bytes())

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv_raw(self) -> bytes:
        head = await asyncio.wait_for(self.reader.readexactly(20), TIMEOUT)
        length = int.from_bytes(head[1:4], "big")
        return head + await asyncio.wait_for(self.reader.readexactly(length - 20), TIMEOUT)

    async def recv(self) -> Any:
        return Message.from_bytes(await self.recv_raw())

    async def closed(self) -> bool:
        """True when the server closes the connection (EOF) within the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        try:
            while await asyncio.wait_for(self.reader.read(65536), deadline - loop.time()):
                pass  # whatever still comes (DWRs) before the end
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return True

    async def cer(self, host: str = "pgw.test", apps: tuple[int, ...] = (4,)) -> Any:
        cer = CapabilitiesExchangeRequest()
        cer.origin_host = host.encode()
        cer.origin_realm = b"test"
        cer.host_ip_address = "127.0.0.1"
        cer.vendor_id = 0
        cer.product_name = "raw"
        for app in apps:
            cer.append_avp(PdAvp.new(C.AVP_AUTH_APPLICATION_ID, value=app))
        self.send(cer)
        return await self.recv()

    def close(self) -> None:
        self.writer.close()


def ccr(number: int = 0) -> CreditControlRequest:
    request = CreditControlRequest()
    request.header.application_id = 4
    request.session_id = f"pgw.test;1;{number}"
    request.origin_host = b"pgw.test"
    request.origin_realm = b"test"
    request.destination_realm = OUR_REALM.encode()
    request.auth_application_id = 4
    request.service_context_id = "32251@3gpp.org"
    request.cc_request_type = C.E_CC_REQUEST_TYPE_INITIAL_REQUEST
    request.cc_request_number = number
    return request


ServerFactory = Callable[..., Awaitable[DiameterNode]]


@pytest.fixture
async def server() -> AsyncIterator[ServerFactory]:
    nodes: list[DiameterNode] = []

    async def start(handler: Any = cca_handler, **overrides: Any) -> DiameterNode:
        node = DiameterNode(config(**overrides), handler)
        await node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        await asyncio.wait_for(node.stop(), TIMEOUT)


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[int], Awaitable[RawPeer]]]:
    peers: list[RawPeer] = []

    async def open_peer(port: int) -> RawPeer:
        peer = await RawPeer.open(port)
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        peer.close()


async def test_cer_cea_dwr_dpr(server: ServerFactory, raw: Any) -> None:
    node = await server(vendor_specific_application_ids=((10415, 4),))
    client = await raw(node.port)
    cea = await client.cer()
    assert cea.result_code == codec.DIAMETER_SUCCESS
    assert cea.origin_host == OUR_HOST.encode()
    assert C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION in cea.auth_application_id
    assert cea.header.hop_by_hop_identifier == client.hbh
    assert cea.vendor_specific_application_id[0].vendor_id == 10415
    assert "pgw.test" in node.peers

    dwr = DeviceWatchdogRequest()
    dwr.origin_host, dwr.origin_realm = b"pgw.test", b"test"
    client.send(dwr)
    dwa = await client.recv()
    assert isinstance(dwa, DeviceWatchdogAnswer) and dwa.result_code == 2001

    client.send(ccr(1))
    cca = await client.recv()
    assert cca.result_code == 2001 and cca.session_id == "pgw.test;1;1"

    dpr = DisconnectPeerRequest()
    dpr.origin_host, dpr.origin_realm = b"pgw.test", b"test"
    dpr.disconnect_cause = 0
    client.send(dpr)
    dpa = await client.recv()
    assert dpa.result_code == 2001
    assert await client.closed()
    await asyncio.sleep(0.05)
    assert "pgw.test" not in node.peers


async def test_no_common_application(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    cea = await client.cer(apps=(16777238,))  # Gx only
    assert cea.result_code == codec.DIAMETER_NO_COMMON_APPLICATION
    assert await client.closed()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("intruder.test", (AllowedPeer("pgw.test"),)),
        ("pgw.test", (AllowedPeer("pgw.test", frozenset({"192.0.2.9"})),)),
    ],
)
async def test_unknown_peer(
    server: ServerFactory, raw: Any, host: str, allowed: tuple[AllowedPeer, ...]
) -> None:
    node = await server(allowed_peers=allowed)
    client = await raw(node.port)
    cea = await client.cer(host=host)
    assert cea.result_code == codec.DIAMETER_UNKNOWN_PEER
    assert cea.header.is_error
    assert await client.closed()


async def test_allowed_peer_by_host_and_address(server: ServerFactory, raw: Any) -> None:
    node = await server(allowed_peers=(AllowedPeer("PGW.test", frozenset({"127.0.0.1"})),))
    client = await raw(node.port)
    assert (await client.cer()).result_code == codec.DIAMETER_SUCCESS


async def test_message_before_cer_closes(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    dwr = DeviceWatchdogRequest()
    dwr.origin_host, dwr.origin_realm = b"pgw.test", b"test"
    client.send(dwr)
    assert await client.closed()


async def test_unknown_command(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    await client.cer()
    rar = ReAuthRequest()  # we handle CCR only
    rar.header.application_id = 4
    rar.session_id = "x"
    rar.origin_host, rar.origin_realm = b"pgw.test", b"test"
    rar.destination_realm, rar.destination_host = b"r", b"h"
    rar.auth_application_id, rar.re_auth_request_type = 4, 0
    client.send(rar)
    answer = await client.recv()
    assert answer.result_code == codec.DIAMETER_COMMAND_UNSUPPORTED
    assert answer.header.is_error and answer.header.hop_by_hop_identifier == client.hbh


async def test_unsupported_application(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    await client.cer()
    request = ccr()
    request.header.application_id = 16777238
    client.send(request)
    assert (await client.recv()).result_code == codec.DIAMETER_APPLICATION_UNSUPPORTED


async def test_decode_error_answered_connection_stays(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    await client.cer()
    request = ccr(7)
    request.header.hop_by_hop_identifier = 4242
    data = bytearray(request.as_bytes())
    data[20 + 4] |= 0x01  # reserved bit in the first AVP's flags (Session-Id)
    client.send_raw(bytes(data))
    answer = await client.recv()
    assert answer.result_code == codec.DIAMETER_INVALID_AVP_BITS
    assert answer.header.is_error and answer.header.hop_by_hop_identifier == 4242
    mine = codec.decode(answer.as_bytes())
    assert mine.find(codec.AVP_FAILED_AVP)
    client.send(ccr(8))
    assert (await client.recv()).result_code == 2001


async def test_undecodable_cer_value_is_answered(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    cer = CapabilitiesExchangeRequest()
    cer.origin_host = b"\xff\xfe"  # DiameterIdentity that is not even UTF-8
    cer.origin_realm = b"test"
    cer.host_ip_address = "127.0.0.1"
    cer.vendor_id = 0
    cer.product_name = "raw"
    cer.auth_application_id = 4
    client.send(cer)
    answer = await client.recv()
    assert answer.result_code == codec.DIAMETER_INVALID_AVP_VALUE
    assert await client.closed()


async def test_oversized_message_refused(server: ServerFactory, raw: Any) -> None:
    node = await server(max_message_size=256)
    client = await raw(node.port)
    await client.cer()
    request = ccr(1)
    request.session_id = "x" * 400
    client.send(request)
    answer = await client.recv()
    assert answer.result_code == codec.DIAMETER_INVALID_MESSAGE_LENGTH
    assert await client.closed()


async def test_too_busy_over_the_cap(server: ServerFactory, raw: Any) -> None:
    release = asyncio.Event()

    async def slow(request: DiameterMessage, peer: Peer) -> DiameterMessage:
        await release.wait()
        return await cca_handler(request, peer)

    node = await server(handler=slow, max_in_flight=1)
    client = await raw(node.port)
    await client.cer()
    client.send(ccr(1))
    client.send(ccr(2))  # read after the first, which holds the only slot by then
    busy = await client.recv()
    assert busy.result_code == codec.DIAMETER_TOO_BUSY and busy.header.is_error
    assert busy.session_id == "pgw.test;1;2"
    release.set()
    done = await client.recv()
    assert done.result_code == 2001 and done.session_id == "pgw.test;1;1"
    assert node.in_flight == 0


async def test_handler_failure_is_unable_to_comply(server: ServerFactory, raw: Any) -> None:
    async def broken(request: DiameterMessage, peer: Peer) -> DiameterMessage:
        raise RuntimeError("boom")

    async def unencodable(request: DiameterMessage, peer: Peer) -> DiameterMessage:
        return codec.answer_to(
            request, 2001, {"CC-Time": "not a number"}, origin_host="h", origin_realm="r"
        )

    async def reads_bad_value(request: DiameterMessage, peer: Peer) -> DiameterMessage:
        request.get(("Session-Id",))
        raise AssertionError("unreachable: the Session-Id is not UTF-8")

    node = await server(handler=reads_bad_value)
    client = await raw(node.port)
    await client.cer()
    bad = ccr(1)
    bad.session_id = "x"
    client.send_raw(bad.as_bytes().replace(b"x\0\0\0", b"\xff\0\0\0"))
    answer = await client.recv()
    assert answer.result_code == codec.DIAMETER_INVALID_AVP_VALUE
    failed = codec.decode(answer.as_bytes()).find(codec.AVP_FAILED_AVP)[0].children
    assert [(a.code, a.payload) for a in failed] == [(codec.AVP_SESSION_ID, b"\xff")]

    for handler in (broken, unencodable):
        node = await server(handler=handler)
        client = await raw(node.port)
        await client.cer()
        client.send(ccr(1))
        answer = await client.recv()
        assert answer.result_code == codec.DIAMETER_UNABLE_TO_COMPLY
        assert answer.session_id == "pgw.test;1;1"


async def test_watchdog_sent_after_silence_and_answered(server: ServerFactory, raw: Any) -> None:
    node = await server(watchdog_interval=0.2)
    client = await raw(node.port)
    await client.cer()
    for _ in range(3):
        dwr = await client.recv()
        assert isinstance(dwr, DeviceWatchdogRequest) and dwr.header.is_request
        assert dwr.origin_host == OUR_HOST.encode()
        dwa = dwr.to_answer()
        dwa.result_code, dwa.origin_host, dwa.origin_realm = 2001, b"pgw.test", b"test"
        client.send(dwa)
    assert node.peers["pgw.test"].state is PeerState.OPEN


async def test_watchdog_unanswered_closes(server: ServerFactory, raw: Any) -> None:
    node = await server(watchdog_interval=0.1)
    client = await raw(node.port)
    await client.cer()
    assert await client.closed()  # DWRs arrive, we never answer: closed after 3 misses
    await asyncio.sleep(0.05)
    assert "pgw.test" not in node.peers


async def test_send_request_to_peer_by_origin_host(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    await client.cer()
    rar = DiameterMessage(codec.CMD_RE_AUTH, 4, codec.FLAG_REQUEST | codec.FLAG_PROXIABLE)
    for item in codec.build_avps(
        {
            "Session-Id": "pgw.test;1;1",
            "Origin-Host": OUR_HOST,
            "Origin-Realm": OUR_REALM,
            "Destination-Realm": "test",
            "Destination-Host": "pgw.test",
            "Auth-Application-Id": 4,
            "Re-Auth-Request-Type": 0,
        }
    ):
        rar.append(item)
    pending = asyncio.create_task(node.send_request("pgw.test", rar))
    received = await client.recv()
    assert isinstance(received, ReAuthRequest) and received.session_id == "pgw.test;1;1"
    answer = received.to_answer()
    answer.result_code, answer.origin_host, answer.origin_realm = 2001, b"pgw.test", b"test"
    assert isinstance(answer, ReAuthAnswer)
    client.send(answer)
    got = await asyncio.wait_for(pending, TIMEOUT)
    assert got.first(codec.AVP_RESULT_CODE) == 2001 and got.hbh == rar.hbh

    with pytest.raises(DiameterTransportError):
        await node.send_request("pgw.test", rar, timeout=0.1)  # nobody answers this time
    with pytest.raises(DiameterTransportError):
        await node.send_request("nobody.test", rar)


async def test_client_side_connects_to_our_server(server: ServerFactory) -> None:
    node = await server()
    client_node = DiameterNode(config(origin_host="pgw.chargeflow.test"))
    peer = await asyncio.wait_for(client_node.connect("127.0.0.1", node.port), TIMEOUT)
    try:
        assert peer.state is PeerState.OPEN and peer.origin_host == OUR_HOST
        request = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST)
        for item in codec.build_avps(
            {
                "Session-Id": "pgw;9",
                "Origin-Host": "pgw.chargeflow.test",
                "Origin-Realm": OUR_REALM,
                "CC-Request-Type": 1,
                "CC-Request-Number": 0,
            }
        ):
            request.append(item)
        answer = await peer.request(request)
        assert answer.first(codec.AVP_RESULT_CODE) == 2001
        assert answer.session_id == "pgw;9"
    finally:
        await asyncio.wait_for(client_node.stop(), TIMEOUT)
    await asyncio.sleep(0.05)
    assert "pgw.chargeflow.test" not in node.peers


async def test_client_side_refused(server: ServerFactory) -> None:
    node = await server(allowed_peers=(AllowedPeer("someone.else"),))
    client_node = DiameterNode(config(origin_host="pgw.chargeflow.test"))
    with pytest.raises(DiameterTransportError):
        await asyncio.wait_for(client_node.connect("127.0.0.1", node.port), TIMEOUT)
    await client_node.stop()


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for DNS name ``name`` and its key (PEM files in ``folder``)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls_from_the_first_byte(server: ServerFactory, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, OUR_HOST)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    node = await server(tls_server=server_ctx)

    client_node = DiameterNode(config(origin_host="pgw.chargeflow.test", tls_client=client_ctx))
    try:
        peer = await client_node.connect("127.0.0.1", node.port, server_hostname=OUR_HOST)
        assert peer.writer.get_extra_info("ssl_object") is not None
        request = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST)
        for item in codec.build_avps({"Session-Id": "tls;1", "CC-Request-Type": 1}):
            request.append(item)
        assert (await peer.request(request)).first(codec.AVP_RESULT_CODE) == 2001
    finally:
        await asyncio.wait_for(client_node.stop(), TIMEOUT)

    plain = DiameterNode(config(origin_host="plain.chargeflow.test"))
    with pytest.raises(DiameterTransportError):  # a plain TCP client gets nowhere
        await plain.connect("127.0.0.1", node.port)
    await plain.stop()


async def test_maintain_reconnects_after_the_server_comes_back() -> None:
    probe = DiameterNode(config())
    await probe.start()
    port = probe.port
    await probe.stop()  # the port is free again: nothing listens yet

    client_node = DiameterNode(config(origin_host="pgw.chargeflow.test"))
    client_node.maintain("127.0.0.1", port, retry=0.1)
    server_node = DiameterNode(config(listen_port=port), cca_handler)
    try:
        await asyncio.sleep(0.3)  # a few refused attempts first
        await server_node.start()
        for _ in range(100):
            if "pgw.chargeflow.test" in server_node.peers:
                break
            await asyncio.sleep(0.05)
        first = server_node.peers["pgw.chargeflow.test"]
        await first.disconnect()  # we drop it (DPR): the client comes back by itself
        for _ in range(100):
            again = server_node.peers.get("pgw.chargeflow.test")
            if again is not None and again is not first:
                break
            await asyncio.sleep(0.05)
        assert again is not None and again is not first and again.state is PeerState.OPEN
    finally:
        await asyncio.wait_for(client_node.stop(), TIMEOUT)
        await asyncio.wait_for(server_node.stop(), TIMEOUT)


async def test_in_flight_released_when_peer_vanishes(server: ServerFactory, raw: Any) -> None:
    async def never(request: DiameterMessage, peer: Peer) -> DiameterMessage:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    node = await server(handler=never)
    client = await raw(node.port)
    await client.cer()
    for number in range(3):
        client.send(ccr(number))
    for _ in range(100):
        if node.in_flight == 3:
            break
        await asyncio.sleep(0.02)
    assert node.in_flight == 3
    client.close()
    for _ in range(100):
        if node.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert node.in_flight == 0 and "pgw.test" not in node.peers


async def test_pipelined_requests_all_answered(server: ServerFactory, raw: Any) -> None:
    node = await server()
    client = await raw(node.port)
    await client.cer()
    for number in range(200):
        client.send(ccr(number))
    numbers = sorted([(await client.recv()).cc_request_number for _ in range(200)])
    assert numbers == list(range(200))


async def test_frames_split_across_reads_and_joined_in_one_are_all_answered(
    server: ServerFactory, raw: Any
) -> None:
    # The transport frames what it reads itself: a frame may arrive in pieces (a header cut
    # in two, a body in several reads) and several frames, or a frame and a piece of the
    # next, may arrive in one read.
    node = await server()
    client = await raw(node.port)
    await client.cer()
    frames = []
    for number in range(6):
        request = ccr(number)
        request.header.hop_by_hop_identifier = request.header.end_to_end_identifier = 100 + number
        frames.append(request.as_bytes())
    stream = b"".join(frames)
    cuts = [0, 3, 17, len(frames[0]) + 5, len(frames[0]) + len(frames[1]) + 30, len(stream)]
    for start, end in itertools.pairwise(cuts):
        client.send_raw(stream[start:end])
        await client.writer.drain()
        await asyncio.sleep(0.01)  # separate reads on the server's side
    numbers = sorted([(await client.recv()).cc_request_number for _ in range(6)])
    assert numbers == list(range(6))


async def test_garbage_frames_never_take_the_server_down(
    server: ServerFactory, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rnd = random.Random(6733)
    valid = ccr(1).as_bytes()
    node = await server()
    for _ in range(30):
        client = await raw(node.port)
        await client.cer()
        for _ in range(5):
            frame = bytearray(valid)
            for _ in range(rnd.randint(1, 6)):
                frame[rnd.randrange(4, len(frame))] = rnd.randrange(256)  # keep the length
            client.send_raw(bytes(frame))
        client.close()
    await asyncio.sleep(0.2)
    fresh = await raw(node.port)
    assert (await fresh.cer(host="fresh.test")).result_code == codec.DIAMETER_SUCCESS
    fresh.send(ccr(2))
    assert (await fresh.recv()).result_code == codec.DIAMETER_SUCCESS
    assert "unexpected error" not in caplog.text and "Traceback" not in caplog.text


async def test_answers_finished_together_share_one_write_in_order(
    server: ServerFactory, raw: Any
) -> None:
    gate = asyncio.Event()
    waiting: list[int] = []

    async def held(request: DiameterMessage, peer: Peer) -> DiameterMessage:
        waiting.append(request.first(415))
        await gate.wait()
        return await cca_handler(request, peer)

    node = await server(held)
    client = await raw(node.port)
    await client.cer()
    peer = node.peers["pgw.test"]
    writes: list[bytes] = []
    write = peer.writer.write

    def counted(data: bytes) -> None:
        writes.append(data)
        write(data)

    peer.writer.write = counted  # type: ignore[method-assign]
    for number in range(3):
        client.send(ccr(number))
    while len(waiting) < 3:
        await asyncio.sleep(0.01)
    gate.set()  # the three finish in one turn of the loop
    numbers = [(await client.recv()).cc_request_number for _ in range(3)]
    assert numbers == waiting  # in the order they finished
    assert len(writes) == 1

    # Alone, an answer is written by itself, at once.
    client.send(ccr(7))
    assert (await client.recv()).cc_request_number == 7
    assert len(writes) == 2
