from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.tariffplan import (
    KIND_DESTINATION_RATES,
    KIND_DESTINATIONS,
    KIND_RATES,
    KIND_RATING_PLANS,
    KIND_RATING_PROFILES,
    KIND_TIMINGS,
    OTHER_KINDS,
    RATING_KINDS,
    TariffPlanError,
    from_doc,
    from_tp_json,
    model_key,
    read_folder,
    to_doc,
    to_tp_json,
)
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
    Timing,
)
from core.types import MINUTE, SECOND, InvalidValue, dumps

from .helpers import TUTORIAL, VECTORS, needs_tutorial

D = Decimal

SAMPLES: dict[str, Any] = {
    KIND_TIMINGS: Timing(
        "PEAK", frozenset({2024}), frozenset({1, 12}), frozenset({1, -1}), frozenset({1, 5}),
        "08:00:00", "19:00:00",
    ),
    KIND_DESTINATIONS: Destination("DST_DE", ("49", "4915")),
    KIND_RATES: Rate(
        "RT_20CNT",
        (
            RateSlot(D("0.4"), D("0.2"), MINUTE, MINUTE, 0),
            RateSlot(D(0), D("0.1"), MINUTE, SECOND, MINUTE),
        ),
    ),
    KIND_DESTINATION_RATES: DestinationRate(
        "DR", (DestinationRateEntry("DST_DE", "RT_20CNT", "*up", 4, D("0.12"), "*disconnect"),)
    ),
    KIND_RATING_PLANS: RatingPlan("RP", (RatingPlanBinding("DR", "PEAK", D("10.5")),)),
    KIND_RATING_PROFILES: RatingProfile(
        "cgrates.org", "call", "1001",
        (
            RatingActivation(datetime(2010, 1, 14, tzinfo=UTC), "RP_OLD"),
            RatingActivation(datetime(2014, 1, 14, tzinfo=UTC), "RP", ("1002", "*any")),
        ),
    ),
}


def through_json(document: dict[str, Any]) -> Any:
    return orjson.loads(dumps(document))


@pytest.mark.parametrize("kind", RATING_KINDS)
def test_tp_json_round_trip(kind: str) -> None:
    model = SAMPLES[kind]
    document = to_tp_json(kind, model, "TP1")
    assert document["TPid"] == "TP1"
    assert from_tp_json(kind, through_json(document)) == model


@pytest.mark.parametrize("kind", RATING_KINDS)
def test_storage_doc_round_trip(kind: str) -> None:
    model = SAMPLES[kind]
    document = to_doc(kind, model)
    assert "TPid" not in document
    assert from_doc(kind, orjson.loads(orjson.dumps(document))) == model  # no Decimal in docs


def test_tp_json_shapes() -> None:
    rate = to_tp_json(KIND_RATES, SAMPLES[KIND_RATES], "TP1")
    assert dumps(rate) == (
        b'{"TPid":"TP1","ID":"RT_20CNT","RateSlots":['
        b'{"ConnectFee":0.4,"Rate":0.2,"RateUnit":"1m0s","RateIncrement":"1m0s",'
        b'"GroupIntervalStart":"0s"},'
        b'{"ConnectFee":0,"Rate":0.1,"RateUnit":"1m0s","RateIncrement":"1s",'
        b'"GroupIntervalStart":"1m0s"}]}'
    )
    assert to_doc(KIND_RATES, SAMPLES[KIND_RATES])["RateSlots"][0]["ConnectFee"] == "0.4"
    assert to_tp_json(KIND_TIMINGS, SAMPLES[KIND_TIMINGS], "TP1") == {
        "TPid": "TP1", "ID": "PEAK", "Years": "2024", "Months": "1;12", "MonthDays": "-1;1",
        "WeekDays": "1;5", "Time": "08:00:00;19:00:00",
    }
    profile = to_tp_json(KIND_RATING_PROFILES, SAMPLES[KIND_RATING_PROFILES], "TP1", load_id="L")
    assert profile["LoadId"] == "L"
    assert profile["RatingPlanActivations"][1] == {
        "ActivationTime": "2014-01-14T00:00:00Z", "RatingPlanId": "RP",
        "FallbackSubjects": "1002;*any",
    }
    destination_rate = to_tp_json(KIND_DESTINATION_RATES, SAMPLES[KIND_DESTINATION_RATES], "T")
    assert destination_rate["DestinationRates"][0]["MaxCost"] == D("0.12")


def test_tp_json_accepts_numbers_and_strings() -> None:
    document = {
        "TPid": "TP1", "ID": "RT",
        "RateSlots": [
            {"ConnectFee": 0.1, "Rate": "0.2", "RateUnit": 60_000_000_000,
             "RateIncrement": "1s", "GroupIntervalStart": "60"},
        ],
    }
    assert from_tp_json(KIND_RATES, document) == Rate(
        "RT", (RateSlot(D("0.1"), D("0.2"), MINUTE, SECOND, 60),)
    )


def test_tp_json_errors_name_the_field() -> None:
    document = {
        "ID": "RT",
        "RateSlots": [
            {"Rate": "0.1", "RateUnit": "1m", "RateIncrement": "1s"},
            {"Rate": "abc", "RateUnit": "zz", "RateIncrement": "0s", "ConnectFee": True},
        ],
    }
    with pytest.raises(TariffPlanError) as caught:
        from_tp_json(KIND_RATES, document)
    assert str(caught.value).splitlines() == [
        "RateSlots[1].ConnectFee: not a number: True",
        "RateSlots[1].Rate: not a number: 'abc'",
        "RateSlots[1].RateUnit: not a duration: 'zz'",
    ]
    assert isinstance(caught.value, InvalidValue)
    with pytest.raises(TariffPlanError, match=r"DestinationRates\[0\].RoundingMethod: unknown"):
        from_tp_json(
            KIND_DESTINATION_RATES,
            {"ID": "DR", "DestinationRates": [{"DestinationId": "D", "RateId": "R"}]},
        )
    with pytest.raises(TariffPlanError, match=r"^ID: empty$"):
        from_tp_json(KIND_DESTINATIONS, {"Prefixes": ["49"]})
    with pytest.raises(TariffPlanError, match="document: expected an object"):
        from_tp_json(KIND_RATES, [])  # type: ignore[arg-type]


def test_non_rating_kinds_have_no_tp_json_yet() -> None:
    with pytest.raises(InvalidValue, match="no TP JSON shape"):
        from_tp_json(OTHER_KINDS[0], {})


@needs_tutorial
def test_tutorial_items_round_trip() -> None:
    plan = read_folder(TUTORIAL)
    for kind in RATING_KINDS:
        for key, model in getattr(plan, kind).items():
            assert model_key(kind, model) == key
            assert from_tp_json(kind, through_json(to_tp_json(kind, model, "T"))) == model
            assert from_doc(kind, through_json(to_doc(kind, model))) == model
    for kind in OTHER_KINDS:
        for key, model in plan.others[kind].items():
            assert model_key(kind, model) == key
            assert from_doc(kind, through_json(to_doc(kind, model))) == model


def test_profile_docs_round_trip() -> None:
    plan = read_folder(VECTORS / "profile_references")
    for kind in OTHER_KINDS:
        for model in plan.others[kind].values():
            assert from_doc(kind, through_json(to_doc(kind, model))) == model


def test_profile_doc_errors_name_the_field() -> None:
    plan = read_folder(VECTORS / "profile_references")
    attribute = plan.others["attributes"]["cgrates.org:ATTR_Q"]
    document = through_json(to_doc("attributes", attribute))
    document["weight"] = "heavy"
    document["attributes"][1]["filter_ids"] = "FLTR"
    del document["tenant"]
    with pytest.raises(TariffPlanError) as caught:
        from_doc("attributes", document)
    assert str(caught.value).splitlines() == [
        "tenant: missing",
        "attributes[1].filter_ids: expected a list",
        "weight: not a number: 'heavy'",
    ]
