"""CallCost and its CGRateS EventCost form (what APIerSv1.GetCost answers)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.rating import CostQuery, Rater
from core.rating.callcost import GO_ZERO_TIME
from core.tariffplan.models import Rate
from core.types import HOUR, dumps, loads

from .plans import MINUTE, S, entry, single_rate_plan, slot, tutorial_plan

D = Decimal
CALL_START = datetime(2014, 8, 4, 13, 0, tzinfo=UTC)
TUTORIAL = Rater.from_plan(tutorial_plan())


def get(destination: str, usage: int, subject: str = "1001") -> dict[str, Any]:
    query = CostQuery("cgrates.org", "call", subject, destination, CALL_START, usage)
    return TUTORIAL.get_cost(query).to_event_cost()


def test_event_cost_shape() -> None:
    event_cost = get("1002", 130 * S)
    assert list(event_cost) == [
        "CGRID",
        "RunID",
        "StartTime",
        "Usage",
        "Cost",
        "Charges",
        "AccountSummary",
        "Rating",
        "Accounting",
        "RatingFilters",
        "Rates",
        "Timings",
    ]
    assert event_cost["CGRID"] == "" and event_cost["RunID"] == ""
    assert event_cost["StartTime"] == CALL_START
    assert event_cost["Usage"] == 130 * S
    assert event_cost["Cost"] == D("0.7169")
    assert event_cost["AccountSummary"] is None
    assert event_cost["Accounting"] == {}
    rating_id = next(iter(event_cost["Rating"]))
    assert event_cost["Charges"] == [
        {
            "RatingID": rating_id,
            "Increments": [
                {"Usage": 0, "Cost": D("0.4"), "AccountingID": "", "CompressFactor": 1},
                {"Usage": 60 * S, "Cost": D("0.2"), "AccountingID": "", "CompressFactor": 1},
            ],
            "CompressFactor": 1,
        },
        {
            "RatingID": rating_id,
            "Increments": [
                {"Usage": S, "Cost": D("0.00167"), "AccountingID": "", "CompressFactor": 70}
            ],
            "CompressFactor": 1,
        },
    ]
    rating = event_cost["Rating"][rating_id]
    assert {k: v for k, v in rating.items() if not k.endswith("ID")} == {
        "ConnectFee": D("0.4"),
        "RoundingMethod": "*up",
        "RoundingDecimals": 4,
        "MaxCost": D("0"),
        "MaxCostStrategy": "",
    }
    assert event_cost["RatingFilters"] == {
        rating["RatingFiltersID"]: {
            "DestinationID": "DST_1002",
            "DestinationPrefix": "1002",
            "RatingPlanID": "RP_1001",
            "Subject": "*out:cgrates.org:call:1001",
        }
    }
    assert event_cost["Rates"] == {
        rating["RatesID"]: [
            {
                "GroupIntervalStart": 0,
                "Value": D("0.2"),
                "RateIncrement": 60 * S,
                "RateUnit": 60 * S,
            },
            {
                "GroupIntervalStart": 60 * S,
                "Value": D("0.1"),
                "RateIncrement": S,
                "RateUnit": 60 * S,
            },
        ]
    }
    assert event_cost["Timings"] == {
        rating["TimingID"]: {
            "Years": [],
            "Months": [],
            "MonthDays": [],
            "WeekDays": [],
            "StartTime": "00:00:00",
        }
    }
    for identifier in (rating_id, rating["RatingFiltersID"], rating["RatesID"], rating["TimingID"]):
        assert re.fullmatch(r"[0-9a-f]{7}", identifier)


def test_ids_are_deterministic() -> None:
    first = get("1002", 130 * S)
    second = Rater.from_plan(tutorial_plan()).get_cost(
        CostQuery("cgrates.org", "call", "1001", "1002", CALL_START, 61 * S)
    )
    assert list(first["Rating"]) == list(second.to_event_cost()["Rating"])
    assert list(first["Rating"]) != list(get("1003", 10 * S)["Rating"])


def test_cgrid_and_run_id() -> None:
    call = TUTORIAL.get_cost(CostQuery("cgrates.org", "call", "1001", "1002", CALL_START, S))
    event_cost = call.to_event_cost("abc", "*default")
    assert (event_cost["CGRID"], event_cost["RunID"]) == ("abc", "*default")


def test_equal_consecutive_charges_are_compressed_but_not_the_first() -> None:
    rater = Rater.from_plan(single_rate_plan(Rate("RT", (slot("0.5", "1", MINUTE, S, 0),))))
    midnight = datetime(2014, 8, 4, tzinfo=UTC)
    query = CostQuery("cgrates.org", "call", "peer", "49", midnight, 72 * HOUR)
    call = rater.get_cost(query)
    assert len(call.timespans) == 3  # split at each midnight
    charges = call.to_event_cost()["Charges"]
    assert [charge["CompressFactor"] for charge in charges] == [1, 2]
    assert call.to_event_cost()["Usage"] == 72 * HOUR
    assert call.to_event_cost()["Cost"] == D("0.5") + 3 * 86400 * D("0.01667")


def test_zero_usage() -> None:
    found = get("1002", 0)
    assert found["Charges"] == [{"RatingID": "", "Increments": None, "CompressFactor": 0}]
    assert (found["Usage"], found["Cost"], found["StartTime"]) == (0, D(0), CALL_START)
    unknown = get("1002", 0, subject="9999")
    assert unknown["Charges"] == [] and unknown["StartTime"] == GO_ZERO_TIME


def test_free_max_cost_shows_in_the_increments() -> None:
    rate = Rate("RT", (slot("0", "0.6", MINUTE, S, 0),))
    rater = Rater.from_plan(
        single_rate_plan(rate, entry("DST", "RT", max_cost="0.12", strategy="*free"))
    )
    call = rater.get_cost(CostQuery("cgrates.org", "call", "peer", "49", CALL_START, MINUTE))
    event_cost = call.to_event_cost()
    assert event_cost["Cost"] == D("0.12")
    increments = event_cost["Charges"][0]["Increments"]
    assert [(i["Cost"], i["CompressFactor"]) for i in increments] == [
        (D("0"), 1),
        (D("0.01"), 12),
        (D("0"), 48),
    ]


def test_encodes_to_json_exactly() -> None:
    decoded = loads(dumps(get("1002", 130 * S)))
    assert decoded["Cost"] == 0.7169
    assert decoded["StartTime"] == "2014-08-04T13:00:00Z"
    assert decoded["Charges"][1]["Increments"][0] == {
        "Usage": 1_000_000_000,
        "Cost": 0.00167,
        "AccountingID": "",
        "CompressFactor": 70,
    }


def test_call_cost_accessors() -> None:
    call = TUTORIAL.get_cost(CostQuery("cgrates.org", "call", "1001", "1002", CALL_START, 130 * S))
    assert call.time_at(60 * S) == datetime(2014, 8, 4, 13, 1, tzinfo=UTC)
    span = call.timespans[1]
    assert (span.timing_id, span.rate_id, span.rounding_method, span.rounding_decimals) == (
        "*any",
        "RT_20CNT",
        "*up",
        4,
    )
    assert span.slot.rate == D("0.1")
    assert span.interval.destination_rates_id == "DR_1002_20CNT"
    usage = sum(group.total_usage for _, group in call.increments())
    assert usage == call.rated_usage == 130 * S


def test_wire_form_encodes_to_the_same_bytes() -> None:
    rates = Rate("RT", (slot("0.5", "1", MINUTE, S, 0),))
    long_calls = Rater.from_plan(single_rate_plan(rates))
    midnight = datetime(2014, 8, 4, tzinfo=UTC)
    calls = [
        TUTORIAL.get_cost(CostQuery("cgrates.org", "call", "1001", "1002", CALL_START, usage))
        for usage in (0, S, 130 * S, 3600 * S)
    ]
    calls.append(TUTORIAL.get_cost(CostQuery("cgrates.org", "call", "9", "1002", CALL_START, 0)))
    calls.append(
        long_calls.get_cost(CostQuery("cgrates.org", "call", "peer", "49", midnight, 72 * HOUR))
    )
    for call in calls:
        for _ in range(2):  # built, then from the cache
            assert dumps(call.to_event_cost_wire("id", "run")) == dumps(
                call.to_event_cost("id", "run")
            )
