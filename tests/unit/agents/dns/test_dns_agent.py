"""DnsAgent.handle with a canned engine: the default ENUM templates (NAPTR per route in order,
RouteParameters over RouteID, NXDOMAIN, SERVFAIL, NODATA, REFUSED), the agent's own answer codes
(NOTIMP, BADVERS, FORMERR), and templates answering SRV/A/AAAA/TXT with EDNS0 options in and out.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import dnslib  # type: ignore[import-untyped]
import pytest
import yaml

from agents.base import AgentContext
from agents.dns import codec
from agents.dns.agent import DnsAgent
from agents.dns.codec import DnsMessage
from core.config import Address, AgentConfig
from core.rpc import RpcError

ENUM = "8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa."
NUMBER = "4915112345678"
PEER = ("127.0.0.1", 5353)


def routes(*entries: tuple[str, str]) -> dict[str, Any]:
    return {
        "MaxUsage": None,
        "Attributes": None,
        "Routes": [
            {
                "ProfileID": "ROUTE_ENUM",
                "Sorting": "*weight",
                "Routes": [
                    {"RouteID": rid, "RouteParameters": params, "SortingData": {"Weight": 10}}
                    for rid, params in entries
                ],
            }
        ],
    }


class Engine:
    def __init__(self, reply: Any = None) -> None:
        self.reply = reply
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, params: Any) -> Any:
        self.calls.append((method, params))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def make_agent(engine: Engine, templates: Path | None = None, **options: Any) -> DnsAgent:
    config = AgentConfig(name="dns", listen=Address("127.0.0.1", 0), options=options)
    return DnsAgent(AgentContext(config, engine, templates))


def query(name: str = ENUM, qtype: str = "NAPTR", **edns: Any) -> DnsMessage:
    record = dnslib.DNSRecord.question(name, qtype)
    if edns:
        record.add_ar(dnslib.EDNS0(**edns))
    return codec.decode(bytes(record.pack()))


async def ask(agent: DnsAgent, message: DnsMessage) -> dnslib.DNSRecord:
    reply = await agent.handle(message, PEER, "udp")
    return dnslib.DNSRecord.parse(codec.encode(message, reply, udp_size=1232))


async def test_enum_naptr_per_route_in_route_order() -> None:
    engine = Engine(routes(("gw1", ""), ("gw2", "sbc2.example.com"), ("gw3", "")))
    record = await ask(make_agent(engine), query())
    assert record.header.rcode == codec.NOERROR and record.header.aa == 1
    naptrs = [rr.rdata for rr in record.rr]
    assert [(n.order, n.preference) for n in naptrs] == [(100, 10), (100, 20), (100, 30)]
    assert {bytes(n.flags) for n in naptrs} == {b"U"}
    assert {bytes(n.service) for n in naptrs} == {b"E2U+sip"}
    assert [bytes(n.regexp) for n in naptrs] == [
        b"!^(.*)$!sip:\\1@gw1!",
        b"!^(.*)$!sip:\\1@sbc2.example.com!",
        b"!^(.*)$!sip:\\1@gw3!",
    ]
    assert {str(n.replacement) for n in naptrs} == {"."}
    method, params = engine.calls[0]
    assert method == "SessionSv1.ProcessMessage" and params["GetRoutes"] is True
    assert params["Event"]["Destination"] == NUMBER
    assert params["Event"]["OriginHost"] == "127.0.0.1:5353"
    assert "Account" not in params["Event"]


async def test_enum_account_from_the_enum_source_uri_option() -> None:
    engine = Engine(routes(("gw1", "")))
    option = dnslib.EDNSOption(codec.OPT_ESU, b"sip:1001@example.com")
    await ask(make_agent(engine), query(udp_len=1232, opts=[option]))
    assert engine.calls[0][1]["Event"]["Account"] == "1001"


async def test_enum_answers_at_most_ten_routes() -> None:
    engine = Engine(routes(*[(f"gw{n}", "") for n in range(14)]))
    record = await ask(make_agent(engine), query())
    assert [rr.rdata.preference for rr in record.rr] == [10 * n for n in range(1, 11)]


async def test_upper_case_enum_name() -> None:
    engine = Engine(routes(("gw1", "")))
    record = await ask(make_agent(engine), query(ENUM.upper().replace("ARPA", "arpa")))
    assert len(record.rr) == 1 and engine.calls[0][1]["Event"]["Destination"] == NUMBER


@pytest.mark.parametrize(
    ("error", "rcode"),
    [
        ("ROUTES_ERROR:NOT_FOUND", codec.NXDOMAIN),
        ("ROUTES_ERROR:SERVER_ERROR: RATING_PLAN_NOT_FOUND: RP_X", codec.SERVFAIL),
        ("REPLY_TIMEOUT", codec.SERVFAIL),
    ],
)
async def test_engine_errors(error: str, rcode: int) -> None:
    record = await ask(make_agent(Engine(RpcError(error))), query())
    assert record.header.rcode == rcode and record.rr == []
    assert record.header.aa == (1 if rcode == codec.NXDOMAIN else 0)


async def test_engine_connection_failure_is_servfail() -> None:
    record = await ask(make_agent(Engine(ConnectionError("down"))), query())
    assert record.header.rcode == codec.SERVFAIL


async def test_other_types_for_an_enum_name_are_nodata() -> None:
    engine = Engine(routes(("gw1", "")))
    record = await ask(make_agent(engine), query(qtype="A"))
    assert record.header.rcode == codec.NOERROR and record.header.aa == 1 and record.rr == []
    assert engine.calls == []


async def test_names_we_do_not_serve_are_refused() -> None:
    engine = Engine(routes(("gw1", "")))
    record = await ask(make_agent(engine), query("example.com.", "NAPTR"))
    assert record.header.rcode == codec.REFUSED and engine.calls == []


async def test_opcode_edns_version_and_empty_question() -> None:
    agent = make_agent(Engine(routes(("gw1", ""))))
    notify = bytearray(dnslib.DNSRecord.question(ENUM, "NAPTR").pack())
    notify[2] |= 4 << 3  # opcode NOTIFY
    message = codec.decode(bytes(notify))
    assert (await agent.handle(message, PEER, "udp")).rcode == codec.NOTIMP
    version1 = query(udp_len=1232, version=1)
    reply = await agent.handle(version1, PEER, "udp")
    assert reply.rcode == codec.BADVERS
    empty = codec.decode(struct.pack("!HHHHHH", 5, 0x0100, 0, 0, 0, 0))
    assert (await agent.handle(empty, PEER, "udp")).rcode == codec.FORMERR


CUSTOM = {
    "request_processors": [
        {
            "id": "srv",
            "filters": ["*string:~*vars.QueryType:SRV"],
            "flags": ["*none"],
            "reply_fields": [
                {"path": "*rep.Answer.Priority", "type": "*constant", "value": "10"},
                {"path": "*rep.Answer.Weight", "type": "*constant", "value": "5"},
                {"path": "*rep.Answer.Port", "type": "*constant", "value": "5060"},
                {
                    "path": "*rep.Answer.Target",
                    "type": "*variable",
                    "value": "~*vars.Transport;.sip.example.com.",
                },
                {"path": "*rep.Answer.Hdr.Ttl", "type": "*constant", "value": "300"},
            ],
        },
        {
            "id": "a",
            "filters": ["*string:~*vars.QueryType:A"],
            "flags": ["*none"],
            "reply_fields": [
                {"path": "*rep.Answer.A", "type": "*constant", "value": "192.0.2.1"},
                {
                    "path": "*rep.Answer.A",
                    "type": "*group",
                    "value": "192.0.2.2",
                    "new_branch": True,
                },
                {"path": "*rep.Option.Uri", "type": "*variable", "value": "~*req.Option[0].Uri"},
                {
                    "path": "*rep.Option.Nsid",
                    "type": "*constant",
                    "value": "6366",
                    "new_branch": True,
                },
            ],
        },
        {
            "id": "aaaa",
            "filters": ["*string:~*vars.QueryType:AAAA"],
            "flags": ["*none"],
            "reply_fields": [
                {"path": "*rep.Answer.AAAA", "type": "*constant", "value": "2001:db8::1"},
                {"path": "*rep.RecursionAvailable", "type": "*constant", "value": "true"},
            ],
        },
        {
            "id": "txt",
            "filters": ["*string:~*vars.QueryType:TXT"],
            "flags": ["*none"],
            "reply_fields": [
                {"path": "*rep.Answer.Txt", "type": "*variable", "value": "~*vars.QueryName"},
                {"path": "*rep.Answer.Txt", "type": "*group", "value": "~*vars.RemoteHost"},
            ],
        },
        {
            "id": "mandatory",
            "filters": ["*string:~*vars.QueryType:PTR"],
            "flags": ["*none"],
            "request_fields": [
                {
                    "path": "*cgreq.Account",
                    "type": "*variable",
                    "value": "~*req.Option[0].Uri",
                    "mandatory": True,
                },
            ],
        },
        {
            "id": "bad",
            "filters": ["*string:~*vars.QueryType:MX"],
            "flags": ["*none"],
            "reply_fields": [{"path": "*rep.Answer.A", "type": "*constant", "value": "x"}],
        },
    ]
}


@pytest.fixture
def custom(tmp_path: Path) -> DnsAgent:
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(CUSTOM))
    return make_agent(Engine(), path, ttl=120)


async def test_srv_answer(custom: DnsAgent) -> None:
    record = await ask(custom, query("_sip._udp.example.com.", "SRV"))
    (srv,) = record.rr
    assert (srv.rdata.priority, srv.rdata.weight, srv.rdata.port) == (10, 5, 5060)
    assert str(srv.rdata.target) == "udp.sip.example.com." and srv.ttl == 300


async def test_two_a_answers_and_edns_options_in_and_out(custom: DnsAgent) -> None:
    option = dnslib.EDNSOption(codec.OPT_ESU, b"sip:cgrates@cgrates.org")
    record = await ask(custom, query("example.com.", "A", udp_len=1232, opts=[option]))
    assert [str(rr.rdata) for rr in record.rr] == ["192.0.2.1", "192.0.2.2"]
    assert {rr.ttl for rr in record.rr} == {120}  # the agent's ttl option
    (opt,) = record.ar
    assert [(o.code, bytes(o.data)) for o in opt.rdata] == [
        (codec.OPT_ESU, b"sip:cgrates@cgrates.org"),
        (codec.OPT_NSID, b"cf"),
    ]


async def test_aaaa_and_txt(custom: DnsAgent) -> None:
    record = await ask(custom, query("v6.example.com.", "AAAA"))
    assert str(record.rr[0].rdata) == "2001:db8::1" and record.header.ra == 1
    record = await ask(custom, query("T.example.com.", "TXT"))
    assert [bytes(s) for s in record.rr[0].rdata.data] == [b"t.example.com.", b"127.0.0.1:5353"]


async def test_missing_mandatory_value_is_servfail(custom: DnsAgent) -> None:
    record = await ask(custom, query("1.2.0.192.in-addr.arpa.", "PTR"))
    assert record.header.rcode == codec.SERVFAIL and record.rr == []


async def test_unencodable_reply_is_servfail(custom: DnsAgent) -> None:
    record = await ask(custom, query("example.com.", "MX"))
    assert record.header.rcode == codec.SERVFAIL and record.rr == []


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dns option"):
        make_agent(Engine(), colour="blue")
    with pytest.raises(ValueError, match="udp_size"):
        make_agent(Engine(), udp_size=100)
    with pytest.raises(ValueError, match="max_in_flight"):
        make_agent(Engine(), max_in_flight=0)
