"""The SIP codec on hand-made vectors (tests/vectors/sip, in the spirit of RFC 4475's torture
tests): compact forms, folding, case, multi-value headers, Via parts, escaped display names,
bare LF, Content-Length framing; encoding; stream framing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.sip import codec
from agents.sip.codec import SipDecodeError, SipMessage, SipRequestTree

VECTORS = Path(__file__).resolve().parents[4] / "tests" / "vectors" / "sip"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def tree(name: str) -> SipRequestTree:
    return SipRequestTree(codec.decode(vector(name)))


def test_compact_forms_and_case() -> None:
    message = codec.decode(vector("compact_forms.sip"))
    assert message.method == "INVITE" and message.uri == "sip:1002@chargeflow.test"
    assert [name for name, _ in message.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Length",
    ]  # fmt: skip
    req = SipRequestTree(message)
    assert req.get(("call-id",)) == ["compact-1@pbx.example.net"]
    assert req.get(("i",)) == req.get(("Call-ID",))
    assert req.get(("From", "User")) == ["1001"]
    assert req.get(("From", "Tag")) == ["ab12"]
    assert req.get(("To", "User")) == ["1002"]
    assert req.get(("To", "Tag")) == []
    assert req.get(("CSeq", "Number")) == ["7"]
    assert req.get(("Via", "Port")) == ["5070"]
    assert message.cseq() == (7, "INVITE")


def test_folded_headers_are_unfolded() -> None:
    message = codec.decode(vector("folded_headers.sip"))
    req = SipRequestTree(message)
    assert req.get(("From", "DisplayName")) == ["Folded Caller"]
    assert req.get(("From", "Tag")) == ["f0ld"]
    assert message.cseq() == (1, "INVITE")
    assert req.get(("Subject",)) == ["first part, second part"]  # Subject is not a list
    assert req.get(("Request-URI", "User")) == ["+4915112345678"]
    assert req.get(("Request-URI", "User")) == req.get(("To", "User"))
    via = message.vias()[0]
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP", "pbx.example.net", 5061, "z9hG4bKfold1",
    )  # fmt: skip


def test_multi_value_headers_split_in_order() -> None:
    message = codec.decode(vector("multi_via.sip"))
    vias = message.vias()
    assert [v.host for v in vias] == ["proxy2.example.net", "proxy1.example.net", "[2001:db8::5]"]
    assert [v.port for v in vias] == [None, 5080, 5062]
    assert vias[0].params == {"branch": "z9hG4bKtop", "rport": ""}
    assert vias[1].params["received"] == "198.51.100.7"
    req = SipRequestTree(message)
    assert req.get(("Via", "Branch")) == ["z9hG4bKtop", "z9hG4bKmid", "z9hG4bKlow"]
    # the comma inside the quoted display name does not split
    assert req.get(("Contact", "DisplayName")) == ["B, the second"]  # the first has none
    assert req.get(("Contact", "q")) == ["0.5", "1"]
    assert req.get(("Request-URI", "Host")) == ["chargeflow.test"]
    assert req.get(("Request-URI", "User")) == []  # no user part: missing


def test_escaped_display_name() -> None:
    req = tree("escaped_display.sip")
    assert req.get(("From", "DisplayName")) == ['The "Boss" <ceo>']
    assert req.get(("From", "User")) == ["1001"]
    assert req.get(("From", "transport")) == []  # a URI parameter is not a header parameter
    assert req.get(("From", "Tag")) == ["e5c"]
    assert req.get(("To", "DisplayName")) == ["1002"]


def test_bare_lf_line_ends() -> None:
    message = codec.decode(vector("lf_only.sip"))
    assert message.first("Call-ID") == "lf-only-1" and message.replyable()


def test_body_framed_by_content_length() -> None:
    message = codec.decode(vector("body_with_length.sip"))
    assert message.body == b"v=0\r\no=- 1 1 "  # what follows Content-Length is ignored
    assert SipRequestTree(message).get(("Body",)) == ["v=0\r\no=- 1 1 "]


@pytest.mark.parametrize(
    ("name", "replyable"),
    [
        ("bad_content_length.sip", True),
        ("bad_version.sip", False),  # the start line was read, no header yet
        ("garbage.sip", False),
    ],
)
def test_bad_messages_raise_with_what_was_read(name: str, replyable: bool) -> None:
    with pytest.raises(SipDecodeError) as caught:
        codec.decode(vector(name))
    partial = caught.value.partial
    assert (partial is not None and partial.replyable()) is replyable


def test_encode_writes_content_length_and_round_trips() -> None:
    message = SipMessage(
        status=302,
        reason="Moved Temporarily",
        headers=[("v", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("Contact", "<sip:a@b>;q=1.0"),
                 ("Content-Length", "99")],
        body=b"xyz",
    )  # fmt: skip
    data = codec.encode(message)
    assert data.startswith(b"SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1")
    assert data.count(b"Content-Length") == 1 and data.endswith(b"Content-Length: 3\r\n\r\nxyz")
    again = codec.decode(data)
    assert (again.status, again.reason, again.body) == (302, "Moved Temporarily", b"xyz")
    assert again.values("m") == ["<sip:a@b>;q=1.0"]


def test_encode_refuses_header_injection() -> None:
    with pytest.raises(codec.SipEncodeError):
        codec.encode(SipMessage(status=200, reason="OK", headers=[("X", "a\r\nVia: evil")]))
    with pytest.raises(codec.SipEncodeError):
        codec.encode(SipMessage(status=99, reason="no"))


def test_frame_on_a_stream() -> None:
    one = vector("compact_forms.sip")
    two = vector("body_with_length.sip")
    head = two.index(b"\r\n\r\n") + 4
    stream = b"\r\n\r\n" + one + two[: head + 5]  # 5 of the 13 body bytes
    first = codec.frame(stream)
    assert first == 4 + len(one)
    assert codec.decode(stream[:first]).first("Call-ID") == "compact-1@pbx.example.net"
    rest = stream[first:]
    assert codec.frame(rest) is None  # body incomplete
    length = codec.frame(two)
    assert length is not None and codec.decode(two[:length]).body == b"v=0\r\no=- 1 1 "
    with pytest.raises(SipDecodeError):
        codec.frame(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n")
    with pytest.raises(SipDecodeError):
        codec.frame(b"A" * (codec.MAX_MESSAGE + 10))


def test_uris() -> None:
    uri = codec.SipUri.parse("sips:alice:secret@[2001:db8::1]:5061;transport=tls?subject=x")
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.params) == (
        "sips", "alice", "[2001:db8::1]", 5061, {"transport": "tls"},
    )  # fmt: skip
    tel = codec.SipUri.parse("tel:+4930123;phone-context=example.net")
    assert (tel.user, tel.params) == ("+4930123", {"phone-context": "example.net"})
    assert codec.SipUri.parse("mailto:a@b").user == ""
