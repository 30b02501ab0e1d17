"""agents/radius/codec.py: framing checks, values by name, encode/verify round trips."""

from __future__ import annotations

import hashlib
import struct

import pytest

from agents.radius import codec
from agents.radius.codec import RadiusDecodeError, RadiusEncodeError

SECRET = b"s3cret"


def accounting(*items: tuple[str, object], ident: int = 5) -> bytes:
    return codec.encode_request(
        codec.ACCOUNTING_REQUEST, ident, codec.attributes_from(items), SECRET
    )


def test_round_trip_by_name() -> None:
    data = accounting(
        ("User-Name", "alice"),
        ("Acct-Status-Type", "Interim-Update"),
        ("Acct-Session-Time", 61),
        ("Framed-IP-Address", "10.0.0.1"),
        ("Class", b"\x00\xff"),
        ("Error-Cause", 404),
        ("Delegated-IPv6-Prefix-Pool", "pool6"),
    )
    message = codec.decode(data)
    assert message.attributes[0].code == codec.ATTR_MESSAGE_AUTHENTICATOR
    assert message.get(("User-Name",)) == ["alice"]
    assert message.get(("Acct-Status-Type",)) == ["Interim-Update"]
    assert message.get(("Acct-Session-Time",)) == [61]
    assert message.get(("Framed-IP-Address",)) == ["10.0.0.1"]
    assert message.get(("Class",)) == ["00ff"]
    assert message.get(("Error-Cause",)) == ["Invalid-Request"]
    assert message.get(("Delegated-IPv6-Prefix-Pool",)) == ["pool6"]
    assert message.get(("Nothing",)) == [] and message.get(("User-Name", "x")) == []
    assert codec.verify_request_authenticator(message, SECRET)
    assert codec.verify_message_authenticator(message, SECRET)


def test_unknown_and_vendor_attributes_are_kept_by_code() -> None:
    data = accounting(("User-Name", "a"), ("26", b"\x00\x00\x00\x09\x01\x03x"), ("250", b"z"))
    message = codec.decode(data)
    assert message.get(("26",)) == ["00000009010378"]
    assert message.get(("250",)) == ["7a"]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[:19], "shorter"),
        (lambda d: d[:2] + struct.pack("!H", 19) + d[4:], "bad Length"),
        (lambda d: d[:2] + struct.pack("!H", 5000) + d[4:], "bad Length"),
        (lambda d: d[:2] + struct.pack("!H", len(d) + 1) + d[4:], "only"),
        (lambda d: d[:20] + b"\x01\x01" + d[22:], "bad length"),
        (lambda d: d[:20] + b"\x01\xff" + d[22:], "bad length"),
        (lambda d: d[:2] + struct.pack("!H", 21) + d[4:21], "truncated"),
    ],
)
def test_malformed_packets_raise_our_error(mangle: object, reason: str) -> None:
    data = accounting(("User-Name", "alice"))
    with pytest.raises(RadiusDecodeError, match=reason):
        codec.decode(mangle(data))  # type: ignore[operator]


def test_padding_beyond_length_is_ignored() -> None:
    data = accounting(("User-Name", "alice"))
    message = codec.decode(data + b"\x00" * 7)
    assert message.raw == data and codec.verify_request_authenticator(message, SECRET)


def test_message_authenticator_of_wrong_size_is_malformed() -> None:
    body = bytes((80, 10)) + bytes(8)
    data = struct.pack("!BBH16s", 1, 1, 20 + len(body), bytes(16)) + body
    with pytest.raises(RadiusDecodeError):
        codec.decode(data)


def test_encode_errors() -> None:
    with pytest.raises(RadiusEncodeError):
        codec.encode_attribute("No-Such-Attribute", "x")
    with pytest.raises(RadiusEncodeError):
        codec.encode_attribute("Session-Timeout", "soon")
    with pytest.raises(RadiusEncodeError):
        codec.encode_attribute("Reply-Message", "x" * 254)
    with pytest.raises(RadiusEncodeError):
        codec.encode_request(codec.ACCESS_REQUEST, 1, [], SECRET)
    with pytest.raises(RadiusEncodeError):
        codec.encode_request(
            codec.ACCOUNTING_REQUEST,
            1,
            [codec.encode_attribute("Reply-Message", "x" * 250)] * 17,
            SECRET,
        )


def test_tampering_breaks_the_authenticators() -> None:
    data = bytearray(accounting(("User-Name", "alice"), ("Acct-Session-Time", 5)))
    data[-1] ^= 1
    message = codec.decode(bytes(data))
    assert not codec.verify_request_authenticator(message, SECRET)
    assert not codec.verify_message_authenticator(message, SECRET)


def test_reply_to_access_request_and_chap() -> None:
    authenticator = bytes(range(16))
    chap = b"\x07" + hashlib.md5(b"\x07" + b"pw" + authenticator).digest()
    body = codec._body(codec.attributes_from([("User-Name", "u"), ("CHAP-Password", chap)]))
    raw = struct.pack("!BBH16s", codec.ACCESS_REQUEST, 9, 20 + len(body), authenticator) + body
    request = codec.decode(raw)
    assert codec.check_chap(request, "pw") and not codec.check_chap(request, "pW")
    assert codec.decrypt_password(request, SECRET) is None
    reply = codec.decode(codec.encode_reply(request, codec.ACCESS_REJECT, [], SECRET))
    assert reply.identifier == 9 and reply.attributes[0].code == codec.ATTR_MESSAGE_AUTHENTICATOR
    assert codec.verify_response_authenticator(reply, authenticator, SECRET)
    assert codec.verify_message_authenticator(reply, SECRET, request)
    assert not codec.verify_message_authenticator(reply, SECRET)  # not over its own vector
