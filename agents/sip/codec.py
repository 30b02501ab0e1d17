"""SIP messages (RFC 3261 §7, §25): bytes <-> ``SipMessage``, pure.

What the decoder accepts: a request line ``METHOD SP Request-URI SP SIP/2.0`` or a status line
``SIP/2.0 SP code SP reason``; header names case-insensitive with their compact forms
(``v``, ``f``, ``t``, ``i``, ``m``, ``l`` ...); folded header lines (a line starting with
whitespace continues the previous one); CRLF or bare LF line ends; leading empty lines
(keep-alives); a body framed by Content-Length (on a stream, Content-Length is how ``frame``
finds the message's end). Multi-value headers (Via, Contact, Route, Allow ...) split on commas
outside quotes and angle brackets. Every problem raises ``SipDecodeError`` whose ``partial``
holds what could be read (the transport answers 400 with it when it has enough to reply to).

Parts the templates read (``SipRequestTree``): a name-addr header's ``User``, ``Host``,
``Port``, ``URI``, ``DisplayName`` and its parameters (``Tag``); a Via's ``Transport``,
``Host``, ``Port`` and parameters (``Branch``, ``Received``, ``Rport``); CSeq's ``Number`` and
``Method``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

SIP_VERSION: Final = "SIP/2.0"
CRLF: Final = "\r\n"
MAX_MESSAGE: Final = 65535  # bytes: a UDP datagram's ceiling; larger stream messages are refused
MAX_HEADERS: Final = 256  # header lines per message: a bound against abuse
MIN_STATUS: Final = 100
MAX_STATUS: Final = 699
BRANCH_MAGIC: Final = "z9hG4bK"  # RFC 3261 §8.1.1.7: branches of compliant clients start so

COMPACT_FORMS: Final = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
# How we write names we know (lookups are case-insensitive; unknown names keep their spelling).
_KNOWN_NAMES: Final = (
    *COMPACT_FORMS.values(),
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authorization",
    "Call-Info", "CSeq", "Date", "Error-Info", "Expires", "In-Reply-To", "Max-Forwards",
    "MIME-Version", "Min-Expires", "Organization", "Priority", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "Record-Route", "Reply-To", "Require",
    "Retry-After", "Route", "Server", "Timestamp", "Unsupported", "User-Agent", "Warning",
    "WWW-Authenticate", "Diversion", "P-Asserted-Identity", "P-Preferred-Identity",
    "Privacy", "Reason",
)  # fmt: skip
CANONICAL: Final = {name.lower(): name for name in _KNOWN_NAMES} | COMPACT_FORMS
# Headers whose value is a comma-separated list (RFC 3261 §7.3.1); the others are never split
# (Date and the authentication headers contain commas of their own).
LIST_HEADERS: Final = frozenset(
    name.lower()
    for name in (
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Allow-Events", "Content-Encoding", "In-Reply-To", "Warning", "Error-Info",
        "Call-Info", "Alert-Info", "Diversion", "P-Asserted-Identity", "Reason",
    )
)  # fmt: skip
# Headers whose values are name-addr / addr-spec (parts User, Host ... in the request tree).
ADDRESS_HEADERS: Final = frozenset(
    name.lower()
    for name in (
        "From", "To", "Contact", "Route", "Record-Route", "Reply-To", "Refer-To",
        "Referred-By", "Diversion", "P-Asserted-Identity", "P-Preferred-Identity",
    )
)  # fmt: skip
REQUIRED_FOR_REPLY: Final = ("Via", "From", "To", "Call-ID", "CSeq")
# Parsed header values are memoized: one request reads From, To and Via several times (checks,
# transaction key, templates, the response); parsed values are never mutated.
PARSE_CACHE: Final = 1024

_TOKEN: Final = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_HEADER_NAME: Final = _TOKEN
_STATUS: Final = re.compile(r"^SIP/2\.0 ([1-6]\d\d)(?: (.*))?$", re.IGNORECASE)
_LINE_END: Final = re.compile(rb"\r?\n")
_VIA: Final = re.compile(
    r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9-]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*(\d+))?\s*(;.*)?$",
    re.IGNORECASE,
)
_HOSTPORT: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*)(?::(\d*))?$")


class SipDecodeError(ValueError):
    """Not a SIP message we can read; ``partial`` is what was read before the problem."""

    def __init__(self, message: str, partial: SipMessage | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class SipEncodeError(ValueError):
    """A message that cannot be written (a header value with a line break, a bad code)."""


# --------------------------------------------------------------------------------- URIs
@dataclass(frozen=True, slots=True)
class SipUri:
    """``scheme:user[:password]@host[:port];params?headers`` (RFC 3261 §19.1), loosely: any
    URI is kept whole in ``text``; parts are empty when it has none."""

    text: str
    scheme: str = ""
    user: str = ""
    host: str = ""
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or not scheme or not _TOKEN.match(scheme):
            return cls(text)
        scheme = scheme.lower()
        if scheme not in ("sip", "sips", "tel"):
            return cls(text, scheme)
        rest = rest.split("?", 1)[0]
        if scheme == "tel":
            number, _, param_text = rest.partition(";")
            return cls(text, scheme, number, "", None, _params(param_text))
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            hostpart = rest
        hostport, _, param_text = hostpart.partition(";")
        match = _HOSTPORT.match(hostport)
        host, port = (match.group(1), match.group(2)) if match else (hostport, None)
        return cls(
            text,
            scheme,
            userinfo.split(":", 1)[0],
            host.lower(),
            int(port) if port else None,
            _params(param_text),
        )


def _params(text: str) -> dict[str, str]:
    """``a=1;b;c="x y"`` -> {"a": "1", "b": "", "c": "x y"} (names lower-cased)."""
    out: dict[str, str] = {}
    for item in split_outside(text, ";"):
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name:
            out[name] = _unquote(value.strip())
    return out


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def split_outside(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` outside double quotes and ``<...>``; empty items dropped."""
    if '"' not in text and "<" not in text:  # the common case: nothing to protect
        return [item for item in (part.strip() for part in text.split(separator)) if item]
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for char in text:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">" and depth:
            depth -= 1
        elif char == separator and not depth:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or ``uri;params`` (RFC 3261 §20.10, §25.1)."""

    display: str
    uri: SipUri
    params: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        return _parse_name_addr(text)

    @classmethod
    def _parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            display, _, rest = _split_display(text)
            uri_text, closed, param_text = rest.partition(">")
            if not closed:
                raise SipDecodeError(f"unclosed '<' in {text[:80]!r}")
            return cls(_unquote(display.strip()), SipUri.parse(uri_text), _params(param_text))
        # addr-spec without brackets: its parameters are the header's (RFC 3261 §20.10).
        uri_text, _, param_text = text.partition(";")
        return cls("", SipUri.parse(uri_text), _params(param_text))

    def part(self, name: str) -> str | None:
        """A part by name; an empty user, host or display name is missing (None)."""
        key = name.lower()
        if key == "user":
            return self.uri.user or None
        if key == "host":
            return self.uri.host or None
        if key == "port":
            return str(self.uri.port) if self.uri.port is not None else None
        if key == "uri":
            return self.uri.text
        if key == "displayname":
            return self.display or None
        return self.params.get(key)


def _split_display(text: str) -> tuple[str, str, str]:
    """(display name, "<", the rest) with a quoted display name that may hold '<'."""
    if text.startswith('"'):
        end = 1
        while end < len(text):
            if text[end] == "\\":
                end += 2
                continue
            if text[end] == '"':
                break
            end += 1
        display, rest = text[: end + 1], text[end + 1 :]
        between, bracket, after = rest.partition("<")
        if not bracket or between.strip():
            raise SipDecodeError(f"missing '<' after the display name in {text[:80]!r}")
        return display, bracket, after
    return text.partition("<")


@dataclass(frozen=True, slots=True)
class Via:
    """``SIP/2.0/UDP host:port;branch=...;received=...;rport`` (RFC 3261 §20.42, RFC 3581)."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Via:
        return _parse_via(text)

    @classmethod
    def _parse(cls, text: str) -> Via:
        match = _VIA.match(text)
        if match is None:
            raise SipDecodeError(f"bad Via {text[:80]!r}")
        transport, host, port, param_text = match.groups()
        return cls(transport.upper(), host.lower(), int(port) if port else None,
                   _params(param_text or ""))  # fmt: skip

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")

    def part(self, name: str) -> str | None:
        key = name.lower()
        if key == "transport":
            return self.transport
        if key == "host":
            return self.host
        if key == "port":
            return str(self.port) if self.port is not None else None
        return self.params.get(key)


@functools.lru_cache(maxsize=PARSE_CACHE)
def _parse_name_addr(text: str) -> NameAddr:
    return NameAddr._parse(text)  # errors are not cached: lru_cache stores only results


@functools.lru_cache(maxsize=PARSE_CACHE)
def _parse_via(text: str) -> Via:
    return Via._parse(text)


# ------------------------------------------------------------------------------ messages
@dataclass(slots=True)
class SipMessage:
    """A request (``method`` set) or a response (``status`` set). ``headers`` are the header
    lines in order as (canonical name, value), values unfolded and not split."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # Values by lower-case name, built on first read; rebuilt when ``headers`` is replaced or
    # grows (the hot path reads a dozen headers per request).
    _index: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _indexed: tuple[int, int] = field(default=(0, -1), repr=False, compare=False)

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def _values_index(self) -> dict[str, list[str]]:
        marker = (id(self.headers), len(self.headers))
        if self._indexed != marker:
            index: dict[str, list[str]] = {}
            for header, value in self.headers:
                key = header.lower()
                if key in LIST_HEADERS:
                    index.setdefault(key, []).extend(split_outside(value, ","))
                else:
                    index.setdefault(key, []).append(value)
            self._index = index
            self._indexed = marker
        return self._index

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case, compact form allowed) in order; list
        headers split into their elements."""
        return list(self._values_index().get(canonical(name).lower(), ()))

    def first(self, name: str) -> str | None:
        found = self._values_index().get(canonical(name).lower())
        return found[0] if found else None

    def has(self, name: str) -> bool:
        return canonical(name).lower() in self._values_index()

    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.values("Via")]

    def cseq(self) -> tuple[int, str]:
        """(number, method) of CSeq; raises SipDecodeError when absent or malformed."""
        text = self.first("CSeq") or ""
        number, _, method = text.strip().partition(" ")
        if not number.isdigit() or not _TOKEN.match(method.strip() or "-") or not method:
            raise SipDecodeError(f"bad CSeq {text[:80]!r}")
        return int(number), method.strip().upper()

    def tag(self, name: str) -> str:
        """The ``tag`` parameter of From or To ("" when none)."""
        value = self.first(name)
        if value is None:
            return ""
        return NameAddr.parse(value).params.get("tag", "")

    def replyable(self) -> bool:
        """Whether a response can be built for it (RFC 3261 §8.2.6 copies these)."""
        return self.is_request and all(self.has(name) for name in REQUIRED_FOR_REPLY)


@functools.lru_cache(maxsize=PARSE_CACHE)
def canonical(name: str) -> str:
    """The spelling we use for a header name: compact forms expanded, known names fixed."""
    return CANONICAL.get(name.strip().lower(), name.strip())


def frame(buffer: bytes | bytearray) -> int | None:
    """On a stream: the length of the first whole message in ``buffer`` (after any leading
    CRLF keep-alives, which count), or None when more bytes are needed. Raises SipDecodeError
    for a header section larger than MAX_MESSAGE or a bad Content-Length."""
    start = 0
    while buffer[start : start + 2] == b"\r\n":
        start += 2
    end = buffer.find(b"\r\n\r\n", start)
    if end < 0:
        if len(buffer) - start > MAX_MESSAGE:
            raise SipDecodeError("header section too large")
        return None
    head_end = end + 4
    length = 0
    for line in bytes(buffer[start:end]).split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit():
                raise SipDecodeError(f"bad Content-Length {text[:20]!r}")
            length = int(text)
    if length > MAX_MESSAGE:
        raise SipDecodeError(f"Content-Length {length} too large")
    total = head_end + length
    return total if len(buffer) >= total else None


def decode(data: bytes) -> SipMessage:
    """One message from a datagram (or a framed stream message). Raises SipDecodeError."""
    if len(data) > MAX_MESSAGE:
        raise SipDecodeError(f"message of {len(data)} bytes is too large")
    start = 0
    while data[start : start + 1] in (b"\r", b"\n"):  # keep-alives and stray line ends
        start += 1
    head_end, body_start = _head_end(data, start)
    try:
        head = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipDecodeError(f"header section is not UTF-8: {exc.reason}") from None
    lines = _LINE_END.split(head.encode("utf-8"))
    first = lines[0].decode("utf-8")
    message = _start_line(first)
    _headers(message, [line.decode("utf-8") for line in lines[1:]])
    body = data[body_start:]
    length_text = message.first("Content-Length")
    if length_text is not None:
        length_text = length_text.strip()
        if not length_text.isdigit():
            raise SipDecodeError(f"bad Content-Length {length_text[:20]!r}", message)
        length = int(length_text)
        if length > len(body):
            raise SipDecodeError(f"Content-Length {length} but {len(body)} body bytes", message)
        body = body[:length]  # anything after it on a datagram is ignored (RFC 3261 §18.3)
    message.body = body
    return message


def _head_end(data: bytes, start: int) -> tuple[int, int]:
    """(end of the header section, start of the body): the first empty line."""
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return len(data), len(data)  # no empty line: a datagram without body or its empty line


def _start_line(line: str) -> SipMessage:
    line = line.strip()
    if not line:
        raise SipDecodeError("empty start line")
    if line[:8].upper() == "SIP/2.0 ":
        match = _STATUS.match(line)
        if match is None:
            raise SipDecodeError(f"bad status line {line[:80]!r}")
        status = int(match.group(1))
        if not MIN_STATUS <= status <= MAX_STATUS:
            raise SipDecodeError(f"bad status code {status}")
        return SipMessage(status=status, reason=match.group(2) or "")
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipDecodeError(f"bad request line {line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN.match(method):
        raise SipDecodeError(f"bad method {method[:40]!r}")
    if not uri or ":" not in uri:
        raise SipDecodeError(f"bad Request-URI {uri[:80]!r}")
    message = SipMessage(method=method, uri=uri)
    if version.upper() != SIP_VERSION:
        raise SipDecodeError(f"unsupported version {version[:20]!r}", message)
    return message


def _headers(message: SipMessage, lines: list[str]) -> None:
    headers = message.headers
    for line in lines:
        if not line:
            continue
        if "\r" in line:  # a bare CR (not part of a line end) would split a header we echo
            raise SipDecodeError("bare CR in a header line", message)
        if line[0] in " \t":  # folded: continues the previous header's value
            if not headers:
                raise SipDecodeError("continuation line before any header", message)
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME.match(name):
            raise SipDecodeError(f"bad header line {line[:80]!r}", message)
        if len(headers) >= MAX_HEADERS:
            raise SipDecodeError("too many headers", message)
        headers.append((canonical(name), value.strip()))


# ------------------------------------------------------------------------------ encoding
def encode(message: SipMessage) -> bytes:
    """The message's bytes; Content-Length is always written, from the body."""
    if message.is_request:
        start = f"{message.method} {message.uri} {SIP_VERSION}"
    else:
        if not MIN_STATUS <= message.status <= MAX_STATUS:
            raise SipEncodeError(f"bad status code {message.status}")
        start = f"{SIP_VERSION} {message.status} {message.reason}"
    lines = [start]
    for name, value in message.headers:
        if canonical(name).lower() == "content-length":
            continue
        text = str(value)
        if "\r" in text or "\n" in text or "\r" in name or "\n" in name or ":" in name:
            raise SipEncodeError(f"header {name!r} has a line break or a colon in its name")
        lines.append(f"{canonical(name)}: {text}")
    lines.append(f"Content-Length: {len(message.body)}")
    return (CRLF.join(lines) + CRLF + CRLF).encode("utf-8") + message.body


def format_params(params: Iterable[tuple[str, Any]]) -> str:
    """``;a=1;b`` (a None value writes the bare name)."""
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


# -------------------------------------------------------------------------- request tree
class SipRequestTree:
    """``*req`` over a request: ``Header`` (every value, list headers split), ``Header.Part``
    (a parsed part, see the module doc), and ``Request-URI`` (+ ``.User`` ...), ``Method``,
    ``Body``. Header names match in any case and by compact form."""

    __slots__ = ("_cache", "message")

    def __init__(self, message: SipMessage) -> None:
        self.message = message
        self._cache: dict[tuple[str, ...], list[Any]] = {}

    def get(self, path: tuple[str, ...]) -> list[Any]:
        found = self._cache.get(path)
        if found is None:
            found = self._cache[path] = self._lookup(path)
        return found

    def _lookup(self, path: tuple[str, ...]) -> list[Any]:
        if not path or len(path) > 2:
            return []
        name = path[0]
        key = name.lower()
        if key == "request-uri":
            values = [self.message.uri] if self.message.uri else []
        elif key == "method":
            return [self.message.method] if self.message.method else []
        elif key == "body":
            return [self.message.body.decode("utf-8", "replace")] if self.message.body else []
        else:
            values = self.message.values(name)
        if len(path) == 1:
            return values
        return [part for value in values if (part := _part(key, value, path[1])) is not None]


def _part(header: str, value: str, part: str) -> str | None:
    header = canonical(header).lower()
    try:
        if header == "via":
            return Via.parse(value).part(part)
        if header == "cseq":
            number, _, method = value.strip().partition(" ")
            return {"number": number, "method": method.strip()}.get(part.lower())
        if header == "request-uri":
            return NameAddr("", SipUri.parse(value), {}).part(part)
        if header in ADDRESS_HEADERS:
            return NameAddr.parse(value).part(part)
    except SipDecodeError:
        return None
    return None
