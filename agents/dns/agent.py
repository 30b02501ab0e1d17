"""The DNS agent: each question of a query runs through the request processors
(templates/dns/*.yaml) with ``*vars.QueryType`` (``NAPTR``), ``*vars.QueryName``
(``8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa.``), ``*vars.RemoteHost`` (``127.0.0.1:5353``) and
``*vars.Transport`` (``udp``/``tcp``); the processor's ``*rep`` becomes the answer.

Answer codes the agent decides itself (the templates decide the rest through ``*rep.Rcode``):

* FORMERR: no question, or a message that cannot be parsed past its header (transport);
* NOTIMP: an opcode other than QUERY; BADVERS: an EDNS0 version other than 0 (RFC 6891);
* REFUSED: no processor matched the question (not a name we serve), or over ``max_in_flight``;
* SERVFAIL: an engine error the templates did not map to an Rcode, a template error (e.g. a
  mandatory value missing) or a ``*rep`` that cannot be encoded.

DNS has no sessions: the engine never calls a DNS agent back.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from typing import Any, Final

from agents.base import Agent, AgentContext
from agents.dns import codec
from agents.dns.codec import DnsEncodeError, DnsMessage, DnsReply, RequestView
from agents.dns.transport import (
    DEFAULT_HOST,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PORT,
    DEFAULT_TCP_IDLE,
    DEFAULT_UDP_SIZE,
    DnsServer,
)
from agents.templating import Outcome, TemplateError, Templates, load_templates, process

log = logging.getLogger("chargeflow.agents.dns")

QUERY_TYPE: Final = "QueryType"
QUERY_NAME: Final = "QueryName"
REMOTE_HOST: Final = "RemoteHost"
TRANSPORT: Final = "Transport"
RCODE: Final = "Rcode"
ERROR: Final = "Error"
MAX_UDP_SIZE: Final = 65535 - 8  # UDP payload ceiling
OPTION_KEYS: Final = frozenset(
    {
        "max_in_flight",
        "udp_size",
        "ttl",
        "tcp",
        "tcp_idle",
        "data_dir",  # accepted for symmetry with the other agents (the dry run passes one)
    }
)


class DnsAgent(Agent):
    """DNS (ENUM NAPTR, SRV, A, AAAA, TXT) answered from the engine through templates."""

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        options = dict(context.options)
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown dns option(s): {', '.join(sorted(unknown))}")
        listen = context.config.listen
        udp_size = int(context.positive("udp_size", DEFAULT_UDP_SIZE))
        if not codec.CLASSIC_UDP_SIZE <= udp_size <= MAX_UDP_SIZE:
            raise ValueError(f"dns udp_size must be within 512..{MAX_UDP_SIZE}")
        self.ttl = int(options.get("ttl", codec.DEFAULT_TTL))
        if not 0 <= self.ttl <= 0x7FFFFFFF:
            raise ValueError("dns ttl must be within 0..2147483647 seconds")
        try:
            self.templates: Templates = load_templates(context.templates_folder("dns"))
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        # Event IDs: unique per query (the engine's reply cache must never answer one query
        # with another's routes), without a uuid4 (an os.urandom call) per query.
        self._id_prefix = f"dns-{uuid.uuid4().hex}-"
        self._serial = itertools.count(1)
        self.server = DnsServer(
            self.handle,
            host=listen.host if listen else DEFAULT_HOST,
            port=listen.port if listen else DEFAULT_PORT,
            tcp=bool(options.get("tcp", True)),
            max_in_flight=int(context.positive("max_in_flight", DEFAULT_MAX_IN_FLIGHT)),
            udp_size=udp_size,
            tcp_idle=context.positive("tcp_idle", DEFAULT_TCP_IDLE),
        )

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.server.counters)

    # --------------------------------------------------------------------------- queries
    async def handle(self, message: DnsMessage, peer: tuple[str, int], transport: str) -> DnsReply:
        """The answer to one query (every question through the processors)."""
        if message.opcode != codec.OPCODE_QUERY:
            return DnsReply(rcode=codec.NOTIMP)
        if not message.questions:
            return DnsReply(rcode=codec.FORMERR)
        if message.edns is not None and message.edns.version != 0:
            return DnsReply(rcode=codec.BADVERS)
        request = RequestView(message)
        remote = f"{peer[0]}:{peer[1]}"
        if len(message.questions) == 1:  # the usual query: its answer is the query's
            return await self._question(request, message.questions[0], remote, transport)
        reply = DnsReply()
        for question in message.questions:
            part = await self._question(request, question, remote, transport)
            if part.rcode != codec.NOERROR:
                return part  # one failing question fails the query (as CGRateS does)
            _merge(reply, part)
        return reply

    async def _question(
        self, request: RequestView, question: codec.Question, remote: str, transport: str
    ) -> DnsReply:
        variables: dict[str, Any] = {
            QUERY_TYPE: question.type_name,
            QUERY_NAME: question.name.lower(),  # names are case-insensitive (RFC 4343)
            REMOTE_HOST: remote,
            TRANSPORT: transport,
        }
        try:
            outcome = await process(
                self.templates,
                request,
                variables,
                self.engine,
                event_id=f"{self._id_prefix}{next(self._serial)}",
            )
        except TemplateError as exc:
            log.info("dns %s %s from %s: %s", question.type_name, question.name, remote, exc)
            return DnsReply(rcode=codec.SERVFAIL)
        if self.observe_processing is not None:
            self.observe_processing(outcome)
        if not outcome.matched:
            log.debug("dns: no processor for %s %s", question.type_name, question.name)
            return DnsReply(rcode=codec.REFUSED)
        nodes = outcome.reply.nodes
        try:
            part = codec.reply_from_tree(nodes, question, self.ttl)
        except DnsEncodeError as exc:
            log.warning("dns %s %s: bad *rep: %s", question.type_name, question.name, exc)
            return DnsReply(rcode=codec.SERVFAIL)
        if RCODE not in nodes:
            error = _engine_error(outcome)
            if error:
                log.info("dns %s %s: engine error %s", question.type_name, question.name, error)
                return DnsReply(rcode=codec.SERVFAIL)
        return part


def _engine_error(outcome: Outcome) -> str:
    found = outcome.cgrep.get((ERROR,))
    return str(found[0]) if found and found[0] else ""


def _merge(reply: DnsReply, part: DnsReply) -> None:
    reply.authoritative = reply.authoritative or part.authoritative
    reply.recursion_available = reply.recursion_available or part.recursion_available
    reply.authenticated_data = reply.authenticated_data or part.authenticated_data
    reply.answers.extend(part.answers)
    reply.authority.extend(part.authority)
    reply.additional.extend(part.additional)
    reply.options.extend(part.options)
    if part.id is not None:
        reply.id = part.id
