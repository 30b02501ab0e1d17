"""copy_value: a copy deep enough that writes into it never reach the original."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.filters.event import copy_value


def test_a_flat_event_of_scalars_is_a_new_dict_with_the_same_items() -> None:
    original: dict[str, Any] = {
        "Account": "1001", "Usage": 60, "Rate": 0.5, "Cost": Decimal("0.7503"),
        "Answered": True, "Missing": None, "SetupTime": datetime(2026, 1, 1, tzinfo=UTC),
    }  # fmt: skip
    copied = copy_value(original)
    assert copied == original and copied is not original
    copied["Account"] = "1002"
    assert original["Account"] == "1001"


def test_nested_maps_and_lists_are_copied_too() -> None:
    original: dict[str, Any] = {"A": "x", "Map": {"B": [1, {"C": 2}]}, "List": [{"D": 3}]}
    copied = copy_value(original)
    assert copied == original
    copied["Map"]["B"][1]["C"] = 9
    copied["List"][0]["D"] = 9
    copied["Map"]["B"].append(4)
    assert original == {"A": "x", "Map": {"B": [1, {"C": 2}]}, "List": [{"D": 3}]}


def test_a_value_of_a_dict_subclass_is_copied_not_shared() -> None:
    inner: OrderedDict[str, int] = OrderedDict(B=1)
    original: dict[str, Any] = {"A": "x", "Inner": inner}
    copied = copy_value(original)
    assert copied["Inner"] == {"B": 1}
    copied["Inner"]["B"] = 2
    assert inner["B"] == 1
