"""The DNS codec: decoding queries (names, compression, EDNS0), the *req tree, building answers
from *rep trees, truncation and the error replies; checked against dnslib's reading."""

from __future__ import annotations

import struct

import dnslib  # type: ignore[import-untyped]
import pytest

from agents.dns import codec
from agents.dns.codec import DnsDecodeError, DnsEncodeError, DnsReply, Question, RequestView

ENUM = "8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa."
NAPTR_Q = Question(ENUM, codec.TYPE_NAPTR, codec.CLASS_IN)


def query(name: str = ENUM, qtype: str = "NAPTR", edns: int | None = None, **opts: bytes) -> bytes:
    record = dnslib.DNSRecord.question(name, qtype)
    if edns is not None:
        options = [dnslib.EDNSOption(int(code[1:]), value) for code, value in opts.items()]
        record.add_ar(dnslib.EDNS0(udp_len=edns, opts=options))
    return bytes(record.pack())


def parsed(data: bytes) -> dnslib.DNSRecord:
    return dnslib.DNSRecord.parse(data)


# ------------------------------------------------------------------------------------ decoding
def test_decode_question_and_header_bits() -> None:
    data = bytearray(query(edns=4096))
    data[2] |= 0x01  # RD
    data[3] |= 0x10  # CD
    message = codec.decode(bytes(data))
    tree = RequestView(message)
    assert tree.get(("RecursionDesired",)) == [True]
    assert tree.get(("CheckingDisabled",)) == [True]
    assert tree.get(("Question", "Name")) == [ENUM]
    assert tree.get(("Edns", "UDPSize")) == [4096]
    assert message.udp_limit == 4096


def test_a_tiny_edns_size_counts_as_512() -> None:
    assert codec.decode(query(edns=100)).udp_limit == codec.MIN_EDNS_UDP_SIZE


def test_compressed_question_name_is_followed() -> None:
    # Two questions, the second's name a pointer into the first: e164.arpa. at offset 12+26.
    first = codec.encode_name(ENUM)
    offset = 12 + first.index(b"\x04e164")
    body = first + b"\x00\x23\x00\x01" + b"\x011" + bytes((0xC0, offset)) + b"\x00\x23\x00\x01"
    data = struct.pack("!HHHHHH", 7, 0, 2, 0, 0, 0) + body
    message = codec.decode(data)
    assert [q.name for q in message.questions] == [ENUM, "1.e164.arpa."]
    assert parsed(data).questions[1].qname == dnslib.DNSLabel("1.e164.arpa.")


def test_labels_with_dots_and_binary_are_escaped() -> None:
    data = (
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x03a.b\x02\x00\xff\x00" + b"\x00\x01\x00\x01"
    )
    assert codec.decode(data).questions[0].name == "a\\.b.\\000\\255."
    assert codec.encode_name("a\\.b.\\000\\255.") == b"\x03a.b\x02\x00\xff\x00"


@pytest.mark.parametrize(
    ("data", "has_header"),
    [
        (b"", False),
        (b"\x00" * 11, False),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0), True),  # question missing
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05abc", True),  # label cut short
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", True),  # loop
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x40a\x00\x00\x01\x00\x01", True),  # 0x40
        (query() + b"junk", True),  # bytes after the last record
        (
            struct.pack("!HHHHHH", 1, 0, 0, 1, 0, 0)
            + b"\x00\x00\x01\x00\x01\x00\x00\x00\x01\x00\x09",
            True,
        ),
    ],
)
def test_malformed_messages(data: bytes, has_header: bool) -> None:
    with pytest.raises(DnsDecodeError) as caught:
        codec.decode(data)
    assert (caught.value.header is not None) == has_header
    if has_header:
        assert caught.value.header == data[:12]


def test_two_opt_records_are_malformed() -> None:
    record = dnslib.DNSRecord.question(ENUM, "NAPTR")
    record.add_ar(dnslib.EDNS0(udp_len=1232))
    record.add_ar(dnslib.EDNS0(udp_len=1232))
    with pytest.raises(DnsDecodeError, match="more than one OPT"):
        codec.decode(bytes(record.pack()))


def test_name_longer_than_255_octets() -> None:
    name = ".".join(["a" * 63] * 4) + "."
    data = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + codec_name_raw(name) + b"\x00\x01\x00\x01"
    with pytest.raises(DnsDecodeError, match="255"):
        codec.decode(data)


def codec_name_raw(name: str) -> bytes:
    return b"".join(bytes((len(label),)) + label.encode() for label in name.split(".")[:-1]) + b"\0"


def test_answer_sections_are_read_lazily_through_dnslib() -> None:
    record = dnslib.DNSRecord.question("example.com.", "A")
    record.add_answer(
        dnslib.RR("example.com.", dnslib.QTYPE.A, rdata=dnslib.A("192.0.2.1"), ttl=30)
    )
    message = codec.decode(bytes(record.pack()))
    tree = RequestView(message)
    assert tree.get(("Answer", "Hdr", "Name")) == ["example.com."]
    assert tree.get(("Answer", "Hdr", "Ttl")) == [30]
    assert tree.get(("Answer", "Rdata")) == ["192.0.2.1"]
    assert tree.get(("Ns",)) == []


# ------------------------------------------------------------------------------------ encoding
def answer(nodes: dict[str, list[object]], question: Question = NAPTR_Q) -> DnsReply:
    return codec.reply_from_tree(nodes, question)


def test_naptr_srv_a_aaaa_txt_records() -> None:
    message = codec.decode(query("example.com.", "A"))
    reply = answer(
        {
            "Authoritative": ["true"],
            "Answer": [
                {
                    "Order": ["100"],
                    "Preference": ["10"],
                    "Flags": ["U"],
                    "Service": ["E2U+sip"],
                    "Regexp": ["!^(.*)$!sip:\\1@gw1!"],
                    "Replacement": ["."],
                },
                {
                    "Hdr": [{"Name": ["_sip._udp.example.com."], "Ttl": ["300"]}],
                    "Priority": ["1"],
                    "Weight": ["5"],
                    "Port": ["5060"],
                    "Target": ["sip1.example.com."],
                },
                {"A": ["192.0.2.7"]},
                {"AAAA": ["2001:db8::7"]},
                {"Hdr": [{"Rrtype": ["TXT"]}], "Txt": ["v=1", "x" * 300]},
            ],
        },
        message.questions[0],
    )
    data = codec.encode(message, reply)
    record = parsed(data)
    assert record.header.aa == 1 and record.header.qr == 1 and record.header.id == message.id
    rtypes = [dnslib.QTYPE[rr.rtype] for rr in record.rr]
    assert rtypes == ["NAPTR", "SRV", "A", "AAAA", "TXT"]
    naptr, srv, a, aaaa, txt = record.rr
    assert (naptr.rdata.order, naptr.rdata.preference) == (100, 10)
    assert naptr.rdata.regexp == b"!^(.*)$!sip:\\1@gw1!" and str(naptr.rname) == "example.com."
    assert str(srv.rname) == "_sip._udp.example.com." and srv.ttl == 300
    assert (srv.rdata.priority, srv.rdata.weight, srv.rdata.port) == (1, 5, 5060)
    assert str(srv.rdata.target) == "sip1.example.com."
    assert str(a.rdata) == "192.0.2.7" and a.ttl == codec.DEFAULT_TTL
    assert str(aaaa.rdata) == "2001:db8::7"
    assert [bytes(s) for s in txt.rdata.data] == [b"v=1", b"x" * 255, b"x" * 45]


def test_record_type_defaults_to_the_question_and_a_follows_aaaa() -> None:
    aaaa_q = Question("h.example.", codec.TYPE_AAAA, 1)
    assert codec.record_of({"A": ["2001:db8::1"]}, aaaa_q, 60).rtype == codec.TYPE_AAAA
    assert codec.record_of({}, Question("t.", codec.TYPE_TXT, 1), 60).rdata == b"\x00"


@pytest.mark.parametrize(
    "node",
    [
        {"A": ["300.1.1.1"]},
        {"AAAA": ["nope"]},
        {"Order": ["70000"]},
        {"Order": ["ten"]},
        {"Regexp": ["x" * 256]},
        {"Hdr": [{"Rrtype": ["BOGUS"]}]},
        {"Hdr": [{"Rrtype": ["MX"]}]},
        {"Replacement": ["a..b."]},
    ],
)
def test_bad_records_raise_encode_errors(node: dict[str, list[object]]) -> None:
    with pytest.raises(DnsEncodeError):
        codec.record_of(node, NAPTR_Q, 60)


def test_rcode_by_name_or_number() -> None:
    assert answer({"Rcode": ["NXDOMAIN"]}).rcode == codec.NXDOMAIN
    assert answer({"Rcode": ["5"]}).rcode == codec.REFUSED
    assert answer({"Rcode": ["refused"]}).rcode == codec.REFUSED
    with pytest.raises(DnsEncodeError):
        answer({"Rcode": ["MAYBE"]})
    with pytest.raises(DnsEncodeError):
        answer({"Authoritative": ["perhaps"]})


def test_edns_options_out_only_when_the_query_had_edns() -> None:
    nodes: dict[str, list[object]] = {
        "Option": [
            {"Uri": ["sip:out@example.com"]},
            {"Code": ["65001"], "Data": ["cafe"]},
            {"InfoCode": ["18"], "ExtraText": ["busy"]},
            {
                "Family": ["1"],
                "SourceNetmask": ["24"],
                "SourceScope": ["24"],
                "Address": ["198.51.100.9"],
            },
        ]
    }
    with_edns = codec.decode(query(edns=1232))
    data = codec.encode(with_edns, answer(nodes), udp_size=1400)
    opt = parsed(data).ar[0]
    assert opt.rtype == codec.TYPE_OPT and opt.rclass == 1400
    assert [(o.code, bytes(o.data)) for o in opt.rdata] == [
        (4, b"sip:out@example.com"),
        (65001, b"\xca\xfe"),
        (15, b"\x00\x12busy"),
        (8, b"\x00\x01\x18\x18\xc6\x33\x64"),
    ]
    without = codec.decode(query())
    assert parsed(codec.encode(without, answer(nodes))).ar == []


def test_badvers_travels_in_the_opt_record() -> None:
    message = codec.decode(query(edns=1232))
    data = codec.encode(message, DnsReply(rcode=codec.BADVERS), udp_size=1232)
    assert data[3] & 0xF == 0  # low bits of 16
    assert parsed(data).ar[0].ttl >> 24 == 1  # upper bits: 16 >> 4
    # Without an OPT record an extended code cannot be sent: SERVFAIL.
    plain = codec.decode(query())
    assert codec.encode(plain, DnsReply(rcode=codec.BADVERS))[3] & 0xF == codec.SERVFAIL


def test_truncation_keeps_question_and_opt_and_sets_tc() -> None:
    message = codec.decode(query(edns=1232))
    records = [codec.Record(codec.TYPE_TXT, b"\xff" + b"x" * 255) for _ in range(5)]
    reply = DnsReply(answers=records)
    full = codec.encode(message, reply, udp_size=1232)
    assert len(full) > 1232
    cut = codec.encode(message, reply, udp_size=1232, limit=512)
    record = parsed(cut)
    assert record.header.tc == 1 and record.rr == [] and len(record.questions) == 1
    assert record.ar[0].rtype == codec.TYPE_OPT


def test_error_reply_from_a_header() -> None:
    header = struct.pack("!HHHHHH", 0xABCD, 0x0100, 1, 0, 0, 0)
    data = codec.error_reply(header, codec.FORMERR)
    record = parsed(data)
    assert record.header.id == 0xABCD and record.header.rcode == codec.FORMERR
    assert record.header.qr == 1 and record.header.rd == 1 and record.questions == []


def test_question_echoed_as_received_and_owner_compressed() -> None:
    message = codec.decode(query("WwW.Example.COM.", "A"))
    reply = answer({"Answer": [{"A": ["192.0.2.1"]}]}, message.questions[0])
    data = codec.encode(message, reply)
    assert b"\x03WwW\x07Example\x03COM\x00" in data
    assert data.count(b"Example") == 1  # the answer's owner is a pointer to the question
    reply = answer({"Answer": [{"Hdr": [{"Name": ["www.example.com."]}], "A": ["192.0.2.1"]}]})
    assert codec.encode(message, reply).count(b"Example") == 1  # same name, any case
