"""SipAgent.handle with a canned engine and the default templates: what the AuthorizeEvent
carries, the 302 Contacts built from the routes (order, q-values, cost, maxusage), the reject
codes by engine answer, OPTIONS/405, and template-driven answers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.base import AgentContext
from agents.sip import codec
from agents.sip.agent import ALLOW, SipAgent
from agents.sip.codec import SipMessage
from agents.sip.transport import Answer, Peer
from core.config import AgentConfig
from core.rpc import RpcError

PEER = Peer("UDP", ("192.0.2.10", 5070), lambda data, destination: None)
HOUR_NS = 3600 * 10**9


def routes(*entries: tuple[str, str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "ProfileID": "P1",
            "Sorting": "*lc",
            "Routes": [
                {"RouteID": route_id, "RouteParameters": params,
                 "SortingData": {} if cost is None else {"Cost": cost, "Weight": 10}}
                for route_id, params, cost in entries
            ],
        }
    ]  # fmt: skip


class Engine:
    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, params: Any) -> Any:
        self.calls.append((method, params))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def make_agent(engine: Engine, templates: Path | None = None) -> SipAgent:
    config = AgentConfig(name="sip", options={"t1": 0.05})
    return SipAgent(AgentContext(config, engine, templates))


def invite(from_user: str = "1001", to_user: str = "1002", method: str = "INVITE") -> SipMessage:
    text = (
        f"{method} sip:{to_user}@chargeflow.test SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK77\r\n"
        f'From: "A" <sip:{from_user}@example.net>;tag=1\r\n'
        f"To: <sip:{to_user}@chargeflow.test>\r\n"
        "Call-ID: c-42\r\n"
        f"CSeq: 5 {method}\r\n\r\n"
    )
    return codec.decode(text.encode())


async def test_invite_authorizes_with_routes_and_redirects() -> None:
    engine = Engine({
        "MaxUsage": HOUR_NS + 999_999_999,
        "Routes": routes(("route1", "gw1.example.net:5060", Decimal("0.0102")),
                         ("route2", "", 0.6),
                         ("route3", "sip:trunk@gw3.example.net;transport=tcp", None)),
    })  # fmt: skip
    answer = await make_agent(engine).handle(invite(), PEER)
    assert (answer.status, answer.reason) == (302, "Moved Temporarily")
    assert [value for name, value in answer.headers if name == "Contact"] == [
        "<sip:1002@gw1.example.net:5060>;q=1.0;cost=0.0102;maxusage=3600",
        "<sip:1002@route2>;q=0.9;cost=0.6;maxusage=3600",
        "<sip:trunk@gw3.example.net;transport=tcp>;q=0.8;maxusage=3600",
    ]
    [(method, params)] = engine.calls
    assert method == "SessionSv1.AuthorizeEvent"
    assert params["GetRoutes"] is True and params["GetMaxUsage"] is True
    assert params["ID"] == "c-42:5:INVITE"
    event = params["Event"]
    assert (event["Account"], event["Subject"], event["Destination"]) == ("1001", "1001", "1002")
    assert (event["OriginID"], event["OriginHost"], event["ToR"]) == (
        "c-42",
        "192.0.2.10",
        "*voice",
    )


async def test_q_values_step_by_one_over_n_past_ten_routes() -> None:
    many = routes(*((f"r{i}", f"gw{i}", None) for i in range(16)))
    answer = await make_agent(Engine({"MaxUsage": HOUR_NS, "Routes": many})).handle(invite(), PEER)
    qs = [value.split(";q=")[1].split(";")[0] for name, value in answer.headers
          if name == "Contact"]  # fmt: skip
    assert qs[:3] == ["1.0", "0.938", "0.875"] and qs[-1] == "0.062"
    assert [Decimal(q) for q in qs] == sorted((Decimal(q) for q in qs), reverse=True)
    assert len(set(qs)) == 16


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (RpcError("RALS_ERROR:INSUFFICIENT_CREDIT"), 402),
        ({"MaxUsage": 0, "Routes": routes(("r1", "gw", None))}, 402),
        (RpcError("RALS_ERROR:ACCOUNT_NOT_FOUND"), 403),
        (RpcError("RALS_ERROR:ACCOUNT_DISABLED"), 403),
        (RpcError("ROUTES_ERROR:NOT_FOUND"), 480),
        ({"MaxUsage": HOUR_NS, "Routes": []}, 480),
        (RpcError("DISCONNECTED"), 503),
        (TimeoutError(), 503),
        (RpcError("REPLY_TIMEOUT"), 503),
    ],
)
async def test_rejects(reply: Any, status: int) -> None:
    answer = await make_agent(Engine(reply)).handle(invite(), PEER)
    assert answer.status == status
    assert not [v for n, v in answer.headers if n == "Contact"]
    if status == 503:
        assert ("Retry-After", "5") in answer.headers


async def test_options_and_other_methods_need_no_engine() -> None:
    engine = Engine({})
    agent = make_agent(engine)
    options = await agent.handle(invite(method="OPTIONS"), PEER)
    assert options.status == 200 and ("Allow", ALLOW) in options.headers
    other = await agent.handle(invite(method="SUBSCRIBE"), PEER)
    assert (other.status, other.reason) == (405, "Method Not Allowed")
    assert ("Allow", ALLOW) in other.headers
    assert engine.calls == []


async def test_uri_scheme_and_required_extensions_are_refused() -> None:
    engine = Engine({})
    agent = make_agent(engine)
    message = invite()
    message.uri = "mailto:someone@example.net"
    assert (await agent.handle(message, PEER)).status == 416
    message = invite()
    message.headers = [*message.headers, ("Require", "100rel, timer")]
    answer = await agent.handle(message, PEER)
    assert answer == Answer(420, "Bad Extension", [("Unsupported", "100rel, timer")])
    assert engine.calls == []


async def test_missing_caller_is_a_bad_request() -> None:
    message = invite()
    message.headers = [(n, "<tel:>" if n == "From" else v) for n, v in message.headers]
    engine = Engine({})
    answer = await make_agent(engine).handle(message, PEER)
    assert answer.status == 400 and engine.calls == []


async def test_templates_choose_the_answer(tmp_path: Path) -> None:
    (tmp_path / "custom.yaml").write_text(
        """
request_processors:
  - id: options_busy
    filters: ["*string:~*vars.Method:OPTIONS"]
    flags: ["*none"]
    reply_fields:
      - {path: "*rep.Request", type: "*constant", value: "SIP/2.0 503 Maintenance"}
      - {path: "*rep.Retry-After", type: "*constant", value: "60"}
  - id: invite_routes
    filters: ["*string:~*vars.Method:INVITE"]
    flags: ["*authorize", "*accounts", "*routes"]
    request_fields:
      - {path: "*cgreq.Account", type: "*variable", value: "~*req.From.User"}
    reply_fields:
      - {path: "*rep.*sipReplyCode", type: "*constant", value: "300"}
      - {path: "*rep.*sipReplyReason", type: "*constant", value: "Pick One"}
      - {path: "*rep.*sipRouteContacts", type: "*constant", value: "yes"}
      - {path: "*rep.*sipContactUser", type: "*variable", value: "~*req.To.User:s/^(.*)$/00${1}/"}
      - {path: "*rep.Warning", type: "*group", value: "399 chargeflow \\"one\\""}
      - {path: "*rep.Warning", type: "*group", value: "399 chargeflow \\"two\\""}
  - id: bye_ok
    filters: ["*string:~*vars.Method:BYE"]
    flags: ["*none"]
    reply_fields:
      - {path: "*rep.*sipReplyCode", type: "*constant", value: "200"}
  - id: invite_ok_refused
    filters: ["*string:~*vars.Method:INFO"]
    flags: ["*none"]
    reply_fields:
      - {path: "*rep.*sipReplyCode", type: "*constant", value: "abc"}
"""
    )
    engine = Engine({"MaxUsage": HOUR_NS, "Routes": routes(("r1", "gw1", None))})
    agent = make_agent(engine, tmp_path)
    busy = await agent.handle(invite(method="OPTIONS"), PEER)
    assert busy == Answer(503, "Maintenance", [("Retry-After", "60")])
    redirect = await agent.handle(invite(), PEER)
    assert (redirect.status, redirect.reason) == (300, "Pick One")
    assert redirect.headers == [
        ("Warning", '399 chargeflow "one"'),
        ("Warning", '399 chargeflow "two"'),
        ("Contact", "<sip:001002@gw1>;q=1.0;maxusage=3600"),
    ]
    assert (await agent.handle(invite(method="BYE"), PEER)).status == 200
    assert (await agent.handle(invite(method="INFO"), PEER)).status == 500  # no valid code


async def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sip option"):
        SipAgent(AgentContext(AgentConfig(name="sip", options={"colour": 1}), Engine({})))
    with pytest.raises(ValueError, match="transports"):
        SipAgent(AgentContext(AgentConfig(name="sip", options={"transports": ["sctp"]}),
                              Engine({})))  # fmt: skip
    with pytest.raises(ValueError, match="t1"):
        SipAgent(AgentContext(AgentConfig(name="sip", options={"t1": 0}), Engine({})))


async def test_invite_over_udp_end_to_end_without_second_engine_call() -> None:
    """The agent's real UDP listener: a resent INVITE is answered from the transaction."""
    import asyncio

    engine = Engine({"MaxUsage": HOUR_NS, "Routes": routes(("r1", "gw1", None))})
    config = AgentConfig(name="sip", options={"t1": 5, "transports": ["udp"]})
    agent = SipAgent(AgentContext(config, engine))
    agent.server.port = 0
    await agent.start()
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            answers.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", agent.server.port)
    )
    try:
        message = invite()  # with rport: the answer comes back to this socket's port
        message.headers[0] = ("Via", message.headers[0][1] + ";rport")
        data = codec.encode(message)
        client.sendto(data)
        first = await asyncio.wait_for(answers.get(), 2)
        client.sendto(data)
        second = await asyncio.wait_for(answers.get(), 2)
        assert first == second and codec.decode(first).status == 302
        assert len(engine.calls) == 1
        assert agent.counters["repeated_answered"] == 1
    finally:
        client.close()
        await agent.stop()
