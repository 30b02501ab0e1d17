"""Property tests: the codec never fails on hostile input and chunking never changes results."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.rpc.codec import (
    JsonStreamSplitter,
    MessageDecoder,
    Request,
    Response,
    RpcDecodeError,
    RpcFramingError,
    RpcProtocolError,
    decode_message,
    encode_request,
)
from core.types import dumps

SMALL_MAX_SIZE = 200  # small enough for generated objects to hit the size cap sometimes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
# Pieces of a stream: valid messages, fragments that matter to the scanner, and noise.
pieces = st.one_of(
    st.builds(
        lambda method, params, id_: encode_request(method, params, id_),
        st.sampled_from(["A.B", "SessionSv1.InitiateSession", "x"]),
        json_values,
        st.integers(0, 1000),
    ),
    json_values.map(dumps),
    st.sampled_from(
        [b"{", b"}", b'"', b"\\", b"\n", b" ", b"\r\n", b'"{"', b'\\"', b"[", b"garbage", b"\xff"]
    ),
    st.binary(max_size=6),
)
streams = st.lists(pieces, max_size=12).map(b"".join)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def normalise(items: list[Any]) -> list[Any]:
    return [
        (type(item).__name__, item.message, repr(item.id))
        if isinstance(item, RpcProtocolError)
        else item
        for item in items
    ]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=20))
def test_splitter_takes_arbitrary_bytes_in_arbitrary_chunks(data: bytes, cuts: list[int]) -> None:
    splitter = JsonStreamSplitter(max_size=SMALL_MAX_SIZE)
    for chunk in split(data, cuts):
        for item in splitter.feed(chunk):
            assert isinstance(item, bytes | RpcFramingError)
            if isinstance(item, bytes):
                assert item.startswith(b"{")
                assert item.endswith(b"}")
                assert len(item) <= SMALL_MAX_SIZE


@settings(max_examples=400, deadline=None)
@given(streams, st.lists(st.integers(0, 10_000), max_size=20))
def test_chunking_does_not_change_results(data: bytes, cuts: list[int]) -> None:
    whole = JsonStreamSplitter(max_size=SMALL_MAX_SIZE).feed(data)
    chunked_splitter = JsonStreamSplitter(max_size=SMALL_MAX_SIZE)
    chunked: list[bytes | RpcFramingError] = []
    for chunk in split(data, cuts):
        chunked += chunked_splitter.feed(chunk)
    assert normalise(chunked) == normalise(whole)


@settings(max_examples=400, deadline=None)
@given(streams, st.lists(st.integers(0, 10_000), max_size=20))
def test_decoder_fast_path_equals_splitter_path(data: bytes, cuts: list[int]) -> None:
    expected: list[Any] = []
    for raw in JsonStreamSplitter(max_size=SMALL_MAX_SIZE).feed(data):
        if isinstance(raw, RpcFramingError):
            expected.append(raw)
            continue
        try:
            expected.append(decode_message(raw))
        except RpcDecodeError as exc:
            expected.append(exc)
    decoder = MessageDecoder(max_size=SMALL_MAX_SIZE)
    got: list[Any] = []
    for chunk in split(data, cuts):
        items = decoder.feed(chunk)
        for item in items:
            assert isinstance(item, Request | Response | RpcProtocolError)
        got += items
    assert normalise(got) == normalise(expected)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_decode_message_raises_only_decode_errors(raw: bytes) -> None:
    try:
        message = decode_message(raw)
    except RpcDecodeError as exc:
        assert exc.message
    else:
        assert isinstance(message, Request | Response)


@settings(max_examples=300, deadline=None)
@given(json_values.map(dumps))
def test_decode_message_of_any_json(raw: bytes) -> None:
    with contextlib.suppress(RpcDecodeError):
        decode_message(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(json_values, st.integers(0, 2**32)), max_size=8))
def test_requests_round_trip_through_the_decoder(calls: list[tuple[Any, int]]) -> None:
    data = b"".join(encode_request("Svc.M", params, id_) for params, id_ in calls)
    expected = [Request("Svc.M", params, id_) for params, id_ in calls]
    assert MessageDecoder().feed(data) == expected
