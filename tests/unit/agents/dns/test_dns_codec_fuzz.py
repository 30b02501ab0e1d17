"""Hypothesis: decode raises DnsDecodeError or returns a message, never anything else, quickly;
what it returns can be read as a *req tree and answered; reply trees either encode or raise
DnsEncodeError."""

from __future__ import annotations

import struct
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.dns import codec
from agents.dns.codec import DnsDecodeError, DnsEncodeError, DnsReply, Question, RequestView

# A decode must stay cheap whatever the input (no pointer loops, no quadratic walks).
DECODE_BUDGET_S = 0.05
PATHS = (
    ("Id",),
    ("Question", "Name"),
    ("Question", "Qtype"),
    ("Option",),
    ("Option", "Uri"),
    ("Option", "Address"),
    ("Edns", "UDPSize"),
    ("Answer", "Hdr", "Name"),
    ("Ns", "Rdata"),
    ("Extra",),
)


def _read_all(data: bytes) -> None:
    started = time.perf_counter()
    try:
        message = codec.decode(data)
    except DnsDecodeError as exc:
        assert exc.header is None or exc.header == data[:12]
        if exc.header is not None:
            assert len(codec.error_reply(exc.header, codec.FORMERR)) == 12
        return
    finally:
        assert time.perf_counter() - started < DECODE_BUDGET_S
    tree = RequestView(message)
    for path in PATHS:
        tree.get(path)
    codec.encode(message, DnsReply(rcode=codec.NXDOMAIN), udp_size=1232, limit=512)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _read_all(data)


label = st.binary(min_size=0, max_size=70).map(lambda raw: bytes((len(raw) & 0xFF,)) + raw)
pointer = st.integers(0, 0x3FFF).map(lambda target: struct.pack("!H", 0xC000 | target))
name = st.lists(st.one_of(label, pointer), max_size=6).map(lambda parts: b"".join(parts) + b"\0")
option = st.tuples(st.integers(0, 20), st.binary(max_size=24)).map(
    lambda item: struct.pack("!HH", item[0], len(item[1])) + item[1]
)


@settings(max_examples=600, deadline=None)
@given(
    st.integers(0, 0xFFFF),
    st.lists(name, min_size=0, max_size=3),
    st.lists(option, max_size=4),
    st.integers(0, 0xFFFF),
    st.integers(-3, 3),
    st.binary(max_size=30),
)
def test_structured_queries(
    flags: int, names: list[bytes], options: list[bytes], size: int, skew: int, tail: bytes
) -> None:
    questions = b"".join(raw + b"\x00\x23\x00\x01" for raw in names)
    rdata = b"".join(options)
    opt = b"\x00" + struct.pack("!HHIH", 41, size, 0, max(0, len(rdata) + skew)) + rdata
    header = struct.pack("!HHHHHH", 1, flags, len(names), 0, 0, 1)
    _read_all(header + questions + opt)
    _read_all(header + questions + opt + tail)


scalar = st.one_of(st.text(max_size=40), st.integers(-5, 70000).map(str))
record_node = st.dictionaries(
    st.sampled_from(
        [
            "Order",
            "Preference",
            "Flags",
            "Service",
            "Regexp",
            "Replacement",
            "Priority",
            "Weight",
            "Port",
            "Target",
            "A",
            "AAAA",
            "Txt",
        ]
    ),
    st.lists(scalar, min_size=1, max_size=2),
    max_size=5,
)
header_node = st.dictionaries(
    st.sampled_from(["Name", "Rrtype", "Class", "Ttl"]),
    st.lists(scalar, min_size=1, max_size=1),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(record_node, header_node), max_size=4),
    st.lists(scalar, max_size=1),
    st.sampled_from([codec.TYPE_NAPTR, codec.TYPE_A, codec.TYPE_AAAA, codec.TYPE_SRV, 16, 15]),
)
def test_reply_trees_encode_or_raise_encode_error(
    records: list[tuple[dict[str, list[str]], dict[str, list[str]]]],
    rcode: list[str],
    qtype: int,
) -> None:
    answers = [{**node, "Hdr": [hdr]} if hdr else node for node, hdr in records]
    nodes: dict[str, list[object]] = {"Answer": list(answers)}
    if rcode:
        nodes["Rcode"] = list(rcode)
    question = Question("example.com.", qtype, 1)
    query = codec.decode(
        struct.pack("!HHHHHH", 9, 0, 1, 0, 0, 0)
        + codec.encode_name("example.com.")
        + struct.pack("!HH", qtype, 1)
    )
    try:
        reply = codec.reply_from_tree(nodes, question)
        data = codec.encode(query, reply, limit=512)
    except DnsEncodeError:
        return
    again = codec.decode(data)  # what we send, we can read back
    assert again.is_response and again.id == 9
