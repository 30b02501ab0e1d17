"""How much usage an amount of money buys (MaxUsage for a prepaid monetary balance)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rating import CostQuery, Rater
from core.tariffplan.models import Rate

from .plans import MINUTE, S, entry, peak_plan, single_rate_plan, slot, tutorial_plan

D = Decimal
CALL_START = datetime(2014, 8, 4, 13, 0, tzinfo=UTC)
TUTORIAL = Rater.from_plan(tutorial_plan())


def query(destination: str, usage: int, **changes: Any) -> CostQuery:
    base = CostQuery("cgrates.org", "call", "1001", destination, CALL_START, usage)
    return base._replace(**changes)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ("0", 0),
        ("0.39", 0),  # the connect fee (0.4) is not covered
        ("0.59", 0),  # the connect fee is, the first 60 s increment (0.2) is not
        ("0.6", 60 * S),
        ("0.60166", 60 * S),
        ("0.60167", 61 * S),
        ("1", 299 * S),  # 0.4 + 0.2 + 239 x 0.00167 = 0.99913
        ("100", 3600 * S),  # never more than asked
    ],
)
def test_tutorial_1002(budget: str, expected: int) -> None:
    assert TUTORIAL.max_usage(query("1002", 3600 * S), D(budget)) == expected


def test_rounded_up_increment_is_capped_at_the_request() -> None:
    assert TUTORIAL.max_usage(query("1002", 30 * S), D("0.6")) == 30 * S


def test_max_cost_disconnect_stops_it() -> None:
    # 0.01/s, *disconnect at 0.12: whatever the budget, 12 s
    assert TUTORIAL.max_usage(query("1003", 60 * S), D("10")) == 12 * S
    assert TUTORIAL.max_usage(query("1003", 60 * S), D("0.05")) == 5 * S


def test_max_cost_free_lets_the_rest_through() -> None:
    rate = Rate("RT", (slot("0", "0.6", MINUTE, S, 0),))
    rater = Rater.from_plan(
        single_rate_plan(rate, entry("DST", "RT", max_cost="0.12", strategy="*free"))
    )
    base = CostQuery("cgrates.org", "call", "peer", "49", CALL_START, 60 * S)
    assert rater.max_usage(base, D("0.12")) == 60 * S
    assert rater.max_usage(base, D("0.05")) == 5 * S


def test_units_and_zero_usage() -> None:
    sms = query("1002", 10, category="sms", tor="*sms")
    assert TUTORIAL.max_usage(sms, D("0.05")) == 5
    assert TUTORIAL.max_usage(query("1002", 0), D("1")) == 0


def test_across_a_timing_boundary() -> None:
    rater = Rater.from_plan(peak_plan())
    # 07:59: 60 s off-peak at 0.01667/s (1.0002) then peak at 0.03333/s; connect fee 0.5
    start = datetime(2014, 8, 4, 7, 59, tzinfo=UTC)
    base = CostQuery("cgrates.org", "call", "peer", "49", start, 600 * S)
    assert rater.max_usage(base, D("1.5002")) == 60 * S
    assert rater.max_usage(base, D("1.5002") + 10 * D("0.03333")) == 70 * S


def test_max_usage_never_exceeds_what_the_budget_pays() -> None:
    base = query("1002", 3600 * S)
    for budget in ("0.7", "1.3", "2.71828", "5"):
        allowed = TUTORIAL.max_usage(base, D(budget))
        assert TUTORIAL.get_cost(query("1002", allowed)).unrounded_cost <= D(budget)
        assert TUTORIAL.get_cost(query("1002", allowed + S)).unrounded_cost > D(budget)


@settings(max_examples=150, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=2000),
    destination=st.sampled_from(["1002", "1003"]),
)
def test_allowed_usage_is_paid_for_and_one_second_more_is_not(cents: int, destination: str) -> None:
    budget = D(cents) / 100
    base = query(destination, 3600 * S)
    allowed = TUTORIAL.max_usage(base, budget)
    if allowed:
        assert (
            TUTORIAL.get_cost(query(destination, allowed), cut_at_max_cost=True).unrounded_cost
            <= budget
        )
    if allowed < 3600 * S:
        more = TUTORIAL.get_cost(query(destination, allowed + S), cut_at_max_cost=True)
        assert more.unrounded_cost > budget or more.truncated
