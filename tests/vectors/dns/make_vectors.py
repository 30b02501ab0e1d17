"""Generates the golden DNS messages in this directory with dnslib's own encoder.

dnslib's ``DNSRecord.pack`` (name compression, EDNS0) is independent of agents/dns/codec.py's
hand-written decoder and encoder, so reading these files with our codec, and encoding the same
answers byte for byte, checks it against another reading of RFC 1035 / 3403 / 6891. IDs are
fixed, so a rerun reproduces the files byte for byte:

    .venv/bin/python tests/vectors/dns/make_vectors.py
"""

from __future__ import annotations

from pathlib import Path

import dnslib  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
ENUM_NAME = "8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa."
ESU_URI = b"sip:1001@example.com"
COOKIE = bytes.fromhex("0102030405060708")
SUBNET = bytes.fromhex("00011800c00002")  # family 1 (IPv4), source /24, scope 0, 192.0.2
ROUTE_HOSTS = ("gw1.example.com", "sbc2.example.com", "gw3")


def naptr_query_edns() -> bytes:
    """A NAPTR query for an ENUM name with EDNS0 (1232 octets, DO) and three options:
    ENUM Source-URI (4), client subnet (8), cookie (10)."""
    query = dnslib.DNSRecord(dnslib.DNSHeader(id=0x1234, rd=1))
    query.add_question(dnslib.DNSQuestion(ENUM_NAME, dnslib.QTYPE.NAPTR))
    options = [
        dnslib.EDNSOption(4, ESU_URI),
        dnslib.EDNSOption(8, SUBNET),
        dnslib.EDNSOption(10, COOKIE),
    ]
    query.add_ar(dnslib.EDNS0(udp_len=1232, flags="do", opts=options))
    return bytes(query.pack())


def a_query_plain() -> bytes:
    """An A query without EDNS0, mixed case."""
    query = dnslib.DNSRecord(dnslib.DNSHeader(id=0xBEEF, rd=1))
    query.add_question(dnslib.DNSQuestion("WwW.Example.COM.", dnslib.QTYPE.A))
    return bytes(query.pack())


def naptr_answer() -> bytes:
    """The answer to ``naptr_query_edns``: three E2U+sip NAPTRs, authoritative, EDNS0 1232."""
    query = dnslib.DNSRecord.parse(naptr_query_edns())
    reply = dnslib.DNSRecord(dnslib.DNSHeader(id=query.header.id, qr=1, aa=1, rd=1), q=query.q)
    for number, host in enumerate(ROUTE_HOSTS):
        naptr = dnslib.NAPTR(
            100, 10 * (number + 1), b"U", b"E2U+sip", f"!^(.*)$!sip:\\1@{host}!".encode(), "."
        )
        reply.add_answer(dnslib.RR(ENUM_NAME, dnslib.QTYPE.NAPTR, ttl=60, rdata=naptr))
    reply.add_ar(dnslib.EDNS0(udp_len=1232, flags="do"))
    return bytes(reply.pack())


def vectors() -> dict[str, bytes]:
    return {
        "naptr_query_edns": naptr_query_edns(),
        "a_query_plain": a_query_plain(),
        "naptr_answer": naptr_answer(),
    }


if __name__ == "__main__":
    for name, data in vectors().items():
        (HERE / f"{name}.hex").write_text(data.hex() + "\n")
        print(f"{name}.hex: {len(data)} bytes")
