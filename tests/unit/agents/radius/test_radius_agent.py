"""RadiusAgent.handle with a canned engine: authorization decisions, accounting answered only
once recorded, Accounting-On, CoA/Disconnect to a NAS socket with NAK + Error-Cause."""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.base import AgentContext
from agents.radius import codec
from agents.radius.agent import RadiusAgent
from agents.radius.codec import RadiusMessage
from core.config import AgentConfig
from core.rpc import RpcError

SECRET = "s3cret"
NAS = ("127.0.0.1", 40000)
PASSWORD = {"AlteredFields": ["*req.Password"],
            "CGREvent": {"Event": {"Password": "pw"}}}  # fmt: skip


class Engine:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.replies: dict[str, Any] = {
            "SessionSv1.AuthorizeEvent": {"MaxUsage": 3600 * 10**9, "Attributes": PASSWORD},
            "SessionSv1.InitiateSession": {"MaxUsage": 300 * 10**9},
            "SessionSv1.UpdateSession": {"MaxUsage": 300 * 10**9},
            "SessionSv1.TerminateSession": "OK",
            "SessionSv1.ProcessCDR": "OK",
        }

    async def call(self, method: str, params: Any) -> Any:
        self.calls.append((method, params))
        reply = self.replies[method]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


@pytest.fixture
def engine() -> Engine:
    return Engine()


def make_agent(engine: Engine, dynauth: str = "127.0.0.1:3799") -> RadiusAgent:
    config = AgentConfig(
        name="radius",
        options={"clients": {"127.0.0.1": {"secret": SECRET, "dynauth": dynauth}}},
    )
    return RadiusAgent(AgentContext(config, engine))


def accounting(status: str, session_time: int = 0, ident: int = 1) -> RadiusMessage:
    items: list[tuple[str, Any]] = [
        ("User-Name", "1001"),
        ("Acct-Status-Type", status),
        ("Acct-Session-Id", "s1"),
        ("Called-Station-Id", "1002"),
        ("Acct-Session-Time", session_time),
    ]
    data = codec.encode_request(
        codec.ACCOUNTING_REQUEST, ident, codec.attributes_from(items), SECRET.encode()
    )
    return codec.decode(data)


def access(password: str) -> RadiusMessage:
    authenticator = bytes(range(16))
    key = hashlib.md5(SECRET.encode() + authenticator).digest()
    padded = password.encode().ljust(16, b"\x00")
    hidden = bytes(a ^ b for a, b in zip(padded, key, strict=True))
    items = [("User-Name", "1001"), ("User-Password", hidden), ("Called-Station-Id", "1002")]
    body = b"".join(
        bytes((a.code, len(a.value) + 2)) + a.value for a in codec.attributes_from(items)
    )
    header = struct.pack("!BBH16s", codec.ACCESS_REQUEST, 5, 20 + len(body), authenticator)
    return codec.decode(header + body)


def client_of(agent: RadiusAgent) -> Any:
    return agent.clients["127.0.0.1"]


async def test_pap_accept_and_reject(engine: Engine) -> None:
    agent = make_agent(engine)
    reply = await agent.handle(access("pw"), client_of(agent), NAS)
    assert reply is not None and reply.code == codec.ACCESS_ACCEPT
    assert [(a.code, a.value) for a in reply.attributes] == [(27, struct.pack("!I", 3600))]
    params = engine.calls[0][1]
    assert params["GetMaxUsage"] and params["GetAttributes"]
    assert params["APIOpts"]["*context"] == "simpleauth"
    reply = await agent.handle(access("nope"), client_of(agent), NAS)
    assert reply is not None and reply.code == codec.ACCESS_REJECT and reply.attributes == []


async def test_no_credit_is_rejected_with_reply_message(engine: Engine) -> None:
    engine.replies["SessionSv1.AuthorizeEvent"] = RpcError("INSUFFICIENT_CREDIT")
    agent = make_agent(engine)
    reply = await agent.handle(access("pw"), client_of(agent), NAS)
    assert reply is not None and reply.code == codec.ACCESS_REJECT
    assert [(a.code, a.value) for a in reply.attributes] == [(18, b"Insufficient credit")]


async def test_accounting_answered_only_when_recorded(engine: Engine) -> None:
    engine.replies["SessionSv1.InitiateSession"] = RpcError("SERVER_ERROR")
    agent = make_agent(engine)
    assert await agent.handle(accounting("Start"), client_of(agent), NAS) is None
    engine.replies["SessionSv1.InitiateSession"] = {"MaxUsage": 300 * 10**9}
    reply = await agent.handle(accounting("Start", ident=2), client_of(agent), NAS)
    assert reply is not None and reply.code == codec.ACCOUNTING_RESPONSE
    assert await agent.get_active_session_ids() == [{"OriginID": "s1", "OriginHost": "127.0.0.1"}]


async def test_interim_sends_the_time_since_the_last_report(engine: Engine) -> None:
    agent = make_agent(engine)
    client = client_of(agent)
    await agent.handle(accounting("Start"), client, NAS)
    await agent.handle(accounting("Interim-Update", 60, 2), client, NAS)
    await agent.handle(accounting("Interim-Update", 90, 3), client, NAS)
    await agent.handle(accounting("Stop", 100, 4), client, NAS)
    updates = [p for m, p in engine.calls if m == "SessionSv1.UpdateSession"]
    assert [u["Event"]["LastUsed"] for u in updates] == ["60s", "30s"]
    (terminate,) = [p for m, p in engine.calls if m == "SessionSv1.TerminateSession"]
    assert terminate["Event"]["Usage"] == "100s"
    assert await agent.get_active_session_ids() == []
    # The Stop again, later (past any engine reply cache): acknowledged, not charged.
    before = len(engine.calls)
    reply = await agent.handle(accounting("Stop", 100, 5), client, NAS)
    assert reply is not None and reply.code == codec.ACCOUNTING_RESPONSE
    assert len(engine.calls) == before


async def test_accounting_on_stops_the_sessions_of_that_nas(engine: Engine) -> None:
    agent = make_agent(engine)
    client = client_of(agent)
    await agent.handle(accounting("Start"), client, NAS)
    await agent.handle(accounting("Interim-Update", 40, 2), client, NAS)
    reply = await agent.handle(accounting("Accounting-On", ident=3), client, NAS)
    assert reply is not None and reply.code == codec.ACCOUNTING_RESPONSE
    assert engine.methods()[-2:] == ["SessionSv1.TerminateSession", "SessionSv1.ProcessCDR"]
    assert engine.calls[-2][1]["Event"]["Usage"] == "40s"
    assert await agent.get_active_session_ids() == []


class Nas(asyncio.DatagramProtocol):
    def __init__(self, code: int, error_cause: str | None = None) -> None:
        self.code = code
        self.error_cause = error_cause
        self.received: list[RadiusMessage] = []
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = codec.decode(data)
        self.received.append(request)
        items = [("Error-Cause", self.error_cause)] if self.error_cause else []
        reply = codec.encode_reply(
            request, self.code, codec.attributes_from(items), SECRET.encode()
        )
        self.transport.sendto(reply, addr)


@pytest.fixture
async def nas_factory() -> AsyncIterator[Any]:
    transports: list[Any] = []

    async def make(code: int, error_cause: str | None = None) -> tuple[Nas, int]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Nas(code, error_cause), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return protocol, transport.get_extra_info("sockname")[1]

    yield make
    for transport in transports:
        transport.close()


async def test_alter_session_sends_a_coa(engine: Engine, nas_factory: Any) -> None:
    nas, port = await nas_factory(codec.COA_ACK)
    agent = make_agent(engine, f"127.0.0.1:{port}")
    await agent.handle(accounting("Start"), client_of(agent), NAS)
    answer = await agent.alter_session({"EventStart": {"OriginID": "s1"}, "CustomFilter": "gold"})
    assert answer == "OK"
    (coa,) = nas.received
    assert coa.code == codec.COA_REQUEST and coa.attributes[0].code == 80
    assert coa.get(("Filter-Id",)) == ["gold"] and coa.get(("User-Name",)) == ["1001"]
    assert coa.get(("Acct-Session-Id",)) == ["s1"]
    assert codec.verify_request_authenticator(coa, SECRET.encode())
    assert codec.verify_message_authenticator(coa, SECRET.encode())


async def test_disconnect_nak_reports_the_error_cause(engine: Engine, nas_factory: Any) -> None:
    nas, port = await nas_factory(codec.DISCONNECT_NAK, "Session-Context-Not-Found")
    agent = make_agent(engine, f"127.0.0.1:{port}")
    await agent.handle(accounting("Start"), client_of(agent), NAS)
    with pytest.raises(RpcError, match="Disconnect-NAK: Session-Context-Not-Found"):
        await agent.disconnect_session(
            {"EventStart": {"OriginID": "s1"}, "Reason": "FORCED_DISCONNECT"}
        )
    assert nas.received[0].get(("Reply-Message",)) == ["FORCED_DISCONNECT"]
    with pytest.raises(RpcError, match="NOT_FOUND"):
        await agent.disconnect_session({"EventStart": {"OriginID": "other"}})


def test_bad_options(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown radius option"):
        RadiusAgent(
            AgentContext(
                AgentConfig(name="radius", options={"clients": {"*default": "x"}, "x": 1}), engine
            )
        )
    with pytest.raises(ValueError, match="clients"):
        RadiusAgent(AgentContext(AgentConfig(name="radius"), engine))
