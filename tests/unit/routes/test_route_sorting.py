"""RouteS over the tutorial plan: profile selection, sortings, max cost, blockers, route filters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.config import load_config
from core.engine import Engine
from core.filters.event import CGREvent
from core.routes import RouteQuery, RouteSError, SortedRoutes
from core.tariffplan import KIND_ROUTES
from core.tariffplan.models import Route, RouteProfile, TariffPlan

TUTORIAL = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout

ANSWER = datetime(2023, 1, 7, 17, 0, 10, tzinfo=UTC)


class FakeMetrics:
    """RouteMetrics from fixed figures: stat queue -> metrics, resource -> usage."""

    def __init__(
        self,
        stats: Mapping[str, Mapping[str, Decimal]],
        resources: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.stats = stats
        self.resources = resources or {}

    async def stat_metrics(self, tenant: str, stat_id: str) -> Mapping[str, Decimal]:
        return self.stats.get(stat_id, {})

    async def resource_usage(self, tenant: str, resource_id: str) -> Decimal:
        return self.resources.get(resource_id, Decimal(0))


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        tariffplans=replace(config.tariffplans, load_on_start=()),
    )
    engine = Engine(config)
    await engine.open_storage()
    await engine.loader.load_folder(TUTORIAL)
    try:
        yield engine
    finally:
        await engine.stop()


def call(account: str, destination: str, **fields: Any) -> CGREvent:
    event = {"Account": account, "Destination": destination, "AnswerTime": ANSWER, **fields}
    return CGREvent("cgrates.org", "ev1", ANSWER, event)


def ids(replies: Sequence[SortedRoutes]) -> list[str]:
    return [route.route_id for reply in replies for route in reply.routes]


async def put(engine: Engine, profile: RouteProfile) -> None:
    await engine.loader.load_plan(TariffPlan(others={KIND_ROUTES: {profile.key: profile}}))


def lc_profile(sorting: str = "*lc", **changes: Any) -> RouteProfile:
    """ROUTE_ACNT_1002's routes under another sorting, for account 1002."""
    routes = (
        Route("route1", rating_plan_ids=("RP_1002_LOW",), weight=Decimal(10)),
        Route("route2", rating_plan_ids=("RP_1002",), weight=Decimal(20)),
    )
    profile = RouteProfile(
        "cgrates.org",
        "ROUTE_TEST",
        filter_ids=("*string:~*req.Account:1002",),
        sorting=sorting,
        routes=routes,
        weight=Decimal(50),  # heavier than ROUTE_ACNT_1002
    )
    return replace(profile, **changes)


async def test_weight_sorting_puts_the_heaviest_route_first(engine: Engine) -> None:
    (reply,) = await engine.routes.routes_for_event(call("1001", "1002"))
    assert (reply.profile_id, reply.sorting) == ("ROUTE_ACNT_1001", "*weight")
    assert [r.to_wire() for r in reply.routes] == [
        {"RouteID": "route2", "RouteParameters": "", "SortingData": {"Weight": Decimal(20)}},
        {"RouteID": "route1", "RouteParameters": "", "SortingData": {"Weight": Decimal(10)}},
    ]


async def test_least_cost_rates_each_route_with_its_rating_plans(engine: Engine) -> None:
    # Default usage 1m: RT_10CNT 0.2 connect + 0.1/min, RT_20CNT 0.4 + 0.2/min.
    (reply,) = await engine.routes.routes_for_event(call("1002", "1001"))
    assert (reply.profile_id, reply.sorting) == ("ROUTE_ACNT_1002", "*lc")
    assert [(r.route_id, r.sorting_data) for r in reply.routes] == [
        ("route1", {"Cost": Decimal("0.3"), "RatingPlanID": "RP_1002_LOW", "Weight": 10}),
        ("route2", {"Cost": Decimal("0.6"), "RatingPlanID": "RP_1002", "Weight": 20}),
    ]
    # 130s: the first minute whole, then 70 increments of 1s, each costing 0.05/60 resp. 0.1/60
    # rounded to 5 decimals (0.00083, 0.00167) as CGRateS does: 0.3 + 0.0581, 0.6 + 0.1169.
    (reply,) = await engine.routes.routes_for_event(call("1002", "1001", Usage="130s"))
    assert [r.sorting_data["Cost"] for r in reply.routes] == [Decimal("0.3581"), Decimal("0.7169")]


async def test_highest_cost_reverses_least_cost(engine: Engine) -> None:
    await put(engine, lc_profile("*hc"))
    (reply,) = await engine.routes.routes_for_event(call("1002", "1001"))
    assert reply.profile_id == "ROUTE_TEST"
    assert [(r.route_id, r.sorting_data["Cost"]) for r in reply.routes] == [
        ("route2", Decimal("0.6")),
        ("route1", Decimal("0.3")),
    ]


async def test_equal_costs_tie_by_weight(engine: Engine) -> None:
    routes = (
        Route("light", rating_plan_ids=("RP_1002",), weight=Decimal(1)),
        Route("heavy", rating_plan_ids=("RP_1002",), weight=Decimal(5)),
    )
    await put(engine, lc_profile(routes=routes))
    assert ids(await engine.routes.routes_for_event(call("1002", "1001"))) == ["heavy", "light"]


async def test_max_cost_drops_dearer_routes(engine: Engine) -> None:
    replies = await engine.routes.routes_for_event(
        call("1002", "1001"), RouteQuery(max_cost=Decimal("0.5"))
    )
    assert ids(replies) == ["route1"]
    with pytest.raises(RouteSError, match=r"^NOT_FOUND$"):
        await engine.routes.routes_for_event(
            call("1002", "1001"), RouteQuery(max_cost=Decimal("0.1"))
        )


async def test_a_route_that_cannot_be_rated_fails_the_call_unless_errors_are_ignored(
    engine: Engine,
) -> None:
    routes = (
        Route("route1", rating_plan_ids=("RP_1002_LOW",), weight=Decimal(10)),
        # RP_1001 has no rate for destination 1001
        Route("no_rate", rating_plan_ids=("RP_1001",), weight=Decimal(50)),
    )
    await put(engine, lc_profile(routes=routes))
    with pytest.raises(RouteSError, match=r"^SERVER_ERROR: "):
        await engine.routes.routes_for_event(call("1002", "1001"))
    query = RouteQuery(ignore_errors=True)
    assert ids(await engine.routes.routes_for_event(call("1002", "1001"), query)) == ["route1"]


@pytest.mark.parametrize(
    ("sorting", "missing"),
    [("*lc", "RatingPlanIDs or AccountIDs"), ("*hc", "RatingPlanIDs or AccountIDs"),
     ("*load", "StatIDs"), ("*reas", "ResourceIDs"), ("*reds", "ResourceIDs")],
)  # fmt: skip
async def test_a_route_without_what_its_sorting_needs_fails_even_ignoring_errors(
    engine: Engine, sorting: str, missing: str
) -> None:
    routes = (Route("bare", weight=Decimal(40)),)
    await put(engine, lc_profile(sorting, routes=routes))
    for query in (RouteQuery(), RouteQuery(ignore_errors=True)):
        with pytest.raises(RouteSError) as caught:
            await engine.routes.routes_for_event(call("1002", "1001"), query)
        assert caught.value.message == f"SERVER_ERROR: MANDATORY_IE_MISSING: [{missing}]"


async def test_the_first_rating_plan_that_rates_the_event_wins(engine: Engine) -> None:
    routes = (Route("r", rating_plan_ids=("RP_1001", "RP_1002_LOW", "RP_1002")),)
    await put(engine, lc_profile(routes=routes))
    (reply,) = await engine.routes.routes_for_event(call("1002", "1001"))
    assert reply.routes[0].sorting_data["RatingPlanID"] == "RP_1002_LOW"


async def test_a_blocker_ends_the_sorted_list(engine: Engine) -> None:
    routes = (
        Route("cheap", rating_plan_ids=("RP_1002_LOW",), blocker=True),
        Route("dear", rating_plan_ids=("RP_1002",)),
    )
    await put(engine, lc_profile(routes=routes))
    assert ids(await engine.routes.routes_for_event(call("1002", "1001"))) == ["cheap"]
    await put(engine, lc_profile("*hc", routes=routes))
    assert ids(await engine.routes.routes_for_event(call("1002", "1001"))) == ["dear", "cheap"]


async def test_route_filters_apply_per_event(engine: Engine) -> None:
    routes = (
        Route("only_1001", filter_ids=("*string:~*req.Destination:1001",), weight=Decimal(30)),
        Route("only_1003", filter_ids=("*string:~*req.Destination:1003",), weight=Decimal(20)),
        Route("any", weight=Decimal(10)),
    )
    await put(engine, lc_profile("*weight", routes=routes))
    assert ids(await engine.routes.routes_for_event(call("1002", "1001"))) == ["only_1001", "any"]
    assert ids(await engine.routes.routes_for_event(call("1002", "1003"))) == ["only_1003", "any"]


async def test_paging_and_profile_selection(engine: Engine) -> None:
    await put(engine, lc_profile("*weight"))
    replies = await engine.routes.routes_for_event(
        call("1002", "1001"), RouteQuery(offset=1, limit=1)
    )
    assert [(r.profile_id, ids([r])) for r in replies] == [("ROUTE_TEST", ["route1"])]
    both = await engine.routes.routes_for_event(call("1002", "1001"), RouteQuery(profile_count=2))
    assert [r.profile_id for r in both] == ["ROUTE_TEST", "ROUTE_ACNT_1002"]
    assert [p.id for p in engine.routes.profiles_for_event(call("1002", "1001"))] == [
        "ROUTE_TEST",
        "ROUTE_ACNT_1002",
    ]
    with pytest.raises(RouteSError, match=r"^NOT_FOUND$"):
        await engine.routes.routes_for_event(call("2002", "1001"))
    # Not active before its ActivationInterval.
    early = CGREvent("cgrates.org", "ev", datetime(2017, 1, 1, tzinfo=UTC), {"Account": "1001"})
    with pytest.raises(RouteSError, match=r"^NOT_FOUND$"):
        engine.routes.profiles_for_event(early)


async def test_qos_sorts_by_injected_metrics_else_by_weight(engine: Engine) -> None:
    event = call("1003", "1001")
    # No StatS: the SortingParameters metrics (*tcc;*tcd) are all missing (-1), weight decides.
    (reply,) = await engine.routes.routes_for_event(event)
    assert [(r.route_id, r.sorting_data) for r in reply.routes] == [
        ("route2", {"*tcc": Decimal(-1), "*tcd": Decimal(-1), "Weight": Decimal(20)}),
        ("route1", {"*tcc": Decimal(-1), "*tcd": Decimal(-1), "Weight": Decimal(10)}),
    ]
    engine.routes.metrics = FakeMetrics(
        {"Stats2": {"*tcc": Decimal(5), "*tcd": Decimal(60)}, "Stats2_1": {"*tcc": Decimal(3)}}
    )
    (reply,) = await engine.routes.routes_for_event(event)
    assert [(r.route_id, r.sorting_data) for r in reply.routes] == [
        ("route1", {"*tcc": Decimal(5), "*tcd": Decimal(60), "Weight": Decimal(10)}),
        ("route2", {"*tcc": Decimal(3), "*tcd": Decimal(-1), "Weight": Decimal(20)}),
    ]


async def test_paging_runs_across_profiles_and_empty_profiles_give_way(engine: Engine) -> None:
    await put(engine, lc_profile("*weight"))
    query = RouteQuery(profile_count=2, offset=1, limit=2)
    replies = await engine.routes.routes_for_event(call("1002", "1001"), query)
    assert [(r.profile_id, ids([r])) for r in replies] == [
        ("ROUTE_TEST", ["route1"]),
        ("ROUTE_ACNT_1002", ["route1"]),
    ]
    # ROUTE_TEST (heavier) is left with no route for this event: ROUTE_ACNT_1002 answers.
    only_1003 = (Route("r", filter_ids=("*string:~*req.Destination:1003",)),)
    await put(engine, lc_profile("*weight", routes=only_1003))
    (reply,) = await engine.routes.routes_for_event(call("1002", "1001"))
    assert reply.profile_id == "ROUTE_ACNT_1002"


async def test_of_two_routes_with_one_id_the_heavier_that_passes_counts(engine: Engine) -> None:
    routes = (
        Route("gw1", filter_ids=("*string:~*req.Destination:1001",), weight=Decimal(30)),
        Route("gw2", weight=Decimal(20)),
        Route("gw1", weight=Decimal(10)),
    )
    await put(engine, lc_profile("*weight", routes=routes))
    (reply,) = await engine.routes.routes_for_event(call("1002", "1001"))
    assert [(r.route_id, r.sorting_data["Weight"]) for r in reply.routes] == [
        ("gw1", Decimal(30)),
        ("gw2", Decimal(20)),
    ]
    (reply,) = await engine.routes.routes_for_event(call("1002", "1003"))
    assert [(r.route_id, r.sorting_data["Weight"]) for r in reply.routes] == [
        ("gw2", Decimal(20)),
        ("gw1", Decimal(10)),
    ]
