"""Codec: stream splitting, message decoding and encoding (no sockets)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from core.rpc.codec import (
    ERROR_BAD_METHOD,
    ERROR_BAD_PARAMS,
    ERROR_GARBAGE,
    ERROR_MISSING_METHOD,
    ERROR_NOT_OBJECT,
    JsonStreamSplitter,
    MessageDecoder,
    Request,
    Response,
    RpcDecodeError,
    RpcFramingError,
    decode_message,
    encode_request,
    encode_response,
)
from core.types import JsonParts, dumps

REQUEST = b'{"method":"Bench.Echo","params":[{"a":1}],"id":1}'


def feed_bytewise(splitter: JsonStreamSplitter, data: bytes) -> list[bytes | RpcFramingError]:
    out: list[bytes | RpcFramingError] = []
    for index in range(len(data)):
        out += splitter.feed(data[index : index + 1])
    return out


def normalise(items: list[Any]) -> list[Any]:
    """Errors compare by type and text (exceptions have identity equality)."""
    return [
        (type(item).__name__, item.message, item.id)
        if isinstance(item, RpcDecodeError | RpcFramingError)
        else item
        for item in items
    ]


# ------------------------------------------------------------------------------------ splitter
def test_splitter_single_object() -> None:
    assert JsonStreamSplitter().feed(REQUEST) == [REQUEST]


def test_splitter_pipelined_objects_with_and_without_whitespace() -> None:
    data = REQUEST + REQUEST + b"\n" + REQUEST + b" \r\n\t " + REQUEST
    assert JsonStreamSplitter().feed(data) == [REQUEST] * 4


def test_splitter_object_split_byte_by_byte() -> None:
    data = REQUEST + b"\n" + REQUEST
    assert feed_bytewise(JsonStreamSplitter(), data) == [REQUEST, REQUEST]


@pytest.mark.parametrize(
    "obj",
    [
        rb'{"a":"}"}',
        rb'{"a":"{{{"}',
        rb'{"a":"\"}"}',
        rb'{"a":"\\"}',
        rb'{"a":"\\\"}{"}',
        rb'{"a":{"b":{"c":"}}}"}}}',
        rb'{"a":"\u007b"}',
        '{"a":"é{ü}"}'.encode(),
    ],
)
def test_splitter_strings_hide_braces_and_escapes(obj: bytes) -> None:
    data = obj + b"\n" + REQUEST
    assert JsonStreamSplitter().feed(data) == [obj, REQUEST]
    assert feed_bytewise(JsonStreamSplitter(), data) == [obj, REQUEST]


def test_splitter_keeps_partial_object_between_feeds() -> None:
    splitter = JsonStreamSplitter()
    assert splitter.feed(REQUEST[:10]) == []
    assert not splitter.idle
    assert splitter.feed(REQUEST[10:] + REQUEST[:5]) == [REQUEST]
    assert splitter.feed(REQUEST[5:]) == [REQUEST]
    assert splitter.idle


def test_splitter_garbage_gives_one_error_and_resyncs() -> None:
    items = JsonStreamSplitter().feed(b"hello" + REQUEST + b"]]" + REQUEST)
    assert normalise(items) == [
        ("RpcFramingError", ERROR_GARBAGE, None),
        REQUEST,
        ("RpcFramingError", ERROR_GARBAGE, None),
        REQUEST,
    ]


def test_splitter_garbage_run_across_feeds_is_reported_once() -> None:
    splitter = JsonStreamSplitter()
    assert len(splitter.feed(b"hel")) == 1
    assert splitter.feed(b"lo\nworld\n") == []
    assert splitter.feed(REQUEST) == [REQUEST]
    assert len(splitter.feed(b"x")) == 1  # a new run


def test_splitter_top_level_non_objects_are_garbage() -> None:
    items = JsonStreamSplitter().feed(b'[1,2] "s" 3 }' + REQUEST)
    assert normalise(items) == [("RpcFramingError", ERROR_GARBAGE, None), REQUEST]


def test_splitter_oversize_object_is_skipped_whole() -> None:
    splitter = JsonStreamSplitter(max_size=64)
    big = b'{"a":[' + b'{"inner":1},' * 20 + b'{"inner":1}]}'
    items = splitter.feed(big[:40]) + splitter.feed(big[40:90]) + splitter.feed(big[90:] + REQUEST)
    assert len(items) == 2
    assert isinstance(items[0], RpcFramingError)
    assert "larger than 64 bytes" in items[0].message
    assert items[1] == REQUEST  # nested objects of the skipped one are not messages


def test_splitter_oversize_object_in_one_feed() -> None:
    splitter = JsonStreamSplitter(max_size=16)
    items = splitter.feed(b'{"a":"0123456789abcdef"}' + REQUEST[:0] + b'{"b":1}')
    assert isinstance(items[0], RpcFramingError)
    assert items[1] == b'{"b":1}'


def test_splitter_oversize_string_with_trailing_escape() -> None:
    splitter = JsonStreamSplitter(max_size=16)
    items = splitter.feed(b'{"a":"' + b"x" * 30 + b"\\") + splitter.feed(b'"}"}{"b":1}')
    assert isinstance(items[0], RpcFramingError)
    assert items[1:] == [b'{"b":1}']


def test_splitter_scans_each_byte_once() -> None:
    """A large object in small chunks: rescanning from its start would be quadratic."""
    body = b'{"k":[' + b",".join(b'"%d{"' % i for i in range(400_000)) + b"]}"
    splitter = JsonStreamSplitter()
    chunk = 4096
    started = time.perf_counter()
    items: list[bytes | RpcFramingError] = []
    for offset in range(0, len(body), chunk):
        items += splitter.feed(body[offset : offset + chunk])
    elapsed = time.perf_counter() - started
    assert items == [body]
    assert elapsed < 5.0  # linear: ~0.3 s; quadratic would take minutes


def test_splitter_reset_forgets_partial() -> None:
    splitter = JsonStreamSplitter()
    splitter.feed(b'{"a":"un')
    splitter.reset()
    assert splitter.idle
    assert splitter.feed(REQUEST) == [REQUEST]


# ---------------------------------------------------------------------------- decode_message
def test_decode_request_with_params_list() -> None:
    message = decode_message(b'{"method":"APIerSv1.GetAccount","params":[{"Tenant":"t"}],"id":7}')
    assert message == Request("APIerSv1.GetAccount", {"Tenant": "t"}, 7)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("[]", {}),
        ('[{"a":1},{"b":2}]', {"a": 1}),  # extra elements ignored, as Go does
        ('{"a":1}', {"a": 1}),
        ("null", {}),
        ('["x"]', "x"),
        ("[null]", None),
    ],
)
def test_decode_params_shapes(params: str, expected: Any) -> None:
    message = decode_message(f'{{"method":"A.B","params":{params},"id":"x"}}'.encode())
    assert message == Request("A.B", expected, "x")


def test_decode_missing_params_and_id() -> None:
    assert decode_message(b'{"method":"CoreSv1.Ping"}') == Request("CoreSv1.Ping", {}, None)


def test_decode_invalid_params_keeps_id() -> None:
    with pytest.raises(RpcDecodeError) as caught:
        decode_message(b'{"method":"A.B","params":"x","id":5}')
    assert caught.value.message == ERROR_BAD_PARAMS
    assert caught.value.id == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1]", ERROR_NOT_OBJECT),
        (b'"x"', ERROR_NOT_OBJECT),
        (b'{"id":1}', ERROR_MISSING_METHOD),
        (b'{"method":3,"id":1}', ERROR_BAD_METHOD),
        (b'{"method":"","id":1}', ERROR_BAD_METHOD),
    ],
)
def test_decode_invalid_messages(raw: bytes, message: str) -> None:
    with pytest.raises(RpcDecodeError) as caught:
        decode_message(raw)
    assert caught.value.message == message


@pytest.mark.parametrize("raw", [b"", b"{", b'{"method": bad}', b"\xff\xfe", b'{"a":1}{"b":2}'])
def test_decode_invalid_json(raw: bytes) -> None:
    with pytest.raises(RpcDecodeError) as caught:
        decode_message(raw)
    assert caught.value.message.startswith("jsonrpc: invalid JSON: ")
    assert caught.value.id is None


def test_decode_responses() -> None:
    assert decode_message(b'{"id":3,"result":"OK","error":null}') == Response(3, "OK", None)
    assert decode_message(b'{"id":3,"result":null,"error":"NOT_FOUND"}') == Response(
        3, None, "NOT_FOUND"
    )
    assert decode_message(b'{"id":3,"error":""}') == Response(3, None, "unspecified error")
    assert decode_message(b'{"id":3,"error":{"code":1,"message":"m"}}') == Response(3, None, "m")
    assert decode_message(b'{"id":3,"error":5}') == Response(3, None, "invalid error 5")


# ----------------------------------------------------------------------------------- encoding
def test_encode_request_like_go_client() -> None:
    assert encode_request("A.B", {"x": 1}, 0) == b'{"method":"A.B","params":[{"x":1}],"id":0}\n'


def test_encode_response_like_go_server() -> None:
    assert encode_response(1, {"a": Decimal("0.10")}, None) == (
        b'{"id":1,"result":{"a":0.1},"error":null}\n'
    )
    assert encode_response("x", {"ignored": 1}, "NOT_FOUND") == (
        b'{"id":"x","result":null,"error":"NOT_FOUND"}\n'
    )
    assert encode_response(None, None, None) == b'{"id":null,"result":null,"error":null}\n'


def test_encode_pre_encoded_parts_as_the_value_they_hold() -> None:
    value = {"Cost": Decimal("0.7002"), "Charges": [{"Usage": 60}], "RunID": ""}
    parts = JsonParts((b'{"Cost":0.7002,', b'"Charges":[{"Usage":60}]', b',"RunID":""}'))
    for request_id in (1, "x", None):
        assert encode_response(request_id, parts, None) == encode_response(request_id, value, None)
    assert encode_response(1, parts, "NOT_FOUND") == b'{"id":1,"result":null,"error":"NOT_FOUND"}\n'
    assert dumps({"nested": [parts]}) == dumps({"nested": [value]})  # anywhere else too


def test_encode_decimal_is_exact() -> None:
    body = encode_response(1, Decimal("123456789.123456789123456789"), None)
    assert b'"result":123456789.123456789123456789' in body


def test_encode_unencodable_result_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_response(1, object(), None)


# ------------------------------------------------------------------------------ MessageDecoder
STREAMS = [
    REQUEST + b"\n" + REQUEST + b"\n",
    REQUEST + REQUEST + REQUEST,
    '{"method":"A.B","params":[{"n":"é"}],"id":1}{"method":"A.B","params":[],"id":2}'.encode(),
    b'{\n  "method": "A.B",\n  "params": [{}],\n  "id": 1\n}\n' + REQUEST,
    b"\n\n \r\n" + REQUEST + b"\r\n" + REQUEST,
    b"garbage\n" + REQUEST + b'\n{"method": bad}\n' + REQUEST,
    REQUEST + b" trailing " + REQUEST,
    b'{"id":4,"result":[1],"error":null}\n{"id":1}\n[1]\n' + REQUEST,
    b'{"method":"A.B","params":[{"s":"\\"}{\\\\"}],"id":9}' + REQUEST,
]


def reference(data: bytes) -> list[Any]:
    out: list[Any] = []
    for raw in JsonStreamSplitter().feed(data):
        if isinstance(raw, RpcFramingError):
            out.append(raw)
            continue
        try:
            out.append(decode_message(raw))
        except RpcDecodeError as exc:
            out.append(exc)
    return normalise(out)


@pytest.mark.parametrize("data", STREAMS)
def test_decoder_matches_splitter_whole_and_bytewise(data: bytes) -> None:
    expected = reference(data)
    assert normalise(MessageDecoder().feed(data)) == expected
    decoder = MessageDecoder()
    items: list[Any] = []
    for index in range(len(data)):
        items += decoder.feed(data[index : index + 1])
    assert normalise(items) == expected


def test_decoder_partial_then_fast_path() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(REQUEST[:20]) == []
    items = decoder.feed(REQUEST[20:] + b"\n" + REQUEST + b"\n")
    assert items == [Request("Bench.Echo", {"a": 1}, 1)] * 2


def test_decoder_oversize_line() -> None:
    decoder = MessageDecoder(max_size=32)
    items = decoder.feed(b'{"a":"' + b"x" * 40 + b'"}\n' + REQUEST[:0] + b'{"method":"A.B"}\n')
    assert isinstance(items[0], RpcFramingError)
    assert items[1] == Request("A.B", {}, None)
