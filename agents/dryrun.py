"""``chargeflow template dry-run``: one captured packet through an agent's real request path,
offline — the decoded request, the processor that matched, the SessionSv1 calls it would send
and the answer it would build.

The agent is the real one (same templates, same fan-out, same error mapping); only its engine
client is replaced: by a client that answers every call with a reply given in a file, or by a
live engine connection, and in both cases every call is recorded and printed.

A dry run never changes a live engine's state. Each call the agent makes goes through
:func:`live_call`: a query is sent as it is; a charging call (InitiateSession, UpdateSession,
ProcessMessage, ProcessEvent) is replaced by the ``SessionSv1.AuthorizeEvent`` that asks the same
question without opening, debiting or recording anything (GetMaxUsage for its charging flag,
thresholds and stats off), and its reply is reshaped as the original method's; TerminateSession
and ProcessCDR are not sent and get the engine's success reply ``OK``; any other method is not
sent and fails. The output shows, for each call, what would have been sent and what was sent.
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO

from agents.base import AgentContext, resolve_factory
from core.config import AgentConfig, Config
from core.rpc import EngineClient, RpcError
from core.types import dumps

PCAP_MAGIC_LE: Final = 0xA1B2C3D4
PCAP_MAGIC_NS_LE: Final = 0xA1B23C4D
PCAP_GLOBAL_HEADER: Final = 24
PCAP_RECORD_HEADER: Final = 16
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LINUX_SLL: Final = 113
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_SCTP: Final = 132


class DryRunError(Exception):
    """The packet or the engine reply cannot be used; the message says why."""


@dataclass(slots=True)
class RecordedCall:
    method: str
    params: Any
    reply: Any = None
    error: str = ""
    live: LiveCall | None = None
    """Against a live engine: what was sent for this call (``None`` with a reply file)."""
    engine_reply: Any = None
    """Against a live engine: the engine's own reply to ``live.method``."""


OK: Final = "OK"
NOT_SENT_ERROR: Final = "DRY_RUN: {method} not sent to a live engine (it may change its state)"
SESSION_PREFIX: Final = "SessionSv1."
AUTHORIZE: Final = "SessionSv1.AuthorizeEvent"
DRY_RUN_ID_SUFFIX: Final = "#dry-run-"
QUERY_PREFIXES: Final = ("Get", "Ping", "Status")
"""Method names (after the service) that only read: sent to a live engine as they are."""
STATE_FLAGS: Final = frozenset({
    "InitSession", "UpdateSession", "TerminateSession", "Debit", "AllocateResources",
    "AllocateIP", "ReleaseResources", "ReleaseIP", "ProcessThresholds", "ProcessStats",
    "ThresholdIDs", "StatIDs", "Flags",
})  # fmt: skip
"""Arguments of the charging calls that an AuthorizeEvent does not take."""
REPLY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    # The keys of each method's reply (core/api/sessions.py, as CGRateS's V1*Reply).
    "SessionSv1.InitiateSession": (
        "Attributes", "ResourceAllocation", "MaxUsage", "ThresholdIDs", "StatQueueIDs",
    ),
    "SessionSv1.UpdateSession": ("Attributes", "MaxUsage"),
    "SessionSv1.ProcessMessage": (
        "MaxUsage", "ResourceAllocation", "Attributes", "Routes", "ThresholdIDs", "StatQueueIDs",
    ),
}  # fmt: skip
CHARGING_FLAG: Final = {
    "SessionSv1.InitiateSession": "InitSession",
    "SessionSv1.UpdateSession": "UpdateSession",
    "SessionSv1.ProcessMessage": "Debit",
}
NOT_SENT_REASON: Final = {
    "SessionSv1.TerminateSession": "it would end the session and debit its last usage",
    "SessionSv1.ProcessCDR": "it would store a CDR (and rate it)",
}
EVENT_REQUEST_FLAGS: Final = frozenset({"*authorize", "*initiate", "*update", "*message"})
DEFAULT_RUN: Final = "*default"
RAW_RUN: Final = "*raw"


def _unchanged(reply: Any) -> Any:
    return reply


@dataclass(frozen=True, slots=True)
class LiveCall:
    """What a dry run sends to a live engine for one call of the agent: ``method`` with
    ``params`` (``method`` empty: nothing is sent), why it differs from the agent's call
    (``note``, empty when the call is sent as it is) and how the engine's reply becomes the reply
    the agent gets (``reply``; with nothing sent it is given ``None``). ``error``: the call fails
    with this text instead."""

    method: str
    params: Any
    note: str = ""
    reply: Callable[[Any], Any] = _unchanged
    error: str = ""


def _is_query(method: str) -> bool:
    name = method.rpartition(".")[2]
    return name.startswith(QUERY_PREFIXES)


def _authorize_args(params: Mapping[str, Any], **flags: Any) -> dict[str, Any]:
    args = {key: value for key, value in params.items() if key not in STATE_FLAGS}
    # An event ID of its own: the engine's reply cache neither answers the dry run with an
    # older reply nor keeps the dry run's reply for a real request with the agent's ID.
    args["ID"] = f"{params.get('ID') or ''}{DRY_RUN_ID_SUFFIX}{uuid.uuid4().hex}"
    args.update(flags)
    args["ProcessThresholds"] = False
    args["ProcessStats"] = False
    return args


def _asks_anything(args: Mapping[str, Any]) -> bool:
    """Whether an AuthorizeEvent has a subsystem to ask (else the engine refuses it)."""
    return any(
        args.get(key) for key in ("GetAttributes", "AuthorizeResources", "GetMaxUsage", "GetRoutes")
    )


def _reshaped(method: str) -> Callable[[Any], Any]:
    keys = REPLY_KEYS[method]

    def reply(authorized: Any) -> Any:
        source = authorized if isinstance(authorized, Mapping) else {}
        out = {key: source.get(key) for key in keys}
        if "ResourceAllocation" in out and out["ResourceAllocation"] is None:
            out["ResourceAllocation"] = source.get("ResourceAuthorization")  # CGRateS's name
        return out

    return reply


def _event_reply(authorized: Any) -> Any:
    source = authorized if isinstance(authorized, Mapping) else {}
    max_usage = source.get("MaxUsage")
    routes = source.get("Routes") or source.get("RouteProfiles")
    return {
        "MaxUsage": None if max_usage is None else {DEFAULT_RUN: max_usage},
        "Attributes": source.get("Attributes"),
        "ResourceAllocation": None,
        "RouteProfiles": {RAW_RUN: routes} if routes else None,
        "ThresholdIDs": None,
        "StatQueueIDs": None,
    }


def live_call(method: str, params: Any) -> LiveCall:
    """The side-effect-free call a dry run sends to a live engine for the agent's call."""
    if _is_query(method):
        return LiveCall(method, params)
    args = params if isinstance(params, Mapping) else {}
    if method in CHARGING_FLAG:
        authorize = _authorize_args(
            args,
            GetMaxUsage=bool(args.get(CHARGING_FLAG[method])),
            AuthorizeResources=bool(args.get("AllocateResources")),
            AuthorizeIP=bool(args.get("AllocateIP")),
        )
        note = f"{method} would charge (open, update or debit a session)"
        return _authorize_instead(authorize, note, _reshaped(method))
    if method == AUTHORIZE:
        authorize = _authorize_args(args)
        if args.get("ProcessThresholds") or args.get("ProcessStats"):
            return LiveCall(
                AUTHORIZE, authorize, "thresholds and stats off (they record the event)"
            )
        return LiveCall(AUTHORIZE, authorize)
    if method == f"{SESSION_PREFIX}ProcessEvent":
        flags = {str(flag).split(":", 1)[0] for flag in args.get("Flags") or []}
        authorize = _authorize_args(
            args,
            GetAttributes="*attributes" in flags,
            GetMaxUsage=bool(flags & EVENT_REQUEST_FLAGS),  # each charges (core/api/sessions.py)
            GetRoutes="*routes" in flags,
        )
        note = f"{method} would charge or record the event (flags {sorted(flags)})"
        return _authorize_instead(authorize, note, _event_reply)
    if method in NOT_SENT_REASON:
        return LiveCall("", params, f"not sent: {NOT_SENT_REASON[method]}", lambda _: OK)
    return LiveCall(
        "", params, "not sent: not known to be free of side effects",
        error=NOT_SENT_ERROR.format(method=method),
    )  # fmt: skip


def _authorize_instead(
    authorize: dict[str, Any], note: str, reply: Callable[[Any], Any]
) -> LiveCall:
    if not _asks_anything(authorize):
        return LiveCall("", authorize, f"not sent: {note}, and asks nothing else", reply)
    return LiveCall(AUTHORIZE, authorize, note, reply)


@dataclass(slots=True)
class RecordingClient:
    """Answers from ``reply`` (or asks ``live`` through :func:`live_call`) and records every
    call."""

    reply: Any = "OK"
    error: str = ""
    live: EngineClient | None = None
    calls: list[RecordedCall] = field(default_factory=list)

    async def call(self, method: str, params: Any) -> Any:
        record = RecordedCall(method, params)
        self.calls.append(record)
        try:
            if self.live is not None:
                record.reply = await self._live_call(record)
            elif self.error:
                raise RpcError(self.error)
            else:
                record.reply = self.reply
        except RpcError as exc:
            record.error = str(exc)
            raise
        return record.reply

    async def _live_call(self, record: RecordedCall) -> Any:
        assert self.live is not None
        plan = record.live = live_call(record.method, record.params)
        if plan.error:
            raise RpcError(plan.error)
        if plan.method:
            record.engine_reply = await self.live.call(plan.method, plan.params)
        return plan.reply(record.engine_reply)


# ------------------------------------------------------------------------------------ packets
def read_packet(path: Path) -> bytes:
    """The first application payload of a pcap file, or the bytes of a hex dump (spaces, new
    lines and ``0x`` allowed)."""
    data = path.read_bytes()
    if len(data) >= PCAP_GLOBAL_HEADER and int.from_bytes(data[:4], "little") in (
        PCAP_MAGIC_LE,
        PCAP_MAGIC_NS_LE,
    ):
        return _first_pcap_payload(data)
    text = data.decode("ascii", errors="replace").replace("0x", "")
    digits = "".join(ch for ch in text if not ch.isspace())
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise DryRunError(f"{path}: neither a pcap file nor a hex dump") from None


def _first_pcap_payload(data: bytes) -> bytes:
    linktype = struct.unpack_from("<I", data, 20)[0]
    offset = PCAP_GLOBAL_HEADER
    while offset + PCAP_RECORD_HEADER <= len(data):
        captured = struct.unpack_from("<I", data, offset + 8)[0]
        frame = data[offset + PCAP_RECORD_HEADER : offset + PCAP_RECORD_HEADER + captured]
        offset += PCAP_RECORD_HEADER + captured
        payload = _transport_payload(frame, linktype)
        if payload:
            return payload
    raise DryRunError("the pcap file holds no TCP, UDP or SCTP payload")


def _transport_payload(frame: bytes, linktype: int) -> bytes:
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return b""
        ethertype, ip = struct.unpack_from("!H", frame, 12)[0], frame[14:]
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return b""
        ethertype, ip = struct.unpack_from("!H", frame, 14)[0], frame[16:]
    elif linktype == LINKTYPE_RAW:
        ethertype = ETHERTYPE_IPV6 if frame[:1] and frame[0] >> 4 == 6 else ETHERTYPE_IPV4
        ip = frame
    else:
        raise DryRunError(f"unsupported pcap link type {linktype}")
    if ethertype == ETHERTYPE_IPV4 and len(ip) >= 20:
        protocol, body = ip[9], ip[(ip[0] & 0x0F) * 4 :]
    elif ethertype == ETHERTYPE_IPV6 and len(ip) >= 40:
        protocol, body = ip[6], ip[40:]
    else:
        return b""
    if protocol == IPPROTO_TCP and len(body) >= 20:
        return body[(body[12] >> 4) * 4 :]
    if protocol == IPPROTO_UDP and len(body) >= 8:
        return body[8:]
    if protocol == IPPROTO_SCTP and len(body) >= 28:
        return body[28:]  # the first DATA chunk's payload, past its 16-byte header
    return b""


# ------------------------------------------------------------------------------ per agent
@dataclass(slots=True)
class _Peer:
    """What an agent reads of the peer that sent a request."""

    address: str = "127.0.0.1"
    origin_host: str = "dry-run.peer"
    origin_realm: str = "dry-run.realm"


async def _diameter(agent: Any, packet: bytes, out: TextIO) -> None:
    from agents.diameter import codec

    try:
        request = codec.decode(packet)
        request.validate()
    except codec.DiameterDecodeError as exc:
        raise DryRunError(f"not a valid Diameter message: {exc}") from None
    print("== decoded request", file=out)
    print(_pretty(_avp_tree(request.avps)), file=out)
    agent.answers.open()
    try:
        answer = await agent.handle(request, _Peer())
    finally:
        await agent.answers.close()
    print("== answer", file=out)
    print(_pretty(_avp_tree(answer.avps)), file=out)
    print(f"== answer bytes\n{codec.encode(answer).hex()}", file=out)


def _avp_tree(avps: list[Any]) -> list[Any]:
    tree: list[Any] = []
    for avp in avps:
        value = avp.value
        if isinstance(value, list):  # grouped
            value = _avp_tree(avp.children)
        elif isinstance(value, bytes):
            value = value.decode("utf-8", errors="backslashreplace")
        tree.append({avp.name: value})
    return tree


async def _radius(agent: Any, packet: bytes, out: TextIO) -> None:
    from agents.radius import codec

    try:
        request = codec.decode(packet)
    except codec.RadiusDecodeError as exc:
        raise DryRunError(f"not a valid RADIUS packet: {exc}") from None
    print(f"== decoded request: {request.code_name} id {request.identifier}", file=out)
    print(_pretty(request.to_data()), file=out)
    # The transport's checks (client, authenticators) are not run: the packet is trusted as
    # coming from the first configured client (its secret hides User-Password).
    client = next(iter(agent.clients.values()))
    addr = (_Peer().address, 0)
    reply = await agent.handle(request, client, addr)
    if reply is None:
        print("== no reply (dropped: the NAS would retransmit)", file=out)
        return
    data = agent.server.encode(request, client, reply)
    print(f"== reply: {codec.CODE_NAMES.get(reply.code, reply.code)}", file=out)
    print(_pretty(codec.decode(data).to_data()), file=out)
    print(f"== reply bytes\n{data.hex()}", file=out)


async def _dns(agent: Any, packet: bytes, out: TextIO) -> None:
    from agents.dns import codec

    try:
        query = codec.decode(packet)
    except codec.DnsDecodeError as exc:
        raise DryRunError(f"not a valid DNS message: {exc}") from None
    print(f"== decoded query: id {query.id}", file=out)
    print(_pretty(codec.request_data(query)), file=out)
    reply = await agent.handle(query, (_Peer().address, 0), "udp")
    data = codec.encode(query, reply, udp_size=agent.server.udp_size)
    answer = codec.decode(data)
    print(f"== answer: {codec.RCODE_NAMES.get(reply.rcode, reply.rcode)}", file=out)
    print(_pretty(codec.message_data(answer)), file=out)
    print(f"== answer bytes\n{data.hex()}", file=out)


async def _sip(agent: Any, packet: bytes, out: TextIO) -> None:
    from agents.sip import codec, transport

    try:
        request = codec.decode(packet)
        if not request.is_request:
            raise codec.SipDecodeError("a response, not a request")
        transport.TransactionLayer._check(request)
    except codec.SipDecodeError as exc:
        raise DryRunError(f"not a SIP request the agent would handle: {exc}") from None
    print(f"== decoded request: {request.method} {request.uri}", file=out)
    print(_pretty({"headers": [list(h) for h in request.headers]}), file=out)
    source = (_Peer().address, transport.DEFAULT_PORT)
    peer = transport.Peer("UDP", source, lambda data, destination: None)
    if request.method in ("ACK", "CANCEL"):
        print("== no template run: ACK and CANCEL belong to the transaction layer", file=out)
        return
    answer = await agent.handle(request, peer)
    response = transport.build_response(
        request, answer.status, answer.reason, source, to_tag="dryrun", headers=answer.headers
    )
    print(f"== reply: {answer.status} {response.reason}", file=out)
    print(codec.encode(response).decode("utf-8", "replace"), file=out)


DRY_RUNNERS: Final[dict[str, Callable[[Any, bytes, TextIO], Any]]] = {
    "diameter": _diameter,
    "radius": _radius,
    "sip": _sip,
    "dns": _dns,
}


def _pretty(value: Any) -> str:
    return json.dumps(json.loads(dumps(value)), indent=2, default=str)


async def dry_run(
    config: Config,
    agent_name: str,
    packet_path: Path,
    *,
    engine_reply: Mapping[str, Any] | str | None = None,
    live: EngineClient | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Runs one packet through the named agent; prints what happens. Returns an exit code."""
    runner = DRY_RUNNERS.get(agent_name)
    agent_config: AgentConfig | None = config.agents.get(agent_name)
    if runner is None or agent_config is None:
        raise DryRunError(f"no dry run for agent {agent_name!r} (have: {sorted(DRY_RUNNERS)})")
    packet = read_packet(packet_path)
    client = RecordingClient(live=live)
    if isinstance(engine_reply, Mapping) and set(engine_reply) == {"error"}:
        client.error = str(engine_reply["error"])
    elif engine_reply is not None:
        client.reply = engine_reply
    with tempfile.TemporaryDirectory(prefix="chargeflow-dry-run-") as scratch:
        # The agent's own state (e.g. the Diameter answer cache) goes to a scratch folder.
        options = {**agent_config.options, "data_dir": scratch}
        context = AgentContext(
            replace(agent_config, options=options), client, agent_config.templates
        )
        agent = resolve_factory(agent_config)(context)
        agent.observe_processing = lambda outcome: print(
            f"== processor matched: {outcome.processor or '(none)'}", file=out
        )
        await runner(agent, packet, out)
    print("== SessionSv1 calls", file=out)
    if live is not None:
        print(
            "(dry run against a live engine: only side-effect-free calls were sent; each call"
            " shows what the agent would have sent, then what was sent instead)",
            file=out,
        )
    for number, call in enumerate(client.calls, 1):
        _print_call(number, call, out)
    if not client.calls:
        print("(none)", file=out)
    return 0


def _print_call(number: int, call: RecordedCall, out: TextIO) -> None:
    plan = call.live
    if plan is None:
        print(f"-- {number}. {call.method}", file=out)
        print(_pretty(call.params), file=out)
    elif not plan.note:
        print(f"-- {number}. {call.method} (sent as it is)", file=out)
        print(_pretty(call.params), file=out)
    else:
        print(f"-- {number}. {call.method} (would have been sent, NOT sent)", file=out)
        print(_pretty(call.params), file=out)
        if plan.method:
            print(f"-- {number}. sent instead: {plan.method} ({plan.note})", file=out)
            print(_pretty(plan.params), file=out)
            print(f"-- {number}. engine reply to {plan.method}", file=out)
            print(_pretty({"result": call.engine_reply}), file=out)
        else:
            print(f"-- {number}. nothing sent instead ({plan.note})", file=out)
        print(f"-- {number}. reply the agent got", file=out)
    result = {"error": call.error} if call.error else {"result": call.reply}
    print(_pretty(result), file=out)
