"""Tariff plans built in code for the rating tests.

``tutorial_plan()`` is the rating part of CGRateS's tutorial tariff plan
(shared/tariffplans/cgrates_tutorial: Destinations, Rates, DestinationRates, RatingPlans,
RatingProfiles), row for row. The other builders make small plans for one behaviour each.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from core.tariffplan.models import (
    Destination,
    DestinationRate,
    DestinationRateEntry,
    Rate,
    RateSlot,
    RatingActivation,
    RatingPlan,
    RatingPlanBinding,
    RatingProfile,
    TariffPlan,
    Timing,
)
from core.types import SECOND

D = Decimal
S = SECOND
MINUTE = 60 * S
ACTIVATION = datetime(2014, 1, 14, tzinfo=UTC)


def slot(connect_fee: str, rate: str, unit: int, increment: int, start: int) -> RateSlot:
    return RateSlot(D(connect_fee), D(rate), unit, increment, start)


def entry(
    destination_id: str,
    rate_id: str,
    method: str = "*up",
    decimals: int = 4,
    max_cost: str = "0",
    strategy: str = "",
) -> DestinationRateEntry:
    return DestinationRateEntry(destination_id, rate_id, method, decimals, D(max_cost), strategy)


def binding(
    destination_rates_id: str, timing_id: str = "*any", weight: str = "10"
) -> RatingPlanBinding:
    return RatingPlanBinding(destination_rates_id, timing_id, D(weight))


def profile(
    tenant: str,
    category: str,
    subject: str,
    *activations: tuple[datetime, str] | tuple[datetime, str, tuple[str, ...]],
) -> RatingProfile:
    built = []
    for item in activations:
        fallbacks = item[2] if len(item) == 3 else ()
        built.append(RatingActivation(item[0], item[1], fallbacks))
    built.sort(key=lambda activation: activation.activation_time)
    return RatingProfile(tenant, category, subject, tuple(built))


def add_profiles(plan: TariffPlan, *profiles: RatingProfile) -> TariffPlan:
    for item in profiles:
        plan.rating_profiles[item.key] = item
    return plan


def tutorial_plan() -> TariffPlan:
    plan = TariffPlan()
    for destination in (
        Destination("DST_1002", ("1002",)),
        Destination("DST_1001", ("1001",)),
        Destination("DST_FS", ("10",)),
        Destination("DST_1003", ("1003",)),
    ):
        plan.destinations[destination.id] = destination
    for rate in (
        Rate(
            "RT_10CNT",
            (slot("0.2", "0.1", MINUTE, MINUTE, 0), slot("0", "0.05", MINUTE, S, MINUTE)),
        ),
        Rate(
            "RT_20CNT", (slot("0.4", "0.2", MINUTE, MINUTE, 0), slot("0", "0.1", MINUTE, S, MINUTE))
        ),
        Rate(
            "RT_40CNT",
            (slot("0.8", "0.4", MINUTE, 30 * S, 0), slot("0", "0.2", MINUTE, 10 * S, MINUTE)),
        ),
        Rate("RT_1CNT", (slot("0", "0.01", MINUTE, MINUTE, 0),)),
        Rate("RT_1CNT_PER_SEC", (slot("0", "0.01", S, S, 0),)),
        Rate("RT_SMS", (slot("0", "0.01", 1, 1, 0),)),
        Rate("RT_MMS", (slot("0", "0.01", 1, 1, 0),)),
    ):
        plan.rates[rate.id] = rate
    for destination_rate in (
        DestinationRate("DR_1001_20CNT", (entry("DST_1001", "RT_20CNT"),)),
        DestinationRate("DR_1002_20CNT", (entry("DST_1002", "RT_20CNT"),)),
        DestinationRate(
            "DR_1003_MAXCOST_DISC",
            (entry("DST_1003", "RT_1CNT_PER_SEC", max_cost="0.12", strategy="*disconnect"),),
        ),
        DestinationRate("DR_1001_10CNT", (entry("DST_1001", "RT_10CNT"),)),
        DestinationRate("DR_SMS", (entry("*any", "RT_SMS"),)),
        DestinationRate("DR_MMS", (entry("*any", "RT_MMS"),)),
    ):
        plan.destination_rates[destination_rate.id] = destination_rate
    for rating_plan in (
        RatingPlan("RP_1001", (binding("DR_1002_20CNT"), binding("DR_1003_MAXCOST_DISC"))),
        RatingPlan("RP_1002", (binding("DR_1001_20CNT"),)),
        RatingPlan("RP_1002_LOW", (binding("DR_1001_10CNT"),)),
        RatingPlan("RP_1003", (binding("DR_1001_10CNT"),)),
        RatingPlan("RP_SMS", (binding("DR_SMS", weight="0"),)),
        RatingPlan("RP_MMS", (binding("DR_MMS", weight="0"),)),
    ):
        plan.rating_plans[rating_plan.id] = rating_plan
    return add_profiles(
        plan,
        profile(
            "cgrates.org",
            "call",
            "1001",
            (ACTIVATION, "RP_1001"),
            (datetime(2010, 1, 14, tzinfo=UTC), "RP_1002"),
        ),
        profile("cgrates.org", "call", "1002", (ACTIVATION, "RP_1002")),
        profile("cgrates.org", "call", "1003", (ACTIVATION, "RP_1003")),
        profile("cgrates.org", "sms", "*any", (ACTIVATION, "RP_SMS")),
        profile("cgrates.org", "mms", "*any", (ACTIVATION, "RP_MMS")),
        profile("cgrates.com", "custom_charger", "*any", (ACTIVATION, "RP_1001")),
        profile("cgrates.com", "call", "*any", (ACTIVATION, "RP_1001")),
    )


# ------------------------------------------------------------------------------- small plans
PEAK = Timing("PEAK", week_days=frozenset({1, 2, 3, 4, 5}), start_time="08:00:00")
OFFPEAK_MORNING = Timing(
    "OFFPEAK_MORNING", week_days=frozenset({1, 2, 3, 4, 5}), start_time="00:00:00"
)
OFFPEAK_EVENING = Timing(
    "OFFPEAK_EVENING", week_days=frozenset({1, 2, 3, 4, 5}), start_time="19:00:00"
)
OFFPEAK_WEEKEND = Timing("OFFPEAK_WEEKEND", week_days=frozenset({0, 6}), start_time="00:00:00")


def single_rate_plan(
    rate: Rate,
    destination_entry: DestinationRateEntry | None = None,
    prefixes: tuple[str, ...] = ("49",),
    subject: str = "peer",
) -> TariffPlan:
    """One destination DST (``prefixes``) rated by one rate, for ``cgrates.org:call:<subject>``."""
    plan = TariffPlan()
    plan.destinations["DST"] = Destination("DST", prefixes)
    plan.rates[rate.id] = rate
    plan.destination_rates["DR"] = DestinationRate(
        "DR", (destination_entry or entry("DST", rate.id),)
    )
    plan.rating_plans["RP"] = RatingPlan("RP", (binding("DR"),))
    return add_profiles(plan, profile("cgrates.org", "call", subject, (ACTIVATION, "RP")))


def peak_plan() -> TariffPlan:
    """Weekdays: 1/min until 08:00, 2/min 08:00-19:00, 1/min after; weekends 0.5/min. Per second."""
    plan = TariffPlan()
    for timing in (PEAK, OFFPEAK_MORNING, OFFPEAK_EVENING, OFFPEAK_WEEKEND):
        plan.timings[timing.id] = timing
    plan.destinations["DST"] = Destination("DST", ("49",))
    plan.rates["RT_PEAK"] = Rate("RT_PEAK", (slot("0.5", "2", MINUTE, S, 0),))
    plan.rates["RT_OFFPEAK"] = Rate("RT_OFFPEAK", (slot("0.5", "1", MINUTE, S, 0),))
    plan.rates["RT_WEEKEND"] = Rate("RT_WEEKEND", (slot("0", "0.5", MINUTE, S, 0),))
    plan.destination_rates["DR_PEAK"] = DestinationRate("DR_PEAK", (entry("DST", "RT_PEAK"),))
    plan.destination_rates["DR_OFFPEAK"] = DestinationRate(
        "DR_OFFPEAK", (entry("DST", "RT_OFFPEAK"),)
    )
    plan.destination_rates["DR_WEEKEND"] = DestinationRate(
        "DR_WEEKEND", (entry("DST", "RT_WEEKEND"),)
    )
    plan.rating_plans["RP"] = RatingPlan(
        "RP",
        (
            binding("DR_OFFPEAK", "OFFPEAK_MORNING"),
            binding("DR_PEAK", "PEAK"),
            binding("DR_OFFPEAK", "OFFPEAK_EVENING"),
            binding("DR_WEEKEND", "OFFPEAK_WEEKEND"),
        ),
    )
    return add_profiles(plan, profile("cgrates.org", "call", "peer", (ACTIVATION, "RP")))
