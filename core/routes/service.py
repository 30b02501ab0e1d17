"""RouteS: sort a route profile's routes for an event (CGRateS ``engine/routes.go``,
``libroutes.go``, ``route_*.go``).

Profile selection: the tenant's profiles active at the event's Time whose FilterIDs pass, the
heaviest first; ``profile_count`` (``*profileCount``, default 1) of them answer.

Per profile, routes whose own FilterIDs fail are skipped (of two passing routes with one ID the
heavier counts, as CGRateS keys them by ID); the rest get their sorting data, as
CGRateS's ``populateSortingData`` does whatever the sorting (``Weight`` always):

* A route with AccountIDs or RatingPlanIDs is priced (``costForEvent``): the first of its
  accounts whose balances can pay for the event (a dry-run debit in category ``*routes``, the
  event's Subject; CGRateS's ``GetMaxSessionTimeOnAccounts``) gives ``Account``, ``MaxUsage`` (ns)
  and ``Cost`` 0; what the account does not cover — or the whole event when no account answers
  — is rated by the first of its RatingPlanIDs that rates it (``GetCostOnRatingPlans``: a
  synthetic rating profile activating the plan since always), giving ``Cost`` and
  ``RatingPlanID``. The event gives Account/Subject/Destination/AnswerTime (SetupTime, then
  now)/Usage (default 1m)/ToR. A route that cannot be rated fails the request with
  ``SERVER_ERROR`` unless ``ignore_errors`` (the route is then dropped); a route with no cost at
  all (no account answered, no plan) is dropped; a route dearer than ``max_cost`` is dropped.
* Stat metrics (``RouteMetrics``, injectable while StatS does not exist): for ``*load`` the sum
  of the route's stat queues' metrics (``StatID:MetricID`` takes one metric; a missing one is a
  route error) as ``Load``, and ``Ratio`` from SortingParameters ``routeID:ratio``
  (``*default:ratio``, else 1); otherwise each metric averaged over the route's queues, and each
  SortingParameters metric the route's queues lack set to -1 (``*pdd``: Go's max float64).
* ``ResourceUsage``: the summed usage of the route's ResourceIDs (``RouteMetrics`` as well).

Sortings (ties as CGRateS, whose last resort is a random pick: here the profile's route order):
``*weight`` heaviest first; ``*lc``/``*hc`` by Cost up/down, then Weight; ``*qos`` by each
SortingParameters metric (``*pdd`` lower is better, others higher), then Weight; ``*load`` by
Load/Ratio ascending, then Weight; ``*reas``/``*reds`` by ResourceUsage up/down, then Weight.
``*lc``/``*hc`` need AccountIDs or RatingPlanIDs on every route, ``*load`` StatIDs,
``*reas``/``*reds`` ResourceIDs, else the request fails (``MANDATORY_IE_MISSING``).

After sorting, a Blocker route ends the list (it is kept). Profiles whose routes all drop out
are passed over for the next one; Offset/Limit then page the routes across the lists, and
MaxItems refuses a page reaching past it (``SERVER_ERROR: maximum number of items exceeded``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

from core.accounts import AccountError, DebitEvent
from core.errors import CGRError
from core.filters.errors import FilterError, plan_error
from core.filters.event import CGREvent, EventView
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
SORTING_LOAD: Final = "*load"
SORTING_REAS: Final = "*reas"
SORTING_REDS: Final = "*reds"
ROUTE_SORTINGS: Final = (
    SORTING_WEIGHT, SORTING_LC, SORTING_HC, SORTING_QOS, SORTING_LOAD, SORTING_REAS, SORTING_REDS
)  # fmt: skip
METRIC_PDD: Final = "*pdd"  # the only metric that is better lower
# A SortingParameters metric a route's stat queues lack: the worst value (CGRateS's -1, and
# math.MaxFloat64 for *pdd).
MISSING_METRIC: Final = Decimal(-1)
MISSING_PDD: Final = Decimal("1.7976931348623157e+308")
RATIO_DEFAULT_KEY: Final = "*default"
DEFAULT_RATIO: Final = 1  # CGRateS's routes.default_ratio

# SortingData keys (CGRateS's names).
DATA_WEIGHT: Final = "Weight"
DATA_COST: Final = "Cost"
DATA_RATING_PLAN: Final = "RatingPlanID"
DATA_ACCOUNT: Final = "Account"
DATA_MAX_USAGE: Final = "MaxUsage"
DATA_LOAD: Final = "Load"
DATA_RATIO: Final = "Ratio"
DATA_RESOURCE_USAGE: Final = "ResourceUsage"

ERR_NOT_FOUND: Final = "NOT_FOUND"
ERR_SERVER_ERROR: Final = "SERVER_ERROR"
ERR_MANDATORY_IE_MISSING: Final = "MANDATORY_IE_MISSING"
ERR_MAX_ITEMS: Final = f"{ERR_SERVER_ERROR}: maximum number of items exceeded"
MAX_COST_EVENT: Final = "*event_cost"
_EVENT_COST_FIELDS: Final = ("Account", "Destination", "SetupTime", "Usage")
DEFAULT_USAGE: Final = MINUTE
ROUTES_CATEGORY: Final = "*routes"  # the category accounts are asked in (CGRateS's MetaRoutes)
_EPOCH_START: Final = -(1 << 62)  # a plan activated "since always" (Go's zero time)
_ZERO: Final = Decimal(0)
NS_PER_MICROSECOND: Final = 1000
_INFINITY: Final = Decimal("Infinity")


class RouteMetrics(Protocol):
    """What StatS and ResourceS would tell RouteS (neither exists yet): injectable."""

    async def stat_metrics(self, tenant: str, stat_id: str) -> Mapping[str, Decimal]:
        """A stat queue's metrics (``*acd``, ``*tcc``...); empty for an unknown queue."""

    async def resource_usage(self, tenant: str, resource_id: str) -> Decimal:
        """A resource's total usage; 0 for an unknown resource."""


class NoMetrics:
    """The default RouteMetrics while StatS and ResourceS do not exist: nothing measured."""

    async def stat_metrics(self, tenant: str, stat_id: str) -> Mapping[str, Decimal]:
        return {}

    async def resource_usage(self, tenant: str, resource_id: str) -> Decimal:
        return _ZERO


# How much of an event (ns) an account's balances pay for; raises AccountError/RatingError.
AccountMaxUsage = Callable[[DebitEvent], Awaitable[int]]


class RouteSError(CGRError):
    """A request RouteS cannot answer; ``message`` is CGRateS's error text."""


class _RouteDropped(Exception):
    """A route left out of the reply (ignored error, over the max cost, no cost at all)."""


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
    max_items: int | None = None
    profile_count: int = 1


@dataclass(slots=True)
class _Live:
    by_tenant: dict[str, list[RouteProfile]] = field(default_factory=dict)
    ratios: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)


def _priority(profile: RouteProfile) -> tuple[Decimal, str]:
    return (-profile.weight, profile.id)


@dataclass(slots=True)
class _Pricing:
    """The event as costForEvent reads it."""

    tenant: str
    account: str
    subject: str
    destination: str
    start: datetime
    usage: int
    tor: str


class RouteService:
    """The live route profiles; a PlanListener of the loader."""

    def __init__(
        self,
        filters: FilterService,
        rater_of: Callable[[], Rater],
        *,
        default_tenant: str,
        metrics: RouteMetrics | None = None,
        account_max_usage: AccountMaxUsage | None = None,
    ) -> None:
        self._filters = filters
        self._rater_of = rater_of
        self.default_tenant = default_tenant
        self.metrics: RouteMetrics = metrics or NoMetrics()
        # Set once AccountService exists (Engine.open_storage); None: no account answers.
        self.account_max_usage = account_max_usage
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
                if profile.sorting == SORTING_LOAD:
                    live.ratios[(profile.tenant, profile.id)] = load_ratios(profile)
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
                if self._filters.profile_passes(
                    event.tenant, profile.activation_interval, profile.filter_ids, view, event.time
                ):
                    matching.append(profile)
        except FilterError as exc:
            raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None
        if not matching:
            raise RouteSError(ERR_NOT_FOUND)
        return matching

    async def routes_for_event(
        self, event: CGREvent, query: RouteQuery = RouteQuery()
    ) -> list[SortedRoutes]:
        """``V1GetRoutes``: one sorted list per matching profile with routes, heaviest first, at
        most ``profile_count`` of them; Offset/Limit page the routes across those lists."""
        max_items, limit = query.max_items, query.limit
        if max_items is not None and limit is not None and max_items < limit + query.offset:
            raise RouteSError(ERR_MAX_ITEMS)
        view = EventView(event.event, event.opts)
        if query.max_cost_event:
            query = replace(query, max_cost=self.event_cost(event), max_cost_event=False)
        replies: list[SortedRoutes] = []
        memo = _PricingMemo(event)
        for profile in self.profiles_for_event(event):
            routes = await self._sorted(profile, memo, view, query)
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
        returned = sum(len(reply.routes) for reply in paged)
        if max_items is not None and max_items < returned + query.offset:
            raise RouteSError(ERR_MAX_ITEMS)
        return paged

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

    # ------------------------------------------------------------------------------- sorting
    async def _sorted(
        self, profile: RouteProfile, memo: _PricingMemo, view: EventView, query: RouteQuery
    ) -> list[SortedRoute]:
        event = memo.event
        sorting = profile.sorting or SORTING_WEIGHT
        if sorting not in ROUTE_SORTINGS:
            raise RouteSError(f"{ERR_SERVER_ERROR}: unsupported sorting strategy: {sorting}")
        ratios = self._live.ratios.get((profile.tenant, profile.id), {})
        # Routes passing their filters; of two with one ID, the heavier (the first on a tie).
        passed: dict[str, Route] = {}
        for route in profile.routes:
            try:
                if route.filter_ids and not self._filters.passes(
                    event.tenant, route.filter_ids, view
                ):
                    continue
            except FilterError as exc:
                raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None
            previous = passed.get(route.id)
            if previous is None or previous.weight < route.weight:
                passed[route.id] = route
        entries: list[tuple[Route, SortedRoute]] = []
        for route in passed.values():
            _check_mandatory(sorting, route)
            try:
                data = await self._sorting_data(profile, sorting, route, memo, query)
            except _RouteDropped:
                continue
            if sorting == SORTING_LOAD:
                data[DATA_RATIO] = _ratio_of(ratios, route.id)
            entries.append((route, SortedRoute(route.id, route.route_parameters, data)))
        keyed = sorted(
            range(len(entries)),
            key=lambda i: (*_sort_key(sorting, profile, entries[i][1].sorting_data), i),
        )
        result: list[SortedRoute] = []
        for i in keyed:
            route, sorted_route = entries[i]
            result.append(sorted_route)
            if route.blocker:
                break
        return result

    async def _sorting_data(
        self,
        profile: RouteProfile,
        sorting: str,
        route: Route,
        memo: _PricingMemo,
        query: RouteQuery,
    ) -> dict[str, Any]:
        """CGRateS's populateSortingData; raises _RouteDropped or RouteSError."""
        event = memo.event
        data: dict[str, Any] = {DATA_WEIGHT: route.weight}
        try:
            if route.account_ids or route.rating_plan_ids:
                cost_data = await self._cost_data(memo.pricing(), route)
                if not cost_data:
                    raise _RouteDropped  # no account answered, no plan: no cost information
                if query.max_cost is not None and cost_data[DATA_COST] > query.max_cost:
                    raise _RouteDropped
                data.update(cost_data)
            if route.stat_ids:
                if sorting == SORTING_LOAD:
                    data[DATA_LOAD] = await self._load(event.tenant, route.stat_ids)
                else:
                    data.update(await self._qos_metrics(event.tenant, route.stat_ids, profile))
            if route.resource_ids:
                usage = _ZERO
                for resource_id in route.resource_ids:
                    usage += await self.metrics.resource_usage(event.tenant, resource_id)
                data[DATA_RESOURCE_USAGE] = usage
        except RouteSError:
            if query.ignore_errors:
                raise _RouteDropped from None
            raise
        return data

    async def _cost_data(self, pricing: _Pricing, route: Route) -> dict[str, Any]:
        """CGRateS's costForEvent: what the route's accounts cover, the rest on its plans."""
        data: dict[str, Any] = {}
        covered = 0
        whole = pricing.usage
        answer = await self._account_answer(pricing, route.account_ids)
        if answer is not None:
            account_id, covered = answer
            data = {DATA_ACCOUNT: account_id, DATA_COST: _ZERO, DATA_MAX_USAGE: covered}
            if whole > covered and not route.rating_plan_ids:
                raise RouteSError(
                    f"{ERR_SERVER_ERROR}: no rating plans defined for remaining usage"
                )
        if covered == 0 or covered < whole:
            rest = pricing
            if covered:
                rest = replace(
                    pricing,
                    start=pricing.start + timedelta(microseconds=covered // NS_PER_MICROSECOND),
                    usage=whole - covered,
                )
            rated = self._plans_cost(rest, route)
            if rated is not None:
                data[DATA_COST], data[DATA_RATING_PLAN] = rated
            elif answer is None:
                return {}
        return data

    async def _account_answer(
        self, pricing: _Pricing, account_ids: Sequence[str]
    ) -> tuple[str, int] | None:
        """The first account whose balances can be asked (GetMaxSessionTimeOnAccounts): its
        ID and how much of the event it pays for. Accounts that fail are passed over."""
        if not account_ids or self.account_max_usage is None:
            return None
        for account_id in account_ids:
            debit = DebitEvent(
                pricing.tenant,
                account_id,
                pricing.destination,
                pricing.start,
                pricing.usage,
                pricing.tor,
                ROUTES_CATEGORY,
                pricing.subject,
            )
            try:
                return account_id, await self.account_max_usage(debit)
            except (AccountError, RatingError, InvalidValue):
                continue
        return None

    def _plans_cost(self, pricing: _Pricing, route: Route) -> tuple[Decimal, str] | None:
        """``GetCostOnRatingPlans``: the first of the route's plans that rates the event; None
        when there is no plan. A route whose plans all fail raises ``SERVER_ERROR``."""
        if not route.rating_plan_ids:
            return None
        problem = "no rating plan"
        for plan_id in route.rating_plan_ids:
            rater = self._plan_rater(pricing.tenant, plan_id)
            if rater is None:
                problem = f"RATING_PLAN_NOT_FOUND: {plan_id}"
                continue
            query = CostQuery(
                pricing.tenant,
                ROUTES_CATEGORY,
                pricing.subject,
                pricing.destination,
                pricing.start,
                pricing.usage,
                pricing.tor,
                pricing.account,
            )
            try:
                return rater.get_cost(query).cost, plan_id
            except (RatingError, InvalidValue) as exc:
                problem = str(exc)
        raise RouteSError(f"{ERR_SERVER_ERROR}: {problem}")

    async def _qos_metrics(
        self, tenant: str, stat_ids: Sequence[str], profile: RouteProfile
    ) -> dict[str, Decimal]:
        """Each metric averaged over the route's stat queues; SortingParameters metrics they
        lack take the worst value."""
        values: dict[str, list[Decimal]] = {}
        for stat_id in stat_ids:
            for name, value in (await self.metrics.stat_metrics(tenant, stat_id)).items():
                values.setdefault(name, []).append(Decimal(value))
        metrics = {name: sum(found, _ZERO) / len(found) for name, found in values.items()}
        for name in profile.sorting_parameters:
            if name and name not in metrics:
                metrics[name] = MISSING_PDD if name == METRIC_PDD else MISSING_METRIC
        return metrics

    async def _load(self, tenant: str, stat_ids: Sequence[str]) -> Decimal:
        """``*load``: the sum of the route's stat metrics (``StatID:MetricID``: that metric,
        which must exist)."""
        load = _ZERO
        for entry in stat_ids:
            stat_id, _, metric_id = entry.partition(":")
            metrics = await self.metrics.stat_metrics(tenant, stat_id)
            if metric_id:
                if metric_id not in metrics:
                    raise RouteSError(
                        f"{ERR_SERVER_ERROR}: <RouteS> error: {ERR_NOT_FOUND} metric "
                        f"{metric_id} for statID: {stat_id}"
                    )
                load += Decimal(metrics[metric_id])
            else:
                load += sum((Decimal(value) for value in metrics.values()), _ZERO)
        return load

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
            key = f"*out:{tenant}:{ROUTES_CATEGORY}:*any"
            profile = ProfileIndex(
                key, tenant, ROUTES_CATEGORY, [Activation(_EPOCH_START, plan, (), {})]
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


class _PricingMemo:
    """One request's event, read for pricing once whatever the number of routes."""

    __slots__ = ("_pricing", "event")

    def __init__(self, event: CGREvent) -> None:
        self.event = event
        self._pricing: _Pricing | None = None

    def pricing(self) -> _Pricing:
        if self._pricing is None:
            self._pricing = _pricing(self.event)  # raises RouteSError, every time, if bad
        return self._pricing


def _pricing(event: CGREvent) -> _Pricing:
    fields = event.event
    account = str(fields.get("Account") or "")
    try:
        start = _event_start(event)
        usage = parse_duration(fields["Usage"]) if fields.get("Usage") else DEFAULT_USAGE
    except InvalidValue as exc:
        raise RouteSError(f"{ERR_SERVER_ERROR}: {exc}") from None
    return _Pricing(
        event.tenant,
        account,
        str(fields.get("Subject") or account),
        str(fields.get("Destination") or ""),
        start,
        usage,
        str(fields.get("ToR") or TOR_VOICE),
    )


def _event_start(event: CGREvent) -> datetime:
    fields = event.event
    for name in ("AnswerTime", "SetupTime"):
        value = fields.get(name)
        if value:
            return parse_time(value)
    return event.time or datetime.now(UTC)


# What a sorting needs on every route: (the name CGRateS's error gives, the Route fields).
_MANDATORY: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    SORTING_LC: ("RatingPlanIDs or AccountIDs", ("rating_plan_ids", "account_ids")),
    SORTING_HC: ("RatingPlanIDs or AccountIDs", ("rating_plan_ids", "account_ids")),
    SORTING_LOAD: ("StatIDs", ("stat_ids",)),
    SORTING_REAS: ("ResourceIDs", ("resource_ids",)),
    SORTING_REDS: ("ResourceIDs", ("resource_ids",)),
}


def _check_mandatory(sorting: str, route: Route) -> None:
    """A route missing what its sorting needs fails the request (not an ignorable error)."""
    need = _MANDATORY.get(sorting)
    if need is not None and not any(getattr(route, name) for name in need[1]):
        raise RouteSError(f"{ERR_SERVER_ERROR}: {ERR_MANDATORY_IE_MISSING}: [{need[0]}]")


def _number(data: Mapping[str, Any], name: str) -> Decimal:
    """A SortingData value as CGRateS's sortingDataF64 reads it (absent: 0)."""
    value = data.get(name)
    return Decimal(value) if isinstance(value, (Decimal, int)) else _ZERO


def _sort_key(sorting: str, profile: RouteProfile, data: Mapping[str, Any]) -> tuple[Any, ...]:
    weight = -_number(data, DATA_WEIGHT)
    if sorting in (SORTING_LC, SORTING_HC):
        cost = _number(data, DATA_COST)
        return (cost if sorting == SORTING_LC else -cost, weight)
    if sorting == SORTING_QOS:
        key: list[Decimal] = []
        for name in profile.sorting_parameters:
            if name:
                value = _number(data, name)
                key.append(value if name == METRIC_PDD else -value)
        return (*key, weight)
    if sorting == SORTING_LOAD:
        ratio = _number(data, DATA_RATIO)
        share = _number(data, DATA_LOAD) / ratio if ratio > 0 else _INFINITY
        return (share, weight)
    if sorting in (SORTING_REAS, SORTING_REDS):
        usage = _number(data, DATA_RESOURCE_USAGE)
        return (usage if sorting == SORTING_REAS else -usage, weight)
    return (weight,)


def load_ratios(profile: RouteProfile) -> dict[str, Decimal]:
    """``*load`` SortingParameters ``routeID:ratio`` (``*default:ratio``); raises InvalidValue
    for one that is not ``ID:integer``, as CGRateS refuses the profile."""
    ratios: dict[str, Decimal] = {}
    for parameter in profile.sorting_parameters:
        route_id, sep, raw = parameter.partition(":")
        try:
            if not sep:
                raise InvalidOperation
            ratios[route_id] = Decimal(int(raw))
        except (ValueError, InvalidOperation):
            raise InvalidValue(
                f"*load SortingParameters must be routeID:ratio, not {parameter!r}"
            ) from None
    return ratios


def _ratio_of(ratios: Mapping[str, Decimal], route_id: str) -> Decimal:
    found = ratios.get(route_id, ratios.get(RATIO_DEFAULT_KEY))
    return found if found is not None else Decimal(DEFAULT_RATIO)


def check_route_profile(profile: RouteProfile) -> None:
    """Inline filters compile (raises FilterError), ``*load`` ratios parse (InvalidValue). An
    unknown sorting loads, as in CGRateS, and fails the queries that reach the profile."""
    check_filter_ids(profile.filter_ids)
    for route in profile.routes:
        check_filter_ids(route.filter_ids)
    if profile.sorting == SORTING_LOAD:
        load_ratios(profile)
