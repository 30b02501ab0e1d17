"""The Diameter Gy/Ro agent: CCR -> templates -> SessionSv1 -> CCA, and ASR/RAR on the engine's
``AgentV1.DisconnectSession``.

One request: the codec's lazy message is the ``*req`` tree; ``process`` runs the request
processors (templates/diameter/*.yaml) with ``event_id = Session-Id:CC-Request-Number`` so the
engine's reply cache recognises a retransmission; the ``*rep`` tree becomes the CCA.

Per-MSCC answers (3GPP TS 32.299 data): the template language runs one processor chain per
request and cannot repeat a chain per Multiple-Services-Credit-Control, so the agent fans out
itself for the Service-Context-Ids in ``mscc_fanout`` (default ``32251@3gpp.org``): each MSCC is
processed on its own, with a ``*req`` in which Multiple-Services-Credit-Control is that one
instance only and ``*vars.RatingGroup`` set; the templates name the engine session
``Session-Id/Rating-Group``; the answer takes the first chain's top-level AVPs and one MSCC from
each chain. A CCR-T without MSCC terminates every Rating-Group of the session the engine still
has open (the live-session table below).

Usage reconciliation keeps no state here (CGRateS's way): every CCR-U and CCR-T sends its own
Used-Service-Unit as ``LastUsed`` and the engine adds it to what the session used, so a CCR-T
after an agent restart is charged exactly as without one.

Live sessions (for ``AgentV1.DisconnectSession`` -> ASR/RAR and ``GetActiveSessionIDs``) and the
sessions the engine cut off are kept in the answer cache's file (``AnswerCache.keep``, written
with its batches): a restarted agent still knows them, and finds each session's client by its
Origin-Host once that peer reconnects.

Duplicates (RFC 4006 §5.7, §6.5): the CCA sent for a (Session-Id, CC-Request-Number) is cached
(``dedup.AnswerCache``, persisted) and sent again for a repetition, T flag or not, without a
second engine call; a repetition arriving while the first is still being processed waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import struct
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agents.base import OK, Agent, AgentContext
from agents.diameter import codec
from agents.diameter.codec import (
    APP_CREDIT_CONTROL,
    AVP_FLAG_MANDATORY,
    AVP_RESULT_CODE,
    AVP_SESSION_ID,
    CMD_ABORT_SESSION,
    CMD_CREDIT_CONTROL,
    CMD_RE_AUTH,
    DIAMETER_CREDIT_LIMIT_REACHED,
    DIAMETER_MISSING_AVP,
    DIAMETER_SUCCESS,
    DIAMETER_TOO_BUSY,
    DIAMETER_UNABLE_TO_COMPLY,
    DIAMETER_UNABLE_TO_DELIVER,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    DiameterDecodeError,
    DiameterEncodeError,
    DiameterMessage,
)
from agents.diameter.dedup import DEFAULT_MAX_ENTRIES, DEFAULT_TTL, AnswerCache
from agents.diameter.transport import (
    DEFAULT_PORT,
    DEFAULT_WATCHDOG,
    AllowedPeer,
    DiameterConfig,
    DiameterNode,
    DiameterTransportError,
    PeerInfo,
)
from agents.sessions import (
    DEFAULT_SESSION_IDLE,
    LiveSessions,
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
from core.config import REPO_ROOT
from core.rpc import RpcError

log = logging.getLogger("chargeflow.agents.diameter")

# -------------------------------------------------------------------------------- constants
AVP_CC_REQUEST_TYPE: Final = 416
AVP_CC_REQUEST_NUMBER: Final = 415
AVP_SERVICE_CONTEXT_ID: Final = 461
AVP_MSCC: Final = 456
AVP_RATING_GROUP: Final = 432
AVP_CC_TIME: Final = 420
AVP_CC_TOTAL_OCTETS: Final = 421
AVP_CC_INPUT_OCTETS: Final = 412
AVP_CC_OUTPUT_OCTETS: Final = 414
AVP_CC_SERVICE_SPECIFIC_UNITS: Final = 417
USED_UNIT_AVPS: Final = frozenset(
    {
        AVP_CC_TIME,
        AVP_CC_TOTAL_OCTETS,
        AVP_CC_INPUT_OCTETS,
        AVP_CC_OUTPUT_OCTETS,
        AVP_CC_SERVICE_SPECIFIC_UNITS,
    }
)
MSCC: Final = "Multiple-Services-Credit-Control"
RATING_GROUP: Final = "Rating-Group"
RESULT_CODE: Final = "Result-Code"

CC_INITIAL: Final = 1
CC_UPDATE: Final = 2
CC_TERMINATION: Final = 3
CC_EVENT: Final = 4

DEFAULT_LISTEN_HOST: Final = "127.0.0.1"
DEFAULT_ORIGIN_HOST: Final = "chargeflow.localdomain"
DEFAULT_ORIGIN_REALM: Final = "localdomain"
DEFAULT_DATA_DIR: Final = REPO_ROOT / "var" / "diameter"
DEFAULT_FANOUT: Final = ("32251@3gpp.org",)
DEFAULT_MAX_IN_FLIGHT: Final = 4096
# The engine waits 2 s for a callback's reply: the ASA must come back well before that.
DEFAULT_ASR_TIMEOUT: Final = 1.5
DISCONNECT_ASR: Final = "asr"
DISCONNECT_RAR: Final = "rar"
ABORTED_MAX: Final = 100_000
ABORTED_TTL: Final = 3600.0  # seconds a disconnected Session-Id is remembered
# A session not heard of for this long is forgotten (its CCR-T never came; the engine ends it
# on its own session_ttl): the agent's tables stay bounded.
# Answers a retry may legitimately change (the engine's reply cache still prevents a double
# charge): they are not cached.
TRANSIENT_RESULTS: Final = frozenset(
    {DIAMETER_UNABLE_TO_COMPLY, DIAMETER_TOO_BUSY, DIAMETER_UNABLE_TO_DELIVER}
)
ANSWER_OWN_KEYS: Final = ("Session-Id", "Origin-Host", "Origin-Realm")  # set by answer_to
NOT_FOUND: Final = "NOT_FOUND"
CMD_CCR: Final = "CCR"
REQ_PREFIX: Final = "*req."

OPTION_KEYS: Final = frozenset(
    {
        "origin_host",
        "origin_realm",
        "data_dir",
        "disconnect",
        "dedup_ttl",
        "dedup_max",
        "max_in_flight",
        "watchdog_interval",
        "mscc_fanout",
        "asr_timeout",
        "host_ip_addresses",
        "session_idle",
        "allowed_peers",
        "tls",
    }
)
TLS_KEYS: Final = frozenset({"cert", "key", "ca", "verify"})
# Rows of the agent's state in the answer cache's file (AnswerCache.keep).
STATE_SESSION: Final = "session"  # OriginID -> LiveSession as JSON
STATE_ABORTED: Final = "aborted"  # Session-Id -> wall-clock expiry

_SELECTORS: Final = re.compile(r"\[[^\]]*\]")
_monotonic: Final = time.monotonic
_IDS: Final = struct.Struct(">II")
_IDS_OFFSET: Final = 12  # hop-by-hop and end-to-end ids in the Diameter header


@dataclass(slots=True)
class LiveSession:
    """An engine session opened through us: who to send an ASR/RAR to."""

    session_id: str  # Diameter Session-Id
    origin_id: str  # the engine's OriginID (Session-Id, or Session-Id/Rating-Group)
    origin_host: str  # the engine's OriginHost as the template sent it
    peer_host: str  # the client's Origin-Host (the connection to send to)
    peer_realm: str
    app_id: int
    rating_groups: set[str] = field(default_factory=set)
    seen: float = field(default_factory=_monotonic)


class MsccView:
    """``*req`` with Multiple-Services-Credit-Control narrowed to one instance."""

    __slots__ = ("mscc", "request")

    def __init__(self, request: RequestTree, mscc: RequestTree) -> None:
        self.request = request
        self.mscc = mscc

    def get(self, path: tuple[str, ...]) -> list[Any]:
        if path and path[0] == MSCC:
            return [self.mscc] if len(path) == 1 else self.mscc.get(path[1:])
        return self.request.get(path)


class DiameterAgent(Agent):
    """Gy/Ro online charging over Diameter (RFC 4006, 3GPP TS 32.299)."""

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        options = dict(context.options)
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown diameter option(s): {', '.join(sorted(unknown))}")
        self.origin_host = str(options.get("origin_host", DEFAULT_ORIGIN_HOST))
        self.origin_realm = str(options.get("origin_realm", DEFAULT_ORIGIN_REALM))
        self.disconnect_with = str(options.get("disconnect", DISCONNECT_ASR)).lower()
        if self.disconnect_with not in (DISCONNECT_ASR, DISCONNECT_RAR):
            raise ValueError(f"diameter disconnect must be asr or rar, not {self.disconnect_with}")
        self.asr_timeout = context.positive("asr_timeout", DEFAULT_ASR_TIMEOUT)
        fanout = options.get("mscc_fanout", list(DEFAULT_FANOUT))
        if not isinstance(fanout, list) or not all(isinstance(x, str) for x in fanout):
            raise ValueError("diameter mscc_fanout must be a list of Service-Context-Ids")
        self.fanout = frozenset(fanout)
        data_dir = Path(str(options.get("data_dir", DEFAULT_DATA_DIR)))
        self.data_dir = data_dir if data_dir.is_absolute() else REPO_ROOT / data_dir
        self.answers = AnswerCache(
            self.data_dir,
            ttl=context.positive("dedup_ttl", DEFAULT_TTL),
            max_entries=int(context.positive("dedup_max", DEFAULT_MAX_ENTRIES)),
        )
        listen = context.config.listen
        addresses = options.get("host_ip_addresses", ["127.0.0.1"])
        tls_server, tls_client = _tls_contexts(options.get("tls"))
        self.transport_config = DiameterConfig(
            origin_host=self.origin_host,
            origin_realm=self.origin_realm,
            listen_host=listen.host if listen else DEFAULT_LISTEN_HOST,
            listen_port=listen.port if listen else DEFAULT_PORT,
            host_ip_addresses=tuple(str(a) for a in addresses),
            max_in_flight=int(context.positive("max_in_flight", DEFAULT_MAX_IN_FLIGHT)),
            watchdog_interval=context.positive("watchdog_interval", DEFAULT_WATCHDOG),
            allowed_peers=_allowed_peers(options.get("allowed_peers")),
            tls_server=tls_server,
            tls_client=tls_client,
        )
        try:
            self.templates: Templates = load_templates(context.templates_folder("diameter"))
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        self.node = DiameterNode(self.transport_config, self.handle)
        self._inflight: dict[tuple[str, int], asyncio.Future[bytes | None]] = {}
        self._sessions: LiveSessions[LiveSession] = LiveSessions()
        self._aborted: OrderedDict[str, float] = OrderedDict()  # Session-Id -> expiry
        self.session_idle = context.positive("session_idle", DEFAULT_SESSION_IDLE)
        self._sweeper: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self.node.port

    async def start(self) -> None:
        self.answers.open()
        self._restore()
        self.answers.start()
        await self.node.start()
        self._sweeper = asyncio.get_running_loop().create_task(sweep_forever(self.sweep))
        log.info(
            "diameter agent %s listening on %s:%d",
            self.origin_host,
            self.transport_config.listen_host,
            self.node.port,
        )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        # Both stop, even if the first fails; no await inside a finally in compiled code
        # (tests/unit/test_native.py says why).
        failure: BaseException | None = None
        try:
            await self.node.stop()
        except BaseException as exc:  # re-raised below, once the answers are closed
            failure = exc
        await self.answers.close()
        if failure is not None:
            raise failure

    # ------------------------------------------------------------------------------- requests
    async def handle(self, request: DiameterMessage, peer: PeerInfo) -> DiameterMessage:
        """One CCR -> its CCA (the transport only hands us Credit-Control requests)."""
        if request.code != CMD_CREDIT_CONTROL:
            return self._error(request, codec.DIAMETER_COMMAND_UNSUPPORTED)
        session_id = request.session_id
        number = request.first(AVP_CC_REQUEST_NUMBER)
        if not session_id or not isinstance(number, int):
            missing = AVP_SESSION_ID if not session_id else AVP_CC_REQUEST_NUMBER
            return self._error(request, DIAMETER_MISSING_AVP, Avp(missing, 0, AVP_FLAG_MANDATORY))
        key = (session_id, number)
        cached = self.answers.get(key)
        if cached is not None:
            return _reheaded(cached, request)
        pending = self._inflight.get(key)
        if pending is not None:  # the first copy is still being processed: same answer
            first = await asyncio.shield(pending)
            if first is not None:
                return _reheaded(first, request)
            return self._error(request, DIAMETER_UNABLE_TO_COMPLY)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        data: bytes | None = None
        request_type = request.first(AVP_CC_REQUEST_TYPE)
        try:
            answer, result = await self._answer(request, peer, session_id, number, request_type)
            # The transport sends these bytes as they are: one encode.
            data, sendable = codec.encoded(answer)
            if result not in TRANSIENT_RESULTS:
                # A repeated CCR-T/CCR-E would charge again once the engine's reply cache has
                # forgotten it: its answer is on disk before it is sent.
                durable = request_type in (CC_TERMINATION, CC_EVENT)
                self.answers.put(key, data, durable=durable)
            return sendable
        finally:
            del self._inflight[key]
            future.set_result(data)

    async def _answer(
        self,
        request: DiameterMessage,
        peer: PeerInfo,
        session_id: str,
        number: int,
        request_type: Any,
    ) -> tuple[DiameterMessage, int]:
        """The answer and its Result-Code (known without reading the answer back when it was
        built from the reply tree: its bytes then go out untouched)."""
        if session_id in self._aborted and request_type in (CC_UPDATE, CC_TERMINATION):
            answer = self._after_abort(request, request_type)
            return answer, _result_code(answer)
        answer, known = await self._charge(request, peer, session_id, number, request_type)
        return answer, _result_code(answer) if known is None else known

    async def _charge(
        self,
        request: DiameterMessage,
        peer: PeerInfo,
        session_id: str,
        number: int,
        request_type: Any,
    ) -> tuple[DiameterMessage, int | None]:
        """The answer, and its Result-Code when known (None: read it from the answer)."""
        variables = self._variables(request, peer)
        event_id = f"{session_id}:{number}"
        try:
            groups = self._fanout_groups(request, session_id, request_type)
            if groups:
                fanned = await self._fan_out(
                    request, peer, session_id, number, request_type, groups, variables, event_id
                )
                return fanned, None
            outcome = await process(
                self.templates, request, variables, self.engine, event_id=event_id
            )
            if self.observe_processing is not None:
                self.observe_processing(outcome)
            if not outcome.matched:
                log.warning("no request processor matched CCR %s", event_id)
                return self._error(request, DIAMETER_UNABLE_TO_COMPLY, message="no processor"), None
            answer, result = self._cca_of(request, outcome)
            if result != DIAMETER_SUCCESS:
                log.info("CCR %s: %d (%s)", event_id, result, _engine_error(outcome))
            self._track(request, peer, request_type, "", outcome, result)
            return answer, result
        except TemplateError as exc:
            return self._template_failed(request, exc, event_id), None
        except DiameterDecodeError as malformed:  # a value the templates read is malformed
            return (
                self._error(
                    request, malformed.result_code, malformed.failed_avp, message=malformed.reason
                ),
                None,
            )
        except DiameterEncodeError as unencodable:  # one name per type: mypyc types it once
            log.error("CCR %s: reply not encodable: %s", event_id, unencodable)
            return self._error(request, DIAMETER_UNABLE_TO_COMPLY), None

    # ------------------------------------------------------------------------ MSCC fan-out
    def _fanout_groups(
        self, request: DiameterMessage, session_id: str, request_type: Any
    ) -> list[tuple[str, RequestTree]]:
        if request_type == CC_EVENT or request.first(AVP_SERVICE_CONTEXT_ID) not in self.fanout:
            return []
        groups: list[tuple[str, RequestTree]] = []
        for mscc in request.find(AVP_MSCC):
            rating = mscc.get((RATING_GROUP,))
            groups.append((str(rating[0]) if rating else "", mscc))
        if not groups and request_type == CC_TERMINATION:
            # RFC 4006: a CCR-T may report nothing; every Rating-Group open is still closed.
            groups = [(rg, DictTree({RATING_GROUP: rg})) for rg in self._rating_groups(session_id)]
        return groups

    async def _fan_out(
        self,
        request: DiameterMessage,
        peer: PeerInfo,
        session_id: str,
        number: int,
        request_type: Any,
        groups: list[tuple[str, RequestTree]],
        variables: dict[str, Any],
        event_id: str,
    ) -> DiameterMessage:
        async def one(rating_group: str, mscc: RequestTree) -> Outcome:
            view = MsccView(request, mscc)
            own = {**variables, "RatingGroup": rating_group}
            outcome = await process(
                self.templates, view, own, self.engine, event_id=f"{event_id}:{rating_group}"
            )
            if self.observe_processing is not None:
                self.observe_processing(outcome)
            return outcome

        # The first MSCC alone, so a request-level problem (a mandatory AVP missing) is found
        # before any other Rating-Group is charged; then the rest concurrently, each waited for.
        outcomes = [await one(*groups[0])]
        rest = await asyncio.gather(
            *(one(rg, mscc) for rg, mscc in groups[1:]), return_exceptions=True
        )
        for item in rest:
            if isinstance(item, BaseException):
                raise item
            outcomes.append(item)
        if not all(outcome.matched for outcome in outcomes):
            log.warning("no request processor matched an MSCC of CCR %s", event_id)
            return self._error(request, DIAMETER_UNABLE_TO_COMPLY, message="no processor")
        data = outcomes[0].reply.to_data()
        data.pop(MSCC, None)
        answers: list[Any] = []
        for outcome in outcomes:
            found = outcome.reply.to_data().get(MSCC)
            answers.extend(found if isinstance(found, list) else [found] if found else [])
        mscc_results = [_int(item.get(RESULT_CODE)) for item in answers if isinstance(item, dict)]
        if DIAMETER_SUCCESS in mscc_results:
            data[RESULT_CODE] = DIAMETER_SUCCESS  # RFC 4006 §8.48: per-MSCC codes carry the rest
        data[MSCC] = answers
        answer = self._cca(request, data, outcomes[0])
        for (rating_group, _), outcome in zip(groups, outcomes, strict=True):
            results = outcome.reply.get((MSCC, RESULT_CODE)) or outcome.reply.get((RESULT_CODE,))
            code = _int(results[0]) if results else DIAMETER_SUCCESS
            if code != DIAMETER_SUCCESS:
                log.info("CCR %s/%s: %d (%s)", event_id, rating_group, code, _engine_error(outcome))
            self._track(request, peer, request_type, rating_group, outcome, code)
        return answer

    # ------------------------------------------------------------------------------ answers
    def _cca_of(self, request: DiameterMessage, outcome: Outcome) -> tuple[DiameterMessage, int]:
        """The CCA for one processed request and its Result-Code: encoded straight from the
        ``*rep`` tree (``codec.encode_answer_tree``); through ``to_data`` + ``_cca`` when the
        tree holds something only that path encodes. The answer comes back undecoded, so
        ``handle`` sends these very bytes."""
        nodes = outcome.reply.nodes
        if RESULT_CODE not in nodes:
            nodes = {RESULT_CODE: [_default_result(outcome)], **nodes}
        data = codec.encode_answer_tree(
            request, nodes, origin_host=self.origin_host, origin_realm=self.origin_realm
        )
        if data is None:
            answer = self._cca(request, outcome.reply.to_data(), outcome)
            return answer, _result_code(answer)
        given = [value for value in nodes[RESULT_CODE] if value is not None]
        # Our own encoding: the header is read without decode's checks (they cannot fail).
        return codec.decode_header(data), _int(given[-1]) if given else 0

    def _cca(
        self, request: DiameterMessage, data: dict[str, Any], outcome: Outcome
    ) -> DiameterMessage:
        for key in ANSWER_OWN_KEYS:
            data.pop(key, None)
        if RESULT_CODE not in data:  # a template without *cca: still never a silent drop
            data = {RESULT_CODE: _default_result(outcome), **data}
        return codec.answer_to(
            request, None, data, origin_host=self.origin_host, origin_realm=self.origin_realm
        )

    def _error(
        self,
        request: DiameterMessage,
        result: int,
        failed: Avp | None = None,
        *,
        message: str | None = None,
    ) -> DiameterMessage:
        answer = codec.error_answer(
            request,
            result,
            failed,
            message,
            origin_host=self.origin_host,
            origin_realm=self.origin_realm,
        )
        for name, value in (
            ("Auth-Application-Id", APP_CREDIT_CONTROL),
            ("CC-Request-Type", request.first(AVP_CC_REQUEST_TYPE)),
            ("CC-Request-Number", request.first(AVP_CC_REQUEST_NUMBER)),
        ):
            if value is not None:
                answer.append(codec.avp(name, value))
        return answer

    def _template_failed(
        self, request: DiameterMessage, exc: TemplateError, event_id: str
    ) -> DiameterMessage:
        failed = _failed_avp(exc.missing)
        if failed is not None:
            log.info("CCR %s: mandatory AVP missing: %s", event_id, exc.missing)
            return self._error(request, DIAMETER_MISSING_AVP, failed, message=exc.reason)
        log.error("CCR %s: template error: %s", event_id, exc)
        return self._error(request, DIAMETER_UNABLE_TO_COMPLY)

    def _after_abort(self, request: DiameterMessage, request_type: int) -> DiameterMessage:
        """The engine already ended (and billed) this session when it asked for the ASR/RAR:
        its CCR-T is acknowledged without charging it a second time, a CCR-U is refused."""
        result = (
            DIAMETER_SUCCESS if request_type == CC_TERMINATION else DIAMETER_CREDIT_LIMIT_REACHED
        )
        return codec.answer_to(
            request,
            result,
            {
                "Auth-Application-Id": APP_CREDIT_CONTROL,
                "CC-Request-Type": request_type,
                "CC-Request-Number": request.first(AVP_CC_REQUEST_NUMBER),
            },
            origin_host=self.origin_host,
            origin_realm=self.origin_realm,
        )

    # ------------------------------------------------------------------------- bookkeeping
    def _variables(self, request: DiameterMessage, peer: PeerInfo) -> dict[str, Any]:
        return {
            "OriginHost": self.origin_host,
            "OriginRealm": self.origin_realm,
            "RemoteHost": peer.address,
            "PeerOriginHost": peer.origin_host or "",
            "*appid": request.app_id,
            "*cmd": CMD_CCR,
        }

    def _track(
        self,
        request: DiameterMessage,
        peer: PeerInfo,
        request_type: Any,
        rating_group: str,
        outcome: Outcome,
        result: int,
    ) -> None:
        cgreq = outcome.trees.get("*cgreq")
        origin_id = _first_text(cgreq, "OriginID") if cgreq is not None else ""
        if not origin_id:
            return
        if request_type == CC_TERMINATION:
            if self._sessions.pop(origin_id, None) is not None:
                self.answers.forget(STATE_SESSION, origin_id)
            return
        if request_type not in (CC_INITIAL, CC_UPDATE) or result != DIAMETER_SUCCESS:
            return
        live = self._sessions.get(origin_id)
        if live is not None:
            live.seen = time.monotonic()
        elif peer.origin_host:
            live = LiveSession(
                session_id=request.session_id or "",
                origin_id=origin_id,
                origin_host=_first_text(cgreq, "OriginHost"),
                peer_host=peer.origin_host,
                peer_realm=peer.origin_realm or "",
                app_id=request.app_id,
                rating_groups={rating_group} if rating_group else set(),
            )
            self._sessions[origin_id] = live
            self.answers.keep(STATE_SESSION, origin_id, _session_json(live))

    def _rating_groups(self, session_id: str) -> list[str]:
        """The Rating-Groups of a Diameter session that are open in the engine."""
        found = {
            rating_group
            for live in self._sessions.values()
            if live.session_id == session_id
            for rating_group in live.rating_groups
        }
        return sorted(found)

    def _restore(self) -> None:
        """The live sessions and cut-off sessions the answer cache's file kept (an agent
        restart): idle times start again now."""
        now = time.monotonic()
        for origin_id, text in self.answers.kept(STATE_SESSION).items():
            live = _session_of(text, now)
            if live is None:
                log.warning("unreadable live session %s dropped", origin_id)
                self.answers.forget(STATE_SESSION, origin_id)
                continue
            self._sessions[origin_id] = live
        wall = time.time()
        kept = sorted(self.answers.kept(STATE_ABORTED).items(), key=lambda item: item[1])
        for session_id, expiry_text in kept:
            expiry = _float(expiry_text)
            if expiry <= wall:
                self.answers.forget(STATE_ABORTED, session_id)
                continue
            self._aborted[session_id] = now + (expiry - wall)
        if self._sessions or self._aborted:
            log.info(
                "%d live and %d cut-off Diameter sessions restored",
                len(self._sessions),
                len(self._aborted),
            )

    def sweep(self, now: float | None = None) -> None:
        """Forgets the sessions idle for longer than ``session_idle``."""
        oldest = (time.monotonic() if now is None else now) - self.session_idle
        for origin_id in [key for key, live in self._sessions.items() if live.seen < oldest]:
            del self._sessions[origin_id]
            self.answers.forget(STATE_SESSION, origin_id)

    # ------------------------------------------------------------------ engine callbacks
    async def get_active_session_ids(self) -> list[dict[str, str]]:
        return self._sessions.active_ids()

    async def warn_disconnect(self, args: Mapping[str, Any]) -> str:
        return OK  # Gy has no in-call warning; the FUI on the last grant does that job

    async def disconnect_session(self, args: Mapping[str, Any]) -> str:
        """ASR (or RAR, config ``disconnect``) to the client that owns the session."""
        event = args.get("EventStart")
        origin_id = str(event.get("OriginID", "")) if isinstance(event, Mapping) else ""
        live = self._sessions.get(origin_id)
        if live is None:
            raise RpcError(NOT_FOUND)
        self._remember_aborted(live.session_id)
        # Every engine session of this Diameter session goes with it (one ASR for all RGs).
        for key in [k for k, s in self._sessions.items() if s.session_id == live.session_id]:
            del self._sessions[key]
            self.answers.forget(STATE_SESSION, key)
        request = self._disconnect_request(live)
        try:
            answer = await self.node.send_request(live.peer_host, request, self.asr_timeout)
        except DiameterTransportError as exc:
            raise RpcError(f"{self.disconnect_with.upper()} to {live.peer_host}: {exc}") from None
        result = _result_code(answer)
        log.info(
            "%s for %s (%s): answered %s",
            self.disconnect_with.upper(),
            live.session_id,
            args.get("Reason", ""),
            result,
        )
        if result != DIAMETER_SUCCESS:
            raise RpcError(f"{self.disconnect_with.upper()} answered {result}")
        return OK

    def _disconnect_request(self, live: LiveSession) -> DiameterMessage:
        # The *asr/*rar templates read the original request; this is the part of it they need.
        original = DictTree(
            {
                "Session-Id": live.session_id,
                "Origin-Host": live.peer_host,
                "Origin-Realm": live.peer_realm,
                "Destination-Host": self.origin_host,
                "Destination-Realm": self.origin_realm,
            }
        )
        diamreq = ReplyTree()
        trees: dict[str, RequestTree] = {
            "*req": original,
            "*vars": ReplyTree.from_data({"*appid": live.app_id, "OriginHost": self.origin_host}),
            "*diamreq": diamreq,
            "*tmp": ReplyTree(),
        }
        name = "*asr" if self.disconnect_with == DISCONNECT_ASR else "*rar"
        apply_fields(self.templates.template(name), trees)
        code = CMD_ABORT_SESSION if self.disconnect_with == DISCONNECT_ASR else CMD_RE_AUTH
        return DiameterMessage(
            code,
            live.app_id,
            FLAG_REQUEST | FLAG_PROXIABLE,
            avps=codec.build_avps(diamreq.to_data()),
        )

    def _remember_aborted(self, session_id: str) -> None:
        now = time.monotonic()
        self._aborted[session_id] = now + ABORTED_TTL
        self._aborted.move_to_end(session_id)
        self.answers.keep(STATE_ABORTED, session_id, repr(time.time() + ABORTED_TTL))
        while self._aborted and (
            len(self._aborted) > ABORTED_MAX or next(iter(self._aborted.values())) < now
        ):
            dropped, _ = self._aborted.popitem(last=False)
            self.answers.forget(STATE_ABORTED, dropped)


# ----------------------------------------------------------------------------------- helpers
def _reheaded(data: bytes, request: DiameterMessage) -> DiameterMessage:
    """A cached answer with the ids of the request it now answers."""
    patched = (
        data[:_IDS_OFFSET] + _IDS.pack(request.hbh, request.e2e) + data[_IDS_OFFSET + _IDS.size :]
    )
    return codec.decode(patched)


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _result_code(answer: DiameterMessage) -> int:
    return _int(answer.first(AVP_RESULT_CODE))


def _default_result(outcome: Outcome) -> int:
    """The Result-Code of a reply tree that sets none: 5012 after an engine error, else 2001."""
    return DIAMETER_UNABLE_TO_COMPLY if _engine_error(outcome) else DIAMETER_SUCCESS


def _engine_error(outcome: Outcome) -> str:
    found = outcome.cgrep.get(("Error",))
    return str(found[0]) if found and found[0] else ""


def _first_text(tree: RequestTree | None, name: str) -> str:
    found = tree.get((name,)) if tree is not None else []
    return str(found[0]) if found else ""


def _reported(tree: RequestTree) -> dict[int, int]:
    """The units a CCR reports used (Used-Service-Unit at the top level and in its MSCCs), by
    unit AVP code; one walk over each Used-Service-Unit group."""
    totals: dict[int, int] = {}
    for path in (("Used-Service-Unit",), (MSCC, "Used-Service-Unit")):
        for group in tree.get(path):
            if not isinstance(group, Avp):
                continue
            children = group._children  # walked by validate already: no property call
            if children is None:
                children = group.children
            for item in children:
                if item.code in USED_UNIT_AVPS and not item.vendor:
                    totals[item.code] = totals.get(item.code, 0) + _int(item.value)
    return totals


def _failed_avp(missing: str) -> Avp | None:
    """Failed-AVP for a mandatory template value missing from ``*req`` (RFC 6733 §7.5: the
    missing AVP with an empty payload, inside its groups when nested), None when it is not a
    request AVP."""
    if not missing.startswith(REQ_PREFIX):
        return None
    # The plain AVP path: selectors ([...]), rules (:s/.../) and converters ({...}) dropped.
    plain = _SELECTORS.sub("", missing[len(REQ_PREFIX) :]).split(":", 1)[0].split("{", 1)[0]
    names = plain.split(".")
    try:
        definitions = [codec.avp_def(name) for name in names if name]
    except KeyError:
        return None
    if not definitions:
        return None
    innermost = definitions[-1]
    item = Avp(innermost.code, innermost.vendor, AVP_FLAG_MANDATORY, b"")
    for outer in reversed(definitions[:-1]):
        item = Avp(outer.code, outer.vendor, AVP_FLAG_MANDATORY, [item])
    return item


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _session_json(live: LiveSession) -> str:
    return json.dumps(
        {
            "session_id": live.session_id,
            "origin_id": live.origin_id,
            "origin_host": live.origin_host,
            "peer_host": live.peer_host,
            "peer_realm": live.peer_realm,
            "app_id": live.app_id,
            "rating_groups": sorted(live.rating_groups),
        },
        separators=(",", ":"),
    )


def _session_of(text: str, now: float) -> LiveSession | None:
    """A LiveSession from ``_session_json``'s text, last seen ``now``; None when unreadable."""
    try:
        data = json.loads(text)
        return LiveSession(
            session_id=str(data["session_id"]),
            origin_id=str(data["origin_id"]),
            origin_host=str(data["origin_host"]),
            peer_host=str(data["peer_host"]),
            peer_realm=str(data["peer_realm"]),
            app_id=int(data["app_id"]),
            rating_groups={str(rg) for rg in data["rating_groups"]},
            seen=now,
        )
    except (ValueError, KeyError, TypeError):  # json.JSONDecodeError is a ValueError
        return None


def _allowed_peers(value: Any) -> tuple[AllowedPeer, ...] | None:
    """Option ``allowed_peers``: a list of Origin-Hosts (any address), or of
    ``{origin_host: H, addresses: [A, ...]}``; absent: any peer may connect."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("diameter allowed_peers must be a list")
    peers: list[AllowedPeer] = []
    for item in value:
        if isinstance(item, str) and item:
            peers.append(AllowedPeer(item))
            continue
        if not isinstance(item, dict) or set(item) - {"origin_host", "addresses"}:
            raise ValueError(
                f"diameter allowed_peers: {item!r} is neither an Origin-Host nor "
                "{origin_host: ..., addresses: [...]}"
            )
        host = item.get("origin_host")
        addresses = item.get("addresses", [])
        if not isinstance(host, str) or not host:
            raise ValueError(f"diameter allowed_peers: {item!r} names no origin_host")
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ValueError(f"diameter allowed_peers: addresses of {host} must be a list")
        peers.append(AllowedPeer(host, frozenset(addresses)))
    return tuple(peers)


def _tls_contexts(value: Any) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """Option ``tls`` (cert, key, ca, verify): TLS from the first byte, as (server context for
    listening, client context for connecting out); absent: plain TCP. ``verify`` (default:
    true when ``ca`` is given) requires the peer's certificate, checked against ``ca`` (else
    the system's CAs). Relative paths are relative to the repository root."""
    if value is None:
        return None, None
    if not isinstance(value, dict) or set(value) - TLS_KEYS:
        raise ValueError(f"diameter tls takes {', '.join(sorted(TLS_KEYS))}")
    cert, key, ca = value.get("cert"), value.get("key"), value.get("ca")
    if not isinstance(cert, str) or not cert:
        raise ValueError("diameter tls needs cert (a PEM file)")
    verify = value.get("verify", ca is not None)
    if not isinstance(verify, bool):
        raise ValueError("diameter tls verify must be true or false")

    def path(name: Any) -> str | None:
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise ValueError("diameter tls paths must be file names")
        found = Path(name)
        return str(found if found.is_absolute() else REPO_ROOT / found)

    cert_file, key_file, ca_file = path(cert), path(key), path(ca)
    try:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
        server.load_cert_chain(cert_file or "", key_file)
        server.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        client.load_cert_chain(cert_file or "", key_file)
        if not verify:
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"diameter tls: {exc}") from None
    return server, client
