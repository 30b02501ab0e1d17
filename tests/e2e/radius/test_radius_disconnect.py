"""RFC 5176 through the agent: a prepaid session that runs out of credit is cut off with a
Disconnect-Request the NAS (pyrad-based, here) receives and ACKs; the NAS's Stop afterwards is
answered and charged once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyrad import packet  # type: ignore[import-untyped]

from agents.radius import codec
from tests.e2e.diameter.conftest import start_engine
from tests.e2e.diameter.test_gy_acceptance import balance, wait_for_cdr
from tests.e2e.radius.conftest import SECRET, radclient_send, start_radius_agent, stop_radius_agent
from tests.e2e.test_sessions_acceptance import set_money


class PyradNas(asyncio.DatagramProtocol):
    """Receives Disconnect/CoA-Requests (decoded by pyrad) and answers ``answer``."""

    def __init__(self, answer: int = packet.DisconnectACK) -> None:
        self.answer = answer
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = packet.CoAPacket(packet=data, secret=SECRET.encode(), dict=codec.dictionary())
        if not request.VerifyCoARequest():
            return
        self.requests.put_nowait(request)
        reply = request.CreateReply()
        reply.code = self.answer
        reply.add_message_authenticator()
        self.transport.sendto(reply.ReplyPacket(), addr)


async def test_out_of_credit_sends_a_disconnect_request(tmp_path: Path, radclient: str) -> None:
    engine = await asyncio.to_thread(start_engine, tmp_path / "engine", {"debit_interval": "1s"})
    loop = asyncio.get_running_loop()
    nas_transport, nas = await loop.create_datagram_endpoint(PyradNas, local_addr=("127.0.0.1", 0))
    nas_port = nas_transport.get_extra_info("sockname")[1]
    try:
        await asyncio.to_thread(set_money, engine, "1001", "0.03")  # 3 s to 1003 at 0.01/s
        clients = {
            "127.0.0.1": {
                "secret": SECRET,
                "require_message_authenticator": True,
                "dynauth": f"127.0.0.1:{nas_port}",
            }
        }
        agent = await start_radius_agent(engine, tmp_path / "agent", clients=clients)
        try:
            start = {
                "User-Name": "1001",
                "Called-Station-Id": "1003",
                "Acct-Status-Type": "Start",
                "Acct-Session-Id": "broke-1",
                "NAS-IP-Address": "127.0.0.1",
                "Acct-Interim-Interval": 30,
            }
            reply = await radclient_send(radclient, agent.acct_port, "acct", start)
            assert reply.code == "Accounting-Response", reply.output
            request = await asyncio.wait_for(nas.requests.get(), 15)
            assert request.code == packet.DisconnectRequest
            assert request["User-Name"] == ["1001"]
            assert request["Acct-Session-Id"] == ["broke-1"]
            assert request["Reply-Message"] == ["INSUFFICIENT_CREDIT"]
            # pyrad saw the Message-Authenticator first and valid
            assert request.raw_packet[20] == codec.ATTR_MESSAGE_AUTHENTICATOR
            assert request.verify_message_authenticator()
            # The NAS ends its session: the Stop is answered, nothing charged a second time.
            stop = {**start, "Acct-Status-Type": "Stop", "Acct-Session-Time": 3}
            reply = await radclient_send(radclient, agent.acct_port, "acct", stop)
            assert reply.code == "Accounting-Response", reply.output
            cdr = await wait_for_cdr(engine, "broke-1")
            left = await balance(engine)
            assert Decimal(0) <= left < Decimal("0.03")
            assert Decimal(str(cdr["Cost"])) == Decimal("0.03") - left
        finally:
            await stop_radius_agent(agent)
    finally:
        nas_transport.close()
        assert await asyncio.to_thread(engine.stop) == 0
