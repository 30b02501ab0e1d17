"""RouteS: sort a route profile's routes for an event (``engine/routes.go``, ``route_*.go``).

Profile selection: the tenant's profiles active at the event's Time whose FilterIDs pass, the
heaviest first; ``profile_count`` (``*profileCount``, default 1) of them answer.

Per profile, routes whose own FilterIDs fail are skipped; the rest get their sorting data:

* ``*weight``: ``{"Weight"}``; heaviest first (route order on ties).
* ``*lc`` / ``*hc``: ``{"Cost", "RatingPlanID", "Weight"}``; the cost of the event rated by the
  route's RatingPlanIDs — CGRateS's ``Responder.GetCostOnRatingPlans``: each plan in turn is
  activated (from the epoch) for a synthetic rating profile, the first plan that rates the event
  wins. Implementation: a small ``Rater`` sharing the live rater's compiled plans and destination
  index, with one synthetic rating profile per plan (cached per live rater). The event gives
  Account/Subject/Destination/AnswerTime (SetupTime, then now)/Usage (default 1m)/ToR.
  Cheapest first for ``*lc``, dearest first for ``*hc``; ties by weight.
  A route that cannot be rated (no RatingPlanIDs, or no plan rates the event) fails the request
  with ``SERVER_ERROR`` unless ``ignore_errors`` (then the route is dropped), as CGRateS does.
  A route dearer than ``max_cost`` is dropped.
* ``*qos``: routes ordered by the metrics (SortingParameters, e.g. ``*acd;*tcd``) of their stat
  queues, given by an injectable ``metrics_of(stat_ids) -> {metric: Decimal}``. StatS does not
  exist yet: the default answers no metrics, so routes then sort by weight. ``*pdd`` is better
  lower, every other metric higher; a route without a metric sorts after those with one.

After sorting, a Blocker route ends the list (it is kept). Profiles whose routes all drop out
are passed over for the next one; Offset/Limit then page the routes across the lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from core.errors import CGRError
from core.filters.errors import FilterError, plan_error
from core.filters.event import CGREvent, EventView
from core.filters.rules import is_active
from core.filters.service import FilterService, check_filter_ids
from core.rating.errors import RatingError
from core.rating.plan_index import Activation, ProfileIndex
from core.rating.rater import TOR_VOICE, CostQuery, Rater
from core.tariffplan.kinds import KIND_ROUTES
from core.tariffplan.loader import Commit
from core.tariffplan.models import DEFAULT_CATEGORY, Route, RouteProfile, TariffPlan
from core.types import MINUTE, InvalidValue, parse_duration, parse_time

SORTING_WEIGHT: Final = "*weight"
SORTING_LC: Final = "*lc"
SORTING_HC: Final = "*hc"
SORTING_QOS: Final = "*qos"
ROUTE_SORTINGS: Final = (SORTING_WEIGHT, SORTING_LC, SORTING_HC, SORTING_QOS)
METRIC_PDD: Final = "*pdd"  # the only metric that is better lower

ERR_NOT_FOUND: Final = "NOT_FOUND"
ERR_SERVER_ERROR: Final = "SERVER_ERROR"
ERR_MANDATORY_IE_MISSING: Final = "MANDATORY_IE_MISSING"
MAX_COST_EVENT: Final = "*event_cost"
_EVENT_COST_FIELDS: Final = ("Account", "Destination", "SetupTime", "Usage")
DEFAULT_USAGE: Final = MINUTE
_SYNTHETIC_CATEGORY: Final = "*routes"
_EPOCH_START: Final = -(1 << 62)  # a plan activated "since always" (Go's zero time)

MetricsOf = Callable[[Sequence[str]], Mapping[str, Decimal]]


def no_metrics(stat_ids: Sequence[str]) -> Mapping[str, Decimal]:
    """The default ``metrics_of`` while StatS does not exist: no metrics at all."""
    return {}


class RouteSError(CGRError):
    """A request RouteS cannot answer; ``message`` is CGRateS's error text."""


@dataclass(slots=True)
class SortedRoute:
    route_id: str
    route_parameters: str
    sorting_data: dict[str, Any]

    def with_params(self) -> str:
        """``RouteID`` or ``RouteID:RouteParameters`` (GetRoutesList, the digests)."""
        if self.route_parameters:
            return f"{self.route_id}:{self.route_parameters}"
        return self.route_id

    def to_wire(self) -> dict[str, Any]:
        return {
            "RouteID": self.route_id,
            "RouteParameters": self.route_parameters,
            "SortingData": dict(self.sorting_data),
        }


@dataclass(slots=True)
class SortedRoutes:
    profile_id: str
    sorting: str
    routes: list[SortedRoute]

    def to_wire(self) -> dict[str, Any]:
        return {
            "ProfileID": self.profile_id,
            "Sorting": self.sorting,
            "Routes": [route.to_wire() for route in self.routes],
        }


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """What GetRoutes asks besides the event."""

    ignore_errors: bool = False
    max_cost: Decimal | None = None
    # ``*event_cost``: the max cost is what the event itself costs on its account's rating.
    max_cost_event: bool = False
    limit: int | None = None
    offset: int = 0
    profile_count: int = 1


@dataclass(slots=True)
class _Live:
    by_tenant: dict[str, list[RouteProfile]] = field(default_factory=dict)


def _priority(profile: RouteProfile) -> tuple[Decimal, str]:
    return (-profile.weight, profile.id)


class RouteService:
    """The live route profiles; a PlanListener of the loader."""

    def __init__(
        self,
        filters: FilterService,
        rater_of: Callable[[], Rater],
        *,
        default_tenant: str,
        metrics_of: MetricsOf = no_metrics,
    ) -> None:
        self._filters = filters
        self._rater_of = rater_of
        self.default_tenant = default_tenant
        self.metrics_of = metrics_of
        self._live = _Live()
        self._plan_raters: tuple[Rater | None, dict[tuple[str, str], Rater]] = (None, {})

    # ------------------------------------------------------------------------------- loading
    def prepare(self, plan: TariffPlan) -> Commit:
        problems: list[tuple[str, str]] = []
        live = _Live()
        profile: RouteProfile
        for key, profile in plan.others.get(KIND_ROUTES, {}).items():
            try:
                check_route_profile(profile)
            except (FilterError, InvalidValue) as exc:
                problems.append((key, str(exc)))
                continue
            live.by_tenant.setdefault(profile.tenant, []).append(profile)
        if problems:
            raise plan_error(KIND_ROUTES, problems)
        for profiles in live.by_tenant.values():
            profiles.sort(key=_priority)

        def commit() -> None:
            self._live = live

        return commit

    # ------------------------------------------------------------------------------- queries
    def profiles_for_event(self, event: CGREvent) -> list[RouteProfile]:
        """``V1GetRouteProfilesForEvent``: the matching profiles, Weight descending."""
        view = EventView(event.event, event.opts)
        matching: list[RouteProfile] = []
        try:
            for profile in self._live.by_tenant.get(event.tenant, ()):
                interval = profile.activation_interval
                when = event.time
                if interval is not None and when is not None and not is_active(interval, when):
                    continue
                if self._filters.passes(event.tenant, profile.filter_ids, view):
                    matching.append(profile)
        except FilterError as exc:
            raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None
        if not matching:
            raise RouteSError(ERR_NOT_FOUND)
        return matching

    def routes_for_event(
        self, event: CGREvent, query: RouteQuery = RouteQuery()
    ) -> list[SortedRoutes]:
        """``V1GetRoutes``: one sorted list per matching profile with routes, heaviest first, at
        most ``profile_count`` of them; Offset/Limit page the routes across those lists."""
        view = EventView(event.event, event.opts)
        if query.max_cost_event:
            query = replace(query, max_cost=self.event_cost(event), max_cost_event=False)
        replies: list[SortedRoutes] = []
        for profile in self.profiles_for_event(event):
            routes = self._sorted(profile, event, view, query)
            if routes:
                replies.append(SortedRoutes(profile.id, profile.sorting, routes))
                if len(replies) >= max(query.profile_count, 1):
                    break
        skip, room = query.offset, query.limit
        paged: list[SortedRoutes] = []
        for reply in replies:
            routes = reply.routes[skip:]
            skip = max(0, skip - len(reply.routes))
            if room is not None:
                routes = routes[:room]
                room -= len(routes)
            if routes:
                paged.append(SortedRoutes(reply.profile_id, reply.sorting, routes))
        if not paged:
            raise RouteSError(ERR_NOT_FOUND)
        return paged

    # ------------------------------------------------------------------------------- sorting
    def _sorted(
        self, profile: RouteProfile, event: CGREvent, view: EventView, query: RouteQuery
    ) -> list[SortedRoute]:
        sorting = profile.sorting or SORTING_WEIGHT
        if sorting not in ROUTE_SORTINGS:
            raise RouteSError(f"{ERR_SERVER_ERROR}: unsupported sorting strategy: {sorting}")
        entries: list[tuple[Route, SortedRoute]] = []
        for route in profile.routes:
            try:
                if route.filter_ids and not self._filters.passes(
                    event.tenant, route.filter_ids, view
                ):
                    continue
            except FilterError as exc:
                raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None
            data: dict[str, Any] = {"Weight": route.weight}
            if sorting in (SORTING_LC, SORTING_HC):
                try:
                    cost, plan_id = self._cost(event, route)
                except RouteSError:
                    if query.ignore_errors:
                        continue
                    raise
                if query.max_cost is not None and cost > query.max_cost:
                    continue
                data = {"Cost": cost, "RatingPlanID": plan_id, "Weight": route.weight}
            elif sorting == SORTING_QOS:
                metrics = dict(self.metrics_of(route.stat_ids)) if route.stat_ids else {}
                data = {**metrics, "Weight": route.weight}
            entries.append((route, SortedRoute(route.id, route.route_parameters, data)))
        order = range(len(entries))
        if sorting in (SORTING_LC, SORTING_HC):
            sign = 1 if sorting == SORTING_LC else -1
            keyed = sorted(
                order,
                key=lambda i: (
                    sign * entries[i][1].sorting_data["Cost"],
                    -entries[i][0].weight,
                    i,
                ),
            )
        elif sorting == SORTING_QOS:
            metric_names = [name for name in profile.sorting_parameters if name]
            keyed = sorted(
                order, key=lambda i: (*_qos_key(entries[i][1].sorting_data, metric_names), i)
            )
        else:
            keyed = sorted(order, key=lambda i: (-entries[i][0].weight, i))
        result: list[SortedRoute] = []
        for i in keyed:
            route, sorted_route = entries[i]
            result.append(sorted_route)
            if route.blocker:
                break
        return result

    def event_cost(self, event: CGREvent) -> Decimal:
        """``*event_cost``: the event rated by the live rating profiles (CGRateS's
        ``CallDescriptor.GetCost``); Account, Destination, SetupTime and Usage are mandatory."""
        fields = event.event
        missing = [name for name in _EVENT_COST_FIELDS if fields.get(name) in (None, "")]
        if missing:
            raise RouteSError(
                f"{ERR_SERVER_ERROR}: {ERR_MANDATORY_IE_MISSING}: [{', '.join(missing)}]"
            )
        account = str(fields["Account"])
        try:
            query = CostQuery(
                event.tenant,
                str(fields.get("Category") or DEFAULT_CATEGORY),
                str(fields.get("Subject") or account),
                str(fields["Destination"]),
                _event_start(event),
                parse_duration(fields["Usage"]),
                str(fields.get("ToR") or TOR_VOICE),
                account,
            )
            return self._rater_of().get_cost(query).cost
        except (RatingError, InvalidValue) as exc:
            raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None

    def _cost(self, event: CGREvent, route: Route) -> tuple[Decimal, str]:
        """``GetCostOnRatingPlans``: the first of the route's plans that rates the event."""
        if not route.rating_plan_ids:
            raise RouteSError(f"{ERR_SERVER_ERROR}: MANDATORY_IE_MISSING: [RatingPlanIDs]")
        fields = event.event
        account = str(fields.get("Account") or "")
        subject = str(fields.get("Subject") or account)
        destination = str(fields.get("Destination") or "")
        try:
            start = _event_start(event)
            usage = parse_duration(fields["Usage"]) if fields.get("Usage") else DEFAULT_USAGE
        except InvalidValue as exc:
            raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None
        tor = str(fields.get("ToR") or TOR_VOICE)
        problem = "no rating plan"
        for plan_id in route.rating_plan_ids:
            rater = self._plan_rater(event.tenant, plan_id)
            if rater is None:
                problem = f"RATING_PLAN_NOT_FOUND: {plan_id}"
                continue
            query = CostQuery(
                event.tenant, _SYNTHETIC_CATEGORY, subject, destination, start, usage, tor, account
            )
            try:
                return rater.get_cost(query).cost, plan_id
            except (RatingError, InvalidValue) as exc:
                problem = str(exc)
        raise RouteSError(f"{ERR_SERVER_ERROR}: {problem}")

    def _plan_rater(self, tenant: str, plan_id: str) -> Rater | None:
        """A Rater whose only rating profile (any subject) activates ``plan_id`` since always."""
        live = self._rater_of()
        cached_for, cache = self._plan_raters
        if cached_for is not live:
            cache = {}
            self._plan_raters = (live, cache)
        rater = cache.get((tenant, plan_id))
        if rater is None:
            plan = live.plans.get(plan_id)
            if plan is None:
                return None
            key = f"*out:{tenant}:{_SYNTHETIC_CATEGORY}:*any"
            profile = ProfileIndex(
                key, tenant, _SYNTHETIC_CATEGORY, [Activation(_EPOCH_START, plan, (), {})]
            )
            rater = Rater(
                {key: profile},
                live.plans,
                live.destinations,
                rounding_decimals=live.rounding_decimals,
                max_computed_usage=live.max_computed_usage,
            )
            cache[(tenant, plan_id)] = rater
        return rater


def _event_start(event: CGREvent) -> datetime:
    fields = event.event
    for name in ("AnswerTime", "SetupTime"):
        value = fields.get(name)
        if value:
            return parse_time(value)
    return event.time or datetime.now(UTC)


def _qos_key(data: Mapping[str, Any], metric_names: Iterable[str]) -> list[Any]:
    key: list[Any] = []
    for name in metric_names:
        value = data.get(name)
        if value is None:
            key.extend((1, Decimal(0)))
            continue
        number = Decimal(str(value))
        key.extend((0, number if name == METRIC_PDD else -number))
    key.append(-Decimal(str(data.get("Weight", 0))))
    return key


def check_route_profile(profile: RouteProfile) -> None:
    """Inline filters compile (raises FilterError). An unknown sorting (``*load``, ``*reas``…)
    loads, as in CGRateS, and fails the queries that reach the profile."""
    check_filter_ids(profile.filter_ids)
    for route in profile.routes:
        check_filter_ids(route.filter_ids)
