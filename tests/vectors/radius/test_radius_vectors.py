"""Our codec reads and verifies the golden packets pyrad's encoder wrote (see README.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agents.radius import codec
from agents.radius.codec import RadiusMessage

HERE = Path(__file__).resolve().parent
SECRET = b"testing123"


def load(name: str) -> RadiusMessage:
    return codec.decode(bytes.fromhex((HERE / f"{name}.hex").read_text().strip()))


def test_vectors_are_reproducible() -> None:
    spec = importlib.util.spec_from_file_location("make_radius_vectors", HERE / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, data in module.vectors().items():
        assert (HERE / f"{name}.hex").read_text().strip() == data.hex(), name


def test_access_request() -> None:
    message = load("access_request_pap")
    assert message.code == codec.ACCESS_REQUEST and message.identifier == 1
    assert message.attributes[0].code == codec.ATTR_MESSAGE_AUTHENTICATOR
    assert codec.verify_message_authenticator(message, SECRET)
    assert not codec.verify_message_authenticator(message, b"other")
    assert codec.decrypt_password(message, SECRET) == b"CGRateS.org"
    assert codec.check_pap(message, SECRET, "CGRateS.org")
    assert not codec.check_pap(message, SECRET, "CGRateS.or")
    assert message.get(("User-Name",)) == ["1001"]
    assert message.get(("NAS-IP-Address",)) == ["192.0.2.1"]
    assert message.get(("NAS-Port-Type",)) == ["Wireless-802.11"]
    assert message.get(("Proxy-State",)) == ["0102"]


def test_access_accept_verifies_against_its_request() -> None:
    request, reply = load("access_request_pap"), load("access_accept")
    assert reply.code == codec.ACCESS_ACCEPT and reply.identifier == request.identifier
    assert codec.verify_response_authenticator(reply, request.authenticator, SECRET)
    assert codec.verify_message_authenticator(reply, SECRET, request)
    assert reply.get(("Session-Timeout",)) == [3600]
    assert reply.get(("Reply-Message",)) == ["Welcome"]


def test_our_reply_matches_pyrads() -> None:
    """The same Access-Accept encoded by our codec is byte for byte pyrad's (which copies the
    request's Proxy-State right after the Message-Authenticator)."""
    request, reply = load("access_request_pap"), load("access_accept")
    ours = codec.encode_reply(
        request,
        codec.ACCESS_ACCEPT,
        codec.attributes_from(
            [("Proxy-State", b"\x01\x02"), ("Session-Timeout", 3600), ("Reply-Message", "Welcome")]
        ),
        SECRET,
    )
    assert ours == reply.raw


def test_accounting() -> None:
    start, interim, stop = (load(f"accounting_{n}") for n in ("start", "interim", "stop"))
    for message in (start, interim, stop):
        assert message.code == codec.ACCOUNTING_REQUEST
        assert codec.verify_request_authenticator(message, SECRET)
        assert not codec.verify_request_authenticator(message, b"other")
        assert not message.has_message_authenticator
        assert message.get(("Acct-Session-Id",)) == ["5f3a-0001"]
        assert message.get(("Event-Timestamp",)) == ["2024-05-01T12:00:00+00:00"]
        assert message.get(("NAS-IPv6-Address",)) == ["2001:db8::1"]
        assert message.get(("Framed-IPv6-Prefix",)) == ["2001:db8:1::/48"]
    assert start.get(("Acct-Status-Type",)) == ["Start"]
    assert interim.get(("Acct-Status-Type",)) == ["Interim-Update"]
    assert stop.get(("Acct-Status-Type",)) == ["Stop"]
    assert stop.get(("Acct-Session-Time",)) == [150]
    assert stop.get(("Acct-Input-Gigawords",)) == [1]


def test_our_accounting_request_matches_pyrads() -> None:
    stop = load("accounting_stop")
    names = [
        (name, value[0] if isinstance(value, list) else value)
        for name, value in stop.to_data().items()
    ]
    ours = codec.encode_request(
        codec.ACCOUNTING_REQUEST,
        stop.identifier,
        codec.attributes_from(names),
        SECRET,
        message_authenticator=False,
    )
    assert ours == stop.raw


def test_disconnect_request() -> None:
    message = load("disconnect_request")
    assert message.code == codec.DISCONNECT_REQUEST
    assert message.attributes[0].code == codec.ATTR_MESSAGE_AUTHENTICATOR
    assert codec.verify_request_authenticator(message, SECRET)
    assert codec.verify_message_authenticator(message, SECRET)
    assert message.get(("Error-Cause",)) == ["Session-Context-Not-Found"]
