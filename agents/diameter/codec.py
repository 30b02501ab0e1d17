"""Diameter (RFC 6733) codec: bytes ⇄ lazy messages ⇄ readable/writable trees.

Pure: no sockets, clocks or engine. The header is parsed eagerly; AVP headers are walked once on
first access; values are decoded only when read; grouped AVPs are walked on demand. Everything
wrong with the bytes surfaces as ``DiameterDecodeError`` carrying the result code to answer with
and, where one is to blame, the offending AVP for Failed-AVP.

AVP names and types come from python-diameter's dictionary (its typed decode is too slow for the
hot path; its tables are fine).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from diameter.message.avp import avp as _pd_avp  # type: ignore[import-untyped]
from diameter.message.avp.dictionary import (  # type: ignore[import-untyped]
    AVP_DICTIONARY,
    AVP_VENDOR_DICTIONARY,
)

# ----------------------------------------------------------------------------- protocol numbers
HEADER_LEN: Final = 20
VERSION: Final = 1

FLAG_REQUEST: Final = 0x80
FLAG_PROXIABLE: Final = 0x40
FLAG_ERROR: Final = 0x20
FLAG_RETRANSMIT: Final = 0x10
_FLAGS_RESERVED: Final = 0x0F

AVP_FLAG_VENDOR: Final = 0x80
AVP_FLAG_MANDATORY: Final = 0x40
AVP_FLAG_PRIVATE: Final = 0x20
_AVP_FLAGS_RESERVED: Final = 0x1F

VENDOR_NONE: Final = 0
VENDOR_3GPP: Final = 10415

# Command codes.
CMD_CAPABILITIES_EXCHANGE: Final = 257
CMD_RE_AUTH: Final = 258
CMD_ACCOUNTING: Final = 271
CMD_CREDIT_CONTROL: Final = 272
CMD_ABORT_SESSION: Final = 274
CMD_SESSION_TERMINATION: Final = 275
CMD_DEVICE_WATCHDOG: Final = 280
CMD_DISCONNECT_PEER: Final = 282

# Application ids.
APP_COMMON: Final = 0
APP_CREDIT_CONTROL: Final = 4
APP_RELAY: Final = 0xFFFFFFFF

# Base AVP codes used by the codec and transport.
AVP_HOST_IP_ADDRESS: Final = 257
AVP_AUTH_APPLICATION_ID: Final = 258
AVP_ACCT_APPLICATION_ID: Final = 259
AVP_VENDOR_SPECIFIC_APPLICATION_ID: Final = 260
AVP_SESSION_ID: Final = 263
AVP_ORIGIN_HOST: Final = 264
AVP_SUPPORTED_VENDOR_ID: Final = 265
AVP_VENDOR_ID: Final = 266
AVP_FIRMWARE_REVISION: Final = 267
AVP_RESULT_CODE: Final = 268
AVP_PRODUCT_NAME: Final = 269
AVP_DISCONNECT_CAUSE: Final = 273
AVP_ORIGIN_STATE_ID: Final = 278
AVP_FAILED_AVP: Final = 279
AVP_PROXY_HOST: Final = 280
AVP_ERROR_MESSAGE: Final = 281
AVP_ROUTE_RECORD: Final = 282
AVP_DESTINATION_REALM: Final = 283
AVP_REDIRECT_HOST: Final = 292
AVP_DESTINATION_HOST: Final = 293
AVP_ERROR_REPORTING_HOST: Final = 294
AVP_ORIGIN_REALM: Final = 296
AVP_EXPERIMENTAL_RESULT: Final = 297
AVP_INBAND_SECURITY_ID: Final = 299

# Result codes (RFC 6733 §7.1, RFC 4006 §9).
DIAMETER_SUCCESS: Final = 2001
DIAMETER_COMMAND_UNSUPPORTED: Final = 3001
DIAMETER_UNABLE_TO_DELIVER: Final = 3002
DIAMETER_TOO_BUSY: Final = 3004
DIAMETER_APPLICATION_UNSUPPORTED: Final = 3007
DIAMETER_INVALID_HDR_BITS: Final = 3008
DIAMETER_INVALID_AVP_BITS: Final = 3009
DIAMETER_UNKNOWN_PEER: Final = 3010
DIAMETER_AUTHORIZATION_REJECTED: Final = 5003
DIAMETER_INVALID_AVP_VALUE: Final = 5004
DIAMETER_MISSING_AVP: Final = 5005
DIAMETER_UNABLE_TO_COMPLY: Final = 5012
DIAMETER_AVP_UNSUPPORTED: Final = 5001
DIAMETER_NO_COMMON_APPLICATION: Final = 5010
DIAMETER_UNSUPPORTED_VERSION: Final = 5011
DIAMETER_INVALID_AVP_LENGTH: Final = 5014
DIAMETER_INVALID_MESSAGE_LENGTH: Final = 5015
DIAMETER_CREDIT_LIMIT_REACHED: Final = 4012
DIAMETER_USER_UNKNOWN: Final = 5030

_HDR: Final = struct.Struct(">I I I I I")  # ver|len, flags|code, app, hbh, e2e
_U32: Final = struct.Struct(">I")
_I32: Final = struct.Struct(">i")
_U64: Final = struct.Struct(">Q")
_I64: Final = struct.Struct(">q")
_F32: Final = struct.Struct(">f")
_F64: Final = struct.Struct(">d")
_AVP_HDR: Final = struct.Struct(">II")
_AVP_HDR_V: Final = struct.Struct(">III")

# NTP era handling (RFC 6733 §4.3.1 Time, RFC 2030 §3): MSB clear means the era after 2036.
_NTP_TO_UNIX: Final = 2_208_988_800
_NTP_ERA1_UNIX: Final = 2_085_978_496  # 2036-02-07T06:28:16Z, NTP era 1 start


# ------------------------------------------------------------------------------------- types
class AvpType:
    """AVP data types (RFC 6733 §4.2, §4.3) as small ints, cheaper to dispatch on than classes."""

    OCTET_STRING: Final = 0
    UTF8_STRING: Final = 1
    IDENTITY: Final = 2  # DiameterIdentity / DiameterURI: ASCII text
    INTEGER32: Final = 3
    INTEGER64: Final = 4
    UNSIGNED32: Final = 5
    UNSIGNED64: Final = 6
    FLOAT32: Final = 7
    FLOAT64: Final = 8
    ADDRESS: Final = 9
    TIME: Final = 10
    GROUPED: Final = 11
    ENUMERATED: Final = 3  # Enumerated is Integer32 on the wire


_TYPE_BY_PD_CLASS: Final[dict[Any, int]] = {
    _pd_avp.AvpOctetString: AvpType.OCTET_STRING,
    _pd_avp.AvpUtf8String: AvpType.UTF8_STRING,
    _pd_avp.AvpInteger32: AvpType.INTEGER32,
    _pd_avp.AvpInteger64: AvpType.INTEGER64,
    _pd_avp.AvpUnsigned32: AvpType.UNSIGNED32,
    _pd_avp.AvpUnsigned64: AvpType.UNSIGNED64,
    _pd_avp.AvpFloat32: AvpType.FLOAT32,
    _pd_avp.AvpFloat64: AvpType.FLOAT64,
    _pd_avp.AvpAddress: AvpType.ADDRESS,
    _pd_avp.AvpTime: AvpType.TIME,
    _pd_avp.AvpGrouped: AvpType.GROUPED,
}

# python-diameter types DiameterIdentity/URI as OctetString; they are text, and templates want str.
_IDENTITY_AVPS: Final = frozenset(
    {
        AVP_ORIGIN_HOST,
        AVP_ORIGIN_REALM,
        AVP_DESTINATION_HOST,
        AVP_DESTINATION_REALM,
        AVP_ROUTE_RECORD,
        AVP_PROXY_HOST,
        AVP_ERROR_REPORTING_HOST,
        AVP_REDIRECT_HOST,
    }
)

# Fixed payload sizes: a different size is DIAMETER_INVALID_AVP_LENGTH.
_FIXED_SIZE: Final = {
    AvpType.INTEGER32: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED32: 4,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT32: 4,
    AvpType.FLOAT64: 8,
    AvpType.TIME: 4,
}


@dataclass(frozen=True, slots=True)
class AvpDef:
    code: int
    vendor: int
    name: str
    type: int
    mandatory: bool


def _build_dictionary() -> tuple[dict[tuple[int, int], AvpDef], dict[str, AvpDef]]:
    by_key: dict[tuple[int, int], AvpDef] = {}
    by_name: dict[str, AvpDef] = {}
    tables: list[tuple[int, Mapping[int, Any]]] = [(VENDOR_NONE, AVP_DICTIONARY)]
    # Names collide across vendors; base wins, then 3GPP, then the rest in dictionary order.
    tables.append((VENDOR_3GPP, AVP_VENDOR_DICTIONARY.get(VENDOR_3GPP, {})))
    tables.extend(
        (vendor, table)
        for vendor, table in AVP_VENDOR_DICTIONARY.items()
        if vendor not in (VENDOR_NONE, VENDOR_3GPP)
    )
    for vendor, table in tables:
        for code, info in table.items():
            avp_type = _TYPE_BY_PD_CLASS.get(info["type"], AvpType.OCTET_STRING)
            if vendor == VENDOR_NONE and code in _IDENTITY_AVPS:
                avp_type = AvpType.IDENTITY
            definition = AvpDef(code, vendor, info["name"], avp_type, bool(info.get("mandatory")))
            by_key.setdefault((code, vendor), definition)
            by_name.setdefault(definition.name, definition)
    return by_key, by_name


DICTIONARY_BY_KEY, DICTIONARY_BY_NAME = _build_dictionary()


def avp_key(code: int, vendor: int) -> int:
    """(code, vendor) as one int, the codec's index key: cheaper to build and hash than a
    tuple (vendor ids and codes are 32-bit)."""
    return vendor << 32 | code


# The dictionary by avp_key, for the AVP walk.
_DEFS: Final[dict[int, AvpDef]] = {
    vendor << 32 | code: definition for (code, vendor), definition in DICTIONARY_BY_KEY.items()
}
# The answer head as answer_to builds it (M bit always set); a tree's Result-Code as avp() does.
_ORIGIN_HOST_DEF: Final = replace(DICTIONARY_BY_KEY[(AVP_ORIGIN_HOST, 0)], mandatory=True)
_ORIGIN_REALM_DEF: Final = replace(DICTIONARY_BY_KEY[(AVP_ORIGIN_REALM, 0)], mandatory=True)
_RESULT_CODE_DEF: Final = DICTIONARY_BY_KEY[(AVP_RESULT_CODE, 0)]
_SESSION_ID_DEF: Final = replace(DICTIONARY_BY_KEY[(AVP_SESSION_ID, 0)], mandatory=True)


def avp_def(name: str) -> AvpDef:
    """The dictionary entry for an AVP name; ``"code"`` or ``"vendor:code"`` for unknown ones."""
    found = DICTIONARY_BY_NAME.get(name)
    if found is not None:
        return found
    vendor_text, _, code_text = name.rpartition(":")
    if code_text.isdigit() and (vendor_text == "" or vendor_text.isdigit()):
        code, vendor = int(code_text), int(vendor_text or 0)
        return DICTIONARY_BY_KEY.get(
            (code, vendor), AvpDef(code, vendor, name, AvpType.OCTET_STRING, False)
        )
    raise KeyError(f"unknown Diameter AVP name {name!r}")


# ------------------------------------------------------------------------------------ errors
class DiameterDecodeError(Exception):
    """Bytes that are not a valid Diameter message (or AVP value).

    ``result_code`` is the code to answer with; ``failed_avp`` the offending AVP (to put inside
    Failed-AVP); ``message`` the request as far as its header could be read (None when even the
    header was unreadable), so an error answer can still echo its ids.
    """

    def __init__(
        self,
        reason: str,
        result_code: int,
        failed_avp: Avp | None = None,
        message: DiameterMessage | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result_code = result_code
        self.failed_avp = failed_avp
        self.message = message


# --------------------------------------------------------------------------------------- AVP
class Avp:
    """One AVP: header fields eagerly, value decoded on first read.

    A decoded AVP points into the message buffer (no copy); a built one holds its value and is
    encoded on ``encode``.
    """

    __slots__ = (
        "_buf",
        "_children",
        "_def",
        "_end",
        "_start",
        "_value",
        "code",
        "flags",
        "vendor",
    )

    _UNSET: Final = object()

    def __init__(
        self,
        code: int,
        vendor: int = 0,
        flags: int = 0,
        value: Any = _UNSET,
        _buf: bytes = b"",
        _start: int = 0,
        _end: int = 0,
    ) -> None:
        # Positional on purpose: the AVP walker builds thousands of these per second.
        self.code = code
        self.vendor = vendor
        self.flags = flags | AVP_FLAG_VENDOR if vendor else flags
        if not _buf and isinstance(value, (bytes, bytearray, memoryview)):
            # A raw payload: held like a decoded one, so ``value`` gives the typed value.
            _buf = bytes(value)
            _end = len(_buf)
            value = Avp._UNSET
        self._value: Any = value
        self._buf = _buf
        self._start = _start
        self._end = _end
        self._children: list[Avp] | None = None
        self._def: AvpDef | None = None

    # -- identity
    @property
    def definition(self) -> AvpDef:
        found = self._def
        if found is None:
            found = DICTIONARY_BY_KEY.get((self.code, self.vendor))
            if found is None:
                name = f"{self.vendor}:{self.code}" if self.vendor else str(self.code)
                found = AvpDef(self.code, self.vendor, name, AvpType.OCTET_STRING, False)
            self._def = found
        return found

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_MANDATORY)

    @property
    def payload(self) -> bytes:
        """The raw value bytes (without header and padding)."""
        if self._value is not Avp._UNSET and not self._buf:
            return _encode_value(self)
        return self._buf[self._start : self._end]

    # -- values
    @property
    def value(self) -> Any:
        """The decoded value: int, float, str, bytes, datetime (UTC), or list[Avp] if grouped.

        A built AVP gives back the value it was built with (e.g. "2001" stays text until
        encoded), unless it was built from raw bytes."""
        if self._value is Avp._UNSET:
            self._value = _decode_value(self)
        return self._value

    @property
    def children(self) -> list[Avp]:
        """The AVPs inside a grouped AVP (walked once, values still lazy)."""
        if self._children is None:
            if self._value is not Avp._UNSET and not self._buf:
                if not isinstance(self._value, list):
                    raise TypeError(f"{self.name} is not grouped")
                self._children = self._value
            else:
                self._children = _walk(self._buf, self._start, self._end, self)
        return self._children

    def get(self, path: tuple[str, ...]) -> list[Any]:
        """Values at ``path`` below this grouped AVP (see ``DiameterMessage.get``)."""
        return _get(_descend(self), _path_keys(path), 0)

    def __repr__(self) -> str:
        try:
            shown: Any = self.value
        except DiameterDecodeError:
            shown = f"<undecodable {self.payload.hex()}>"
        return f"Avp({self.name}={shown!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Avp):
            return NotImplemented
        return (self.code, self.vendor, self.flags, self.payload) == (
            other.code,
            other.vendor,
            other.flags,
            other.payload,
        )

    __hash__ = None  # type: ignore[assignment]


_UNSET: Final = Avp._UNSET
_GROUPED: Final = AvpType.GROUPED


def avp(name: str, value: Any, *, mandatory: bool | None = None) -> Avp:
    """Builds an AVP by dictionary name; the M bit defaults to the dictionary's."""
    definition = avp_def(name)
    if definition.type == AvpType.GROUPED and not (
        isinstance(value, list) and all(isinstance(x, Avp) for x in value)
    ):
        value = build_avps(value)
    use_m = definition.mandatory if mandatory is None else mandatory
    return Avp(definition.code, definition.vendor, AVP_FLAG_MANDATORY if use_m else 0, value)


# ----------------------------------------------------------------------------------- message
class DiameterMessage:
    """A Diameter message: header eagerly, AVPs lazily. Implements the RequestTree shape."""

    __slots__ = (
        "_avps",
        "_by_key",
        "_by_path",
        "_data",
        "app_id",
        "code",
        "e2e",
        "flags",
        "hbh",
        "length",
        "version",
    )

    def __init__(
        self,
        code: int,
        app_id: int = 0,
        flags: int = 0,
        hbh: int = 0,
        e2e: int = 0,
        avps: list[Avp] | None = None,
        *,
        version: int = VERSION,
        _data: bytes = b"",
    ) -> None:
        self.version = version
        self.code = code
        self.app_id = app_id
        self.flags = flags
        self.hbh = hbh
        self.e2e = e2e
        self._data = _data
        self.length = len(_data)
        self._avps: list[Avp] | None = avps if avps is not None else ([] if not _data else None)
        self._by_key: dict[int, list[Avp]] | None = None  # by avp_key
        # Every AVP by its path of keys, in message order; built by validate() (which walks
        # every header anyway), so a path read is one dict probe instead of a walk.
        self._by_path: dict[PathKeys, list[Avp]] | None = None

    # -- flags
    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_PROXIABLE)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMIT)

    # -- AVPs
    @property
    def avps(self) -> list[Avp]:
        """Top-level AVPs (headers walked on first access; a later edit invalidates the bytes)."""
        if self._avps is None:
            # The header's length may lie (error answers read broken requests): trust the data.
            end = min(self.length, len(self._data))
            self._avps = _walk(self._data, HEADER_LEN, end, None, self)
        return self._avps

    def append(self, item: Avp) -> None:
        self.avps.append(item)
        self._data = b""  # built bytes no longer match
        self._by_key = None
        self._by_path = None

    def find(self, code: int, vendor: int = 0) -> list[Avp]:
        """All top-level AVPs with this code and vendor, in order."""
        index = self._by_key
        if index is None:
            index = {}
            for item in self.avps:
                key = item.vendor << 32 | item.code
                found = index.get(key)
                if found is None:
                    index[key] = [item]
                else:
                    found.append(item)
            self._by_key = index
        return index.get(vendor << 32 | code, [])

    def first(self, code: int, vendor: int = 0, default: Any = None) -> Any:
        """The value of the first top-level AVP with this code, or ``default``."""
        by_key = self._by_key  # find's index read in line once built: ~4 reads a CCR-U
        found = by_key.get(vendor << 32 | code) if by_key is not None else self.find(code, vendor)
        if not found:
            return default
        item = found[0]  # the value property, in line
        value = item._value
        if value is _UNSET:
            value = item._value = _decode_value(item)
        return value

    def get(self, path: tuple[str, ...]) -> list[Any]:
        """Values at a path of AVP names, fanning out over repeated AVPs.

        ``("Multiple-Services-Credit-Control", "Rating-Group")`` gives every MSCC's Rating-Group.
        A grouped AVP at the end of the path is returned as the ``Avp`` (itself readable by
        ``get``). Unknown names give ``[]``; undecodable values raise ``DiameterDecodeError``.
        """
        if not path:
            return []
        keys = _PATH_KEYS.get(path) or _path_keys(path)  # the cache read in line: ~16 a CCR-U
        by_path = self._by_path
        if by_path is not None:
            indexed: list[Avp] | None
            if len(keys) == 1:  # the top level is indexed by find
                first = keys[0]
                by_key = self._by_key
                if first == _NO_KEY:
                    indexed = None
                elif by_key is not None:  # find's index read in line
                    indexed = by_key.get(first)
                else:
                    indexed = self.find(first & 0xFFFFFFFF, first >> 32)
            else:
                indexed = by_path.get(keys)
            if not indexed:
                return []
            leaves: list[Any] = []
            for item in indexed:  # _leaf and the value property, in line: ~14 reads a CCR-U
                definition = item._def
                if definition is None or definition.type == _GROUPED:
                    leaves.append(_leaf(item))
                    continue
                value = item._value
                if value is _UNSET:
                    value = item._value = _decode_value(item)
                leaves.append(value)
            return leaves
        first = keys[0]
        if first == _NO_KEY:
            return []
        found = self.find(first & 0xFFFFFFFF, first >> 32)
        if len(keys) == 1:
            return [_leaf(item) for item in found]
        values: list[Any] = []
        for item in found:
            values.extend(_get(_descend(item), keys, 1))
        return values

    @property
    def session_id(self) -> str | None:
        value = self.first(AVP_SESSION_ID)
        return value if isinstance(value, str) else None

    def validate(self) -> None:
        """Walks every AVP header, grouped ones included (values stay undecoded), and indexes
        the AVPs inside groups by path for ``get`` (the top level has ``find``'s index)."""
        by_path: dict[PathKeys, list[Avp]] = {}
        for item in self.avps:
            if (item._def or item.definition).type == _GROUPED:
                _validate(item.children, (item.vendor << 32 | item.code,), by_path)
        self._by_path = by_path

    def __repr__(self) -> str:
        kind = "request" if self.is_request else "answer"
        return f"DiameterMessage(code={self.code}, app={self.app_id}, {kind}, hbh={self.hbh})"


# ----------------------------------------------------------------------------- path reading
_NAME_CACHE: Final[dict[str, AvpDef | None]] = {}


def _resolve(name: str) -> AvpDef | None:
    try:
        return _NAME_CACHE[name]
    except KeyError:
        try:
            found: AvpDef | None = avp_def(name)
        except KeyError:
            found = None
        _NAME_CACHE[name] = found
        return found


# A path of AVP names as avp_key keys, _NO_KEY for a name not in the dictionary; paths come
# from templates, so this stays small (bounded all the same).
PathKeys = tuple[int, ...]
_NO_KEY: Final = -1  # matches no AVP
_PATH_KEYS: Final[dict[tuple[str, ...], PathKeys]] = {}
_PATH_KEYS_MAX: Final = 4096


def _path_keys(path: tuple[str, ...]) -> PathKeys:
    keys = _PATH_KEYS.get(path)
    if keys is None:
        keys = tuple(
            _NO_KEY if definition is None else definition.vendor << 32 | definition.code
            for definition in map(_resolve, path)
        )
        if len(_PATH_KEYS) < _PATH_KEYS_MAX:
            _PATH_KEYS[path] = keys
    return keys


def _leaf(item: Avp) -> Any:
    definition = item._def or item.definition
    return item if definition.type == AvpType.GROUPED else item.value


def _get(avps: list[Avp], keys: PathKeys, depth: int) -> list[Any]:
    key = keys[depth]
    if key == _NO_KEY:
        return []
    last = depth == len(keys) - 1
    values: list[Any] = []
    for item in avps:
        if item.vendor << 32 | item.code == key:
            if last:
                values.append(_leaf(item))
            else:
                values.extend(_get(_descend(item), keys, depth + 1))
    return values


def _descend(item: Avp) -> list[Avp]:
    """The AVPs inside ``item`` for path reading: none for a known non-grouped AVP; for an AVP
    not in the dictionary, whatever its payload parses to (it may well be grouped)."""
    definition = item._def
    if definition is not None:  # known: its type decides
        return item.children if definition.type == AvpType.GROUPED else []
    if item.definition.type == AvpType.GROUPED:
        return item.children
    if (item.code, item.vendor) in DICTIONARY_BY_KEY:
        return []
    try:
        return item.children
    except DiameterDecodeError:
        return []


def _validate(avps: list[Avp], parent: PathKeys, by_path: dict[PathKeys, list[Avp]]) -> None:
    """Walks the groups in ``avps`` (raising for a broken one) and files each AVP under its
    path of keys: a depth-first walk in message order, so each list is in the order the
    general path read (``_get``) gives."""
    for item in avps:
        keys = (*parent, item.vendor << 32 | item.code)
        found = by_path.get(keys)
        if found is None:
            by_path[keys] = [item]
        else:
            found.append(item)
        if (item._def or item.definition).type == AvpType.GROUPED:
            children = item._children
            if children is None:  # a decoded group walked here: one call less than `children`
                buf = item._buf
                if buf:
                    children = item._children = _walk(buf, item._start, item._end, item)
                else:
                    children = item.children
            _validate(children, keys, by_path)


# ------------------------------------------------------------------------------------ decode
def decode_header(data: bytes) -> DiameterMessage:
    """Reads the 20-byte header without judging it (for answering even broken requests)."""
    if len(data) < HEADER_LEN:
        raise DiameterDecodeError("shorter than a Diameter header", DIAMETER_INVALID_MESSAGE_LENGTH)
    ver_len, flags_code, app_id, hbh, e2e = _HDR.unpack_from(data)
    message = DiameterMessage(
        flags_code & 0xFFFFFF,
        app_id,
        flags_code >> 24,
        hbh,
        e2e,
        version=ver_len >> 24,
        _data=bytes(data),
    )
    message.length = ver_len & 0xFFFFFF
    return message


def decode(data: bytes) -> DiameterMessage:
    """Parses the header and checks it; AVPs are walked on first access.

    Raises ``DiameterDecodeError`` only; ``data`` must be exactly one message.
    """
    message = decode_header(data)
    if message.version != VERSION:
        raise DiameterDecodeError(
            f"unsupported version {message.version}", DIAMETER_UNSUPPORTED_VERSION, None, message
        )
    if message.length != len(data) or message.length % 4:
        raise DiameterDecodeError(
            f"header length {message.length} but {len(data)} bytes",
            DIAMETER_INVALID_MESSAGE_LENGTH,
            None,
            message,
        )
    flags = message.flags
    # Reserved bits set, or E on a request, or T on an answer: RFC 6733 §3 → 3008.
    if flags & _FLAGS_RESERVED or (flags & FLAG_REQUEST and flags & FLAG_ERROR):
        raise DiameterDecodeError(
            f"invalid header flags {flags:#04x}", DIAMETER_INVALID_HDR_BITS, None, message
        )
    return message


def _walk(
    buf: bytes,
    pos: int,
    end: int,
    parent: Avp | None,
    message: DiameterMessage | None = None,
) -> list[Avp]:
    """Reads the AVP headers in ``buf[pos:end]`` (one level)."""
    avps: list[Avp] = []
    while pos < end:
        if end - pos < 8:
            raise _avp_length_error(buf, pos, end, parent, message)
        # The header read byte by byte: plain int arithmetic, which mypyc compiles to machine
        # code (struct's unpack is a Python call returning a tuple of objects).
        code = buf[pos] << 24 | buf[pos + 1] << 16 | buf[pos + 2] << 8 | buf[pos + 3]
        flags = buf[pos + 4]
        length = buf[pos + 5] << 16 | buf[pos + 6] << 8 | buf[pos + 7]
        vendor: int
        if flags & AVP_FLAG_VENDOR:
            if length < 12 or end - pos < 12:
                raise _avp_length_error(buf, pos, end, parent, message)
            vendor = buf[pos + 8] << 24 | buf[pos + 9] << 16 | buf[pos + 10] << 8 | buf[pos + 11]
            start = pos + 12
        else:
            if length < 8:
                raise _avp_length_error(buf, pos, end, parent, message)
            vendor = 0
            start = pos + 8
        stop = pos + length
        if stop > end:
            raise _avp_length_error(buf, pos, end, parent, message)
        item = Avp(code, vendor, flags, _UNSET, buf, start, stop)  # flags hold the V bit
        item._def = _DEFS.get(vendor << 32 | code)  # now: later reads skip `definition`
        if flags & _AVP_FLAGS_RESERVED:
            raise DiameterDecodeError(
                f"AVP {code} has reserved flag bits {flags:#04x}",
                DIAMETER_INVALID_AVP_BITS,
                _blame(item, parent),
                message,
            )
        avps.append(item)
        # The last AVP of a group may come unpadded from lax peers; accept it.
        pos = stop + (-length & 3)
        if pos > end:
            pos = end
    return avps


def _avp_length_error(
    buf: bytes, pos: int, end: int, parent: Avp | None, message: DiameterMessage | None
) -> DiameterDecodeError:
    # RFC 6733 §7.1.5: the offending header, zero-padded to a whole header, empty payload.
    head = bytes(buf[pos : min(pos + 8, end)]).ljust(8, b"\0")
    code, flags_len = _AVP_HDR.unpack(head)
    flags = (flags_len >> 24) & ~AVP_FLAG_VENDOR & ~_AVP_FLAGS_RESERVED
    vendor = 0
    if flags_len >> 24 & AVP_FLAG_VENDOR and end - pos >= 12:
        vendor = _U32.unpack_from(buf, pos + 8)[0]
    culprit = Avp(code, vendor, flags, b"")
    return DiameterDecodeError(
        f"AVP {code} at offset {pos} has an invalid length",
        DIAMETER_INVALID_AVP_LENGTH,
        _blame(culprit, parent),
        message,
    )


def _blame(item: Avp, parent: Avp | None) -> Avp:
    """A copy of the culprit fit to travel in Failed-AVP, inside its group when nested.

    Reserved bits are cleared and a grouped culprit is sent empty (RFC 6733 §7.1.5 allows the
    bare header): our error answer must itself decode cleanly at the peer.
    """
    grouped = item.definition.type == AvpType.GROUPED
    payload = b"" if grouped else item.payload
    clean = Avp(item.code, item.vendor, item.flags & ~_AVP_FLAGS_RESERVED, payload)
    if parent is None:
        return clean
    return Avp(parent.code, parent.vendor, parent.flags & ~_AVP_FLAGS_RESERVED, [clean])


def _value_error(item: Avp, reason: str, code: int = DIAMETER_INVALID_AVP_VALUE) -> None:
    culprit = Avp(item.code, item.vendor, item.flags & ~_AVP_FLAGS_RESERVED, item.payload)
    if code == DIAMETER_INVALID_AVP_LENGTH:
        # RFC 6733 §7.1.5: a zero-filled payload of the type's size stands for the bad one.
        culprit = Avp(
            culprit.code, culprit.vendor, culprit.flags, bytes(_FIXED_SIZE[item.definition.type])
        )
    raise DiameterDecodeError(f"{item.name}: {reason}", code, culprit)


def _decode_value(item: Avp) -> Any:
    kind = (item._def or item.definition).type
    buf, start, end = item._buf, item._start, item._end
    size = end - start
    fixed = _FIXED_SIZE.get(kind)
    if fixed is not None and size != fixed:
        _value_error(item, f"{size} bytes, want {fixed}", DIAMETER_INVALID_AVP_LENGTH)
    if kind == AvpType.UNSIGNED32:
        return _U32.unpack_from(buf, start)[0]
    if kind == AvpType.UTF8_STRING or kind == AvpType.IDENTITY:
        try:
            return buf[start:end].decode("utf-8")
        except UnicodeDecodeError:
            _value_error(item, "not UTF-8")
    if kind == AvpType.INTEGER32:
        return _I32.unpack_from(buf, start)[0]
    if kind == AvpType.UNSIGNED64:
        return _U64.unpack_from(buf, start)[0]
    if kind == AvpType.INTEGER64:
        return _I64.unpack_from(buf, start)[0]
    if kind == AvpType.GROUPED:
        return item.children
    if kind == AvpType.TIME:
        seconds = _U32.unpack_from(buf, start)[0]
        unix = seconds - _NTP_TO_UNIX if seconds & 0x80000000 else seconds + _NTP_ERA1_UNIX
        return datetime.fromtimestamp(unix, UTC)
    if kind == AvpType.FLOAT32:
        return _F32.unpack_from(buf, start)[0]
    if kind == AvpType.FLOAT64:
        return _F64.unpack_from(buf, start)[0]
    if kind == AvpType.ADDRESS:
        return _decode_address(item, buf[start:end])
    return buf[start:end]


_FAMILY_IPV4: Final = 1
_FAMILY_IPV6: Final = 2
_FAMILY_E164: Final = 8


def _decode_address(item: Avp, raw: bytes) -> str:
    if len(raw) < 2:
        _value_error(item, "address too short")
    family = int.from_bytes(raw[:2], "big")
    body = raw[2:]
    if family == _FAMILY_IPV4 and len(body) == 4:
        return str(ipaddress.IPv4Address(body))
    if family == _FAMILY_IPV6 and len(body) == 16:
        return str(ipaddress.IPv6Address(body))
    if family == _FAMILY_E164:
        try:
            return body.decode("ascii")
        except UnicodeDecodeError:
            _value_error(item, "E.164 address not ASCII")
    _value_error(item, f"unsupported address family {family} / length {len(body)}")
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------ encode
class DiameterEncodeError(ValueError):
    """A value that cannot be encoded as its AVP's type (a bug in the caller or template)."""


def _encode_value(item: Avp) -> bytes:
    return _encode_payload(item.definition, item._value)


def _encode_payload(definition: AvpDef, value: Any) -> bytes:
    kind = definition.type
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)  # raw payload wins whatever the type
        if kind == AvpType.GROUPED:
            return b"".join(_encode_avp(child) for child in value)
        if kind == AvpType.UNSIGNED32:
            return _U32.pack(_to_int(value))
        if kind in (AvpType.UTF8_STRING, AvpType.IDENTITY, AvpType.OCTET_STRING):
            return str(value).encode("utf-8")
        if kind == AvpType.INTEGER32:
            return _I32.pack(_to_int(value))
        if kind == AvpType.UNSIGNED64:
            return _U64.pack(_to_int(value))
        if kind == AvpType.INTEGER64:
            return _I64.pack(_to_int(value))
        if kind == AvpType.FLOAT32:
            return _F32.pack(float(value))
        if kind == AvpType.FLOAT64:
            return _F64.pack(float(value))
        if kind == AvpType.TIME:
            unix = int(value.timestamp()) if isinstance(value, datetime) else int(value)
            ntp = unix + _NTP_TO_UNIX if unix < _NTP_ERA1_UNIX else unix - _NTP_ERA1_UNIX
            return _U32.pack(ntp)
        if kind == AvpType.ADDRESS:
            return _encode_address(str(value))
    except (
        struct.error,
        TypeError,
        ValueError,
        AttributeError,
        OverflowError,
        InvalidOperation,
    ) as exc:
        raise DiameterEncodeError(f"{definition.name}: cannot encode {value!r}: {exc}") from None
    raise DiameterEncodeError(f"{definition.name}: unknown type {kind}")


def _to_int(value: Any) -> int:
    """Integers from reply trees, where templates often produce text ("2001", "60.0")."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            number = Decimal(value.strip())
            if number != number.to_integral_value():
                raise ValueError(f"not an integer: {value!r}") from None
            return int(number)
    if isinstance(value, (Decimal, float)) and value == int(value):
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def _encode_address(text: str) -> bytes:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return _FAMILY_E164.to_bytes(2, "big") + text.encode("ascii")
    family = _FAMILY_IPV4 if address.version == 4 else _FAMILY_IPV6
    return family.to_bytes(2, "big") + address.packed


def _encode_avp(item: Avp) -> bytes:
    if item._value is Avp._UNSET or item._buf:
        payload = item._buf[item._start : item._end]  # decoded and untouched: copy as is
    else:
        payload = _encode_value(item)
    flags = item.flags
    if item.vendor:
        length = 12 + len(payload)
        head = _AVP_HDR_V.pack(item.code, (flags | AVP_FLAG_VENDOR) << 24 | length, item.vendor)
    else:
        length = 8 + len(payload)
        head = _AVP_HDR.pack(item.code, (flags & ~AVP_FLAG_VENDOR) << 24 | length)
    return head + payload + b"\0" * (-length & 3)


def encode(msg: DiameterMessage) -> bytes:
    """The wire bytes; a decoded, unmodified message returns its original bytes."""
    if msg._data and msg._avps is None:
        return msg._data
    body = b"".join(_encode_avp(item) for item in msg.avps)
    length = HEADER_LEN + len(body)
    return (
        _HDR.pack(
            msg.version << 24 | length, msg.flags << 24 | msg.code, msg.app_id, msg.hbh, msg.e2e
        )
        + body
    )


def encoded(msg: DiameterMessage) -> tuple[bytes, DiameterMessage]:
    """The wire bytes, and a message whose ``encode`` gives them back without a walk: the
    message itself when it is a decoded, unmodified one, else those bytes decoded."""
    data = encode(msg)
    return data, msg if msg._data is data else decode(data)


def encode_avp(item: Avp) -> bytes:
    return _encode_avp(item)


# ------------------------------------------------------------------------------- tree building
def build_avps(tree: Any) -> list[Avp]:
    """AVPs from a reply tree: a mapping of names to values, or a list of (name, value) pairs.

    A value may be a scalar, a mapping or list of pairs (grouped), a list of those (repeated
    AVP), or an ``Avp`` already built; None leaves the AVP out. Order follows the tree's order.
    """
    items: Iterable[tuple[str, Any]]
    if isinstance(tree, Mapping):
        items = tree.items()
    elif isinstance(tree, list):
        if tree and all(isinstance(x, Avp) for x in tree):
            return list(tree)
        items = tree
    else:
        raise DiameterEncodeError(f"not an AVP tree: {tree!r}")
    out: list[Avp] = []
    for name, value in items:
        if value is None:
            continue  # a template that found nothing: the AVP is left out
        if isinstance(value, Avp):
            out.append(value)
            continue
        try:
            if isinstance(value, list) and not _is_one_group(value):
                out.extend(avp(name, one) for one in value if one is not None)  # repeated
            else:
                out.append(avp(name, value))
        except KeyError as exc:
            raise DiameterEncodeError(str(exc)) from None
    return out


def _is_one_group(value: list[Any]) -> bool:
    """A list of (name, value) pairs or of built AVPs is one grouped value, not repetitions."""
    return bool(value) and all(
        isinstance(x, Avp) or (isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str))
        for x in value
    )


# --------------------------------------------------------------------------------- answers
def _answer_header(request: DiameterMessage) -> DiameterMessage:
    # R cleared, P kept as in the request (RFC 6733 §6.2), ids echoed for correlation.
    return DiameterMessage(
        request.code,
        request.app_id,
        request.flags & FLAG_PROXIABLE,
        request.hbh,
        request.e2e,
        [],
    )


def _session_id_of(request: DiameterMessage) -> Avp | None:
    try:
        found = request.find(AVP_SESSION_ID)
    except DiameterDecodeError:
        return None  # a broken request still gets its answer, only without Session-Id
    return Avp(AVP_SESSION_ID, 0, AVP_FLAG_MANDATORY, found[0].payload) if found else None


# The AVPs every answer starts with, in this order (RFC 6733 §8.8 wants Session-Id first).
_ANSWER_HEAD: Final = (AVP_SESSION_ID, AVP_RESULT_CODE, AVP_ORIGIN_HOST, AVP_ORIGIN_REALM)


def answer_to(
    request: DiameterMessage,
    result_code: int | None,
    avps: Any = None,
    *,
    origin_host: str,
    origin_realm: str,
) -> DiameterMessage:
    """An answer: Session-Id copied, Result-Code, Origin-Host/Realm, then ``avps`` (a tree).

    ``result_code=None`` leaves Result-Code out (the tree may carry Experimental-Result). A
    top-level Session-Id, Result-Code, Origin-Host or Origin-Realm in the tree replaces ours in
    place instead of repeating it (templates often set Result-Code).
    """
    answer = _answer_header(request)
    extra = build_avps(avps) if avps else []
    given = {item.code: item for item in extra if not item.vendor and item.code in _ANSWER_HEAD}
    if given:
        extra = [item for item in extra if item.vendor or item.code not in given]
    head: list[Avp | None] = [
        _session_id_of(request),
        None if result_code is None else Avp(AVP_RESULT_CODE, 0, AVP_FLAG_MANDATORY, result_code),
        Avp(AVP_ORIGIN_HOST, 0, AVP_FLAG_MANDATORY, origin_host),
        Avp(AVP_ORIGIN_REALM, 0, AVP_FLAG_MANDATORY, origin_realm),
    ]
    items = answer.avps
    for code, default in zip(_ANSWER_HEAD, head, strict=True):
        chosen = given.get(code, default)
        if chosen is not None:
            items.append(chosen)
    items.extend(extra)
    return answer


# Values a reply tree leaf may hold that the fast answer encoder takes (anything else, e.g. a
# list or an Avp, goes through answer_to + encode).
_FAST_SCALARS: Final = frozenset({str, int, bytes, Decimal, float})
# Top-level answer AVPs the agent sets itself (answer_to's head): a tree's Session-Id,
# Origin-Host and Origin-Realm are dropped, its Result-Code takes the head's place.
_OWN_HEAD_NAMES: Final = frozenset({"Session-Id", "Origin-Host", "Origin-Realm"})


class _NotFast(Exception):
    """The tree holds something only the general path (build_avps, Avp objects) handles."""


# Encoded scalar AVPs by (code, vendor, M bit, value type, value): answers repeat the same few
# (Result-Code "2001", CC-Request-Type "2", grants of "60" ...). Bounded: cleared when full.
_FAST_CACHE: Final[dict[tuple[int, int, bool, type, Any], bytes]] = {}
_FAST_CACHE_MAX: Final = 4096


def _fast_avp(definition: AvpDef, value: Any) -> bytes:
    """One AVP's bytes from a reply-tree instance (a dict node for a grouped AVP)."""
    kind = type(value)
    if kind is dict:
        if definition.type != AvpType.GROUPED:
            raise _NotFast
        payload = _fast_nodes(value)
    elif kind in _FAST_SCALARS and definition.type != AvpType.GROUPED:
        key = (definition.code, definition.vendor, definition.mandatory, kind, value)
        cached = _FAST_CACHE.get(key)
        if cached is not None:
            return cached
        if len(_FAST_CACHE) >= _FAST_CACHE_MAX:
            _FAST_CACHE.clear()
        cached = _FAST_CACHE[key] = _avp_bytes(definition, _encode_payload(definition, value))
        return cached
    else:
        raise _NotFast
    return _avp_bytes(definition, payload)


def _avp_bytes(definition: AvpDef, payload: bytes) -> bytes:
    flags = AVP_FLAG_MANDATORY if definition.mandatory else 0
    if definition.vendor:
        length = 12 + len(payload)
        head = _AVP_HDR_V.pack(
            definition.code, (flags | AVP_FLAG_VENDOR) << 24 | length, definition.vendor
        )
    else:
        length = 8 + len(payload)
        head = _AVP_HDR.pack(definition.code, flags << 24 | length)
    return head + payload + b"\0" * (-length & 3)


def _fast_nodes(nodes: Mapping[str, list[Any]]) -> bytes:
    parts: list[bytes] = []
    for name, instances in nodes.items():
        definition = _resolve(name)
        if definition is None:
            raise _NotFast
        for value in instances:
            if value is not None:
                parts.append(_fast_avp(definition, value))
    return b"".join(parts)


def encode_answer_tree(
    request: DiameterMessage,
    nodes: Mapping[str, list[Any]],
    *,
    origin_host: str,
    origin_realm: str,
) -> bytes | None:
    """The bytes of ``answer_to(request, None, tree, ...)`` for a ReplyTree's raw ``nodes``
    (name -> instances, groups as dicts) once its Session-Id, Origin-Host and Origin-Realm are
    dropped, built straight from the tree with no ``Avp`` objects. ``None`` when the tree holds
    something only the general path encodes (a list or ``Avp`` leaf, an unknown name, a
    group where a scalar is due or the reverse): the caller then takes that path, which also
    reports the errors."""
    parts: list[bytes] = []
    try:
        found = request.find(AVP_SESSION_ID)
    except DiameterDecodeError:
        found = []  # as _session_id_of: a broken request's answer goes without Session-Id
    try:
        if found:
            parts.append(_avp_bytes(_SESSION_ID_DEF, found[0].payload))
        result = _fast_result(nodes)
        if result is not None:
            parts.append(result)
        parts.append(_fast_avp(_ORIGIN_HOST_DEF, origin_host))
        parts.append(_fast_avp(_ORIGIN_REALM_DEF, origin_realm))
        for name, instances in nodes.items():
            if name in _OWN_HEAD_NAMES or name == _RESULT_CODE_DEF.name:
                continue
            definition = _resolve(name)
            if definition is None:
                raise _NotFast
            if not definition.vendor and definition.code in _ANSWER_HEAD:
                raise _NotFast  # another name for a head AVP: answer_to's rules apply
            for value in instances:
                if value is not None:
                    parts.append(_fast_avp(definition, value))
    except _NotFast:
        return None
    body = b"".join(parts)
    length = HEADER_LEN + len(body)
    return (
        _HDR.pack(
            VERSION << 24 | length,
            (request.flags & FLAG_PROXIABLE) << 24 | request.code,
            request.app_id,
            request.hbh,
            request.e2e,
        )
        + body
    )


def _fast_result(nodes: Mapping[str, list[Any]]) -> bytes | None:
    """The tree's Result-Code AVP (its last instance, as answer_to keeps), or None."""
    instances = nodes.get(_RESULT_CODE_DEF.name)
    if not instances:
        return None
    chosen = [value for value in instances if value is not None]
    return _fast_avp(_RESULT_CODE_DEF, chosen[-1]) if chosen else None


def error_answer(
    request: DiameterMessage,
    result_code: int,
    failed_avp: Avp | list[Avp] | None = None,
    error_message: str | None = None,
    *,
    origin_host: str,
    origin_realm: str,
) -> DiameterMessage:
    """An answer-message (RFC 6733 §7.2); protocol errors (3xxx) carry the E bit."""
    answer = answer_to(request, result_code, origin_host=origin_host, origin_realm=origin_realm)
    if 3000 <= result_code < 4000:
        answer.flags |= FLAG_ERROR
    if error_message:
        answer.avps.append(Avp(AVP_ERROR_MESSAGE, 0, 0, error_message))
    if failed_avp is not None:
        inner = failed_avp if isinstance(failed_avp, list) else [failed_avp]
        answer.avps.append(Avp(AVP_FAILED_AVP, 0, AVP_FLAG_MANDATORY, inner))
    return answer


def answer_for_error(
    error: DiameterDecodeError, *, origin_host: str, origin_realm: str
) -> DiameterMessage | None:
    """The error answer for a decode failure, or None when nothing can be answered
    (header unreadable, or the broken message was itself an answer)."""
    request = error.message
    if request is None or not request.flags & FLAG_REQUEST:
        return None
    return error_answer(
        request,
        error.result_code,
        error.failed_avp,
        error.reason,
        origin_host=origin_host,
        origin_realm=origin_realm,
    )


def iter_avps(avps: Iterable[Avp]) -> Iterator[Avp]:
    """Depth-first over AVPs and the contents of grouped ones."""
    for item in avps:
        yield item
        if item.definition.type == AvpType.GROUPED:
            yield from iter_avps(item.children)
