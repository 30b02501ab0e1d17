"""Running request processors: fields -> CGREvent -> SessionSv1 call(s) -> reply fields."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.flags import (
    CDRS,
    CONTINUE,
    DRY_RUN,
    LOG,
    SESSION_CDR,
    SESSION_EVENT,
    SESSION_MESSAGE,
    CallPlan,
)
from agents.templating.loader import Processor, Templates
from agents.templating.trees import MemoTree, ReplyTree, RequestTree
from core.rpc import EngineClient, RpcError
from core.types import format_time

log = logging.getLogger("chargeflow.agents.templating")

REQ: Final = "*req"
VARS: Final = "*vars"
CGREQ: Final = "*cgreq"
CGREP: Final = "*cgrep"
REP: Final = "*rep"
OPTS: Final = "*opts"
TMP: Final = "*tmp"
ERROR: Final = "Error"
MAX_USAGE: Final = "MaxUsage"
USAGE: Final = "Usage"
OK: Final = "OK"
RALS_ERROR_PREFIX: Final = "RALS_ERROR"
ATTRIBUTES: Final = "Attributes"
REQ_PREFIX: Final = "*req."
REPLY_RENAMES: Final = {"ThresholdIDs": "Thresholds", "StatQueueIDs": "StatQueues"}
# Connection-level failures count as engine errors: they land in *cgrep.Error.
ENGINE_FAILURES: Final = (RpcError, TimeoutError, ConnectionError)


@dataclass(frozen=True, slots=True)
class EngineCall:
    method: str
    params: dict[str, Any]
    reply: Any = None
    error: str = ""


@dataclass(slots=True)
class Outcome:
    """What processing a request did."""

    matched: bool = False
    processors: list[str] = field(default_factory=list)  # ids of the processors that ran
    calls: list[EngineCall] = field(default_factory=list)
    trees: dict[str, ReplyTree] = field(default_factory=dict)  # every writable tree

    @property
    def processor(self) -> str:
        """The first processor that matched ("" when none)."""
        return self.processors[0] if self.processors else ""

    @property
    def reply(self) -> ReplyTree:
        return self.trees[REP]

    @property
    def cgrep(self) -> ReplyTree:
        return self.trees[CGREP]


async def process(
    templates: Templates,
    request_tree: RequestTree,
    vars: Mapping[str, Any],
    client: EngineClient,
    reply_tree: ReplyTree | None = None,
    *,
    trees: Mapping[str, RequestTree] | None = None,
    event_id: str | None = None,
) -> Outcome:
    """Runs the processors in order: the first whose filters pass runs, and the next ones
    only while the one that ran has ``*continue``.

    ``vars`` are the agent's variables (``*vars``); ``trees`` further named request trees
    (e.g. ``*oreq``); ``event_id`` the CGREvent ID (give a stable one, e.g. Session-Id plus
    request number, so the engine recognises retransmissions; a UUID otherwise).
    Engine errors become ``*cgrep.Error``; TemplateError is raised for a mandatory field
    without value or a value that cannot be computed.
    """
    all_trees = _trees(templates, request_tree, vars, reply_tree, trees)
    outcome = Outcome(
        trees={name: tree for name, tree in all_trees.items() if isinstance(tree, ReplyTree)}
    )
    for processor, passes in templates.candidates(all_trees):
        if not passes(all_trees, processor):
            continue
        outcome.matched = True
        outcome.processors.append(processor.id)
        await _run(processor, templates, all_trees, client, outcome, event_id)
        if not processor.flags.has(CONTINUE):
            break
    return outcome


def plan(
    templates: Templates,
    request_tree: RequestTree,
    vars: Mapping[str, Any],
    reply_tree: ReplyTree | None = None,
    *,
    engine_reply: Any = None,
    engine_error: str = "",
    trees: Mapping[str, RequestTree] | None = None,
    event_id: str | None = None,
) -> Outcome:
    """``process`` without an engine: every call gets ``engine_reply`` (``"OK"`` for
    TerminateSession/ProcessCDR) or fails with ``engine_error``. Synchronous and pure."""
    client = _CannedClient(engine_reply, engine_error)
    return _run_to_end(
        process(templates, request_tree, vars, client, reply_tree, trees=trees, event_id=event_id)
    )


class _CannedClient:
    def __init__(self, reply: Any, error: str) -> None:
        self.reply = reply
        self.error = error

    async def call(self, method: str, params: Any) -> Any:
        if self.error:
            raise RpcError(self.error)
        if method.endswith(("TerminateSession", "ProcessCDR")):
            return OK
        return self.reply


def _run_to_end(coroutine: Coroutine[Any, Any, Outcome]) -> Outcome:
    # The canned client never suspends, so the coroutine finishes on its first step; this
    # keeps plan() usable inside a running event loop.
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: Outcome = done.value
        return result
    coroutine.close()
    raise RuntimeError("plan() awaited something real")


def _trees(
    templates: Templates,
    request_tree: RequestTree,
    vars: Mapping[str, Any],
    reply_tree: ReplyTree | None,
    extra: Mapping[str, RequestTree] | None,
) -> dict[str, RequestTree]:
    trees: dict[str, RequestTree] = {}
    for name in templates.writable_trees:  # a loop: no comprehension frame per request
        trees[name] = ReplyTree()
    trees[VARS] = ReplyTree.from_data(vars)
    trees[REP] = reply_tree if reply_tree is not None else ReplyTree()
    if extra:
        for name, tree in extra.items():
            if name not in templates.read_only_trees and not isinstance(tree, ReplyTree):
                raise TemplateError(f"tree {name} is writable: pass a ReplyTree")
            trees[name] = _memo(tree) if name in templates.read_only_trees else tree
    # _memo in line (once per request)
    trees[REQ] = request_tree if isinstance(request_tree, ReplyTree) else MemoTree(request_tree)
    return trees


def _memo(tree: RequestTree) -> RequestTree:
    # A ReplyTree stays itself: it is cheap to read, and Outcome.trees shows it as before.
    return tree if isinstance(tree, ReplyTree) else MemoTree(tree)


async def _run(
    processor: Processor,
    templates: Templates,
    trees: dict[str, RequestTree],
    client: EngineClient,
    outcome: Outcome,
    event_id: str | None,
) -> None:
    tenant = _tenant(processor, templates, trees)
    processor.apply_request(trees, processor, processor.timezone)
    cgreq, opts, cgrep = trees[CGREQ], trees[OPTS], trees[CGREP]
    assert isinstance(cgreq, ReplyTree) and isinstance(opts, ReplyTree)
    assert isinstance(cgrep, ReplyTree)
    event = {
        "Tenant": tenant,
        "ID": event_id or str(uuid.uuid4()),
        "Time": format_time(datetime.now(UTC)),
        "Event": cgreq.to_data(),
        "APIOpts": opts.to_data(),
    }
    flags = processor.flags
    if flags.has(LOG) or flags.request_type == DRY_RUN:
        label = "DRY_RUN" if flags.request_type == DRY_RUN else "LOG"
        log.info("%s, processorID: <%s>, CGREvent: %s", label, processor.id, event)
    main = processor.call
    if main is not None:
        await _main_call(main, event, client, outcome, cgrep)
    if flags.on(CDRS) and not flags.has(DRY_RUN):
        _, error = await _call(client, SESSION_CDR, event, outcome)
        if error:
            cgrep.set((ERROR,), error)
        elif main is None:
            cgrep.set((ERROR,), "")
    processor.apply_reply(trees, processor, processor.timezone)
    if flags.has(LOG) or flags.request_type == DRY_RUN:
        log.info("processorID: <%s>, reply: %s", processor.id, trees[REP])


async def _main_call(
    main: CallPlan, event: dict[str, Any], client: EngineClient, outcome: Outcome, cgrep: ReplyTree
) -> None:
    # The plan is shared by every request of the processor: its lists are copied, not lent.
    params = {
        key: list(value) if isinstance(value, list) else value
        for key, value in main.arguments.items()
    }
    params.update(event)
    reply, error = await _call(client, main.method, params, outcome)
    cgrep.clear()
    if not error and isinstance(reply, Mapping):
        cgrep.nodes.update(ReplyTree.from_data(cgr_reply(main, reply)).nodes)
    cgrep.set((ERROR,), error)
    # The CDR that may follow must reflect what was debited (CGRateS does the same).
    if main.method in (SESSION_MESSAGE, SESSION_EVENT):
        # A new dict: the one sent stays as it was in Outcome.calls.
        if error.startswith(RALS_ERROR_PREFIX):
            event["Event"] = {**event["Event"], USAGE: 0}
        elif main.method == SESSION_MESSAGE and main.arguments.get("Debit") and not error:
            usage = (reply.get(MAX_USAGE) if isinstance(reply, Mapping) else 0) or 0
            event["Event"] = {**event["Event"], USAGE: usage}


def cgr_reply(main: CallPlan, reply: Mapping[str, Any]) -> dict[str, Any]:
    """The engine reply as CGRateS's AsNavigableMap shows it to templates: nulls dropped,
    ``Attributes`` as ``{field: new value}`` of the altered fields, ``ThresholdIDs`` and
    ``StatQueueIDs`` as ``Thresholds``/``StatQueues``, ``MaxUsage`` only when asked for."""
    data: dict[str, Any] = {}
    for key, value in reply.items():
        if value is None:
            continue
        if key == ATTRIBUTES:
            value = _altered(value)
        data[REPLY_RENAMES.get(key, key)] = value
    if main.max_usage_flag:
        # As CGRateS's SetMaxUsageNeeded: MaxUsage only when asked for, then 0 if null.
        if main.arguments.get(main.max_usage_flag):
            data[MAX_USAGE] = reply.get(MAX_USAGE) or 0
        else:
            data.pop(MAX_USAGE, None)
    return data


def _altered(attributes: Any) -> Any:
    """``{field: value}`` for an AttributeS reply; per run ID for ProcessEvent's map."""
    if not isinstance(attributes, Mapping):
        return attributes
    if "AlteredFields" not in attributes:
        return {key: _altered(value) for key, value in attributes.items()}
    event = attributes.get("CGREvent") or {}
    fields = event.get("Event") or {} if isinstance(event, Mapping) else {}
    out: dict[str, Any] = {}
    for path in attributes.get("AlteredFields") or []:
        name = str(path).removeprefix(REQ_PREFIX)
        if name in fields:
            out[name] = fields[name]
    return out


async def _call(
    client: EngineClient, method: str, params: dict[str, Any], outcome: Outcome
) -> tuple[Any, str]:
    try:
        reply = await client.call(method, params)
    except ENGINE_FAILURES as exc:
        error = str(exc) or type(exc).__name__
        outcome.calls.append(EngineCall(method, params, None, error))
        return None, error
    outcome.calls.append(EngineCall(method, params, reply))
    return reply, ""


def _tenant(processor: Processor, templates: Templates, trees: Mapping[str, RequestTree]) -> str:
    if processor.tenant is None:
        return templates.default_tenant
    try:
        return processor.tenant.text(trees) or templates.default_tenant
    except NotFoundError:
        return templates.default_tenant
