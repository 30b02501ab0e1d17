"""RouteSv1 (GetRoutes, GetRoutesList, GetRouteProfilesForEvent) and the route profile methods.

GetRoutes takes a CGREvent with, as CGRateS v0.10/v0.11 does, ``IgnoreErrors``, ``MaxCost`` (a
number or ``*event_cost``) and the paginator ``Limit``/``Offset``/``MaxItems`` beside it (or
``Paginator: {Limit, Offset, MaxItems}``), or as APIOpts ``*routesIgnoreErrors``,
``*routesMaxCost``, ``*routesLimit``, ``*routesOffset``, ``*routesMaxItems``,
``*routesProfilesCount`` (CGRateS 1.0's names; v0.11's ``*rou…`` and ``*profileCount`` too).
The reply is CGRateS's ``SortedRoutesList``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import tzinfo
from decimal import Decimal
from typing import Any, Final

from core.api._params import as_object, cgr_event, server_error, text
from core.api._profiles import ProfileKind, register_profile_api
from core.api.filters import interval_from_wire, interval_to_wire, string_list
from core.config import GeneralConfig
from core.filters import CGREvent, FilterError
from core.routes import RouteQuery, RouteSError, RouteService, SortedRoutes
from core.routes.service import MAX_COST_EVENT, check_route_profile
from core.rpc import CallContext, MethodRegistry, RpcError
from core.tariffplan import KIND_ROUTES
from core.tariffplan.loader import TariffPlanLoader
from core.tariffplan.models import Route, RouteProfile
from core.types import InvalidValue, to_money, zone


def _money(value: Any, name: str) -> Decimal:
    try:
        money = to_money(value or 0)
    except (InvalidValue, ArithmeticError) as exc:
        raise server_error(f"invalid params: {name}: {exc}") from None
    if not money.is_finite():
        raise server_error(f"invalid params: {name} must be a finite number")
    return money


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def route_from_wire(args: Mapping[str, Any]) -> Route:
    return Route(
        text(args, "ID"),
        filter_ids=string_list(args, "FilterIDs"),
        account_ids=string_list(args, "AccountIDs"),
        rating_plan_ids=string_list(args, "RatingPlanIDs"),
        resource_ids=string_list(args, "ResourceIDs"),
        stat_ids=string_list(args, "StatIDs"),
        weight=_money(args.get("Weight"), "Weight"),
        blocker=_flag(args.get("Blocker")),
        route_parameters=text(args, "RouteParameters"),
    )


def route_profile_from_wire(args: Mapping[str, Any], tenant: str, timezone: tzinfo) -> RouteProfile:
    raw_routes = args.get("Routes") or []
    if not isinstance(raw_routes, list):
        raise server_error("invalid params: Routes must be a list")
    return RouteProfile(
        tenant,
        text(args, "ID"),
        filter_ids=string_list(args, "FilterIDs"),
        activation_interval=interval_from_wire(args.get("ActivationInterval"), timezone),
        sorting=text(args, "Sorting"),
        sorting_parameters=string_list(args, "SortingParameters"),
        routes=tuple(route_from_wire(as_object(raw)) for raw in raw_routes),
        weight=_money(args.get("Weight"), "Weight"),
    )


def route_to_wire(route: Route) -> dict[str, Any]:
    return {
        "ID": route.id,
        "FilterIDs": list(route.filter_ids),
        "AccountIDs": list(route.account_ids),
        "RatingPlanIDs": list(route.rating_plan_ids),
        "ResourceIDs": list(route.resource_ids),
        "StatIDs": list(route.stat_ids),
        "Weight": route.weight,
        "Blocker": route.blocker,
        "RouteParameters": route.route_parameters,
    }


def route_profile_to_wire(profile: RouteProfile) -> dict[str, Any]:
    return {
        "Tenant": profile.tenant,
        "ID": profile.id,
        "FilterIDs": list(profile.filter_ids),
        "ActivationInterval": interval_to_wire(profile.activation_interval),
        "Sorting": profile.sorting,
        "SortingParameters": list(profile.sorting_parameters),
        "Routes": [route_to_wire(route) for route in profile.routes],
        "Weight": profile.weight,
    }


def _check(profile: RouteProfile) -> None:
    try:
        check_route_profile(profile)
    except (FilterError, InvalidValue) as exc:
        raise server_error(exc) from None


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        raise server_error(f"invalid params: {name} must be an integer") from None
    if number < 0:
        raise server_error(f"invalid params: {name} must not be negative")
    return number


_PAGING: Final = ("Limit", "Offset", "MaxItems")
_QUERY_ARGS: Final = frozenset({"MaxCost", "IgnoreErrors", *_PAGING})
_ROUTE_OPTS_PREFIXES: Final = ("*rou", "*profileCount")  # *routes…, *rou… (v0.11)
_DEFAULT_QUERY: Final = RouteQuery()


def route_query_of(args: Mapping[str, Any]) -> RouteQuery:
    """The GetRoutes options: arguments beside the event, else ``*routes…`` APIOpts."""
    opts = args.get("APIOpts") or args.get("Opts") or {}
    if not isinstance(opts, Mapping):
        opts = {}
    paginator = args.get("Paginator") or {}
    if not isinstance(paginator, Mapping):
        paginator = {}
    if (
        not paginator
        and _QUERY_ARGS.isdisjoint(args)
        and not any(str(name).startswith(_ROUTE_OPTS_PREFIXES) for name in opts)
    ):
        return _DEFAULT_QUERY  # the common call: nothing but the event

    def pick(name: str, *names: str) -> Any:
        for source in (args, paginator):
            if source.get(name) is not None:
                return source[name]
        return next((opts[opt] for opt in names if opts.get(opt) is not None), None)

    raw_max_cost = pick("MaxCost", "*routesMaxCost", "*rouMaxCost")
    max_cost = None
    max_cost_event = isinstance(raw_max_cost, str) and raw_max_cost == MAX_COST_EVENT
    if raw_max_cost is not None and raw_max_cost != "" and not max_cost_event:
        max_cost = _money(raw_max_cost, "MaxCost") or None  # 0: no max cost, as CGRateS
    limit = _int(pick("Limit", "*routesLimit", "*rouLimit"), "Limit")
    offset = _int(pick("Offset", "*routesOffset", "*rouOffset"), "Offset") or 0
    max_items = _int(pick("MaxItems", "*routesMaxItems", "*rouMaxItems"), "MaxItems")
    count = None
    for name in _PROFILE_COUNT_OPTS:
        if opts.get(name) is not None:
            count = _int(opts[name], name)
            break
    return RouteQuery(
        ignore_errors=_flag(pick("IgnoreErrors", "*routesIgnoreErrors", "*rouIgnoreErrors")),
        max_cost=max_cost,
        max_cost_event=max_cost_event,
        limit=limit,
        offset=offset,
        max_items=max_items,
        profile_count=count or 1,
    )


# ProfileCount as CGRateS 1.0 (*routesProfilesCount), v0.11 (*rouProfileCount) and earlier name it.
_PROFILE_COUNT_OPTS: Final = (
    "*routesProfilesCount",
    "*routesProfileCount",
    "*rouProfileCount",
    "*profileCount",
)
_SESSION_ARGS: Final = (
    ("IgnoreErrors", ("RoutesIgnoreErrors", "SuppliersIgnoreErrors")),
    ("MaxCost", ("RoutesMaxCost", "SuppliersMaxCost")),
)


def session_routes(
    routes: RouteService,
) -> Callable[[CGREvent, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]:
    """SessionS's GetRoutes/GetSuppliers: ``RoutesIgnoreErrors``/``RoutesMaxCost`` (a number or
    ``*event_cost``; v0.10 ``Suppliers…``) and ``Limit``/``Offset``/``MaxItems`` (or a
    ``Paginator``) from the session call, or the event's ``*routes…`` APIOpts; an ``ACD`` field
    replaces the Usage; errors become ``ROUTES_ERROR:<error>``."""

    async def routes_of(event: CGREvent, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        options: dict[str, Any] = {"APIOpts": event.opts}
        for name, aliases in _SESSION_ARGS:
            for alias in aliases:
                if args.get(alias) not in (None, ""):
                    options[name] = args[alias]
                    break
        if isinstance(args.get("Paginator"), Mapping):
            options["Paginator"] = args["Paginator"]
        else:  # CGRateS's session args embed utils.Paginator: Limit/Offset/MaxItems beside
            options.update({name: args[name] for name in _PAGING if args.get(name) is not None})
        if event.event.get("ACD") not in (None, ""):
            # The caller's average call duration stands for the Usage the routes are rated for.
            fields = {**event.event, "Usage": event.event["ACD"]}
            event = CGREvent(event.tenant, event.id, event.time, fields, event.opts)
        try:
            replies = await routes.routes_for_event(event, route_query_of(options))
        except RouteSError as exc:
            raise RpcError(f"ROUTES_ERROR:{exc.message}") from None
        return [reply.to_wire() for reply in replies]

    return routes_of


def register(
    registry: MethodRegistry,
    routes: RouteService,
    loader: TariffPlanLoader,
    general: GeneralConfig,
) -> None:
    timezone = zone(general.default_timezone)

    def event_of(args: Mapping[str, Any]) -> CGREvent:
        return cgr_event(args, general.default_tenant, timezone, need_event=True)

    async def sorted_routes(params: Any) -> list[SortedRoutes]:
        args = as_object(params)
        try:
            return await routes.routes_for_event(event_of(args), route_query_of(args))
        except RouteSError as exc:
            raise RpcError(exc.message) from None

    async def get_routes(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        return [reply.to_wire() for reply in await sorted_routes(params)]

    async def get_routes_list(params: Any, ctx: CallContext) -> list[str]:
        """CGRateS's ``RoutesWithParams``: ``RouteID[:RouteParameters]``, in order."""
        replies = await sorted_routes(params)
        return [route.with_params() for reply in replies for route in reply.routes]

    def get_route_profiles_for_event(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        try:
            profiles = routes.profiles_for_event(event_of(as_object(params)))
        except RouteSError as exc:
            raise RpcError(exc.message) from None
        return [route_profile_to_wire(profile) for profile in profiles]

    registry.register("RouteSv1.GetRoutes", get_routes)
    registry.register("RouteSv1.GetRoutesList", get_routes_list)
    registry.register("RouteSv1.GetRouteProfilesForEvent", get_route_profiles_for_event)

    register_profile_api(
        registry,
        loader,
        general,
        ProfileKind(
            KIND_ROUTES,
            "RouteProfile",
            route_profile_from_wire,
            route_profile_to_wire,
            check=_check,
        ),
    )
