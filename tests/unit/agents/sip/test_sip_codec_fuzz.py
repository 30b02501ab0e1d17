"""Hypothesis: whatever arrives, the codec returns a message or raises SipDecodeError (never
another exception, never a hang), reading every part of a decoded request works, and the
transport's checks and its 400 answer hold up on the same input."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sip import codec, transport
from agents.sip.codec import SipDecodeError, SipRequestTree

VECTORS = sorted((Path(__file__).resolve().parents[4] / "tests" / "vectors" / "sip").glob("*.sip"))
SEEDS = [path.read_bytes() for path in VECTORS]
NAMES = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m",
         "Content-Length", "l", "Route", "Allow", "X-Custom", "Subject"]  # fmt: skip
PARTS = ["User", "Host", "Port", "URI", "DisplayName", "Tag", "Branch", "Received", "Rport",
         "Transport", "Number", "Method", "q"]  # fmt: skip
DEADLINE_MS = 500  # a decode taking longer than this is treated as a hang


def _read_all(data: bytes) -> None:
    try:
        message = codec.decode(data)
    except SipDecodeError as exc:
        partial = exc.partial
        if partial is not None and partial.replyable():
            try:
                response = transport.build_response(partial, 400, "Bad Request", ("127.0.0.1", 1))
                codec.encode(response)
            except (SipDecodeError, codec.SipEncodeError):
                pass
        return
    tree = SipRequestTree(message)
    for name in [*NAMES, "Request-URI", "Method", "Body"]:
        tree.get((name,))
        for part in PARTS:
            tree.get((name, part))
    try:
        transport.TransactionLayer._check(message)
        transport.transaction_key(message, message.method or "INVITE")
        transport.reply_destination(message, ("127.0.0.1", 5060))
    except SipDecodeError:
        return
    codec.encode(transport.build_response(message, 302, "", ("127.0.0.1", 5060), to_tag="x"))


@settings(max_examples=400, deadline=DEADLINE_MS)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _read_all(data)


@settings(max_examples=400, deadline=DEADLINE_MS)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_vectors(seed: bytes, data: st.DataObject) -> None:
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and mutated:
            mutated[position] = data.draw(st.sampled_from(b'\r\n :;,<>"\\@=\t\x00\xffAz09'))
        elif action == "insert":
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and mutated:
            del mutated[position]
        elif action == "truncate":
            del mutated[position:]
    _read_all(bytes(mutated))


header_value = st.text(
    alphabet=st.sampled_from(list('abc019:;,<>"\\@= \t.-_[]*+%sip/SIP2.0UDPbranchz9hG4bK')),
    max_size=60,
)


@settings(max_examples=400, deadline=DEADLINE_MS)
@given(
    st.sampled_from(
        [
            "INVITE sip:1@h SIP/2.0",
            "OPTIONS sip:h SIP/2.0",
            "SIP/2.0 200 OK",
            "ACK tel:+1 SIP/2.0",
            "BYE x SIP/2.0",
        ]
    ),
    st.lists(st.tuples(st.sampled_from(NAMES), header_value), max_size=12),
    st.binary(max_size=40),
    st.sampled_from(["\r\n", "\n"]),
)
def test_structured_messages(
    start: str, headers: list[tuple[str, str]], body: bytes, eol: str
) -> None:
    head = eol.join([start, *(f"{name}: {value}" for name, value in headers)])
    data = head.encode() + (eol * 2).encode() + body
    _read_all(data)
    length = None
    with contextlib.suppress(SipDecodeError):
        length = codec.frame(data)
    assert length is None or 0 < length <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4), st.data())
def test_transaction_layer_never_raises(seeds: list[bytes], data: st.DataObject) -> None:
    """Mutated vectors through ``TransactionLayer.receive`` (the socket's entry point): every
    datagram is answered or dropped, none raises, and every answer decodes."""
    answers: list[bytes] = []
    peer = transport.Peer("UDP", ("127.0.0.1", 5060), lambda sent, _: answers.append(sent))

    async def handler(request: codec.SipMessage, _: transport.Peer) -> transport.Answer:
        return transport.Answer(302, headers=[("Contact", "<sip:a@b>;q=1.0")])

    async def run() -> None:
        layer = transport.TransactionLayer(handler)
        for seed in seeds:
            mutated = bytearray(seed)
            for _ in range(data.draw(st.integers(0, 4))):
                if not mutated:
                    break
                position = data.draw(st.integers(0, len(mutated) - 1))
                mutated[position] = data.draw(st.integers(0, 255))
            layer.receive(bytes(mutated), peer)
        await layer.close()

    asyncio.run(run())
    for answer in answers:
        assert codec.decode(answer).status >= 100
