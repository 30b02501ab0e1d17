"""DNS messages <-> bytes, and <-> the template trees (pure: no sockets, no clock).

The hot path is a query with one question and perhaps an EDNS0 OPT record: ``decode`` reads
the header, the questions and the OPT record itself (a few slices and ``struct`` calls) and
only skips over answer and authority records. dnslib decodes those sections lazily, when a
template reads ``*req.Answer``/``*req.Ns``/``*req.Extra`` (queries hardly ever carry them), and
gives the type and rcode names. Every framing failure is a ``DnsDecodeError`` that says whether
the 12-byte header could be read (the server answers FORMERR) or not (the datagram is dropped).

Template paths follow CGRateS's DNS agent (miekg/dns field names):

* ``*req`` (``RequestView``): ``Id``, ``Response``, ``Opcode``, ``Authoritative``, ``Truncated``,
  ``RecursionDesired``, ``RecursionAvailable``, ``Zero``, ``AuthenticatedData``,
  ``CheckingDisabled``, ``Rcode``, ``Question[i].Name/Qtype/Qclass``, ``Option[i].<field>`` (the
  EDNS0 options, see ``OPTION_FIELDS``; every option also has ``Code`` and ``Data`` in hex),
  ``Edns.UDPSize/Version/Do``, and ``Answer``/``Ns``/``Extra`` records (``Hdr.Name/Rrtype/
  Class/Ttl``, ``Rdata`` in zone-file text).
* ``*rep`` (``reply_from_tree``): ``Id``, ``Rcode`` (number or name), ``Authoritative``,
  ``RecursionAvailable``, ``AuthenticatedData``, ``Answer``/``Ns``/``Extra`` records with
  ``Hdr.Name/Rrtype/Class/Ttl`` and the fields of their type: NAPTR ``Order``, ``Preference``,
  ``Flags``, ``Service``, ``Regexp``, ``Replacement``; SRV ``Priority``, ``Weight``, ``Port``,
  ``Target``; A ``A``; AAAA ``AAAA``; TXT ``Txt`` (one instance per string); and ``Option``
  (EDNS0 options out, same fields as in).
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import dnslib  # type: ignore[import-untyped]

HEADER_SIZE: Final = 12
MAX_MESSAGE: Final = 65535  # a DNS message over TCP: 2-byte length
CLASSIC_UDP_SIZE: Final = 512  # RFC 1035 §4.2.1: UDP answers without EDNS0
MIN_EDNS_UDP_SIZE: Final = 512  # a smaller EDNS0 payload size is read as 512 (RFC 6891 §6.2.5)
MAX_NAME: Final = 255  # octets on the wire (RFC 1035 §2.3.4)
MAX_LABEL: Final = 63
MAX_POINTERS: Final = 32  # compression pointers followed in one name: ends loops
MAX_CHARACTER_STRING: Final = 255
POINTER_MASK: Final = 0xC0
QUESTION_POINTER: Final = b"\xc0\x0c"  # the first question's name, at offset 12

# Header bits (RFC 1035 §4.1.1, RFC 4035 §3.2)
QR: Final = 0x8000
OPCODE_SHIFT: Final = 11
OPCODE_MASK: Final = 0xF
AA: Final = 0x0400
TC: Final = 0x0200
RD: Final = 0x0100
RA: Final = 0x0080
Z: Final = 0x0040
AD: Final = 0x0020
CD: Final = 0x0010
RCODE_MASK: Final = 0xF

OPCODE_QUERY: Final = 0
CLASS_IN: Final = 1
TYPE_A: Final = 1
TYPE_TXT: Final = 16
TYPE_AAAA: Final = 28
TYPE_SRV: Final = 33
TYPE_NAPTR: Final = 35
TYPE_OPT: Final = 41

NOERROR: Final = 0
FORMERR: Final = 1
SERVFAIL: Final = 2
NXDOMAIN: Final = 3
NOTIMP: Final = 4
REFUSED: Final = 5
BADVERS: Final = 16  # extended (RFC 6891 §6.1.3): needs the OPT record's upper 8 bits
EDNS_DO: Final = 0x8000  # DNSSEC OK, in the OPT TTL's low 16 bits

# Names from dnslib's tables (copied once: a dict probe, not a Bimap call, per query).
TYPE_NAMES: Final[dict[int, str]] = dict(dnslib.QTYPE.forward)
TYPES_BY_NAME: Final[dict[str, int]] = {name: code for code, name in TYPE_NAMES.items()}
RCODE_NAMES: Final[dict[int, str]] = {**dnslib.RCODE.forward, BADVERS: "BADVERS"}
RCODES_BY_NAME: Final[dict[str, int]] = {name: code for code, name in RCODE_NAMES.items()}

# EDNS0 options (codes as miekg/dns names them, which CGRateS's paths follow)
OPT_LLQ: Final = 1
OPT_UL: Final = 2
OPT_NSID: Final = 3
OPT_ESU: Final = 4  # ENUM Source-URI (draft-kaplan-enum-source-uri)
OPT_SUBNET: Final = 8  # RFC 7871
OPT_EXPIRE: Final = 9  # RFC 7314
OPT_COOKIE: Final = 10  # RFC 7873
OPT_TCP_KEEPALIVE: Final = 11  # RFC 7828
OPT_PADDING: Final = 12  # RFC 7830
OPT_EDE: Final = 15  # RFC 8914
FAMILY_IPV4: Final = 1
FAMILY_IPV6: Final = 2
# The fields a template reads or writes per option code (besides ``Code`` and ``Data``).
OPTION_FIELDS: Final[dict[int, tuple[str, ...]]] = {
    OPT_NSID: ("Nsid",),
    OPT_ESU: ("Uri",),
    OPT_SUBNET: ("Family", "SourceNetmask", "SourceScope", "Address"),
    OPT_EXPIRE: ("Expire",),
    OPT_COOKIE: ("Cookie",),
    OPT_TCP_KEEPALIVE: ("Timeout",),
    OPT_PADDING: ("Padding",),
    OPT_EDE: ("InfoCode", "ExtraText"),
}
OPTION_BY_FIELD: Final[dict[str, int]] = {
    name: code for code, names in OPTION_FIELDS.items() for name in names
}

DEFAULT_TTL: Final = 60  # seconds, as CGRateS's DNS agent answers
_FIXED: Final = struct.Struct("!HHHHHH")
_QUESTION_TAIL: Final = struct.Struct("!HH")
_RR_TAIL: Final = struct.Struct("!HHIH")
_NAPTR_HEAD: Final = struct.Struct("!HH")
_SRV_HEAD: Final = struct.Struct("!HHH")
_OPTION_HEAD: Final = struct.Struct("!HH")
_PLAIN_LABEL: Final = re.compile(rb"[A-Za-z0-9_*+=/-]+")
_NEEDS_ESCAPE: Final = frozenset(b'."\\();@$ ')


class DnsDecodeError(ValueError):
    """Bytes that are no DNS message. ``header`` holds the 12 header bytes when they could be
    read (the server then answers FORMERR with that ID), else ``None`` (dropped)."""

    def __init__(self, reason: str, header: bytes | None = None) -> None:
        super().__init__(reason)
        self.header = header


class DnsEncodeError(ValueError):
    """A reply tree that cannot become a DNS message (bad number, address, unknown type...)."""


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # presentation form, absolute (trailing dot), case as received
    qtype: int
    qclass: int

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.qtype) or f"TYPE{self.qtype}"


@dataclass(frozen=True, slots=True)
class Edns:
    """The query's OPT record (RFC 6891)."""

    udp_size: int
    version: int = 0
    ext_rcode: int = 0
    do: bool = False
    options: tuple[tuple[int, bytes], ...] = ()


@dataclass(slots=True)
class DnsMessage:
    """A decoded message: what the agent needs, plus the bytes for the rest on demand."""

    id: int
    flags: int
    questions: tuple[Question, ...]
    edns: Edns | None
    counts: tuple[int, int, int]  # answer, authority, additional records
    question_wire: bytes  # the question section as received (echoed in the reply)
    data: bytes = field(repr=False, default=b"")

    @property
    def opcode(self) -> int:
        return (self.flags >> OPCODE_SHIFT) & OPCODE_MASK

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def udp_limit(self) -> int:
        """The largest UDP answer this client takes."""
        if self.edns is None:
            return CLASSIC_UDP_SIZE
        return max(self.edns.udp_size, MIN_EDNS_UDP_SIZE)


# ------------------------------------------------------------------------------------ decoding
def decode(data: bytes) -> DnsMessage:
    """Parses a query (or any message); raises DnsDecodeError, nothing else."""
    if len(data) < HEADER_SIZE:
        raise DnsDecodeError(f"{len(data)} bytes: shorter than a header")
    if len(data) > MAX_MESSAGE:
        raise DnsDecodeError(f"{len(data)} bytes: longer than a DNS message")
    header = data[:HEADER_SIZE]
    try:
        return _decode(data)
    except DnsDecodeError as exc:
        raise DnsDecodeError(str(exc), header) from None
    except (struct.error, IndexError, UnicodeError) as exc:  # a slip past our bound checks
        raise DnsDecodeError(f"malformed: {exc}", header) from None


def _decode(data: bytes) -> DnsMessage:
    ident, flags, qdcount, ancount, nscount, arcount = _FIXED.unpack_from(data)
    offset = HEADER_SIZE
    questions: list[Question] = []
    end = len(data)
    for _ in range(qdcount):
        name, offset = read_name(data, offset)
        if offset + 4 > end:
            raise DnsDecodeError("question cut short")
        qtype, qclass = _QUESTION_TAIL.unpack_from(data, offset)
        offset += 4
        questions.append(Question(name, qtype, qclass))
    question_end = offset
    for _ in range(ancount + nscount):
        offset = _skip_record(data, offset)
    edns: Edns | None = None
    for _ in range(arcount):
        start = offset
        offset = _skip_name(data, offset)
        if offset + 10 > end:
            raise DnsDecodeError("record cut short")
        rtype, rclass, ttl, rdlength = _RR_TAIL.unpack_from(data, offset)
        offset += 10
        rdata_end = offset + rdlength
        if rdata_end > end:
            raise DnsDecodeError("record data beyond the message")
        if rtype == TYPE_OPT:
            if edns is not None:
                raise DnsDecodeError("more than one OPT record")  # RFC 6891 §6.1.1
            if data[start] != 0:
                raise DnsDecodeError("OPT record with a name other than the root")
            edns = Edns(
                rclass,
                (ttl >> 16) & 0xFF,
                ttl >> 24,
                bool(ttl & EDNS_DO),
                _options(data, offset, rdata_end),
            )
        offset = rdata_end
    if offset != end:
        raise DnsDecodeError(f"{end - offset} bytes after the last record")
    return DnsMessage(
        ident,
        flags,
        tuple(questions),
        edns,
        (ancount, nscount, arcount),
        data[HEADER_SIZE:question_end],
        data,
    )


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` in presentation form and the offset after it (compression
    pointers followed backwards only, at most MAX_POINTERS of them)."""
    labels: list[bytes] = []
    length = 0
    after = -1
    hops = 0
    end = len(data)
    while True:
        if offset >= end:
            raise DnsDecodeError("name cut short")
        size = data[offset]
        if size & POINTER_MASK == POINTER_MASK:
            if offset + 1 >= end:
                raise DnsDecodeError("compression pointer cut short")
            target = ((size & ~POINTER_MASK) << 8) | data[offset + 1]
            if after < 0:
                after = offset + 2
            hops += 1
            if target >= offset or hops > MAX_POINTERS:
                raise DnsDecodeError("compression pointer loop or forward pointer")
            offset = target
            continue
        if size & POINTER_MASK:
            raise DnsDecodeError(f"unknown label type 0x{size:02x}")
        offset += 1
        if size == 0:
            break
        if offset + size > end:
            raise DnsDecodeError("label cut short")
        length += size + 1
        if length + 1 > MAX_NAME:
            raise DnsDecodeError("name longer than 255 octets")
        labels.append(data[offset : offset + size])
        offset += size
    return _presentation(labels), (after if after >= 0 else offset)


def _presentation(labels: list[bytes]) -> str:
    if not labels:
        return "."
    if _PLAIN_LABEL.fullmatch(b"".join(labels)):  # the usual name: one check, one decode
        return b".".join(labels).decode("ascii") + "."
    return (
        ".".join(
            raw.decode("ascii") if _PLAIN_LABEL.fullmatch(raw) else _escaped(raw) for raw in labels
        )
        + "."
    )


def _escaped(raw: bytes) -> str:
    """A label with dots, spaces or binary octets, escaped as in zone files (RFC 1035 §5.1)."""
    out: list[str] = []
    for octet in raw:
        if octet in _NEEDS_ESCAPE:
            out.append("\\" + chr(octet))
        elif 0x21 <= octet <= 0x7E:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)


def _skip_name(data: bytes, offset: int) -> int:
    end = len(data)
    while True:
        if offset >= end:
            raise DnsDecodeError("name cut short")
        size = data[offset]
        if size & POINTER_MASK == POINTER_MASK:
            if offset + 2 > end:
                raise DnsDecodeError("compression pointer cut short")
            return offset + 2
        if size & POINTER_MASK:
            raise DnsDecodeError(f"unknown label type 0x{size:02x}")
        offset += 1 + size
        if size == 0:
            return offset


def _skip_record(data: bytes, offset: int) -> int:
    offset = _skip_name(data, offset)
    if offset + 10 > len(data):
        raise DnsDecodeError("record cut short")
    rdlength = _RR_TAIL.unpack_from(data, offset)[3]
    offset += 10 + rdlength
    if offset > len(data):
        raise DnsDecodeError("record data beyond the message")
    return offset


def _options(data: bytes, offset: int, end: int) -> tuple[tuple[int, bytes], ...]:
    options: list[tuple[int, bytes]] = []
    while offset < end:
        if offset + 4 > end:
            raise DnsDecodeError("EDNS0 option cut short")
        code, size = _OPTION_HEAD.unpack_from(data, offset)
        offset += 4
        if offset + size > end:
            raise DnsDecodeError("EDNS0 option data beyond its record")
        options.append((code, data[offset : offset + size]))
        offset += size
    return tuple(options)


# --------------------------------------------------------------------------- the *req tree
class RequestView:
    """The ``*req`` tree over a decoded message (built on first read, once per request)."""

    __slots__ = ("_data", "_sections", "message")

    def __init__(self, message: DnsMessage) -> None:
        self.message = message
        self._data: dict[str, Any] | None = None
        self._sections: dict[str, list[dict[str, Any]]] | None = None

    def get(self, path: tuple[str, ...]) -> list[Any]:
        if not path:
            return []
        if path[0] in _RECORD_SECTIONS:
            if self._sections is None:
                self._sections = _record_sections(self.message)
            return _walk(self._sections, path)
        if path[0] == "Option" and self._data is None:
            # The templates' usual read (an ENUM Source-URI): no need for the whole header.
            edns = self.message.edns
            if edns is None or not edns.options:
                return []
            options = [option_data(code, value) for code, value in edns.options]
            return _walk({"Option": options}, path)
        if self._data is None:
            self._data = request_data(self.message)
        return _walk(self._data, path)


_RECORD_SECTIONS: Final = ("Answer", "Ns", "Extra")


def _walk(data: Mapping[str, Any], path: tuple[str, ...]) -> list[Any]:
    current: list[Any] = [data]
    for name in path:
        found: list[Any] = []
        for item in current:
            if isinstance(item, Mapping) and name in item:
                value = item[name]
                if isinstance(value, list):
                    found.extend(value)
                else:
                    found.append(value)
        if not found:
            return []
        current = found
    return current


def request_data(message: DnsMessage) -> dict[str, Any]:
    """The message's header, questions and EDNS0 as nested data (the ``*req`` tree)."""
    flags = message.flags
    data: dict[str, Any] = {
        "Id": message.id,
        "Response": bool(flags & QR),
        "Opcode": message.opcode,
        "Authoritative": bool(flags & AA),
        "Truncated": bool(flags & TC),
        "RecursionDesired": bool(flags & RD),
        "RecursionAvailable": bool(flags & RA),
        "Zero": bool(flags & Z),
        "AuthenticatedData": bool(flags & AD),
        "CheckingDisabled": bool(flags & CD),
        "Rcode": flags & RCODE_MASK,
        "Question": [
            {"Name": q.name, "Qtype": q.qtype, "Qclass": q.qclass} for q in message.questions
        ],
    }
    edns = message.edns
    if edns is not None:
        data["Edns"] = {"UDPSize": edns.udp_size, "Version": edns.version, "Do": edns.do}
        data["Option"] = [option_data(code, value) for code, value in edns.options]
    return data


def message_data(message: DnsMessage) -> dict[str, Any]:
    """``request_data`` plus the Answer, Ns and Extra records (for printing an answer)."""
    return {**request_data(message), **_record_sections(message)}


def option_data(code: int, value: bytes) -> dict[str, Any]:
    """One EDNS0 option as template fields: ``Code``, ``Data`` (hex) and its typed fields."""
    out: dict[str, Any] = {"Code": code, "Data": value.hex()}
    try:
        if code == OPT_NSID:
            out["Nsid"] = value.hex()  # miekg/dns keeps NSID as hex text
        elif code == OPT_ESU:
            out["Uri"] = value.decode("utf-8", "replace")
        elif code == OPT_SUBNET and len(value) >= 4:
            family, source, scope = struct.unpack_from("!HBB", value)
            out.update(Family=family, SourceNetmask=source, SourceScope=scope)
            address = value[4:]
            if family == FAMILY_IPV4 and len(address) <= 4:
                out["Address"] = socket.inet_ntop(socket.AF_INET, address.ljust(4, b"\0"))
            elif family == FAMILY_IPV6 and len(address) <= 16:
                out["Address"] = socket.inet_ntop(socket.AF_INET6, address.ljust(16, b"\0"))
        elif code == OPT_EXPIRE and len(value) == 4:
            out["Expire"] = int.from_bytes(value, "big")
        elif code == OPT_COOKIE:
            out["Cookie"] = value.hex()
        elif code == OPT_TCP_KEEPALIVE and len(value) == 2:
            out["Timeout"] = int.from_bytes(value, "big")
        elif code == OPT_PADDING:
            out["Padding"] = value.hex()
        elif code == OPT_EDE and len(value) >= 2:
            out["InfoCode"] = int.from_bytes(value[:2], "big")
            out["ExtraText"] = value[2:].decode("utf-8", "replace")
    except (struct.error, ValueError, OSError):
        pass  # a malformed option keeps Code and Data only
    return out


def _record_sections(message: DnsMessage) -> dict[str, list[dict[str, Any]]]:
    """Answer/Ns/Extra through dnslib (rare in queries; decoded only when read)."""
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in _RECORD_SECTIONS}
    if not any(message.counts):
        return sections
    try:
        record = dnslib.DNSRecord.parse(message.data)
    except Exception:  # dnslib raises many types; the sections are then just empty
        return sections
    for name, records in (("Answer", record.rr), ("Ns", record.auth), ("Extra", record.ar)):
        for rr in records:
            if rr.rtype == TYPE_OPT:
                continue
            try:
                rdata = rr.rdata.toZone()
            except Exception:
                rdata = ""
            sections[name].append(
                {
                    "Hdr": {
                        "Name": str(rr.rname),
                        "Rrtype": rr.rtype,
                        "Class": rr.rclass,
                        "Ttl": rr.ttl,
                    },
                    "Rdata": rdata,
                }
            )
    return sections


# ------------------------------------------------------------------------------- the reply
@dataclass(slots=True)
class Record:
    """One resource record to send; ``name`` None is the (first) question's name."""

    rtype: int
    rdata: bytes
    name: str | None = None
    rclass: int = CLASS_IN
    ttl: int = DEFAULT_TTL


@dataclass(slots=True)
class DnsReply:
    """What the agent answers; the codec adds ID, opcode, RD, CD and the question."""

    rcode: int = NOERROR
    authoritative: bool = False
    recursion_available: bool = False
    authenticated_data: bool = False
    answers: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    options: list[tuple[int, bytes]] = field(default_factory=list)
    id: int | None = None  # overrides the query's ID (templates may set *rep.Id)


def encode(
    query: DnsMessage,
    reply: DnsReply,
    *,
    udp_size: int = 0,
    limit: int = MAX_MESSAGE,
) -> bytes:
    """The reply to ``query``. ``udp_size`` is the payload size we announce in our OPT record
    (only sent when the query had one, RFC 6891 §7); an answer longer than ``limit`` is sent
    without records and with TC set (the client retries over TCP)."""
    edns = query.edns
    rcode = reply.rcode
    if rcode > RCODE_MASK and edns is None:
        rcode = SERVFAIL  # an extended rcode needs an OPT record to travel in
    flags = QR | (query.flags & (OPCODE_MASK << OPCODE_SHIFT | RD | CD)) | (rcode & RCODE_MASK)
    if reply.authoritative:
        flags |= AA
    if reply.recursion_available:
        flags |= RA
    if reply.authenticated_data:
        flags |= AD
    question = query.question_wire
    qdcount = len(query.questions)
    opt = b""
    if edns is not None:
        opt = _opt_record(udp_size or CLASSIC_UDP_SIZE, rcode >> 4, edns.do, reply.options)
    ident = query.id if reply.id is None else reply.id & 0xFFFF
    records = [
        _record(record, query)
        for section in (reply.answers, reply.authority, reply.additional)
        for record in section
    ]
    body = b"".join(records)
    size = HEADER_SIZE + len(question) + len(body) + len(opt)
    if size > limit:
        body = b""
        flags |= TC
        counts: tuple[int, int, int] = (0, 0, 0)
    else:
        counts = (len(reply.answers), len(reply.authority), len(reply.additional))
    header = _FIXED.pack(ident, flags, qdcount, counts[0], counts[1], counts[2] + bool(opt))
    return b"".join((header, question, body, opt))


def error_reply(header: bytes, rcode: int) -> bytes:
    """A bare answer (no question, no records) to a message whose header alone was read."""
    ident, flags = struct.unpack_from("!HH", header)
    flags = QR | (flags & (OPCODE_MASK << OPCODE_SHIFT | RD | CD)) | (rcode & RCODE_MASK)
    return _FIXED.pack(ident, flags, 0, 0, 0, 0)


def _opt_record(udp_size: int, ext_rcode: int, do: bool, options: list[tuple[int, bytes]]) -> bytes:
    rdata = b"".join(_OPTION_HEAD.pack(code, len(value)) + value for code, value in options)
    ttl = (ext_rcode & 0xFF) << 24 | (EDNS_DO if do else 0)
    return b"\x00" + _RR_TAIL.pack(TYPE_OPT, udp_size, ttl, len(rdata)) + rdata


def _record(record: Record, query: DnsMessage) -> bytes:
    name = record.name
    if query.questions and (name is None or name.lower() == query.questions[0].name.lower()):
        owner = QUESTION_POINTER  # the question's name, any case (RFC 4343)
    else:
        owner = encode_name(name or ".")
    head = _RR_TAIL.pack(record.rtype, record.rclass, record.ttl, len(record.rdata))
    return owner + head + record.rdata


def encode_name(name: str) -> bytes:
    """A name in wire form, uncompressed (NAPTR replacement and SRV target must not be
    compressed, RFC 3403 §4.1, RFC 2782); zone-file escapes ``\\.`` and ``\\DDD`` honoured."""
    if name in ("", "."):
        return b"\x00"
    try:
        labels = _split_labels(name)
    except UnicodeError:
        raise DnsEncodeError(f"name {name!r} is not ASCII (use its A-label)") from None
    out = bytearray()
    for label in labels:
        if not label or len(label) > MAX_LABEL:
            raise DnsEncodeError(f"bad label in name {name!r}")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsEncodeError(f"name {name!r} longer than 255 octets")
    return bytes(out)


def _split_labels(name: str) -> list[bytes]:
    if "\\" not in name:
        raw = name.encode("ascii")
        return raw.rstrip(b".").split(b".") if raw != b"." else []
    labels: list[bytes] = []
    current = bytearray()
    position = 0
    while position < len(name):
        char = name[position]
        if char == "\\":
            digits = name[position + 1 : position + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit() and int(digits) < 256:
                current.append(int(digits))
                position += 4
                continue
            if position + 1 >= len(name):
                raise DnsEncodeError(f"name {name!r} ends with a backslash")
            current += name[position + 1].encode("ascii")
            position += 2
            continue
        if char == ".":
            labels.append(bytes(current))
            current = bytearray()
        else:
            current += char.encode("ascii")
        position += 1
    if current:
        labels.append(bytes(current))
    return labels


# ------------------------------------------------------------------------ the *rep tree
# Which record type an answer instance is, when Hdr.Rrtype does not say: by its fields.
_TYPE_OF_FIELD: Final = {
    "Order": TYPE_NAPTR,
    "Preference": TYPE_NAPTR,
    "Flags": TYPE_NAPTR,
    "Service": TYPE_NAPTR,
    "Regexp": TYPE_NAPTR,
    "Replacement": TYPE_NAPTR,
    "Priority": TYPE_SRV,
    "Weight": TYPE_SRV,
    "Port": TYPE_SRV,
    "Target": TYPE_SRV,
    "A": TYPE_A,
    "AAAA": TYPE_AAAA,
    "Txt": TYPE_TXT,
}
_NO_HEADER: Final[Mapping[str, list[Any]]] = {}
_SECTIONS: Final = (("Answer", "answers"), ("Ns", "authority"), ("Extra", "additional"))
_TRUE: Final = frozenset({"true", "1", "yes", "True", "TRUE"})
_FALSE: Final = frozenset({"false", "0", "no", "", "False", "FALSE"})


def reply_from_tree(
    nodes: Mapping[str, list[Any]], question: Question, default_ttl: int = DEFAULT_TTL
) -> DnsReply:
    """The reply a ``*rep`` ReplyTree's nodes describe (records default to the question's
    name and type, class IN, ``default_ttl``); DnsEncodeError for what cannot be sent."""
    reply = DnsReply()
    for key, values in nodes.items():
        if not values:
            continue
        if key == "Rcode":
            reply.rcode = rcode_of(values[-1])
        elif key == "Authoritative":
            reply.authoritative = _bool(values[-1], key)
        elif key == "RecursionAvailable":
            reply.recursion_available = _bool(values[-1], key)
        elif key == "AuthenticatedData":
            reply.authenticated_data = _bool(values[-1], key)
        elif key == "Id":
            reply.id = _int(values[-1], key, 0xFFFF)
        elif key == "Option":
            reply.options.extend(option_of(item) for item in values if isinstance(item, dict))
    for key, attribute in _SECTIONS:
        instances = nodes.get(key)
        if instances:
            records: list[Record] = getattr(reply, attribute)
            records.extend(
                record_of(item, question, default_ttl)
                for item in instances
                if isinstance(item, dict)
            )
    return reply


def rcode_of(value: Any) -> int:
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        code = int(text)
        if code > 0xFFF:
            raise DnsEncodeError(f"Rcode {code} out of range")
        return code
    code_by_name = RCODES_BY_NAME.get(text.upper())
    if code_by_name is None:
        raise DnsEncodeError(f"unknown Rcode {text!r}")
    return code_by_name


def record_of(node: Mapping[str, list[Any]], question: Question, default_ttl: int) -> Record:
    """One record from its tree node (``Hdr`` and the type's fields)."""
    hdr = _first(node, "Hdr")
    if hdr is None:  # the common case: the question's name and type, class IN, default TTL
        rtype = _rtype(_NO_HEADER, node, question)
        return Record(rtype, _rdata(rtype, node), None, CLASS_IN, default_ttl)
    hdr_node: Mapping[str, list[Any]] = hdr if isinstance(hdr, dict) else {}
    rtype = _rtype(hdr_node, node, question)
    name_value = _first(hdr_node, "Name")
    rclass = _int(_first(hdr_node, "Class"), "Class", 0xFFFF, CLASS_IN)
    ttl = _int(_first(hdr_node, "Ttl"), "Ttl", 0x7FFFFFFF, default_ttl)
    name = None if name_value is None else str(name_value)
    return Record(rtype, _rdata(rtype, node), name, rclass, ttl)


def _rtype(hdr: Mapping[str, list[Any]], node: Mapping[str, list[Any]], question: Question) -> int:
    given = _first(hdr, "Rrtype")
    if given is not None:
        text = str(given).strip()
        if text.isascii() and text.isdigit():
            return _int(text, "Rrtype", 0xFFFF)
        code = TYPES_BY_NAME.get(text.upper())
        if code is None:
            raise DnsEncodeError(f"unknown Rrtype {text!r}")
        return code
    for key in node:
        found = _TYPE_OF_FIELD.get(key)
        if found is not None:
            if found == TYPE_A and question.qtype == TYPE_AAAA:
                return TYPE_AAAA  # CGRateS writes both families to A
            return found
    return question.qtype


def _rdata(rtype: int, node: Mapping[str, list[Any]]) -> bytes:
    if rtype == TYPE_NAPTR:  # the hot one: every ENUM answer
        return _naptr(node)
    if rtype == TYPE_SRV:
        return _SRV_HEAD.pack(
            _int(_first(node, "Priority"), "Priority", 0xFFFF, 0),
            _int(_first(node, "Weight"), "Weight", 0xFFFF, 0),
            _int(_first(node, "Port"), "Port", 0xFFFF, 0),
        ) + encode_name(_text(node, "Target") or ".")
    if rtype == TYPE_A:
        return _address(socket.AF_INET, _text(node, "A"))
    if rtype == TYPE_AAAA:
        return _address(socket.AF_INET6, _text(node, "AAAA") or _text(node, "A"))
    if rtype == TYPE_TXT:
        strings = [str(value) for value in node.get("Txt") or ()]
        return b"".join(_txt_strings(text) for text in strings) or b"\x00"
    raise DnsEncodeError(f"cannot build a {TYPE_NAMES.get(rtype, rtype)} record")


def _naptr(node: Mapping[str, list[Any]]) -> bytes:
    """NAPTR RDATA. The same few records (one per route) are built over and over: their bytes
    are remembered by the texts they are built from (strings only, so 1, True and "1" never
    share an entry): a bounded memo of encodings, not of answers."""
    get = node.get
    found = get("Order")
    order = found[-1] if found else None
    found = get("Preference")
    preference = found[-1] if found else None
    found = get("Flags")
    flags = found[-1] if found else None
    found = get("Service")
    service = found[-1] if found else None
    found = get("Regexp")
    regexp = found[-1] if found else None
    found = get("Replacement")
    replacement = found[-1] if found else None
    key = (order, preference, flags, service, regexp, replacement)
    cacheable = (
        type(order) in _MEMO_TYPES
        and type(preference) in _MEMO_TYPES
        and type(flags) in _MEMO_TYPES
        and type(service) in _MEMO_TYPES
        and type(regexp) in _MEMO_TYPES
        and type(replacement) in _MEMO_TYPES
    )
    if cacheable:
        known = _NAPTR_MEMO.get(key)
        if known is not None:
            return known
    rdata = b"".join(
        (
            _NAPTR_HEAD.pack(
                _int(order, "Order", 0xFFFF, 0), _int(preference, "Preference", 0xFFFF, 0)
            ),
            _character_string("" if flags is None else str(flags)),
            _character_string("" if service is None else str(service)),
            _character_string("" if regexp is None else str(regexp)),
            encode_name("." if replacement is None else str(replacement)),
        )
    )
    if cacheable:
        if len(_NAPTR_MEMO) >= NAPTR_MEMO_SIZE:
            _NAPTR_MEMO.clear()  # a bound, not an LRU: the working set is a few routes' records
        _NAPTR_MEMO[key] = rdata
    return rdata


_MEMO_TYPES: Final = frozenset({str, type(None)})
NAPTR_MEMO_SIZE: Final = 1024
_NAPTR_MEMO: dict[tuple[Any, ...], bytes] = {}


def _address(family: int, text: str) -> bytes:
    try:
        return socket.inet_pton(family, text.strip())
    except (OSError, ValueError):
        kind = "IPv4" if family == socket.AF_INET else "IPv6"
        raise DnsEncodeError(f"invalid {kind} address {text!r}") from None


def _character_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    size = len(raw)
    if size > MAX_CHARACTER_STRING:
        raise DnsEncodeError(f"{text[:40]!r}... longer than 255 octets")
    return _LENGTH_OCTETS[size] + raw


_LENGTH_OCTETS: Final = tuple(bytes((size,)) for size in range(MAX_CHARACTER_STRING + 1))


def _txt_strings(text: str) -> bytes:
    raw = text.encode("utf-8")
    chunks = [raw[i : i + MAX_CHARACTER_STRING] for i in range(0, len(raw), MAX_CHARACTER_STRING)]
    return b"".join(bytes((len(chunk),)) + chunk for chunk in chunks or [b""])


def option_of(node: Mapping[str, list[Any]]) -> tuple[int, bytes]:
    """An EDNS0 option from its tree node: ``Code`` + ``Data`` (hex), or typed fields."""
    code_value = _first(node, "Code")
    code = None if code_value is None else _int(code_value, "Code", 0xFFFF)
    if code is None:
        code = next((OPTION_BY_FIELD[key] for key in node if key in OPTION_BY_FIELD), None)
        if code is None:
            raise DnsEncodeError(f"EDNS0 option without Code: {sorted(node)}")
    data = _first(node, "Data")
    if data is not None:
        return code, _hex(str(data), "Data")
    if code in (OPT_NSID, OPT_COOKIE, OPT_PADDING):
        key = {OPT_NSID: "Nsid", OPT_COOKIE: "Cookie", OPT_PADDING: "Padding"}[code]
        return code, _hex(_text(node, key), key)
    if code == OPT_ESU:
        return code, _text(node, "Uri").encode("utf-8")
    if code == OPT_EXPIRE:
        return code, _int(_first(node, "Expire"), "Expire", 0xFFFFFFFF, 0).to_bytes(4, "big")
    if code == OPT_TCP_KEEPALIVE:
        return code, _int(_first(node, "Timeout"), "Timeout", 0xFFFF, 0).to_bytes(2, "big")
    if code == OPT_EDE:
        info = _int(_first(node, "InfoCode"), "InfoCode", 0xFFFF, 0)
        return code, info.to_bytes(2, "big") + _text(node, "ExtraText").encode("utf-8")
    if code == OPT_SUBNET:
        return code, _subnet(node)
    return code, b""


def _subnet(node: Mapping[str, list[Any]]) -> bytes:
    address = _text(node, "Address")
    family = _int(_first(node, "Family"), "Family", 0xFFFF, FAMILY_IPV6 if ":" in address else 1)
    source = _int(_first(node, "SourceNetmask"), "SourceNetmask", 0xFF, 0)
    scope = _int(_first(node, "SourceScope"), "SourceScope", 0xFF, 0)
    raw = b""
    if address:
        raw = _address(socket.AF_INET6 if family == FAMILY_IPV6 else socket.AF_INET, address)
        raw = raw[: (source + 7) // 8]  # RFC 7871 §6: only the significant octets
    return struct.pack("!HBB", family, source, scope) + raw


def _first(node: Mapping[str, Any], key: str) -> Any:
    values = node.get(key)
    return values[-1] if values else None


def _text(node: Mapping[str, list[Any]], key: str) -> str:
    value = _first(node, key)
    return "" if value is None else str(value)


def _int(value: Any, what: str, maximum: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise DnsEncodeError(f"{what} has no value")
        return default
    try:
        number = int(value if type(value) is str else str(value))  # int() strips blanks
    except ValueError:
        raise DnsEncodeError(f"{what} {value!r} is not an integer") from None
    if not 0 <= number <= maximum:
        raise DnsEncodeError(f"{what} {number} out of range 0..{maximum}")
    return number


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DnsEncodeError(f"{what} {value!r} is not true or false")


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise DnsEncodeError(f"{what} {text!r} is not hex") from None
