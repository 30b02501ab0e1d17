"""Our codec reads the golden messages dnslib's encoder wrote, and encodes the same answer byte
for byte (see README.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agents.dns import codec
from agents.dns.codec import DnsMessage, DnsReply, Record, RequestView

HERE = Path(__file__).resolve().parent


def raw(name: str) -> bytes:
    return bytes.fromhex((HERE / f"{name}.hex").read_text().strip())


def load(name: str) -> DnsMessage:
    return codec.decode(raw(name))


def test_vectors_are_reproducible() -> None:
    spec = importlib.util.spec_from_file_location("make_dns_vectors", HERE / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, data in module.vectors().items():
        assert (HERE / f"{name}.hex").read_text().strip() == data.hex(), name


def test_naptr_query_with_edns_options() -> None:
    message = load("naptr_query_edns")
    assert message.id == 0x1234 and not message.is_response and message.opcode == 0
    assert [(q.name, q.type_name, q.qclass) for q in message.questions] == [
        ("8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa.", "NAPTR", 1)
    ]
    assert message.edns is not None
    assert (message.edns.udp_size, message.edns.version, message.edns.do) == (1232, 0, True)
    assert message.udp_limit == 1232
    tree = RequestView(message)
    assert tree.get(("RecursionDesired",)) == [True]
    assert tree.get(("Question", "Qtype")) == [35]
    assert tree.get(("Option", "Code")) == [4, 8, 10]
    assert tree.get(("Option", "Uri")) == ["sip:1001@example.com"]
    assert tree.get(("Option", "Family")) == [1]
    assert tree.get(("Option", "SourceNetmask")) == [24]
    assert tree.get(("Option", "Address")) == ["192.0.2.0"]
    assert tree.get(("Option", "Cookie")) == ["0102030405060708"]
    assert tree.get(("Edns", "Do")) == [True]


def test_plain_query_keeps_the_case_and_has_no_edns() -> None:
    message = load("a_query_plain")
    assert message.questions[0].name == "WwW.Example.COM." and message.questions[0].qtype == 1
    assert message.edns is None and message.udp_limit == codec.CLASSIC_UDP_SIZE
    assert RequestView(message).get(("Option",)) == []


def test_our_answer_is_dnslibs_byte_for_byte() -> None:
    query = load("naptr_query_edns")
    answers = []
    for number, host in enumerate(("gw1.example.com", "sbc2.example.com", "gw3")):
        node = {
            "Order": ["100"],
            "Preference": [str(10 * (number + 1))],
            "Flags": ["U"],
            "Service": ["E2U+sip"],
            "Regexp": [f"!^(.*)$!sip:\\1@{host}!"],
            "Replacement": ["."],
        }
        answers.append(codec.record_of(node, query.questions[0], 60))
    assert all(isinstance(record, Record) for record in answers)
    reply = DnsReply(authoritative=True, answers=answers)
    assert codec.encode(query, reply, udp_size=1232) == raw("naptr_answer")


def test_dnslibs_answer_decodes() -> None:
    answer = load("naptr_answer")
    assert answer.is_response and answer.counts == (3, 0, 1)
    records = RequestView(answer).get(("Answer",))
    assert [record["Hdr"]["Rrtype"] for record in records] == [35, 35, 35]
    assert records[1]["Rdata"].startswith("100 20 ")
