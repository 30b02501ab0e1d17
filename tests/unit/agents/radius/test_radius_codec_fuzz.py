"""Hypothesis: decode raises RadiusDecodeError or returns a message, never anything else, and a
decoded message can be read by name."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.radius import codec
from agents.radius.codec import RadiusDecodeError


def _read_all(data: bytes) -> None:
    try:
        message = codec.decode(data)
    except RadiusDecodeError:
        return
    message.to_data()
    codec.verify_request_authenticator(message, b"x")
    codec.verify_message_authenticator(message, b"x")
    codec.decrypt_password(message, b"x")
    codec.check_chap(message, "pw")


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _read_all(data)


attribute = st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
    lambda item: bytes((item[0], len(item[1]) + 2)) + item[1]
)


@settings(max_examples=500)
@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.lists(attribute, max_size=12),
    st.integers(-3, 3),
)
def test_well_framed_packets_with_any_attribute_values(
    code: int, ident: int, attributes: list[bytes], skew: int
) -> None:
    body = b"".join(attributes)
    length = max(0, 20 + len(body) + skew)
    _read_all(struct.pack("!BBH16s", code, ident, length & 0xFFFF, bytes(16)) + body)
