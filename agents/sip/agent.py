"""The SIP redirect agent: INVITE -> SessionSv1.AuthorizeEvent with routes -> 302 with one
Contact per route, or 402/403/480/503 as the templates say; OPTIONS -> 200; others -> 405.

Each request (the transaction layer has already absorbed retransmissions, ACKs and CANCELs) is
run through the request processors (templates/sip/*.yaml) with ``*req`` the codec's
``SipRequestTree`` and ``*vars`` ``Method``, ``RemoteHost`` (``ip:port``), ``RemoteAddress``,
``Transport`` (``UDP``/``TCP``). The processor's ``*rep`` becomes the answer:

* ``*rep.Request`` = ``SIP/2.0 302 Moved Temporarily`` (CGRateS's SIPAgent form) or
  ``*rep.*sipReplyCode`` / ``*rep.*sipReplyReason`` set the status;
* ``*rep.*sipRouteContacts`` (any non-empty value) adds one Contact per route of the engine's
  reply, in the engine's order: ``<sip:USER@HOST>;q=Q;cost=C;maxusage=S``. HOST is the route's
  RouteParameters (else its RouteID; a RouteParameters holding ``sip:`` is the whole URI),
  USER ``*rep.*sipContactUser`` (default: the Request-URI's user), Q 1.0, 0.9, ... (steps of
  1/N past ten routes), C the route's SortingData.Cost when it has one, S the authorized
  MaxUsage in whole seconds (rounded down) when the engine gave one. No route at all -> 480;
* every other ``*rep.Name`` (not starting with ``*``) is a header, one line per instance
  (``*group`` adds instances): Contact, Retry-After, Warning, Reason ...

A Request-URI that is not sip/sips/tel answers 416 and a Require header 420 (no extension is
supported), before any template runs. A template error (a mandatory field without value) answers
400; no processor matching answers
OPTIONS with 200 (+ Allow), INVITE with 500 and any other method with 405 (+ Allow). An INVITE is
never answered 2xx (that would need a dialog): a template asking for it gets 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from agents.base import Agent, AgentContext
from agents.sip.codec import SipMessage, SipRequestTree, SipUri
from agents.sip.transport import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_TRANSACTIONS,
    T1,
    T2,
    T4,
    TRYING_DELAY,
    Answer,
    Clock,
    Peer,
    SipServer,
    Timers,
    TransactionLayer,
    reason_for,
)
from agents.templating import Outcome, TemplateError, Templates, load_templates, process

log = logging.getLogger("chargeflow.agents.sip")

ALLOW: Final = "INVITE, ACK, CANCEL, OPTIONS"
REPLY_LINE: Final = "Request"  # CGRateS's SIPAgent: *rep.Request = "SIP/2.0 302 Moved ..."
REPLY_CODE: Final = "*sipReplyCode"
REPLY_REASON: Final = "*sipReplyReason"
ROUTE_CONTACTS: Final = "*sipRouteContacts"
CONTACT_USER: Final = "*sipContactUser"
STATUS_OK: Final = 200
STATUS_REDIRECT: Final = 302
STATUS_BAD_REQUEST: Final = 400
STATUS_NOT_ALLOWED: Final = 405
STATUS_BAD_SCHEME: Final = 416
STATUS_BAD_EXTENSION: Final = 420
STATUS_NO_ROUTE: Final = 480
STATUS_SERVER_ERROR: Final = 500
MIN_FINAL: Final = 200
MIN_INVITE_FINAL: Final = 300  # no 2xx to INVITE: that opens a dialog we do not keep
MAX_STATUS: Final = 699
Q_STEPS: Final = 10  # q-values step by 0.1 for up to ten routes, by 1/N beyond
Q_DECIMALS: Final = 3  # RFC 3261 §25.1: qvalue has at most three decimals
NANOSECONDS: Final = 1_000_000_000
TRANSPORTS: Final = frozenset({"udp", "tcp"})
URI_SCHEMES: Final = frozenset({"sip", "sips", "tel"})

OPTION_KEYS: Final = frozenset(
    {"transports", "t1", "t2", "t4", "trying_delay", "max_transactions", "data_dir"}
)


class SipAgent(Agent):
    """SIP redirect server (RFC 3261 UAS for INVITE/OPTIONS) in front of RouteS and SessionS."""

    def __init__(self, context: AgentContext, *, clock: Clock | None = None) -> None:
        super().__init__(context)
        options = dict(context.options)
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown sip option(s): {', '.join(sorted(unknown))}")
        transports = options.get("transports", sorted(TRANSPORTS))
        if (
            not isinstance(transports, list)
            or not transports
            or not {str(t).lower() for t in transports} <= TRANSPORTS
        ):
            raise ValueError("sip transports must be a non-empty list of udp, tcp")
        wanted = {str(t).lower() for t in transports}
        timers = Timers(
            t1=context.positive("t1", T1),
            t2=context.positive("t2", T2),
            t4=context.positive("t4", T4),
            trying_delay=context.positive("trying_delay", TRYING_DELAY),
        )
        try:
            self.templates: Templates = load_templates(context.templates_folder("sip"))
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        self.layer = TransactionLayer(
            self.handle,
            timers=timers,
            clock=clock,
            max_transactions=int(context.positive("max_transactions", MAX_TRANSACTIONS)),
        )
        listen = context.config.listen
        self.server = SipServer(
            self.layer,
            listen.host if listen else DEFAULT_HOST,
            listen.port if listen else DEFAULT_PORT,
            udp="udp" in wanted,
            tcp="tcp" in wanted,
        )

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        log.info("sip agent stopped: %s", dict(sorted(self.layer.counters.items())))

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.layer.counters)

    # --------------------------------------------------------------------------- requests
    async def handle(self, request: SipMessage, peer: Peer) -> Answer:
        """The final answer to one request (not ACK/CANCEL: the transaction layer's)."""
        refused = _uas_checks(request)
        if refused is not None:
            return refused
        variables = {
            "Method": request.method,
            "RemoteHost": f"{peer.address[0]}:{peer.address[1]}",
            "RemoteAddress": peer.address[0],
            "Transport": peer.transport,
        }
        number, _ = request.cseq()
        event_id = f"{request.first('Call-ID')}:{number}:{request.method}"
        tree = SipRequestTree(request)
        try:
            outcome = await process(self.templates, tree, variables, self.engine,
                                    event_id=event_id)  # fmt: skip
        except TemplateError as exc:
            log.info("%s from %s: %s", request.method, peer.address[0], exc)
            return Answer(STATUS_BAD_REQUEST, f"Bad Request ({exc.missing or 'template'})"[:80])
        if self.observe_processing is not None:
            self.observe_processing(outcome)
        if not outcome.matched:
            return _unmatched(request)
        return self.answer_of(outcome, request, tree)

    def answer_of(self, outcome: Outcome, request: SipMessage, tree: SipRequestTree) -> Answer:
        """The Answer a processor's ``*rep`` describes."""
        status, reason = 0, ""
        headers: list[tuple[str, str]] = []
        route_contacts = False
        contact_user = ""
        for name, values in outcome.reply.nodes.items():
            text = _text(values[-1]) if values else ""
            if name == REPLY_LINE:
                status, reason = _status_line(text)
            elif name == REPLY_CODE:
                status = _int(text)
            elif name == REPLY_REASON:
                reason = text
            elif name == ROUTE_CONTACTS:
                route_contacts = bool(text)
            elif name == CONTACT_USER:
                contact_user = text
            elif not name.startswith("*"):
                headers.extend((name, _text(value)) for value in values if _text(value))
        if route_contacts:
            user = contact_user or _first(tree.get(("Request-URI", "User")))
            contacts = route_contact_values(outcome, user)
            if not contacts:
                return Answer(STATUS_NO_ROUTE, headers=headers)
            headers.extend(("Contact", contact) for contact in contacts)
            status = status or STATUS_REDIRECT
        if not MIN_FINAL <= status <= MAX_STATUS:
            log.error("processor %s gave no final status (%r)", outcome.processor, status)
            return Answer(STATUS_SERVER_ERROR)
        if request.method == "INVITE" and status < MIN_INVITE_FINAL:
            log.error("processor %s answers INVITE with %d: not supported", outcome.processor,
                      status)  # fmt: skip
            return Answer(STATUS_SERVER_ERROR)
        if status == STATUS_NOT_ALLOWED and not any(n.lower() == "allow" for n, _ in headers):
            headers.append(("Allow", ALLOW))
        return Answer(status, reason or reason_for(status), headers)


def _uas_checks(request: SipMessage) -> Answer | None:
    """RFC 3261 §8.2.2: a Request-URI scheme we cannot read (416) or an extension the client
    requires (420: we support none)."""
    scheme = SipUri.parse(request.uri).scheme
    if scheme not in URI_SCHEMES:
        return Answer(STATUS_BAD_SCHEME, reason_for(STATUS_BAD_SCHEME))
    required = request.values("Require")
    if required:
        return Answer(STATUS_BAD_EXTENSION, reason_for(STATUS_BAD_EXTENSION),
                      [("Unsupported", ", ".join(required))])  # fmt: skip
    return None


def _unmatched(request: SipMessage) -> Answer:
    if request.method == "OPTIONS":
        return Answer(STATUS_OK, reason_for(STATUS_OK),
                      [("Allow", ALLOW), ("Accept", "application/sdp")])  # fmt: skip
    if request.method == "INVITE":
        log.warning("no request processor matched INVITE")
        return Answer(STATUS_SERVER_ERROR, reason_for(STATUS_SERVER_ERROR))
    return Answer(STATUS_NOT_ALLOWED, reason_for(STATUS_NOT_ALLOWED), [("Allow", ALLOW)])


def route_contact_values(outcome: Outcome, user: str) -> list[str]:
    """One Contact value per route of the engine's reply, in order (see the module doc)."""
    routes, max_usage = _engine_routes(outcome)
    count = len(routes)
    step = Decimal(1) / max(count, Q_STEPS)
    contacts: list[str] = []
    for index, route in enumerate(routes):
        target = str(route.get("RouteParameters") or route.get("RouteID") or "")
        if not target:
            continue
        if target.lower().startswith(("sip:", "sips:")):
            uri = target
        else:
            uri = f"sip:{user}@{target}" if user else f"sip:{target}"
        q = (Decimal(1) - step * index).quantize(Decimal(1).scaleb(-Q_DECIMALS))
        params = [f"q={_q_text(q)}"]
        sorting = route.get("SortingData")
        cost = sorting.get("Cost") if isinstance(sorting, Mapping) else None
        if cost is not None and (text := _decimal_text(cost)):
            params.append(f"cost={text}")
        if max_usage is not None:
            params.append(f"maxusage={max_usage // NANOSECONDS}")
        contacts.append(f"<{uri}>;" + ";".join(params))
    return contacts


def _engine_routes(outcome: Outcome) -> tuple[list[Mapping[str, Any]], int | None]:
    """The routes (flattened across profiles, in order) and MaxUsage of the last engine reply
    that has routes (AuthorizeEvent/ProcessMessage: Routes; ProcessEvent: RouteProfiles)."""
    for call in reversed(outcome.calls):
        reply = call.reply
        if not isinstance(reply, Mapping):
            continue
        profiles = reply.get("Routes") or reply.get("RouteProfiles")
        if not isinstance(profiles, list):
            continue
        routes = [
            route
            for profile in profiles
            if isinstance(profile, Mapping) and isinstance(profile.get("Routes"), list)
            for route in profile["Routes"]
            if isinstance(route, Mapping)
        ]
        usage = reply.get("MaxUsage")
        if isinstance(usage, Mapping):  # ProcessEvent: per run ID
            usage = usage.get("*default", next(iter(usage.values()), None))
        return routes, usage if isinstance(usage, int) and not isinstance(usage, bool) else None
    return [], None


def _q_text(q: Decimal) -> str:
    text = format(q.normalize(), "f")
    return text if "." in text else f"{text}.0"


def _decimal_text(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return ""
    return format(number.normalize(), "f") if number.is_finite() else ""


def _status_line(text: str) -> tuple[int, str]:
    """``SIP/2.0 302 Moved Temporarily`` or ``302 Moved Temporarily`` or ``302``."""
    parts = text.strip().split(" ", 2)
    if parts and parts[0].upper().startswith("SIP/"):
        parts = parts[1:]
    if not parts:
        return 0, ""
    return _int(parts[0]), " ".join(parts[1:])


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, dict) else str(value)


def _first(values: list[Any]) -> str:
    return str(values[0]) if values else ""


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return 0
