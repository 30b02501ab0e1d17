"""The single-value parsers follow CGRateS's (Go) parse rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.tariffplan import values as v
from core.types import SECOND, InvalidValue


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("", 0), ("0s", 0), ("1", 1), ("60s", 60 * SECOND), ("1m30s", 90 * SECOND),
     ("*unlimited", -1), ("1.5", 1), ("-1", -1)],
)
def test_duration(text: str, nanoseconds: int) -> None:
    assert v.duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["1x", "s", "1e3", "1.2.3", "9999999999999h"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(InvalidValue):
        v.duration(text)


def test_money() -> None:
    assert v.money("") == Decimal(0)
    assert v.money("0.1") == Decimal("0.1")
    assert v.money(0.1) == Decimal("0.1")  # JSON float, via repr
    for bad in ("1_0", "abc", "NaN", "1e400", True):
        with pytest.raises(InvalidValue):
            v.money(bad)


def test_integer_and_boolean_as_go() -> None:
    assert [v.integer(text) for text in ("", "+5", "-3", "007")] == [0, 5, -3, 7]
    for bad in ("1.0", "1e3", "\u0661", "99999999999999999999"):
        with pytest.raises(InvalidValue):
            v.integer(bad)
    assert [v.boolean(text) for text in ("", "t", "TRUE", "1", "F", "false", "0")] == [
        False, True, True, True, False, False, False,
    ]
    with pytest.raises(InvalidValue):
        v.boolean("yes")
    assert v.optional_boolean("*any") is None


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2014-01-14T00:00:00Z", datetime(2014, 1, 14, tzinfo=UTC)),
        ("1389657600", datetime(2014, 1, 14, tzinfo=UTC)),
        ("1389657600123", datetime(2014, 1, 14, 0, 0, 0, 123000, tzinfo=UTC)),
        ("1389657600123456789", datetime(2014, 1, 14, 0, 0, 0, 123456, tzinfo=UTC)),
        ("20140114000000", datetime(2014, 1, 14, tzinfo=UTC)),
        ("", datetime(1, 1, 1, tzinfo=UTC)),
        ("*unlimited", datetime(1, 1, 1, tzinfo=UTC)),
        ("0", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_moment(text: str, moment: datetime) -> None:
    assert v.moment(text, UTC) == moment


def test_time_expressions_are_checked_and_kept() -> None:
    for text in ("", "*unlimited", "*monthly", "*month_end", "*month_end+1h", "*mo+24h",
                 "2014-01-14T00:00:00Z", "+1h"):
        assert v.time_expression(text, UTC) == text
    for bad in ("*month_end+1x", "*mostly", "soon"):
        with pytest.raises(InvalidValue):
            v.time_expression(bad, UTC)


def test_timing_parts() -> None:
    assert v.week_days("1;7") == frozenset({1, 0})
    assert v.int_set("*any", v.MONTHS) == frozenset()
    assert v.timing_time("*asap") == ("*asap", "")
    with pytest.raises(InvalidValue, match=r"not an integer in 1\.\.12: '0'"):
        v.int_set("1;0", v.MONTHS)
