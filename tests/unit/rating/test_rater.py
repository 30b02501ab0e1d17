"""GetCost semantics, on the CGRateS tutorial plan and on small plans for one behaviour each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rating import CostQuery, Rater, RatingError
from core.rating.callcost import CallCost, IncrementGroup
from core.rating.errors import (
    ERR_MAX_USAGE_EXCEEDED,
    ERR_RATING_PLAN_NOT_FOUND,
    ERR_UNAUTHORIZED_DESTINATION,
)
from core.rating.rater import fallback_keys
from core.tariffplan.models import (
    Destination,
    DestinationRate,
    Rate,
    RatingPlan,
    TariffPlan,
)
from core.types import InvalidValue

from .plans import (
    ACTIVATION,
    MINUTE,
    S,
    add_profiles,
    binding,
    entry,
    peak_plan,
    profile,
    single_rate_plan,
    slot,
    tutorial_plan,
)

D = Decimal
CALL_START = datetime(2014, 8, 4, 13, 0, tzinfo=UTC)  # a Monday
TUTORIAL = Rater.from_plan(tutorial_plan())


def cost(
    rater: Rater,
    destination: str,
    usage: int,
    *,
    subject: str = "1001",
    start: datetime = CALL_START,
    tenant: str = "cgrates.org",
    category: str = "call",
    tor: str = "*voice",
    cut: bool = False,
) -> CallCost:
    query = CostQuery(tenant, category, subject, destination, start, usage, tor)
    return rater.get_cost(query, cut_at_max_cost=cut)


def groups(call: CallCost) -> list[tuple[int, Decimal, int]]:
    return [(g.usage, g.cost, g.compress_factor) for _, g in call.increments()]


# ------------------------------------------------------------------------- tutorial plan results
def test_tutorial_two_minutes() -> None:
    call = cost(TUTORIAL, "1002", 120 * S)
    assert call.cost == D("0.7002")
    assert call.connect_fee == D("0.4")
    assert call.rated_usage == 120 * S
    assert call.profile_key == "*out:cgrates.org:call:1001"
    assert call.rating_plan_id == "RP_1001"
    assert (call.destination_id, call.destination_prefix) == ("DST_1002", "1002")
    # the first minute in one 60 s increment, then per second at 0.1/min
    assert groups(call) == [(60 * S, D("0.2"), 1), (S, D("0.00167"), 60)]
    assert [(span.start, span.end) for span in call.timespans] == [(0, 60 * S), (60 * S, 120 * S)]
    assert [span.slot.group_interval_start for span in call.timespans] == [0, 60 * S]


def test_tutorial_two_minutes_ten() -> None:
    call = cost(TUTORIAL, "1002", 130 * S)
    assert call.cost == D("0.7169")
    assert groups(call) == [(60 * S, D("0.2"), 1), (S, D("0.00167"), 70)]


def test_tutorial_one_minute() -> None:
    call = cost(TUTORIAL, "1002", 60 * S)
    assert call.cost == D("0.6")
    assert len(call.timespans) == 1


def test_tutorial_partial_first_increment_is_charged_whole() -> None:
    call = cost(TUTORIAL, "1002", 30 * S)
    assert call.cost == D("0.6")
    assert call.usage == 30 * S
    assert call.rated_usage == 60 * S


def test_tutorial_one_hour() -> None:
    # CGRateS apier2_it_test GetRatingPlansCost: 1h to 1002 under RP_1001 costs 6.5118
    assert cost(TUTORIAL, "1002", 3600 * S).cost == D("6.5118")


def test_tutorial_1003_max_cost_disconnect() -> None:
    # GetCost does not cut at a *disconnect MaxCost (CGRateS: 1h to 1003 costs 36): it flags it.
    call = cost(TUTORIAL, "1003", 60 * S)
    assert call.cost == D("0.6")
    assert call.rated_usage == 60 * S
    assert call.max_cost_reached
    assert call.max_cost_usage == 12 * S
    assert not call.truncated
    assert cost(TUTORIAL, "1003", 3600 * S).cost == D("36")
    # a debit (dry run) stops where the money reaches MaxCost: 12 s at 0.01/s
    cut = cost(TUTORIAL, "1003", 60 * S, cut=True)
    assert cut.cost == D("0.12")
    assert cut.rated_usage == 12 * S
    assert cut.truncated and cut.max_cost_reached
    assert groups(cut) == [(S, D("0.01"), 12)]


def test_tutorial_1003_below_max_cost_is_not_flagged() -> None:
    call = cost(TUTORIAL, "1003", 12 * S)
    assert call.cost == D("0.12")
    assert not call.max_cost_reached
    assert call.max_cost_usage is None


def test_tutorial_sms() -> None:
    for tor in ("*sms", "*voice", ""):
        call = cost(TUTORIAL, "1002", 1, subject="anyone", category="sms", tor=tor)
        assert call.cost == D("0.01")
        assert call.profile_key == "*out:cgrates.org:sms:*any"
        assert (call.destination_id, call.destination_prefix) == ("*any", "*any")
    assert cost(TUTORIAL, "1002", 3, subject="x", category="sms", tor="*sms").cost == D("0.03")


def test_tutorial_activation_in_force_at_start() -> None:
    # before 2014-01-14 subject 1001 was on RP_1002 (which rates DST_1001, not 1002)
    before = datetime(2013, 8, 4, 13, tzinfo=UTC)
    call = cost(TUTORIAL, "1001", 60 * S, start=before)
    assert call.rating_plan_id == "RP_1002"
    assert call.cost == D("0.6")
    with pytest.raises(RatingError) as error:
        cost(TUTORIAL, "1002", 60 * S, start=before)
    assert str(error.value) == ERR_UNAUTHORIZED_DESTINATION
    with pytest.raises(RatingError) as error:
        cost(TUTORIAL, "1001", 60 * S)  # RP_1001 has no DST_1001
    assert str(error.value) == ERR_UNAUTHORIZED_DESTINATION


def test_tutorial_any_subject() -> None:
    call = cost(TUTORIAL, "1002", 60 * S, subject="2000", tenant="cgrates.com")
    assert call.profile_key == "*out:cgrates.com:call:*any"
    assert call.cost == D("0.6")


def test_unknown_subject_without_any_profile() -> None:
    with pytest.raises(RatingError) as error:
        cost(TUTORIAL, "1002", 60 * S, subject="9999")
    assert str(error.value) == ERR_RATING_PLAN_NOT_FOUND
    assert error.value.code == ERR_RATING_PLAN_NOT_FOUND
    assert error.value.server_error == "SERVER_ERROR: RATING_PLAN_NOT_FOUND"


def test_defaults_tenant_category_and_subject_from_account() -> None:
    query = CostQuery("", "", "", "1002", CALL_START, 60 * S, account="1001")
    call = TUTORIAL.get_cost(query)
    assert (call.tenant, call.category, call.subject) == ("cgrates.org", "call", "1001")
    assert call.cost == D("0.6")


def test_zero_usage_costs_nothing_and_never_fails() -> None:
    call = cost(TUTORIAL, "1002", 0)
    assert call.cost == 0 and call.rated_usage == 0 and call.timespans == ()
    assert call.rating_plan_id == "RP_1001"
    unknown = cost(TUTORIAL, "1002", 0, subject="9999")
    assert unknown.cost == 0 and unknown.match is None


def test_usage_limits() -> None:
    with pytest.raises(RatingError) as error:
        cost(TUTORIAL, "1002", 73 * 3600 * S)  # rals max_computed_usage *voice 72h
    assert str(error.value) == ERR_MAX_USAGE_EXCEEDED
    # tor "" is APIerSv1.GetCost's: limited by *any (189h)
    assert cost(TUTORIAL, "1002", 73 * 3600 * S, tor="").rated_usage == 73 * 3600 * S
    with pytest.raises(RatingError):
        cost(TUTORIAL, "1002", 10_001, category="sms", subject="x", tor="*sms")
    with pytest.raises(InvalidValue):
        cost(TUTORIAL, "1002", -1)


def test_naive_start_is_utc() -> None:
    naive = cost(TUTORIAL, "1002", 130 * S, start=CALL_START.replace(tzinfo=None))
    assert naive.cost == D("0.7169")
    assert naive.start_time == CALL_START


# ------------------------------------------------------------------------ destination matching
def prefix_plan() -> TariffPlan:
    """DE (49) weight 20 at 1/min, BERLIN (4930) weight 10 at 2/min, BERLIN2 (4930) weight 15
    at 3/min, *any at 5/min (weight 0)."""
    plan = TariffPlan()
    for destination in (
        Destination("DE", ("49",)),
        Destination("BERLIN", ("4930",)),
        Destination("BERLIN2", ("4930",)),
    ):
        plan.destinations[destination.id] = destination
    for rate_id, price in (("R1", "1"), ("R2", "2"), ("R3", "3"), ("R5", "5")):
        plan.rates[rate_id] = Rate(rate_id, (slot("0", price, MINUTE, MINUTE, 0),))
    plan.destination_rates["DR_DE"] = DestinationRate("DR_DE", (entry("DE", "R1"),))
    plan.destination_rates["DR_BERLIN"] = DestinationRate("DR_BERLIN", (entry("BERLIN", "R2"),))
    plan.destination_rates["DR_BERLIN2"] = DestinationRate("DR_BERLIN2", (entry("BERLIN2", "R3"),))
    plan.destination_rates["DR_ANY"] = DestinationRate("DR_ANY", (entry("*any", "R5"),))
    plan.rating_plans["RP"] = RatingPlan(
        "RP",
        (
            binding("DR_DE", weight="20"),
            binding("DR_BERLIN", weight="10"),
            binding("DR_BERLIN2", weight="15"),
            binding("DR_ANY", weight="0"),
        ),
    )
    return add_profiles(plan, profile("cgrates.org", "call", "peer", (ACTIVATION, "RP")))


PREFIXES = Rater.from_plan(prefix_plan())


def test_longest_prefix_beats_weight_and_heaviest_wins_on_a_prefix() -> None:
    berlin = cost(PREFIXES, "4930123", MINUTE, subject="peer")
    assert (berlin.destination_id, berlin.destination_prefix) == ("BERLIN2", "4930")
    assert berlin.cost == D("3")
    munich = cost(PREFIXES, "4989123", MINUTE, subject="peer")
    assert (munich.destination_id, munich.destination_prefix, munich.cost) == ("DE", "49", D("1"))


def test_any_destination_is_the_shortest_match() -> None:
    for number in ("33123", "", "*any", "+4930"):  # "+4930" is matched as given: no "+49"
        call = cost(PREFIXES, number, MINUTE, subject="peer")
        assert (call.destination_id, call.destination_prefix, call.cost) == ("*any", "*any", D(5))


# ----------------------------------------------------------------------------- timing splits
PEAK = Rater.from_plan(peak_plan())


def test_call_crossing_peak_start_is_split() -> None:
    call = cost(
        PEAK, "49123", 130 * S, subject="peer", start=datetime(2014, 8, 4, 7, 59, tzinfo=UTC)
    )
    assert [span.timing_id for span in call.timespans] == ["OFFPEAK_MORNING", "PEAK"]
    assert [span.usage for span in call.timespans] == [60 * S, 70 * S]
    # 60 s at 1/min: 60 x round(1/60) = 60 x 0.01667; 70 s at 2/min: 70 x round(2.33333/70)
    assert groups(call) == [(S, D("0.01667"), 60), (S, D("0.03333"), 70)]
    assert call.connect_fee == D("0.5")
    assert call.unrounded_cost == D("3.8333")
    assert call.cost == D("3.8333")


def test_call_crossing_evening_and_weekend() -> None:
    evening = cost(
        PEAK, "49", 120 * S, subject="peer", start=datetime(2014, 8, 4, 18, 59, tzinfo=UTC)
    )
    assert [span.timing_id for span in evening.timespans] == ["PEAK", "OFFPEAK_EVENING"]
    friday_night = datetime(2014, 8, 8, 23, 59, 30, tzinfo=UTC)
    weekend = cost(PEAK, "49", 60 * S, subject="peer", start=friday_night)
    assert [span.timing_id for span in weekend.timespans] == ["OFFPEAK_EVENING", "OFFPEAK_WEEKEND"]
    assert [span.usage for span in weekend.timespans] == [30 * S, 30 * S]
    # 30 x round(0.5/60) at the weekend rate
    assert groups(weekend)[1] == (S, D("0.00833"), 30)


def test_call_inside_one_timing_is_one_span() -> None:
    call = cost(PEAK, "49", 600 * S, subject="peer", start=datetime(2014, 8, 4, 10, tzinfo=UTC))
    assert [span.timing_id for span in call.timespans] == ["PEAK"]
    assert call.cost == D("20.498")  # 0.5 + 600 x round(2/60, 5) = 0.5 + 600 x 0.03333
    sunday = cost(PEAK, "49", 60 * S, subject="peer", start=datetime(2014, 8, 3, 10, tzinfo=UTC))
    assert [span.timing_id for span in sunday.timespans] == ["OFFPEAK_WEEKEND"]
    assert sunday.connect_fee == D("0")


def test_increment_running_past_a_boundary_pushes_the_next_part() -> None:
    # 60 s increments: a part of 10 s before 08:00 is charged 60 s at the off-peak rate and the
    # peak part starts 50 s later (CGRateS roundTimeSpansToIncrement/RemoveOverlapedFromIndex).
    plan = peak_plan()
    plan.rates["RT_OFFPEAK"] = Rate("RT_OFFPEAK", (slot("0", "1", MINUTE, MINUTE, 0),))
    rater = Rater.from_plan(plan)
    start = datetime(2014, 8, 4, 7, 59, 50, tzinfo=UTC)
    call = cost(rater, "49", 70 * S, subject="peer", start=start)
    assert [(span.timing_id, span.start, span.end) for span in call.timespans] == [
        ("OFFPEAK_MORNING", 0, 60 * S),
        ("PEAK", 60 * S, 70 * S),
    ]
    assert call.unrounded_cost == D("1") + 10 * D("0.03333")


def test_non_voice_is_rated_by_the_interval_at_the_start() -> None:
    start = datetime(2014, 8, 4, 7, 59, tzinfo=UTC)
    data = cost(PEAK, "49", 100 * S, subject="peer", start=start, tor="*data")
    assert [span.timing_id for span in data.timespans] == ["OFFPEAK_MORNING"]


def test_midnight_splits_voice_calls() -> None:
    rater = Rater.from_plan(single_rate_plan(Rate("RT", (slot("0", "1", MINUTE, S, 0),))))
    start = datetime(2014, 8, 4, 23, 59, tzinfo=UTC)
    call = cost(rater, "49", 120 * S, subject="peer", start=start)
    assert [(span.start, span.end) for span in call.timespans] == [(0, 60 * S), (60 * S, 120 * S)]
    assert call.cost == D("2.0004")


# ------------------------------------------------------------------------ rate slots and rounding
def test_group_interval_start_tiers() -> None:
    # RT_40CNT: 0.4/min in 30 s increments for the first minute, then 0.2/min in 10 s increments
    rate = Rate(
        "RT_40CNT",
        (slot("0.8", "0.4", MINUTE, 30 * S, 0), slot("0", "0.2", MINUTE, 10 * S, MINUTE)),
    )
    rater = Rater.from_plan(single_rate_plan(rate))
    call = cost(rater, "49", 75 * S, subject="peer")
    # 15 s -> two 10 s increments: the part costs round(20 s x 0.2/60) = 0.06667, each increment
    # round(0.06667 / 2) = 0.03334 (CGRateS divides the rounded part cost)
    assert groups(call) == [(30 * S, D("0.2"), 2), (10 * S, D("0.03334"), 2)]
    assert call.rated_usage == 80 * S
    assert call.unrounded_cost == D("1.26668")
    assert call.cost == D("1.2667")
    short = cost(rater, "49", 20 * S, subject="peer")
    assert groups(short) == [(30 * S, D("0.2"), 1)]


def test_unit_and_increment_zero_mean_one_second() -> None:
    rater = Rater.from_plan(single_rate_plan(Rate("RT", (slot("0", "0.01", 0, 0, 0),))))
    call = cost(rater, "49", 10 * S + 1, subject="peer")
    assert groups(call) == [(S, D("0.01"), 11)]


@pytest.mark.parametrize(
    ("price", "method", "expected"),
    [
        ("0.125", "*up", "0.13"),
        ("0.125", "*down", "0.12"),
        ("0.125", "*middle", "0.13"),
        ("0.124", "*middle", "0.12"),
        ("0.124", "*up", "0.13"),
        ("0.129", "*down", "0.12"),
    ],
)
def test_rounding_methods(price: str, method: str, expected: str) -> None:
    rate = Rate("RT", (slot("0", price, MINUTE, MINUTE, 0),))
    rater = Rater.from_plan(single_rate_plan(rate, entry("DST", "RT", method, 2)))
    call = cost(rater, "49", MINUTE, subject="peer")
    assert call.unrounded_cost == D(price)
    assert call.cost == D(expected)


def test_zero_rounding_decimals_leave_the_cost_unrounded() -> None:
    rate = Rate("RT", (slot("0", "0.125", MINUTE, MINUTE, 0),))
    rater = Rater.from_plan(single_rate_plan(rate, entry("DST", "RT", "*up", 0)))
    assert cost(rater, "49", MINUTE, subject="peer").cost == D("0.125")


def test_global_rounding_decimals_is_a_parameter() -> None:
    rater = Rater.from_plan(tutorial_plan(), rounding_decimals=3)
    call = cost(rater, "1002", 130 * S)
    assert groups(call)[1] == (S, D("0.002"), 70)
    assert call.cost == D("0.74")


# ---------------------------------------------------------------------------------- MaxCost
def max_cost_rater(strategy: str, connect_fee: str = "0", price: str = "0.6") -> Rater:
    rate = Rate("RT", (slot(connect_fee, price, MINUTE, S, 0),))
    return Rater.from_plan(
        single_rate_plan(rate, entry("DST", "RT", max_cost="0.12", strategy=strategy))
    )


def test_max_cost_free() -> None:
    call = cost(max_cost_rater("*free", price="0.6"), "49", 60 * S, subject="peer")
    assert call.cost == D("0.12")
    assert call.rated_usage == 60 * S
    assert call.max_cost_reached
    assert groups(call) == [(S, D("0.01"), 12), (S, D("0"), 48)]
    assert call.to_event_cost()["Cost"] == D("0.12")


def test_max_cost_free_counts_the_connect_fee_and_charges_the_rest_partially() -> None:
    call = cost(
        max_cost_rater("*free", connect_fee="0.05", price="3"), "49", 60 * S, subject="peer"
    )
    # 0.05 connect + 0.05/s: 1 s paid (0.10), the 2nd pays the 0.02 left, the rest is free
    assert groups(call) == [(S, D("0.05"), 1), (S, D("0.02"), 1), (S, D("0"), 58)]
    assert call.cost == D("0.12")
    below = cost(max_cost_rater("*free", price="0.6"), "49", 10 * S, subject="peer")
    assert below.cost == D("0.1") and not below.max_cost_reached


def test_max_cost_disconnect_with_connect_fee() -> None:
    rater = max_cost_rater("*disconnect", connect_fee="0.05", price="0.6")
    call = cost(rater, "49", 60 * S, subject="peer")
    assert call.cost == D("0.65")
    assert call.max_cost_usage == 7 * S  # 0.05 + 7 x 0.01 reaches 0.12
    cut = cost(rater, "49", 60 * S, subject="peer", cut=True)
    assert (cut.cost, cut.rated_usage, cut.truncated) == (D("0.12"), 7 * S, True)


# ------------------------------------------------------------------- activations and fallbacks
def two_plans() -> TariffPlan:
    plan = TariffPlan()
    plan.destinations["DE"] = Destination("DE", ("49",))
    plan.destinations["FR"] = Destination("FR", ("33",))
    for rate_id, price, fee in (("R1", "1", "0.1"), ("R2", "2", "0.2"), ("R3", "3", "0.3")):
        plan.rates[rate_id] = Rate(rate_id, (slot(fee, price, MINUTE, S, 0),))
    plan.destination_rates["DR_DE1"] = DestinationRate("DR_DE1", (entry("DE", "R1"),))
    plan.destination_rates["DR_DE2"] = DestinationRate("DR_DE2", (entry("DE", "R2"),))
    plan.destination_rates["DR_DE3"] = DestinationRate("DR_DE3", (entry("DE", "R3"),))
    plan.destination_rates["DR_FR"] = DestinationRate("DR_FR", (entry("FR", "R1"),))
    for plan_id, destination_rates in (
        ("RP_DE1", "DR_DE1"),
        ("RP_DE2", "DR_DE2"),
        ("RP_DE3", "DR_DE3"),
        ("RP_FR", "DR_FR"),
    ):
        plan.rating_plans[plan_id] = RatingPlan(plan_id, (binding(destination_rates),))
    return plan


def test_call_crossing_an_activation_is_split() -> None:
    plan = add_profiles(
        two_plans(),
        profile(
            "cgrates.org",
            "call",
            "peer",
            (ACTIVATION, "RP_DE1"),
            (CALL_START + timedelta(minutes=1), "RP_DE2"),
        ),
    )
    call = cost(Rater.from_plan(plan), "49", 120 * S, subject="peer")
    assert [span.match.rating_plan_id for span in call.timespans] == ["RP_DE1", "RP_DE2"]
    assert call.connect_fee == D("0.1")  # the first interval's, once
    assert groups(call) == [(S, D("0.01667"), 60), (S, D("0.03333"), 60)]
    assert call.cost == D("0.1") + D("1.0002") + D("1.9998")
    assert call.rating_plan_id == "RP_DE1"


def test_activation_at_the_start_is_in_force() -> None:
    plan = add_profiles(
        two_plans(),
        profile("cgrates.org", "call", "peer", (ACTIVATION, "RP_DE1"), (CALL_START, "RP_DE2")),
    )
    assert cost(Rater.from_plan(plan), "49", 60 * S, subject="peer").rating_plan_id == "RP_DE2"


def test_activation_without_rate_lets_the_previous_plan_go_on() -> None:
    plan = add_profiles(
        two_plans(),
        profile(
            "cgrates.org",
            "call",
            "peer",
            (ACTIVATION, "RP_DE1"),
            (CALL_START + timedelta(seconds=30), "RP_FR"),
        ),
    )
    call = cost(Rater.from_plan(plan), "49", 60 * S, subject="peer")
    assert {span.match.rating_plan_id for span in call.timespans} == {"RP_DE1"}


def test_rates_fallback_subject_in_sorted_order() -> None:
    plan = add_profiles(
        two_plans(),
        profile("cgrates.org", "call", "peer", (ACTIVATION, "RP_FR", ("zeta;beta",))),
        profile("cgrates.org", "call", "zeta", (ACTIVATION, "RP_DE3")),
        profile("cgrates.org", "call", "beta", (ACTIVATION, "RP_DE2")),
    )
    rater = Rater.from_plan(plan)
    call = cost(rater, "49", 60 * S, subject="peer")
    assert call.profile_key == "*out:cgrates.org:call:beta"
    assert call.rating_plan_id == "RP_DE2"
    assert cost(rater, "33", 60 * S, subject="peer").rating_plan_id == "RP_FR"
    with pytest.raises(RatingError) as error:
        cost(rater, "44", 60 * S, subject="peer")
    assert str(error.value) == ERR_UNAUTHORIZED_DESTINATION


def test_fallback_keys_format() -> None:
    assert fallback_keys("t", "call", ("zeta;beta", "beta", " ")) == (
        "*out:t:call:beta",
        "*out:t:call:zeta",
    )


def test_fallbacks_nest_at_most_three_deep() -> None:
    chain = [("a", "b"), ("b", "c"), ("c", "d")]
    plan = two_plans()
    for subject, fallback in chain:
        add_profiles(
            plan, profile("cgrates.org", "call", subject, (ACTIVATION, "RP_FR", (fallback,)))
        )
    add_profiles(plan, profile("cgrates.org", "call", "d", (ACTIVATION, "RP_DE1")))
    rater = Rater.from_plan(plan)
    assert cost(rater, "49", 60 * S, subject="b").profile_key == "*out:cgrates.org:call:d"
    with pytest.raises(RatingError):
        cost(rater, "49", 60 * S, subject="a")  # a -> b -> c -> d is one level too deep


def test_no_activation_yet_asks_the_any_subject() -> None:
    later = CALL_START + timedelta(seconds=30)
    plan = add_profiles(two_plans(), profile("cgrates.org", "call", "peer", (later, "RP_DE2")))
    with pytest.raises(RatingError) as error:
        cost(Rater.from_plan(plan), "49", 60 * S, subject="peer")
    assert str(error.value) == ERR_UNAUTHORIZED_DESTINATION
    add_profiles(plan, profile("cgrates.org", "call", "*any", (ACTIVATION, "RP_DE1")))
    call = cost(Rater.from_plan(plan), "49", 60 * S, subject="peer")
    assert [span.match.subject for span in call.timespans] == [
        "*out:cgrates.org:call:*any",
        "*out:cgrates.org:call:peer",
    ]
    assert [span.usage for span in call.timespans] == [30 * S, 30 * S]


def test_subject_prefix_matching_option() -> None:
    plan = add_profiles(two_plans(), profile("cgrates.org", "call", "10", (ACTIVATION, "RP_DE1")))
    assert cost(Rater.from_plan(plan, subject_prefix_matching=True), "49", S, subject="1001")
    with pytest.raises(RatingError):
        cost(Rater.from_plan(plan), "49", S, subject="1001")


def test_dangling_references_fail_the_build() -> None:
    plan = tutorial_plan()
    plan.rating_plans["RP_BAD"] = RatingPlan("RP_BAD", (binding("DR_NOPE"),))
    with pytest.raises(InvalidValue):
        Rater.from_plan(plan)


# ------------------------------------------------------------------------------- properties
@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(min_value=1, max_value=4 * 3600 * S),
    second=st.integers(min_value=1, max_value=4 * 3600 * S),
    destination=st.sampled_from(["1002", "1003"]),
    offset=st.integers(min_value=0, max_value=7 * 24 * 3600),
)
def test_cost_is_monotonic_in_usage(first: int, second: int, destination: str, offset: int) -> None:
    shorter, longer = sorted((first, second))
    start = CALL_START + timedelta(seconds=offset)
    cheap = cost(TUTORIAL, destination, shorter, start=start)
    dear = cost(TUTORIAL, destination, longer, start=start)
    assert cheap.cost <= dear.cost
    assert cheap.rated_usage <= dear.rated_usage
    assert dear.rated_usage >= longer
    assert (
        sum((g.total_cost for _, g in dear.increments()), dear.connect_fee) == dear.unrounded_cost
    )


@settings(max_examples=100, deadline=None)
@given(
    first=st.integers(min_value=1, max_value=3 * 3600 * S),
    second=st.integers(min_value=1, max_value=3 * 3600 * S),
    offset=st.integers(min_value=0, max_value=7 * 24 * 3600),
)
def test_peak_plan_cost_is_monotonic_and_spans_are_contiguous(
    first: int, second: int, offset: int
) -> None:
    shorter, longer = sorted((first, second))
    start = CALL_START + timedelta(seconds=offset)
    cheap = cost(PEAK, "49", shorter, subject="peer", start=start)
    dear = cost(PEAK, "49", longer, subject="peer", start=start)
    assert cheap.cost <= dear.cost
    ends = [0] + [span.end for span in dear.timespans]
    assert [span.start for span in dear.timespans] == ends[:-1]
    assert all(isinstance(g, IncrementGroup) for _, g in dear.increments())


def test_results_shared_between_destinations_keep_their_own_match() -> None:
    plan = single_rate_plan(Rate("RT", (slot("0.1", "1", MINUTE, S, 0),)), prefixes=("49",))
    plan.destinations["FR"] = Destination("FR", ("33",))
    plan.destination_rates["DR"] = DestinationRate("DR", (entry("DST", "RT"), entry("FR", "RT")))
    rater = Rater.from_plan(plan)
    for number, destination_id in (("4912", "DST"), ("3312", "FR"), ("4912", "DST")):
        call = cost(rater, number, 90 * S, subject="peer")
        assert call.destination_id == destination_id
        assert {span.match.destination_id for span in call.timespans} == {destination_id}
        filters = call.to_event_cost()["RatingFilters"]
        assert [f["DestinationID"] for f in filters.values()] == [destination_id]
        assert call.cost == D("0.1") + 90 * D("0.01667")


def test_timings_are_read_in_the_call_start_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    call = cost(
        PEAK, "49", 120 * S, subject="peer", start=datetime(2014, 8, 4, 7, 59, tzinfo=plus_two)
    )
    assert [span.timing_id for span in call.timespans] == ["OFFPEAK_MORNING", "PEAK"]
    assert [span.usage for span in call.timespans] == [60 * S, 60 * S]
    berlin = ZoneInfo("Europe/Berlin")
    saturday = cost(
        PEAK, "49", 120 * S, subject="peer", start=datetime(2014, 8, 8, 23, 59, tzinfo=berlin)
    )
    assert [span.timing_id for span in saturday.timespans] == ["OFFPEAK_EVENING", "OFFPEAK_WEEKEND"]
    assert saturday.start_time.tzinfo is berlin
