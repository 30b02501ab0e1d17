"""CGRateS-wire JSON-RPC codec: stream framing, message decoding and encoding.

Pure: no sockets, no clock, no logging. The wire format is Go's ``net/rpc/jsonrpc`` as CGRateS
speaks it::

    request   {"method":"Service.Method","params":[{...}],"id":7}
    response  {"id":7,"result":{...},"error":null}      (or "result":null,"error":"NOT_FOUND")

On TCP the messages go back to back with no framing. Go's ``json.Encoder`` writes a ``"\\n"``
after each one, but other clients may write none, pipeline many in one packet, split one over
several packets or pretty-print them. Two readers are provided:

* ``JsonStreamSplitter`` finds object boundaries by scanning braces and strings with a regex.
  Exact for any input, but it visits every string token (~10 µs for a typical 450-byte CGRateS
  request).
* ``MessageDecoder`` is what connections use. When no partial object is pending it hands each
  line (or the rest of the data) straight to orjson, which parses a whole request in ~1 µs; only
  what orjson cannot take whole (a partial object, several objects on one line whose first one
  is not ASCII, pretty-printed JSON, garbage) goes through the splitter. It yields exactly what
  ``JsonStreamSplitter`` + ``decode_message`` would.

Lenient parts, decided here and documented for callers:

* ``"params"`` may be an array (only its first element is the argument, as in Go, where extra
  elements are ignored; an empty array gives ``{}``), a bare object (the argument itself), or
  missing/``null`` (``{}``: Go would pass the zero value of the argument struct).
* A message with ``"method"`` is a ``Request``; one without it but with ``"result"`` or
  ``"error"`` is a ``Response`` (the connection is bidirectional). Anything else is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from core.types import JSONDecodeError, JsonParts, dumps, loads

MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
"""Largest single JSON message accepted from a peer, in bytes."""

JSON_WHITESPACE: Final = b" \t\r\n"

# One token inside an object: a complete string (unrolled loop, linear time), a brace, or the
# lone opening quote of a string that is not complete yet in the buffer.
_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}]|"', re.DOTALL)
# The remainder of a string after its opening quote; group 1 is set if its closing quote is
# there. A trailing lone backslash is left unconsumed so the next scan starts on the escape.
_STRING_REST: Final = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*(")?', re.DOTALL)
_QUOTE: Final = ord('"')
_OPEN: Final = ord("{")
_NEWLINE: Final = b"\n"
# encode_response's line around the id and a JsonParts result, as dumps writes the dict.
_RESULT_HEAD: Final = b'{"id":'
_RESULT_MIDDLE: Final = b',"result":'
_RESULT_TAIL: Final = b',"error":null}\n'
REPLY_TAIL: Final = _RESULT_TAIL
"""The end of ``encode_response``'s line after a result's value (see ``reply_lead``)."""
_NO_ERROR_POSITION: Final = -1

ERROR_GARBAGE: Final = "jsonrpc: unexpected data outside a JSON object"
ERROR_NOT_OBJECT: Final = "jsonrpc: message is not a JSON object"
ERROR_MISSING_METHOD: Final = "jsonrpc: missing method"
ERROR_BAD_METHOD: Final = "jsonrpc: method must be a non-empty string"
ERROR_BAD_PARAMS: Final = "jsonrpc: params must be an array or an object"


class RpcProtocolError(ValueError):
    """A peer sent something that is not a valid JSON-RPC message.

    ``message`` is the text to send back as the response's ``"error"``; ``id`` is the request
    id when it could be read (``None`` otherwise, and the reply then carries ``"id":null``).
    """

    def __init__(self, message: str, id: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id


class RpcDecodeError(RpcProtocolError):
    """One message is not valid JSON or not a valid JSON-RPC request/response."""


class RpcFramingError(RpcProtocolError):
    """The byte stream itself is broken: data outside objects, or an object that is too large."""


@dataclass(slots=True)
class Request:
    """A call from the peer. ``params`` is the single argument object (see module docstring)."""

    method: str
    params: Any
    id: Any

    def __init__(self, method: str, params: Any, id: Any) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.method = method
        self.params = params
        self.id = id


@dataclass(slots=True)
class Response:
    """A reply from the peer to one of our calls. ``error`` is ``None`` on success."""

    id: Any
    result: Any
    error: str | None

    def __init__(self, id: Any, result: Any, error: str | None) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.id = id
        self.result = result
        self.error = error


Message = Request | Response
DecodedItem = Request | Response | RpcProtocolError

_MISSING: Final = object()


# ------------------------------------------------------------------------------------ decoding
def _response_error(error: Any) -> str | None:
    """Normalises a peer's ``"error"`` the way Go's jsonrpc client reads it."""
    if error is None:
        return None
    if isinstance(error, str):
        return error or "unspecified error"
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])  # JSON-RPC 2.0 error object, from non-CGRateS peers
    return "invalid error " + dumps(error).decode()


def classify(obj: Any) -> Request | Response:
    """Turns one parsed JSON value into a ``Request`` or ``Response``; raises ``RpcDecodeError``."""
    if type(obj) is not dict:
        raise RpcDecodeError(ERROR_NOT_OBJECT)
    method = obj.get("method", _MISSING)
    if method is _MISSING:
        if "result" in obj or "error" in obj:
            return Response(obj.get("id"), obj.get("result"), _response_error(obj.get("error")))
        raise RpcDecodeError(ERROR_MISSING_METHOD, obj.get("id"))
    if type(method) is not str or not method:
        raise RpcDecodeError(ERROR_BAD_METHOD, obj.get("id"))
    params = obj.get("params")
    if type(params) is list:
        argument = params[0] if params else {}
    elif type(params) is dict:
        argument = params
    elif params is None:
        argument = {}
    else:
        raise RpcDecodeError(ERROR_BAD_PARAMS, obj.get("id"))
    return Request(method, argument, obj.get("id"))


def decode_message(raw: bytes | bytearray | memoryview) -> Request | Response:
    """Decodes one complete JSON-RPC message; raises ``RpcDecodeError`` with a clear message."""
    try:
        obj = loads(raw)
    except JSONDecodeError as exc:
        raise RpcDecodeError(f"jsonrpc: invalid JSON: {exc}") from None
    return classify(obj)


def _decode_item(raw: bytes | bytearray | memoryview) -> DecodedItem:
    try:
        return decode_message(raw)
    except RpcDecodeError as exc:
        return exc


# ------------------------------------------------------------------------------------ encoding
def encode_request(method: str, params: Any, id: Any) -> bytes:
    """``{"method":..,"params":[params],"id":..}`` plus ``"\\n"``, as Go's jsonrpc client."""
    return dumps({"method": method, "params": [params], "id": id}) + _NEWLINE


def encode_response(id: Any, result: Any, error: str | None) -> bytes:
    """``{"id":..,"result":..,"error":..}`` plus ``"\\n"``, as Go's jsonrpc server.

    With an error the result is always ``null``. Raises ``TypeError`` if ``result`` cannot be
    encoded. A ``JsonParts`` result is written as it is, its parts joined into the line.
    """
    if error is not None:
        return dumps({"id": id, "result": None, "error": error}) + _NEWLINE
    if type(result) is JsonParts:
        return b"".join((_RESULT_HEAD, dumps(id), _RESULT_MIDDLE, *result, _RESULT_TAIL))
    return dumps({"id": id, "result": result, "error": None}) + _NEWLINE


def reply_lead(id: Any) -> bytes:
    """The start of ``encode_response``'s line for a result, up to the result's value; the
    line ends with ``REPLY_TAIL``. Raises ``TypeError`` if ``id`` cannot be encoded."""
    # Ids are what orjson decoded (numbers, strings, null...), on which dumps' Decimal default
    # and UTC option never act: orjson alone, no Python frame.
    return _RESULT_HEAD + orjson.dumps(id) + _RESULT_MIDDLE


# ------------------------------------------------------------------------------------- framing
class JsonStreamSplitter:
    """Splits a TCP byte stream into raw JSON objects (``bytes``) and ``RpcFramingError`` items.

    State survives between feeds: a partial object is kept together with how far it was
    scanned, the brace depth and whether the scan stopped inside a string, so every byte is
    scanned once. Bytes outside objects must be JSON whitespace; anything else yields one
    ``RpcFramingError`` per run and is dropped up to the next ``{``. An object larger than
    ``max_size`` yields one ``RpcFramingError`` and is skipped to its end (still tracking
    braces, so its nested objects are not mistaken for messages).
    """

    __slots__ = (
        "_depth",
        "_in_garbage",
        "_in_string",
        "_pending",
        "_scanned",
        "_skipping",
        "_start",
        "max_size",
    )

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._pending = bytearray()  # the unfinished object, from its "{"
        self._scanned = 0  # how much of _pending was already scanned
        self._start = 0  # where the current object starts in the buffer being scanned
        self._depth = 0
        self._in_string = False
        self._skipping = False  # inside an oversize object: track braces, keep nothing
        self._in_garbage = False  # the current run of garbage was already reported

    @property
    def idle(self) -> bool:
        """True between objects with nothing buffered and no garbage run in progress."""
        return self._depth == 0 and not self._in_garbage

    def feed(self, data: bytes | bytearray) -> list[bytes | RpcFramingError]:
        """Adds bytes from the stream; returns the complete objects and errors they finish."""
        out: list[bytes | RpcFramingError] = []
        buf, pos = self._resume(data)
        end = len(buf)
        while pos < end:
            pos = self._scan(buf, pos, out)
        self._suspend(buf)
        return out

    def reset(self) -> None:
        """Forgets any partial object (e.g. when the connection is reused)."""
        self._pending = bytearray()
        self._scanned = self._start = self._depth = 0
        self._in_string = self._skipping = self._in_garbage = False

    # The three steps below are also driven by MessageDecoder, one object at a time.
    def _resume(self, data: bytes | bytearray) -> tuple[bytes | bytearray, int]:
        """Returns the buffer to scan and where to start: the pending object plus ``data``."""
        self._start = 0
        if self._pending:
            self._pending += data
            return self._pending, self._scanned
        return data, 0

    def _suspend(self, buf: bytes | bytearray) -> None:
        """After scanning ``buf`` to its end: keeps the unfinished object, if any."""
        if self._depth == 0:
            if self._pending:
                self._pending = bytearray()
            self._scanned = 0
        elif buf is self._pending:
            del buf[: self._start]  # cheap: a bytearray drops a prefix by moving its start
        else:
            self._pending = bytearray(memoryview(buf)[self._start :])

    def _scan(self, buf: bytes | bytearray, pos: int, out: list[Any]) -> int:
        """Scans from ``pos`` until one object ends (returns the position after it) or ``buf``
        ends (returns ``len(buf)``; the state then says where in an object the scan stopped)."""
        end = len(buf)
        if self._depth == 0:
            brace = buf.find(b"{", pos)
            stop = end if brace < 0 else brace
            if not self._in_garbage and buf[pos:stop].strip(JSON_WHITESPACE):
                self._in_garbage = True
                out.append(RpcFramingError(ERROR_GARBAGE))
            if brace < 0:
                return end
            self._in_garbage = False
            self._start = brace
            self._depth = 1
            pos = brace + 1
        if self._in_string:
            rest = _STRING_REST.match(buf, pos)
            assert rest is not None  # the pattern matches the empty string
            if rest.group(1) is None:
                return self._out_of_data(buf, rest.end(), out)
            self._in_string = False
            pos = rest.end()
        depth = self._depth
        for token in _TOKEN.finditer(buf, pos):
            first = buf[token.start()]
            if first == _QUOTE:
                if token.end() - token.start() == 1:  # a string not closed yet
                    rest = _STRING_REST.match(buf, token.end())
                    assert rest is not None
                    self._in_string = True
                    self._depth = depth
                    return self._out_of_data(buf, rest.end(), out)
            elif first == _OPEN:
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    self._depth = 0
                    self._emit(buf, token.end(), out)
                    return token.end()
        self._depth = depth
        return self._out_of_data(buf, end, out)

    def _out_of_data(self, buf: bytes | bytearray, scanned: int, out: list[Any]) -> int:
        """The buffer ended inside an object, scanned up to ``scanned`` (short of the end only
        by a string's trailing backslash): applies the size cap and remembers the position."""
        if not self._skipping and len(buf) - self._start > self.max_size:
            self._skipping = True
            out.append(RpcFramingError(self._too_large()))
        if self._skipping:
            self._start = scanned  # keep nothing of an oversize object but the unscanned tail
        self._scanned = scanned - self._start
        return len(buf)

    def _emit(self, buf: bytes | bytearray, stop: int, out: list[Any]) -> None:
        if self._skipping:
            self._skipping = False
        elif stop - self._start > self.max_size:
            out.append(RpcFramingError(self._too_large()))
        else:
            out.append(bytes(buf[self._start : stop]))

    def _too_large(self) -> str:
        return f"jsonrpc: message larger than {self.max_size} bytes"


class MessageDecoder:
    """Turns a TCP byte stream into ``Request``/``Response`` items and ``RpcProtocolError`` items.

    Same results as ``JsonStreamSplitter`` followed by ``decode_message``, but complete objects
    that start where nothing is pending are parsed by orjson directly (see module docstring).
    """

    __slots__ = ("_splitter", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._splitter = JsonStreamSplitter(max_size)

    def reset(self) -> None:
        self._splitter.reset()

    def feed(self, data: bytes | bytearray) -> list[DecodedItem]:
        out: list[DecodedItem] = []
        splitter = self._splitter
        pos = 0
        if not splitter.idle:
            data, pos = self._slow(data, pos, out)
        end = len(data)
        view = memoryview(data)
        max_size = self.max_size
        while pos < end:
            newline = data.find(_NEWLINE, pos)
            line_end = end if newline < 0 else newline
            if line_end == pos:  # empty line
                pos += 1
                continue
            error_at = _NO_ERROR_POSITION
            if line_end - pos <= max_size:
                try:
                    obj = loads(view[pos:line_end])
                except JSONDecodeError as exc:
                    error_at = pos + exc.pos
                else:
                    if type(obj) is dict:
                        try:
                            out.append(classify(obj))
                        except RpcDecodeError as invalid:  # mypyc types each name once
                            out.append(invalid)
                        pos = line_end + 1
                        continue
            if pos < error_at < line_end:
                # Maybe a complete object followed by more on the same line: orjson reports
                # where the trailing content starts (in characters: right for ASCII only).
                try:
                    obj = loads(view[pos:error_at])
                except JSONDecodeError:
                    pass
                else:
                    if type(obj) is dict:
                        try:
                            out.append(classify(obj))
                        except RpcDecodeError as invalid:  # mypyc types each name once
                            out.append(invalid)
                        pos = error_at
                        continue
            if not data[pos:line_end].strip(JSON_WHITESPACE):  # a blank line
                pos = line_end + 1
                continue
            view.release()
            data, pos = self._slow(data, pos, out)
            end = len(data)
            view = memoryview(data)
        view.release()
        return out

    def _slow(
        self, data: bytes | bytearray, pos: int, out: list[DecodedItem]
    ) -> tuple[bytes | bytearray, int]:
        """Runs the splitter from ``pos`` until one object is done or the data ends.

        Returns the data left for the fast path and where it starts.
        """
        splitter = self._splitter
        raws: list[bytes | RpcFramingError] = []
        if pos:
            data = data[pos:]
        buf, pos = splitter._resume(data)
        pos = splitter._scan(buf, pos, raws)
        if pos < len(buf):
            rest: bytes | bytearray = buf[pos:] if buf is splitter._pending else buf
            rest_pos = 0 if buf is splitter._pending else pos
        else:
            rest, rest_pos = b"", 0
        splitter._suspend(buf)
        for raw in raws:
            out.append(raw if isinstance(raw, RpcFramingError) else _decode_item(raw))
        return rest, rest_pos
