"""SessionSv1: the CGRateS session API (flags beside the CGREvent, replies as CGRateS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

from core.api._params import ERR_MANDATORY_IE_MISSING, ERR_NOT_FOUND, OK, as_object, cgr_event
from core.cdrs.service import CdrService
from core.charging import ChargingError
from core.filters.event import CGREvent
from core.rpc import CallContext, MethodRegistry, RpcError
from core.sessions.reply_cache import ReplyCache
from core.sessions.service import SessionService
from core.types import SECOND, zone

# Processes an event through AttributeS in a context; returns the altered event and the
# AttributeSv1.ProcessEvent reply. Raises RpcError (e.g. NOT_FOUND).
AttributesOf = Callable[[CGREvent, str], Awaitable[tuple[CGREvent, dict[str, Any]]]]
# Does an event pass FilterIDs (inline or stored) in a tenant? Raises RpcError on a bad filter.
EventFilter = Callable[[str, list[str], CGREvent], bool]
# RouteS for an event, given the session call's arguments (RoutesMaxCost, ...): the
# SortedRoutesList. Raises RpcError ("ROUTES_ERROR:...").
RoutesOf = Callable[[CGREvent, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]

CONTEXT_SESSIONS: Final = "*sessions"
ERR_SUBSYSTEMS_MISSING: Final = f"{ERR_MANDATORY_IE_MISSING}: [subsystems]"
# ProcessEvent flags (v0.11 names, with the v0.10 *rals alias).
FLAG_ATTRIBUTES: Final = "*attributes"
FLAG_ACCOUNTS: Final = "*accounts"
FLAG_RALS: Final = "*rals"
FLAG_AUTHORIZE: Final = "*authorize"
FLAG_INITIATE: Final = "*initiate"
FLAG_UPDATE: Final = "*update"
FLAG_TERMINATE: Final = "*terminate"
FLAG_MESSAGE: Final = "*message"
FLAG_CDRS: Final = "*cdrs"
CHARGING_STEPS: Final = frozenset(
    {FLAG_AUTHORIZE, FLAG_INITIATE, FLAG_UPDATE, FLAG_TERMINATE, FLAG_MESSAGE}
)
# Sub-flags of *rals accepted and not acted on: *fd (force duration) and *derived_reply (a
# MaxUsage per run; the reply has the *default one).
CHARGING_OPTIONS: Final = frozenset({"*fd", "*derived_reply"})
FLAG_ROUTES: Final = "*routes"
# *routes options: as sub-flags (``*routes:*ignore_errors``, ``*routes:*event_cost``,
# ``*routes:*maxcost:0.5``, CGRateS v0.11's ProcessEvent) or as the agents' flat flags
# (``*routes_ignore_errors``, ``*routes_event_cost``, ``*routes_maxcost:0.5``).
ROUTES_IGNORE_ERRORS: Final = "*ignore_errors"
ROUTES_EVENT_COST: Final = "*event_cost"
ROUTES_MAX_COST: Final = "*maxcost"
FLAG_ROUTES_IGNORE_ERRORS: Final = "*routes_ignore_errors"
FLAG_ROUTES_EVENT_COST: Final = "*routes_event_cost"
FLAG_ROUTES_MAX_COST: Final = "*routes_maxcost"
PAGING: Final = ("Limit", "Offset", "MaxItems")  # CGRateS's utils.Paginator, beside the event
RUN_RAW: Final = "*raw"  # the reply key of the event as received (no charger run)
_FLAG_PARTS: Final = 3  # flag, option, values
FlagParams = dict[str, dict[str, list[str]]]


def _flag(args: Mapping[str, Any], *names: str) -> bool:
    # A loop, not any(<generator>): a few of these run for every request.
    for name in names:  # noqa: SIM110
        if args.get(name) is True:
            return True
    return False


def flag_params(raw_flags: list[Any]) -> FlagParams:
    """CGRateS's FlagsWithParams: ``flag[:option[:value&value...]]`` -> {flag: {option: values}}."""
    parsed: FlagParams = {}
    for raw in raw_flags:
        flag, *rest = str(raw).split(":", _FLAG_PARTS - 1)
        options = parsed.setdefault(flag, {})
        if rest:
            options[rest[0]] = rest[1].split("&") if len(rest) > 1 else []
    return parsed


def charging_steps(flags: FlagParams) -> set[str]:
    """The charging steps a ProcessEvent's flags ask for: v0.11's ``*accounts`` with top-level
    ``*authorize``/``*initiate``/``*update``/``*terminate``/``*message``, or v0.10's sub-flags
    ``*rals:*initiate`` (also ``*accounts:*initiate``). A charging flag with no step, or a
    sub-flag that is no step, is an error: it would charge nothing without saying so."""
    steps = flags.keys() & CHARGING_STEPS
    charging = [name for name in (FLAG_ACCOUNTS, FLAG_RALS) if name in flags]
    for name in charging:
        for option in flags[name]:
            if option in CHARGING_STEPS:
                steps.add(option)
            elif option not in CHARGING_OPTIONS:
                raise RpcError(f"SERVER_ERROR: unknown flag {name}:{option}")
    if charging and not steps:
        raise RpcError(f"{ERR_MANDATORY_IE_MISSING}: [{'|'.join(sorted(CHARGING_STEPS))}]")
    return steps


def _first_value(values: list[str] | None) -> str:
    return next((value for value in values or () if value), "")


def routes_args(flags: FlagParams, args: Mapping[str, Any]) -> dict[str, Any]:
    """The GetRoutes options a ProcessEvent's flags ask for, as a session call names them."""
    options = flags.get(FLAG_ROUTES, {})
    routes: dict[str, Any] = {}
    if ROUTES_IGNORE_ERRORS in options or FLAG_ROUTES_IGNORE_ERRORS in flags:
        routes["RoutesIgnoreErrors"] = True
    if ROUTES_EVENT_COST in options or FLAG_ROUTES_EVENT_COST in flags:
        routes["RoutesMaxCost"] = ROUTES_EVENT_COST
    else:
        max_cost = _first_value(options.get(ROUTES_MAX_COST))
        flat = flags.get(FLAG_ROUTES_MAX_COST, {})
        routes["RoutesMaxCost"] = max_cost or next(iter(flat), "")
    if isinstance(args.get("Paginator"), Mapping):
        routes["Paginator"] = args["Paginator"]
    else:
        paging = {name: args[name] for name in PAGING if args.get(name) is not None}
        if paging:
            routes["Paginator"] = paging
    return routes


def _seconds(usage: int) -> Decimal:
    """The *WithDigest replies carry MaxUsage in seconds (a float in CGRateS)."""
    return Decimal(usage) / SECOND


def _digest(attributes: dict[str, Any] | None, event: CGREvent) -> str:
    """AttributesDigest: ``Field:value`` for each altered field, comma-joined."""
    if not attributes:
        return ""
    parts = []
    for path in attributes.get("AlteredFields") or []:
        name = str(path).removeprefix("*req.")
        parts.append(f"{name}:{event.event.get(name, '')}")
    return ",".join(parts)


def _routes_digest(routes: list[dict[str, Any]] | None) -> str | None:
    """CGRateS's ``SortedRoutesList.Digest``: ``RouteID[:RouteParameters]``, comma-joined."""
    if routes is None:
        return None
    return ",".join(
        f"{route['RouteID']}:{route['RouteParameters']}"
        if route["RouteParameters"]
        else route["RouteID"]
        for reply in routes
        for route in reply["Routes"]
    )


T = TypeVar("T")


def _rpc_error(error: Exception) -> Exception:
    """A charging error as the reply's error (its text); any other error as it is."""
    return RpcError(str(error)) if isinstance(error, ChargingError) else error


def register(
    registry: MethodRegistry,
    sessions: SessionService,
    cdrs: CdrService,
    attributes_of: AttributesOf | None,
    event_filter: EventFilter | None = None,
    *,
    default_tenant: str,
    timezone: str,
    routes_of: RoutesOf | None = None,
) -> None:
    tz = zone(timezone)
    cache = ReplyCache(sessions.config.reply_cache_ttl, failure=_rpc_error)

    def event_of(params: Any) -> tuple[Mapping[str, Any], CGREvent]:
        args = as_object(params)
        return args, cgr_event(args, default_tenant, tz)

    async def with_attributes(
        args: Mapping[str, Any], event: CGREvent
    ) -> tuple[CGREvent, dict[str, Any] | None]:
        if not _flag(args, "GetAttributes"):
            return event, None
        if attributes_of is None:
            raise RpcError("ATTRIBUTES_ERROR:NOT_CONNECTED")
        context = str(event.opts.get("*context") or args.get("Context") or CONTEXT_SESSIONS)
        try:
            return await attributes_of(event, context)
        except RpcError as exc:
            raise RpcError(f"ATTRIBUTES_ERROR:{exc}") from None

    async def with_routes(args: Mapping[str, Any], event: CGREvent) -> list[dict[str, Any]] | None:
        if not _flag(args, "GetRoutes", "GetSuppliers"):
            return None
        if routes_of is None:
            raise RpcError("ROUTES_ERROR:NOT_CONNECTED")
        return await routes_of(event, args)

    def cached(method: str, event: CGREvent, work: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return cache.run(method, event.tenant, event.id, work)

    # ---------------------------------------------------------------------------- authorize
    async def authorize_reply(
        args: Mapping[str, Any], event: CGREvent
    ) -> tuple[dict[str, Any], CGREvent]:
        """The reply and the event as AttributeS left it (the digest replies read it)."""
        if not _flag(args, "GetAttributes", "AuthorizeResources", "GetMaxUsage", "GetRoutes",
                     "GetSuppliers"):  # fmt: skip
            raise RpcError(ERR_SUBSYSTEMS_MISSING)
        event, attributes = await with_attributes(args, event)
        max_usage = None
        if _flag(args, "GetMaxUsage"):
            max_usage = await sessions.max_usage(event)
        reply = {
            "Attributes": attributes,
            "ResourceAllocation": None,
            "MaxUsage": max_usage,
            "Routes": await with_routes(args, event),
            "ThresholdIDs": None,
            "StatQueueIDs": None,
        }
        return reply, event

    async def authorize(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)
        reply, _altered = await cached(
            "AuthorizeEvent", event, lambda: authorize_reply(args, event)
        )
        result: dict[str, Any] = reply
        return result

    async def authorize_digest(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)
        reply, altered = await cached(
            "AuthorizeEventWithDigest", event, lambda: authorize_reply(args, event)
        )
        max_usage = reply["MaxUsage"]
        return {
            "AttributesDigest": _digest(reply["Attributes"], altered),
            "ResourceAllocation": None,
            "MaxUsage": _seconds(max_usage) if max_usage is not None else 0,
            "RoutesDigest": _routes_digest(reply["Routes"]),
            "Thresholds": None,
            "StatQueues": None,
        }

    # ----------------------------------------------------------------------------- initiate
    async def initiate_reply(
        args: Mapping[str, Any], event: CGREvent, ctx: CallContext
    ) -> tuple[dict[str, Any], CGREvent]:
        if not _flag(args, "GetAttributes", "AllocateResources", "InitSession"):
            raise RpcError(ERR_SUBSYSTEMS_MISSING)
        event, attributes = await with_attributes(args, event)
        max_usage = None
        if _flag(args, "InitSession"):
            max_usage = await sessions.initiate(event, ctx.connection)
        reply = {
            "Attributes": attributes,
            "ResourceAllocation": None,
            "MaxUsage": max_usage,
            "ThresholdIDs": None,
            "StatQueueIDs": None,
        }
        return reply, event

    async def initiate(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)
        reply, _altered = await cached(
            "InitiateSession", event, lambda: initiate_reply(args, event, ctx)
        )
        result: dict[str, Any] = reply
        return result

    async def initiate_digest(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)
        reply, altered = await cached(
            "InitiateSessionWithDigest", event, lambda: initiate_reply(args, event, ctx)
        )
        max_usage = reply["MaxUsage"]
        return {
            "AttributesDigest": _digest(reply["Attributes"], altered),
            "ResourceAllocation": None,
            "MaxUsage": _seconds(max_usage) if max_usage is not None else 0,
            "Thresholds": None,
            "StatQueues": None,
        }

    # ------------------------------------------------------------------------ update, end
    async def update(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)

        async def work() -> dict[str, Any]:
            if not _flag(args, "GetAttributes", "UpdateSession"):
                raise RpcError(ERR_SUBSYSTEMS_MISSING)
            altered, attributes = await with_attributes(args, event)
            max_usage = None
            if _flag(args, "UpdateSession"):
                max_usage = await sessions.update(altered, ctx.connection)
            return {"Attributes": attributes, "MaxUsage": max_usage}

        result: dict[str, Any] = await cached("UpdateSession", event, work)
        return result

    async def terminate(params: Any, ctx: CallContext) -> str:
        args, event = event_of(params)

        async def work() -> str:
            if not _flag(args, "TerminateSession", "ReleaseResources", "ProcessThresholds",
                         "ProcessStats"):  # fmt: skip
                raise RpcError(ERR_SUBSYSTEMS_MISSING)
            if _flag(args, "TerminateSession"):
                await sessions.terminate(event, ctx.connection)
            return OK

        result: str = await cached("TerminateSession", event, work)
        return result

    async def process_cdr(params: Any, ctx: CallContext) -> str:
        _args, event = event_of(params)

        async def work() -> str:
            await cdrs.process_event(event)
            return OK

        result: str = await cached("ProcessCDR", event, work)
        return result

    # --------------------------------------------------------------------- message, event
    async def process_message(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)

        async def work() -> dict[str, Any]:
            if not _flag(args, "GetAttributes", "AllocateResources", "Debit", "GetRoutes",
                         "GetSuppliers", "ProcessThresholds", "ProcessStats"):  # fmt: skip
                raise RpcError(ERR_SUBSYSTEMS_MISSING)
            altered, attributes = await with_attributes(args, event)
            max_usage = None
            if _flag(args, "Debit"):
                max_usage = await charge_message(altered, ctx)
            return {
                "MaxUsage": max_usage,
                "ResourceAllocation": None,
                "Attributes": attributes,
                "Routes": await with_routes(args, altered),
                "ThresholdIDs": None,
                "StatQueueIDs": None,
            }

        result: dict[str, Any] = await cached("ProcessMessage", event, work)
        return result

    async def charge_message(event: CGREvent, ctx: CallContext) -> int:
        """An event charged at once (SMS, a one-shot debit): a session opened, charged for its
        Usage and terminated, so the CDR that follows takes its cost."""
        usage = sessions.requested_usage(event)
        granted = await sessions.initiate(event, ctx.connection)
        terminating = CGREvent(event.tenant, event.id, event.time, dict(event.event), event.opts)
        terminating.event["Usage"] = min(granted, usage)
        await sessions.terminate(terminating, ctx.connection)
        return min(granted, usage)

    async def process_event(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_of(params)
        raw_flags = args.get("Flags") or []
        if not isinstance(raw_flags, list):
            raise RpcError("SERVER_ERROR: invalid params: Flags must be a list")
        flag_options = flag_params(raw_flags)
        flags = set(flag_options)
        steps = charging_steps(flag_options)

        async def work() -> dict[str, Any]:
            altered = event
            attributes = None
            if FLAG_ATTRIBUTES in flags:
                altered, attributes = await with_attributes({"GetAttributes": True}, event)
            # Routes before any charge, as CGRateS: a routing error debits nothing.
            route_profiles = None
            if FLAG_ROUTES in flags:
                # CGRateS's getDerivedEvents without charger runs: the one *raw event.
                route_profiles = {
                    RUN_RAW: await with_routes(
                        {"GetRoutes": True, **routes_args(flag_options, args)}, altered
                    )
                }
            max_usage: dict[str, int] = {}
            if steps:
                if FLAG_AUTHORIZE in steps:
                    max_usage["*default"] = await sessions.max_usage(altered)
                if FLAG_INITIATE in steps:
                    max_usage["*default"] = await sessions.initiate(altered, ctx.connection)
                if FLAG_UPDATE in steps:
                    max_usage["*default"] = await sessions.update(altered, ctx.connection)
                if FLAG_TERMINATE in steps:
                    await sessions.terminate(altered, ctx.connection)
                if FLAG_MESSAGE in steps:
                    max_usage["*default"] = await charge_message(altered, ctx)
            if FLAG_CDRS in flags:
                await cdrs.process_event(altered)
            return {
                "MaxUsage": max_usage or None,
                "Attributes": attributes,
                "ResourceAllocation": None,
                "RouteProfiles": route_profiles,
                "ThresholdIDs": None,
                "StatQueueIDs": None,
            }

        result: dict[str, Any] = await cached("ProcessEvent", event, work)
        return result

    # ------------------------------------------------------------------------------ queries
    def selected(params: Any) -> list[Any]:
        """Sessions by CGRateS's FilterWithPaginator: Tenant, Filters (FilterIDs), Limit."""
        args = params if isinstance(params, Mapping) else {}
        tenant = str(args.get("Tenant") or "")
        filter_ids = args.get("Filters") or []
        if not isinstance(filter_ids, list):
            raise RpcError("SERVER_ERROR: invalid params: Filters must be a list")
        predicate = None
        if filter_ids:
            if event_filter is None:
                raise RpcError("FILTERS_ERROR:NOT_CONNECTED")
            ids = [str(item) for item in filter_ids]

            def predicate(session: Any) -> bool:
                return event_filter(session.event.tenant, ids, session.event)

        found = sessions.find(tenant, predicate)
        limit = args.get("Limit")
        if isinstance(limit, int) and limit > 0:
            found = found[:limit]
        return found

    def get_active(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        rows = [row for session in selected(params) for row in session.external(sessions.node_id)]
        if not rows:
            raise RpcError(ERR_NOT_FOUND)
        return rows

    def count_active(params: Any, ctx: CallContext) -> int:
        return sum(len(session.runs) for session in selected(params))

    async def force_disconnect(params: Any, ctx: CallContext) -> str:
        targets = selected(params)
        if not targets:
            raise RpcError(ERR_NOT_FOUND)
        for session in targets:
            await sessions.disconnect(session, "FORCED_DISCONNECT")
        return OK

    async def sync_sessions(params: Any, ctx: CallContext) -> str:
        await sessions.sync()
        return OK

    handlers: dict[str, Callable[[Any, CallContext], Any]] = {
        "AuthorizeEvent": authorize,
        "AuthorizeEventWithDigest": authorize_digest,
        "InitiateSession": initiate,
        "InitiateSessionWithDigest": initiate_digest,
        "UpdateSession": update,
        "TerminateSession": terminate,
        "ProcessCDR": process_cdr,
        "ProcessMessage": process_message,
        "ProcessEvent": process_event,
        "GetActiveSessions": get_active,
        "GetActiveSessionsCount": count_active,
        "ForceDisconnect": force_disconnect,
        "SyncSessions": sync_sessions,
    }
    for name, handler in handlers.items():
        registry.register(f"SessionSv1.{name}", handler)
