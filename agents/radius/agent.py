"""The RADIUS agent: Access-Request -> *authorize, Accounting Start/Interim/Stop -> Initiate /
Update / Terminate + CDR, and Disconnect/CoA on the engine's callbacks.

One request: the codec's message is the ``*req`` tree; ``*vars.*radReqType`` says what it is
(``*radAuth``, ``*radAcctStart``, ``*radAcctUpdate``, ``*radAcctStop``) so the request
processors (templates/radius/*.yaml) choose by it, as CGRateS's RADIUS agent does.

* Access-Request: the processor's ``*rep`` becomes the reply attributes; Access-Accept unless
  the engine answered an error, granted nothing (``MaxUsage`` 0), local authentication failed
  or ``*rep.*radReplyCode`` says otherwise. With ``*radauth`` the password is
  ``*vars.UserPassword`` (the templates copy it from the engine's AttributeS reply) and PAP
  (User-Password) or CHAP (CHAP-Password) is checked here.
* Accounting-Request: ``*vars.LastUsed`` is the Acct-Session-Time added since the previous report
  of that session (a retransmitted or repeated report adds nothing), ``*vars.UsedOctets`` the
  octets in and out (gigawords included). The Accounting-Response is sent only when the engine
  has recorded the request (no engine error); otherwise nothing is sent and the NAS retransmits
  (RFC 2866 §2). Accounting-On/Off stop every session of that NAS (a Stop at its last reported
  time). The ``ID`` of every engine call is stable across retransmissions, so the engine's reply
  cache charges a repeated request once even past the transport's duplicate cache.
* ``AgentV1.DisconnectSession``: a Disconnect-Request (built-in ``*dmr`` template, override by
  name) to the NAS that owns the session, at its client's ``dynauth`` address (default: its
  address, port 3799), retried per RFC 5080; ``AgentV1.AlterSession``: a CoA-Request (``*coa``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agents.base import OK, Agent, AgentContext
from agents.radius import codec
from agents.radius.codec import RadiusEncodeError, RadiusMessage, RawAttribute
from agents.radius.transport import (
    DEFAULT_ACCT_PORT,
    DEFAULT_AUTH_PORT,
    DEFAULT_DEDUP_MAX,
    DEFAULT_DEDUP_TTL,
    DEFAULT_DYNAUTH_PORT,
    DEFAULT_HOST,
    Client,
    DuplicateCache,
    DynAuthError,
    RadiusServer,
    Reply,
    parse_clients,
    send_request,
)
from agents.sessions import (
    DEFAULT_SESSION_IDLE,
    LiveSessions,
    expire,
    sweep_forever,
)
from agents.templating import (
    DictTree,
    Outcome,
    ReplyTree,
    RequestTree,
    TemplateError,
    Templates,
    apply_fields,
    load_templates,
    process,
)
from core.rpc import RpcError

log = logging.getLogger("chargeflow.agents.radius")

REQ_TYPE: Final = "*radReqType"
RAD_AUTH: Final = "*radAuth"
RAD_STATUS: Final = "*radStatus"
ACCT_TYPES: Final = {
    "Start": "*radAcctStart",
    "Interim-Update": "*radAcctUpdate",
    "Stop": "*radAcctStop",
}
ACCT_ON_OFF: Final = frozenset({"Accounting-On", "Accounting-Off"})
REPLY_CODE: Final = "*radReplyCode"
USER_PASSWORD_VAR: Final = "UserPassword"
GIGAWORD: Final = 1 << 32
NOT_FOUND: Final = "NOT_FOUND"
# The engine waits 2 s for a callback's reply: the NAS's ACK must come back well before that.
DEFAULT_DYNAUTH_TIMEOUT: Final = 0.4  # first wait; doubled per retransmission (RFC 5080)
DEFAULT_DYNAUTH_DEADLINE: Final = 1.8
ABORTED_MAX: Final = 100_000
ABORTED_TTL: Final = 3600.0

OPTION_KEYS: Final = frozenset(
    {
        "clients",
        "acct_listen",
        "dedup_ttl",
        "dedup_max",
        "dynauth_timeout",
        "dynauth_deadline",
        "session_idle",
        "tcp",
        "data_dir",  # accepted for symmetry with the other agents; RADIUS keeps no files
    }
)


@dataclass(slots=True)
class LiveSession:
    """An accounting session opened through us: what a Disconnect/CoA needs."""

    origin_id: str
    origin_host: str
    nas: str  # the client's source address
    client: Client
    start: dict[str, Any]  # the Start's attributes by name (the *oreq of *dmr/*coa)
    seen: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Reported:
    """Usage a session reported so far (Acct-Session-Time is cumulative)."""

    session_time: int = 0
    seen: float = field(default_factory=time.monotonic)


class RadiusAgent(Agent):
    """RADIUS authorization and accounting (RFC 2865, 2866) with dynamic authorization (5176)."""

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        options = dict(context.options)
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown radius option(s): {', '.join(sorted(unknown))}")
        self.clients = parse_clients(options.get("clients"))
        listen = context.config.listen
        host = listen.host if listen else DEFAULT_HOST
        auth_port = listen.port if listen else DEFAULT_AUTH_PORT
        acct_port = DEFAULT_ACCT_PORT
        if "acct_listen" in options:
            acct_host, _, port = str(options["acct_listen"]).rpartition(":")
            if acct_host and acct_host != host:
                raise ValueError("radius acct_listen must be on the listen host")
            try:
                acct_port = int(port)
            except ValueError:
                raise ValueError(f"bad radius acct_listen {options['acct_listen']!r}") from None
        self.dynauth_timeout = context.positive("dynauth_timeout", DEFAULT_DYNAUTH_TIMEOUT)
        self.dynauth_deadline = context.positive("dynauth_deadline", DEFAULT_DYNAUTH_DEADLINE)
        self.session_idle = context.positive("session_idle", DEFAULT_SESSION_IDLE)
        try:
            self.templates: Templates = load_templates(context.templates_folder("radius"))
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        self.server = RadiusServer(
            self.clients,
            self.handle,
            host=host,
            auth_port=auth_port,
            acct_port=acct_port,
            tcp=bool(options.get("tcp", False)),
            dedup=DuplicateCache(
                context.positive("dedup_ttl", DEFAULT_DEDUP_TTL),
                int(context.positive("dedup_max", DEFAULT_DEDUP_MAX)),
            ),
        )
        self._sessions: LiveSessions[LiveSession] = LiveSessions()
        self._reported: dict[tuple[str, str], Reported] = {}  # (NAS, Acct-Session-Id)
        # Ended sessions: (NAS, Acct-Session-Id) -> expiry
        self._aborted: dict[tuple[str, str], float] = {}
        self._identifiers = itertools.cycle(range(256))
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self._sweeper = asyncio.create_task(sweep_forever(self.sweep))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.server.stop()

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.server.counters)

    # --------------------------------------------------------------------------- requests
    async def handle(
        self, request: RadiusMessage, client: Client, addr: tuple[str, int]
    ) -> Reply | None:
        if request.code == codec.STATUS_SERVER:
            return Reply(codec.ACCESS_ACCEPT)
        if request.code == codec.ACCESS_REQUEST:
            return await self._authorize(request, client, addr)
        return await self._account(request, client, addr)

    def _variables(
        self, request: RadiusMessage, addr: tuple[str, int], kind: str
    ) -> dict[str, Any]:
        return {
            REQ_TYPE: kind,
            "RemoteHost": f"{addr[0]}:{addr[1]}",
            "NasAddress": addr[0],
            "*radReqCode": request.code_name,
        }

    async def _run(
        self, request: RequestTree, variables: dict[str, Any], event_id: str | None
    ) -> Outcome:
        outcome = await process(self.templates, request, variables, self.engine, event_id=event_id)
        if self.observe_processing is not None:
            self.observe_processing(outcome)
        return outcome

    async def _authorize(
        self, request: RadiusMessage, client: Client, addr: tuple[str, int]
    ) -> Reply:
        variables = self._variables(request, addr, RAD_AUTH)
        try:
            outcome = await self._run(request, variables, None)
        except TemplateError as exc:
            log.info("Access-Request %d from %s: %s", request.identifier, addr[0], exc)
            return Reply(codec.ACCESS_REJECT, _safe([("Reply-Message", "invalid request")]))
        if not outcome.matched:
            log.warning("no request processor matched Access-Request from %s", addr[0])
            return Reply(codec.ACCESS_REJECT)
        attributes, code = _reply_attributes(outcome.reply)
        error = _engine_error(outcome)
        if code is None:
            code = codec.ACCESS_ACCEPT
            if error or _first(outcome.cgrep, "MaxUsage") in ("0", 0):
                code = codec.ACCESS_REJECT
            elif not self._authenticated(request, client, outcome):
                code = codec.ACCESS_REJECT
                attributes = [a for a in attributes if a.code != 27]  # no Session-Timeout
        if code == codec.ACCESS_REJECT:
            attributes = [a for a in attributes if a.code in _REJECT_ATTRIBUTES]
            if not any(a.code == 18 for a in attributes) and error:
                attributes.extend(_safe([("Reply-Message", error[:200])]))
        return Reply(code, attributes)

    def _authenticated(self, request: RadiusMessage, client: Client, outcome: Outcome) -> bool:
        flags = next(
            (p.flags for p in self.templates.processors if p.id == outcome.processor), None
        )
        if flags is None or not flags.has("*radauth"):
            return True
        password = _first(outcome.trees.get("*vars"), USER_PASSWORD_VAR)
        if not password:
            log.info("Access-Request: no password for the user from the engine")
            return False
        secret = client.secret
        pap, chap = flags.has("*pap"), flags.has("*chap")
        any_method = not (pap or chap or flags.has("*mschapv2"))
        if request.first_raw(codec.ATTR_USER_PASSWORD) is not None and (pap or any_method):
            return codec.check_pap(request, secret, str(password))
        if request.first_raw(codec.ATTR_CHAP_PASSWORD) is not None and (chap or any_method):
            return codec.check_chap(request, str(password))
        return False

    async def _account(
        self, request: RadiusMessage, client: Client, addr: tuple[str, int]
    ) -> Reply | None:
        status = str(request.first("Acct-Status-Type") or "")
        if status in ACCT_ON_OFF:
            await self._stop_nas(addr[0], client)
            return Reply(codec.ACCOUNTING_RESPONSE)
        kind = ACCT_TYPES.get(status)
        if kind is None:  # Failed, tunnel records...: acknowledged, not charged
            log.info("Accounting-Request %s from %s: not charged", status, addr[0])
            return Reply(codec.ACCOUNTING_RESPONSE)
        session_id = str(request.first("Acct-Session-Id") or "")
        if self._was_aborted((addr[0], session_id)):
            # The session already ended (its Stop was recorded, or the engine ended and billed it
            # when it asked for the Disconnect): acknowledged without charging a second time.
            log.info("Accounting-Request %s for ended session %s: not charged", status, session_id)
            if status == "Stop":
                self._reported.pop((addr[0], session_id), None)
            return Reply(codec.ACCOUNTING_RESPONSE)
        variables = self._variables(request, addr, kind)
        total = _int(request.first("Acct-Session-Time"))
        key = (addr[0], session_id)
        reported = self._reported.setdefault(key, Reported())
        reported.seen = time.monotonic()
        last_used = max(total - reported.session_time, 0)
        variables["LastUsed"] = f"{last_used}s"
        variables["UsedTime"] = f"{total}s"
        variables["UsedOctets"] = _octets(request, "Input") + _octets(request, "Output")
        event_id = f"{addr[0]}:{session_id}:{status}:{total}"
        try:
            outcome = await self._run(request, variables, event_id)
        except TemplateError as exc:
            log.info("Accounting-Request %s from %s: %s", status, addr[0], exc)
            return None
        if not outcome.matched:
            log.warning("no request processor matched Accounting-Request %s", status)
            return None
        origin_id = _first(outcome.trees.get("*cgreq"), "OriginID")
        error = _engine_error(outcome)
        if error:
            log.info("Accounting-Request %s %s: engine error %s", status, session_id, error)
            return None  # not recorded: no answer, the NAS sends it again
        reported.session_time = max(reported.session_time, total)
        self._track(status, origin_id, outcome, addr[0], client, request)
        if status == "Stop":
            self._reported.pop(key, None)
            self._remember_ended(key)  # a Stop repeated later is acknowledged, not charged
        attributes, code = _reply_attributes(outcome.reply)
        return Reply(code or codec.ACCOUNTING_RESPONSE, attributes)

    def _track(
        self,
        status: str,
        origin_id: str,
        outcome: Outcome,
        nas: str,
        client: Client,
        request: RadiusMessage,
    ) -> None:
        if not origin_id:
            return
        if status == "Stop":
            self._sessions.pop(origin_id, None)
            return
        live = self._sessions.get(origin_id)
        if live is not None:
            live.seen = time.monotonic()
            return
        self._sessions[origin_id] = LiveSession(
            origin_id=origin_id,
            origin_host=_first(outcome.trees.get("*cgreq"), "OriginHost"),
            nas=nas,
            client=client,
            start=request.to_data(),
        )

    async def _stop_nas(self, nas: str, client: Client) -> None:
        """Accounting-On/Off: the NAS lost its sessions; each is stopped at its last report."""
        for live in [s for s in self._sessions.values() if s.nas == nas]:
            session_id = str(live.start.get("Acct-Session-Id", ""))
            reported = self._reported.pop((nas, session_id), Reported())
            data = {
                **live.start,
                "Acct-Status-Type": "Stop",
                "Acct-Session-Time": reported.session_time,
                "Acct-Terminate-Cause": "NAS-Reboot",
            }
            variables = {
                REQ_TYPE: ACCT_TYPES["Stop"],
                "RemoteHost": nas,
                "NasAddress": nas,
                "LastUsed": "0s",
                "UsedTime": f"{reported.session_time}s",
                "UsedOctets": 0,
            }
            try:
                await self._run(
                    DictTree(data), variables, f"{nas}:{session_id}:Stop:{reported.session_time}"
                )
            except TemplateError as exc:
                log.error("Accounting-On/Off: stopping %s: %s", live.origin_id, exc)
            self._sessions.pop(live.origin_id, None)

    # ------------------------------------------------------------------------- bookkeeping
    def _remember_ended(self, key: tuple[str, str]) -> None:
        self._aborted[key] = time.monotonic() + ABORTED_TTL
        if len(self._aborted) > ABORTED_MAX:
            self._aborted.pop(next(iter(self._aborted)))

    def _was_aborted(self, key: tuple[str, str]) -> bool:
        expiry = self._aborted.get(key)
        return expiry is not None and expiry > time.monotonic()

    def sweep(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        oldest = now - self.session_idle
        expire(self._sessions, oldest)
        expire(self._reported, oldest)
        for origin in [k for k, expiry in self._aborted.items() if expiry < now]:
            del self._aborted[origin]

    # ------------------------------------------------------------------ engine callbacks
    async def get_active_session_ids(self) -> list[dict[str, str]]:
        return self._sessions.active_ids()

    async def warn_disconnect(self, args: Mapping[str, Any]) -> str:
        return OK  # RADIUS has no in-session warning

    async def disconnect_session(self, args: Mapping[str, Any]) -> str:
        live = self._live(args)
        self._remember_ended((live.nas, str(live.start.get("Acct-Session-Id", ""))))
        reason = str(args.get("Reason", ""))
        await self._dynauth(live, codec.DISCONNECT_REQUEST, "*dmr", {"DisconnectCause": reason})
        self._sessions.pop(live.origin_id, None)
        return OK

    async def alter_session(self, args: Mapping[str, Any]) -> str:
        live = self._live(args)
        changes = {k: v for k, v in args.items() if k != "EventStart"}
        await self._dynauth(live, codec.COA_REQUEST, "*coa", changes)
        return OK

    def _live(self, args: Mapping[str, Any]) -> LiveSession:
        event = args.get("EventStart")
        origin_id = str(event.get("OriginID", "")) if isinstance(event, Mapping) else ""
        live = self._sessions.get(origin_id)
        if live is None:
            raise RpcError(NOT_FOUND)
        return live

    async def _dynauth(
        self, live: LiveSession, code: int, template: str, request: Mapping[str, Any]
    ) -> None:
        da_request = ReplyTree()
        trees: dict[str, RequestTree] = {
            "*req": DictTree(dict(request)),
            "*oreq": DictTree(live.start),
            "*vars": ReplyTree.from_data({"NasAddress": live.nas}),
            "*radDAReq": da_request,
            "*tmp": ReplyTree(),
        }
        try:
            apply_fields(self.templates.template(template), trees)
            attributes, _ = _reply_attributes(da_request)
        except (TemplateError, RadiusEncodeError) as exc:
            raise RpcError(f"{codec.CODE_NAMES[code]}: {exc}") from None
        address = live.client.dynauth or (live.nas, DEFAULT_DYNAUTH_PORT)
        loop = asyncio.get_running_loop()
        try:
            answer = await send_request(
                address,
                code,
                attributes,
                live.client.secret,
                identifier=next(self._identifiers),
                timeout=self.dynauth_timeout,
                attempts=8,
                deadline=loop.time() + self.dynauth_deadline,
            )
        except (DynAuthError, OSError, RadiusEncodeError) as exc:
            raise RpcError(f"{codec.CODE_NAMES[code]} to {address[0]}: {exc}") from None
        log.info(
            "%s for %s: %s %s",
            codec.CODE_NAMES[code],
            live.origin_id,
            answer.code_name,
            answer.first("Error-Cause") or "",
        )
        if answer.code not in (codec.DISCONNECT_ACK, codec.COA_ACK):
            cause = answer.first("Error-Cause")
            raise RpcError(f"{answer.code_name}: {cause}" if cause else answer.code_name)


# ----------------------------------------------------------------------------------- helpers
_REJECT_ATTRIBUTES: Final = frozenset(
    {18, codec.ATTR_PROXY_STATE, codec.ATTR_MESSAGE_AUTHENTICATOR}
)


def _reply_attributes(tree: ReplyTree) -> tuple[list[RawAttribute], int | None]:
    """The attributes a *rep (or *radDAReq) tree holds, and its ``*radReplyCode`` if set."""
    attributes: list[RawAttribute] = []
    code: int | None = None
    for name, values in tree.nodes.items():
        if name == REPLY_CODE:
            text = str(values[0]) if values else ""
            code = codec.CODES_BY_NAME.get(text) or _int(text) or None
            continue
        if name.startswith("*"):
            continue
        for value in values:
            attributes.append(codec.encode_attribute(name, value))
    return attributes, code


def _safe(items: list[tuple[str, Any]]) -> list[RawAttribute]:
    return codec.attributes_from(items)


def _engine_error(outcome: Outcome) -> str:
    found = outcome.cgrep.get(("Error",))
    return str(found[0]) if found and found[0] else ""


def _first(tree: RequestTree | None, name: str) -> Any:
    found = tree.get((name,)) if tree is not None else []
    return found[0] if found else ""


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _octets(request: RadiusMessage, direction: str) -> int:
    octets = _int(request.first(f"Acct-{direction}-Octets") or 0)
    return octets + _int(request.first(f"Acct-{direction}-Gigawords") or 0) * GIGAWORD
