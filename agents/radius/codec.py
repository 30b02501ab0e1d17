"""RADIUS packets <-> messages (pure: no sockets, no clock).

pyrad's packet codec with the dictionary shipped beside this module (``dictionary/``: RFC 2865,
2866, 2869, 3162, 5176, 6911). ``decode`` checks the framing itself (RFC 2865 §3: Length within
4096 octets, every attribute inside it) before pyrad reads the attributes, and turns every failure
into ``RadiusDecodeError``. A decoded ``RadiusMessage`` is the ``*req`` tree of the templates:
``get(("Acct-Status-Type",))`` lists the values of that attribute by name, enumerated integers
as their dictionary names (``Start``), addresses as text, dates as ISO 8601.

Authenticators (RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3) and Message-Authenticator
(RFC 2869 §5.14, RFC 3579 §3.2) are computed here; replies and requests we build carry the
Message-Authenticator as their FIRST attribute (BlastRADIUS, CVE-2024-3596).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Final

from pyrad import tools as pyrad_tools  # type: ignore[import-untyped]
from pyrad.dictionary import Dictionary  # type: ignore[import-untyped]

DICTIONARY_PATH: Final = Path(__file__).resolve().parent / "dictionary" / "dictionary"

# Codes (RFC 2865 §3, RFC 2866 §3, RFC 5176 §3, RFC 5997)
ACCESS_REQUEST: Final = 1
ACCESS_ACCEPT: Final = 2
ACCESS_REJECT: Final = 3
ACCOUNTING_REQUEST: Final = 4
ACCOUNTING_RESPONSE: Final = 5
ACCESS_CHALLENGE: Final = 11
STATUS_SERVER: Final = 12
DISCONNECT_REQUEST: Final = 40
DISCONNECT_ACK: Final = 41
DISCONNECT_NAK: Final = 42
COA_REQUEST: Final = 43
COA_ACK: Final = 44
COA_NAK: Final = 45
CODE_NAMES: Final = {
    ACCESS_REQUEST: "Access-Request",
    ACCESS_ACCEPT: "Access-Accept",
    ACCESS_REJECT: "Access-Reject",
    ACCOUNTING_REQUEST: "Accounting-Request",
    ACCOUNTING_RESPONSE: "Accounting-Response",
    ACCESS_CHALLENGE: "Access-Challenge",
    STATUS_SERVER: "Status-Server",
    DISCONNECT_REQUEST: "Disconnect-Request",
    DISCONNECT_ACK: "Disconnect-ACK",
    DISCONNECT_NAK: "Disconnect-NAK",
    COA_REQUEST: "CoA-Request",
    COA_ACK: "CoA-ACK",
    COA_NAK: "CoA-NAK",
}
CODES_BY_NAME: Final = {name: code for code, name in CODE_NAMES.items()}
# Requests whose Request Authenticator is an MD5 over the packet (not random).
HASHED_REQUESTS: Final = frozenset({ACCOUNTING_REQUEST, DISCONNECT_REQUEST, COA_REQUEST})

HEADER: Final = struct.Struct("!BBH16s")
HEADER_SIZE: Final = 20
MIN_LENGTH: Final = 20
MAX_LENGTH: Final = 4096  # RFC 2865 §3
AUTHENTICATOR_SIZE: Final = 16
ZERO_AUTHENTICATOR: Final = bytes(AUTHENTICATOR_SIZE)

ATTR_USER_NAME: Final = 1
ATTR_USER_PASSWORD: Final = 2
ATTR_CHAP_PASSWORD: Final = 3
ATTR_VENDOR_SPECIFIC: Final = 26
ATTR_PROXY_STATE: Final = 33
ATTR_CHAP_CHALLENGE: Final = 60
ATTR_EAP_MESSAGE: Final = 79
ATTR_MESSAGE_AUTHENTICATOR: Final = 80
MESSAGE_AUTHENTICATOR: Final = "Message-Authenticator"
PROXY_STATE: Final = "Proxy-State"
USER_PASSWORD: Final = "User-Password"


class RadiusDecodeError(ValueError):
    """Bytes that are not a well-formed RADIUS packet (the caller drops them)."""


class RadiusEncodeError(ValueError):
    """A value that cannot be encoded as its dictionary type (or an unknown attribute)."""


@lru_cache(maxsize=1)
def dictionary() -> Any:
    """The project's dictionary, read once."""
    return Dictionary(str(DICTIONARY_PATH))


@dataclass(frozen=True, slots=True)
class RawAttribute:
    code: int
    value: bytes


@dataclass(slots=True)
class RadiusMessage:
    """A decoded packet: header, the attributes as sent (raw, in order), and a lazy view by
    attribute name for the templates."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: list[RawAttribute]
    raw: bytes = b""
    _by_name: dict[str, list[Any]] | None = field(default=None, repr=False)

    @property
    def code_name(self) -> str:
        return CODE_NAMES.get(self.code, str(self.code))

    def raw_values(self, code: int) -> list[bytes]:
        return [item.value for item in self.attributes if item.code == code]

    def first_raw(self, code: int) -> bytes | None:
        for item in self.attributes:
            if item.code == code:
                return item.value
        return None

    @property
    def has_message_authenticator(self) -> bool:
        return any(item.code == ATTR_MESSAGE_AUTHENTICATOR for item in self.attributes)

    def get(self, path: tuple[str, ...]) -> list[Any]:
        """Values of the attribute named ``path[0]`` (RequestTree); nothing deeper exists."""
        if len(path) != 1:
            return []
        if self._by_name is None:
            self._by_name = _by_name(self.attributes)
        return list(self._by_name.get(path[0], ()))

    def first(self, name: str) -> Any:
        found = self.get((name,))
        return found[0] if found else None

    def to_data(self) -> dict[str, Any]:
        """Attributes by name (single values unwrapped): for logs and the dry-run tool."""
        if self._by_name is None:
            self._by_name = _by_name(self.attributes)
        return {k: v[0] if len(v) == 1 else list(v) for k, v in self._by_name.items()}


def decode(data: bytes) -> RadiusMessage:
    """Parses one packet; ``RadiusDecodeError`` for anything malformed (never another error)."""
    if len(data) < MIN_LENGTH:
        raise RadiusDecodeError(f"packet of {len(data)} octets is shorter than its header")
    code, identifier, length, authenticator = HEADER.unpack_from(data)
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise RadiusDecodeError(f"bad Length {length}")
    if len(data) < length:
        raise RadiusDecodeError(f"Length {length} but only {len(data)} octets received")
    body = data[HEADER_SIZE:length]  # octets beyond Length are padding (RFC 2865 §3)
    attributes: list[RawAttribute] = []
    offset = 0
    while offset < len(body):
        if offset + 2 > len(body):
            raise RadiusDecodeError("truncated attribute header")
        attr_code, attr_length = body[offset], body[offset + 1]
        if attr_length < 2 or offset + attr_length > len(body):
            raise RadiusDecodeError(f"attribute {attr_code} has bad length {attr_length}")
        value = body[offset + 2 : offset + attr_length]
        if attr_code == ATTR_MESSAGE_AUTHENTICATOR and len(value) != AUTHENTICATOR_SIZE:
            raise RadiusDecodeError("Message-Authenticator is not 16 octets")
        attributes.append(RawAttribute(attr_code, value))
        offset += attr_length
    return RadiusMessage(code, identifier, authenticator, attributes, raw=data[:length])


def _by_name(attributes: Sequence[RawAttribute]) -> dict[str, list[Any]]:
    """Decodes the attributes through pyrad's dictionary; unknown or undecodable ones are
    listed by code only (``"26"``) as raw octets in hex."""
    names: dict[str, list[Any]] = {}
    table = dictionary()
    for item in attributes:
        if item.code == ATTR_VENDOR_SPECIFIC or not table.attrindex.HasBackward(item.code):
            names.setdefault(str(item.code), []).append(item.value.hex())
            continue
        name = table.attrindex.GetBackward(item.code)
        attribute = table.attributes[name]
        if item.code in (ATTR_USER_PASSWORD, ATTR_MESSAGE_AUTHENTICATOR):
            names.setdefault(name, []).append(item.value.hex())  # needs the secret: agent's job
            continue
        names.setdefault(name, []).append(_decode_value(attribute, item.value))
    return names


def _decode_value(attribute: Any, value: bytes) -> Any:
    if attribute.values.HasBackward(value):  # enumerated: its name (Start)
        return attribute.values.GetBackward(value)
    try:
        decoded = pyrad_tools.DecodeAttr(attribute.type, value)
    except Exception:  # pyrad raises struct.error, ValueError, ... for a bad value
        return value.hex()
    if attribute.type == "date":
        return datetime.fromtimestamp(int(decoded), UTC).isoformat()
    if isinstance(decoded, bytes):
        if attribute.type == "string":
            return decoded.decode("utf-8", "replace")
        return decoded.hex()
    if isinstance(decoded, IPv4Address | IPv6Address | IPv6Network):
        return str(decoded)
    return decoded


# ------------------------------------------------------------------------------ encoding
def encode_attribute(name: str, value: Any) -> RawAttribute:
    """One attribute by dictionary name (or numeric code with a bytes value)."""
    if name.isdigit():
        if not isinstance(value, bytes | bytearray):
            raise RadiusEncodeError(f"attribute {name}: a numeric code needs octets")
        return _checked(int(name), bytes(value))
    table = dictionary()
    if name not in table.attributes:
        raise RadiusEncodeError(f"unknown RADIUS attribute {name!r}")
    attribute = table.attributes[name]
    try:
        if isinstance(value, bytes | bytearray):
            raw = bytes(value)
        elif attribute.values.HasForward(str(value)):  # an enumerated name (Start)
            raw = attribute.values.GetForward(str(value))
        else:
            if attribute.type in ("integer", "short", "byte", "signed", "integer64"):
                value = int(str(value))
            elif attribute.type == "date":
                value = _unix(value)
            elif attribute.type == "octets":
                value = str(value).encode()
            elif attribute.type == "string":
                value = str(value)
            raw = pyrad_tools.EncodeAttr(attribute.type, value)
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        raise RadiusEncodeError(f"attribute {name}: cannot encode {value!r}: {exc}") from None
    return _checked(attribute.code, raw)


def _checked(code: int, raw: bytes) -> RawAttribute:
    if len(raw) > 253:
        raise RadiusEncodeError(f"attribute {code}: value of {len(raw)} octets is over 253")
    return RawAttribute(code, raw)


def _unix(value: Any) -> int:
    text = str(value)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def attributes_from(items: Iterable[tuple[str, Any]]) -> list[RawAttribute]:
    return [encode_attribute(name, value) for name, value in items]


def _body(attributes: Sequence[RawAttribute]) -> bytes:
    return b"".join(bytes((a.code, len(a.value) + 2)) + a.value for a in attributes)


def _with_message_authenticator(attributes: Sequence[RawAttribute]) -> list[RawAttribute]:
    """Message-Authenticator (zeroed, computed later) first; any other copy removed."""
    rest = [a for a in attributes if a.code != ATTR_MESSAGE_AUTHENTICATOR]
    return [RawAttribute(ATTR_MESSAGE_AUTHENTICATOR, ZERO_AUTHENTICATOR), *rest]


def _sign(code: int, identifier: int, vector: bytes, body: bytes, secret: bytes) -> bytes:
    """The packet with its Message-Authenticator (the first attribute) filled in."""
    length = HEADER_SIZE + len(body)
    mac = hmac.new(secret, HEADER.pack(code, identifier, length, vector) + body, "md5").digest()
    return body[:2] + mac + body[2 + AUTHENTICATOR_SIZE :]


def _check_size(length: int) -> None:
    if length > MAX_LENGTH:
        raise RadiusEncodeError(f"packet of {length} octets is over {MAX_LENGTH}")


def encode_reply(
    request: RadiusMessage,
    code: int,
    attributes: Sequence[RawAttribute],
    secret: bytes,
    *,
    message_authenticator: bool = True,
) -> bytes:
    """A reply to ``request``: Message-Authenticator first (computed over the Request
    Authenticator, or zeros for an Accounting-Response, as FreeRADIUS and pyrad do), then the
    Response Authenticator MD5(Code+ID+Length+RequestAuth+Attributes+Secret)."""
    items = _with_message_authenticator(attributes) if message_authenticator else list(attributes)
    body = _body(items)
    length = HEADER_SIZE + len(body)
    _check_size(length)
    if message_authenticator:
        vector = (
            ZERO_AUTHENTICATOR
            if code == ACCOUNTING_RESPONSE and request.code != STATUS_SERVER
            else request.authenticator
        )
        body = _sign(code, request.identifier, vector, body, secret)
    header = struct.pack("!BBH", code, request.identifier, length)
    response = hashlib.md5(header + request.authenticator + body + secret).digest()
    return header + response + body


def encode_request(
    code: int,
    identifier: int,
    attributes: Sequence[RawAttribute],
    secret: bytes,
    *,
    message_authenticator: bool = True,
) -> bytes:
    """A request with a hashed Request Authenticator (Accounting, Disconnect, CoA: RFC 2866
    §3, RFC 5176 §2.3); Message-Authenticator first, over a zero authenticator."""
    if code not in HASHED_REQUESTS:
        raise RadiusEncodeError(f"{CODE_NAMES.get(code, code)} is not built by encode_request")
    items = _with_message_authenticator(attributes) if message_authenticator else list(attributes)
    body = _body(items)
    length = HEADER_SIZE + len(body)
    _check_size(length)
    if message_authenticator:
        body = _sign(code, identifier, ZERO_AUTHENTICATOR, body, secret)
    header = struct.pack("!BBH", code, identifier, length)
    authenticator = hashlib.md5(header + ZERO_AUTHENTICATOR + body + secret).digest()
    return header + authenticator + body


# ---------------------------------------------------------------------------- verification
def _zeroed_message_authenticator(message: RadiusMessage) -> bytes:
    out = bytearray(message.raw[HEADER_SIZE:])
    offset = 0
    for item in message.attributes:
        if item.code == ATTR_MESSAGE_AUTHENTICATOR:
            out[offset + 2 : offset + 2 + AUTHENTICATOR_SIZE] = ZERO_AUTHENTICATOR
        offset += len(item.value) + 2
    return bytes(out)


def verify_request_authenticator(message: RadiusMessage, secret: bytes) -> bool:
    """An Accounting/Disconnect/CoA request's authenticator; always True for other codes
    (an Access-Request's is random)."""
    if message.code not in HASHED_REQUESTS:
        return True
    header = message.raw[:4]
    expected = hashlib.md5(
        header + ZERO_AUTHENTICATOR + message.raw[HEADER_SIZE:] + secret
    ).digest()
    return hmac.compare_digest(expected, message.authenticator)


def verify_message_authenticator(
    message: RadiusMessage, secret: bytes, request: RadiusMessage | None = None
) -> bool:
    """The Message-Authenticator (False when absent or wrong). For a reply, ``request`` is
    the request it answers."""
    given = message.first_raw(ATTR_MESSAGE_AUTHENTICATOR)
    if given is None:
        return False
    if request is not None:
        hashed_reply = message.code == ACCOUNTING_RESPONSE and request.code != STATUS_SERVER
        vector = ZERO_AUTHENTICATOR if hashed_reply else request.authenticator
    elif message.code in HASHED_REQUESTS:
        vector = ZERO_AUTHENTICATOR
    else:
        vector = message.authenticator
    header = message.raw[:4]
    mac = hmac.new(secret, header + vector + _zeroed_message_authenticator(message), "md5").digest()
    return hmac.compare_digest(mac, given)


def verify_response_authenticator(
    reply: RadiusMessage, request_authenticator: bytes, secret: bytes
) -> bool:
    """A reply's Response Authenticator against the request it answers."""
    expected = hashlib.md5(
        reply.raw[:4] + request_authenticator + reply.raw[HEADER_SIZE:] + secret
    ).digest()
    return hmac.compare_digest(expected, reply.authenticator)


# ------------------------------------------------------------------------ authentication
def decrypt_password(message: RadiusMessage, secret: bytes) -> bytes | None:
    """User-Password (RFC 2865 §5.2) in clear, trailing NULs removed; None when absent or of
    a length that is not a multiple of 16."""
    hidden = message.first_raw(ATTR_USER_PASSWORD)
    if hidden is None or not hidden or len(hidden) % 16 or len(hidden) > 128:
        return None
    out = bytearray()
    last = message.authenticator
    for start in range(0, len(hidden), 16):
        block = hidden[start : start + 16]
        key = hashlib.md5(secret + last).digest()
        out.extend(a ^ b for a, b in zip(block, key, strict=True))
        last = block
    return bytes(out).rstrip(b"\x00")


def check_pap(message: RadiusMessage, secret: bytes, password: str) -> bool:
    given = decrypt_password(message, secret)
    return given is not None and hmac.compare_digest(given, password.encode())


def check_chap(message: RadiusMessage, password: str) -> bool:
    """CHAP-Password (RFC 2865 §5.3): MD5(CHAP-Ident + password + challenge), the challenge
    from CHAP-Challenge or else the Request Authenticator."""
    chap = message.first_raw(ATTR_CHAP_PASSWORD)
    if chap is None or len(chap) != 17:
        return False
    challenge = message.first_raw(ATTR_CHAP_CHALLENGE) or message.authenticator
    expected = hashlib.md5(chap[:1] + password.encode() + challenge).digest()
    return hmac.compare_digest(expected, chap[1:])
