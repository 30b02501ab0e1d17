"""Sortings over route metrics fed by an injected RouteMetrics (StatS and ResourceS do not exist
yet): *qos, *load, *reas, *reds, ordered as CGRateS's libroutes.go sorts (ties by Weight; its
last resort, a random pick, is the profile's route order here)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import load_config
from core.engine import Engine
from core.filters.event import CGREvent
from core.routes import RouteQuery, RouteSError, SortedRoutes
from core.routes.service import (
    MISSING_PDD,
    RouteService,
    check_route_profile,
    load_ratios,
)
from core.tariffplan import KIND_ROUTES
from core.tariffplan.models import Route, RouteProfile, TariffPlan
from core.types import InvalidValue

WHEN = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


class FixedMetrics:
    """RouteMetrics from fixed figures; records what RouteS asked."""

    def __init__(
        self,
        stats: Mapping[str, Mapping[str, Decimal]] | None = None,
        resources: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.stats = stats or {}
        self.resources = resources or {}
        self.asked: list[tuple[str, str]] = []

    async def stat_metrics(self, tenant: str, stat_id: str) -> Mapping[str, Decimal]:
        self.asked.append((tenant, stat_id))
        return self.stats.get(stat_id, {})

    async def resource_usage(self, tenant: str, resource_id: str) -> Decimal:
        self.asked.append((tenant, resource_id))
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
    try:
        yield engine
    finally:
        await engine.stop()


async def put(engine: Engine, sorting: str, routes: Sequence[Route], *params: str) -> None:
    profile = RouteProfile(
        "cgrates.org", "ROUTE_M", sorting=sorting, sorting_parameters=params, routes=tuple(routes)
    )
    await engine.loader.load_plan(TariffPlan(others={KIND_ROUTES: {profile.key: profile}}))


async def sorted_data(
    routes: RouteService, query: RouteQuery | None = None
) -> list[tuple[str, dict[str, Any]]]:
    query = query or RouteQuery()
    event = CGREvent("cgrates.org", "ev", WHEN, {"Account": "1001", "Destination": "1002"})
    replies: list[SortedRoutes] = await routes.routes_for_event(event, query)
    return [(r.route_id, r.sorting_data) for reply in replies for r in reply.routes]


def ids(data: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [route_id for route_id, _ in data]


def w(value: int) -> Decimal:
    return Decimal(value)


async def test_load_distribution_by_load_over_ratio(engine: Engine) -> None:
    # CGRateS's TestLibRoutesSortLoadDistribution figures: 3/4, 5/10, 1/1 -> 0.5, 0.75, 1.
    routes = [
        Route("r1", stat_ids=("S1",), weight=w(10)),
        Route("r2", stat_ids=("S2",), weight=w(20)),
        Route("r3", stat_ids=("S3",), weight=w(10)),
    ]
    await put(engine, "*load", routes, "r1:4", "r2:10", "*default:1")
    engine.routes.metrics = FixedMetrics(
        {"S1": {"*sum#1": Decimal(3)}, "S2": {"*sum#1": Decimal(5)}, "S3": {"*sum#1": w(1)}}
    )
    assert await sorted_data(engine.routes) == [
        ("r2", {"Weight": w(20), "Load": w(5), "Ratio": w(10)}),
        ("r1", {"Weight": w(10), "Load": w(3), "Ratio": w(4)}),
        ("r3", {"Weight": w(10), "Load": w(1), "Ratio": w(1)}),
    ]


async def test_load_sums_metrics_or_takes_the_named_one(engine: Engine) -> None:
    routes = [
        Route("all_metrics", stat_ids=("S1", "S2"), weight=w(10)),  # 2 + 3 + 4 = 9
        Route("one_metric", stat_ids=("S1:*tcc",), weight=w(5)),  # 3
        Route("missing_metric", stat_ids=("S2:*tcc",), weight=w(30)),
    ]
    engine.routes.metrics = FixedMetrics({"S1": {"*acd": w(2), "*tcc": w(3)}, "S2": {"*tcd": w(4)}})
    await put(engine, "*load", routes)  # no ratios: 1 each
    with pytest.raises(RouteSError, match=r"^SERVER_ERROR: .*metric \*tcc for statID: S2$"):
        await sorted_data(engine.routes)
    data = await sorted_data(engine.routes, RouteQuery(ignore_errors=True))
    assert data == [
        ("one_metric", {"Weight": w(5), "Load": w(3), "Ratio": w(1)}),
        ("all_metrics", {"Weight": w(10), "Load": w(9), "Ratio": w(1)}),
    ]


async def test_load_ties_go_to_the_heavier_route_then_the_profile_order(engine: Engine) -> None:
    routes = [
        Route("light", stat_ids=("S",), weight=w(1)),
        Route("first_heavy", stat_ids=("S",), weight=w(9)),
        Route("second_heavy", stat_ids=("S",), weight=w(9)),
        Route("zero_ratio", stat_ids=("S",), weight=w(99)),  # never preferred
    ]
    await put(engine, "*load", routes, "zero_ratio:0", "*default:2")
    engine.routes.metrics = FixedMetrics({"S": {"*tcc": w(4)}})
    assert ids(await sorted_data(engine.routes)) == [
        "first_heavy", "second_heavy", "light", "zero_ratio"
    ]  # fmt: skip


async def test_no_stats_means_no_load_and_weight_decides(engine: Engine) -> None:
    routes = [Route("a", stat_ids=("S",), weight=w(1)), Route("b", stat_ids=("S",), weight=w(2))]
    await put(engine, "*load", routes)
    assert await sorted_data(engine.routes) == [
        ("b", {"Weight": w(2), "Load": w(0), "Ratio": w(1)}),
        ("a", {"Weight": w(1), "Load": w(0), "Ratio": w(1)}),
    ]


@pytest.mark.parametrize(
    ("sorting", "expected"), [("*reas", ["idle", "busy_heavy", "busy_light", "busiest"]),
                              ("*reds", ["busiest", "busy_heavy", "busy_light", "idle"])]
)  # fmt: skip
async def test_resource_usage_sortings(engine: Engine, sorting: str, expected: list[str]) -> None:
    routes = [
        Route("busiest", resource_ids=("R1", "R2"), weight=w(1)),  # 7 + 5
        Route("busy_light", resource_ids=("R2",), weight=w(1)),  # 5
        Route("busy_heavy", resource_ids=("R3",), weight=w(8)),  # 5: the weight wins the tie
        Route("idle", resource_ids=("unknown",), weight=w(0)),  # 0
    ]
    metrics = FixedMetrics(resources={"R1": w(7), "R2": w(5), "R3": w(5)})
    engine.routes.metrics = metrics
    await put(engine, sorting, routes)
    data = await sorted_data(engine.routes)
    assert ids(data) == expected
    assert dict(data)["busiest"] == {"Weight": w(1), "ResourceUsage": w(12)}
    assert ("cgrates.org", "R1") in metrics.asked


async def test_qos_metrics_in_parameter_order_pdd_lower_is_better(engine: Engine) -> None:
    stats = {
        "fast": {"*asr": w(90), "*pdd": Decimal("1.5")},
        "slow": {"*asr": w(90), "*pdd": w(4)},
        "bad": {"*asr": w(40), "*pdd": w(1)},
        "half1": {"*asr": w(80)},
        "half2": {"*asr": w(100), "*acd": w(60)},
    }
    routes = [
        Route("bad", stat_ids=("bad",), weight=w(50)),
        Route("slow", stat_ids=("slow",), weight=w(50)),
        Route("fast", stat_ids=("fast",), weight=w(1)),
        Route("averaged", stat_ids=("half1", "half2"), weight=w(1)),  # *asr 90, no *pdd
        Route("no_stats", weight=w(70)),  # no data at all: its metrics read as 0
    ]
    engine.routes.metrics = FixedMetrics(stats)
    await put(engine, "*qos", routes, "*asr", "*pdd")
    data = await sorted_data(engine.routes)
    assert ids(data) == ["fast", "slow", "averaged", "bad", "no_stats"]
    assert dict(data)["averaged"] == {
        "Weight": w(1), "*asr": w(90), "*acd": w(60), "*pdd": MISSING_PDD
    }  # fmt: skip
    assert dict(data)["no_stats"] == {"Weight": w(70)}


async def test_weight_sorting_keeps_metrics_and_costs_in_the_data(engine: Engine) -> None:
    routes = [Route("s", stat_ids=("S",), resource_ids=("R",), weight=w(1))]
    engine.routes.metrics = FixedMetrics({"S": {"*acd": w(30)}}, {"R": w(2)})
    await put(engine, "*weight", routes, "*tcd")
    assert await sorted_data(engine.routes) == [
        ("s", {"Weight": w(1), "*acd": w(30), "*tcd": w(-1), "ResourceUsage": w(2)})
    ]


def test_load_ratios_parse_as_cgrates_compiles_them() -> None:
    profile = RouteProfile("t", "p", sorting="*load", sorting_parameters=("a:3", "*default:2"))
    assert load_ratios(profile) == {"a": w(3), "*default": w(2)}
    for bad in ("a", "a:1.5", "a:x", ":"):
        with pytest.raises(InvalidValue):
            check_route_profile(replace(profile, sorting_parameters=(bad,)))
    # Other sortings do not read their parameters as ratios.
    check_route_profile(replace(profile, sorting="*qos", sorting_parameters=("*acd",)))


_metric = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    loads=st.lists(st.tuples(_metric, st.integers(-2, 5), st.integers(0, 3)), min_size=1,
                   max_size=6)
)  # fmt: skip
def test_load_order_is_total_and_follows_load_over_ratio(
    loads: list[tuple[Decimal, int, int]],
) -> None:
    """Any figures sort without error, non-decreasing in Load/Ratio (ratio <= 0 last) and, on
    equal shares, non-increasing in weight."""
    from core.routes.service import _sort_key  # the key the service sorts with

    profile = RouteProfile("t", "p", sorting="*load")
    datas = [
        {"Weight": w(weight), "Load": load, "Ratio": w(ratio)} for load, ratio, weight in loads
    ]
    keys = [_sort_key("*load", profile, data) for data in datas]
    order = sorted(range(len(datas)), key=lambda i: (*keys[i], i))
    shares = [
        datas[i]["Load"] / datas[i]["Ratio"] if datas[i]["Ratio"] > 0 else Decimal("Infinity")
        for i in order
    ]
    assert shares == sorted(shares)
    for (left, share), (right, next_share) in itertools.pairwise(zip(order, shares, strict=True)):
        if share == next_share:
            assert datas[left]["Weight"] >= datas[right]["Weight"]
