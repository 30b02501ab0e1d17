"""Timing coverage and boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.rating.timings import (
    ANY_TIMING,
    DAY,
    clock_for,
    compile_timing,
    epoch_ns,
    first_day_after,
    from_epoch_ns,
    next_boundary,
    parse_time_of_day,
    timing_covers,
)
from core.tariffplan.models import Timing
from core.types import HOUR, SECOND, InvalidValue, dumps

from .plans import OFFPEAK_EVENING, OFFPEAK_WEEKEND, PEAK

MONDAY = datetime(2014, 8, 4, tzinfo=UTC)  # 2014-08-04 was a Monday
SUNDAY = datetime(2014, 8, 3, tzinfo=UTC)


def at(day: datetime, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


def test_any_covers_everything() -> None:
    assert compile_timing(ANY_TIMING).always
    for moment in (MONDAY, at(SUNDAY, 23, 59, 59), datetime(1999, 2, 28, 12, tzinfo=UTC)):
        assert timing_covers(ANY_TIMING, moment)
    assert timing_covers(Timing("*asap"), MONDAY)


def test_start_time_and_weekdays() -> None:
    assert not timing_covers(PEAK, at(MONDAY, 7, 59, 59))
    assert timing_covers(PEAK, at(MONDAY, 8))
    assert timing_covers(PEAK, at(MONDAY, 23, 59, 59))
    assert not timing_covers(PEAK, at(SUNDAY, 12))  # weekdays 1-5: Sunday is 0, as in Go
    assert timing_covers(OFFPEAK_WEEKEND, at(SUNDAY, 12))
    assert timing_covers(OFFPEAK_WEEKEND, at(MONDAY - timedelta(days=2), 0))  # Saturday


def test_day_filters() -> None:
    timing = Timing(
        "XMAS",
        years=frozenset({2014}),
        months=frozenset({12}),
        month_days=frozenset({24, 25}),
    )
    assert timing_covers(timing, datetime(2014, 12, 24, 10, tzinfo=UTC))
    assert timing_covers(timing, datetime(2014, 12, 25, 0, tzinfo=UTC))
    assert not timing_covers(timing, datetime(2014, 12, 26, tzinfo=UTC))
    assert not timing_covers(timing, datetime(2015, 12, 24, tzinfo=UTC))
    assert not timing_covers(timing, datetime(2014, 11, 24, tzinfo=UTC))


def test_end_time_is_exclusive() -> None:
    lunch = Timing("LUNCH", start_time="12:00:00", end_time="13:30:00")
    assert timing_covers(lunch, at(MONDAY, 12))
    assert timing_covers(lunch, at(MONDAY, 13, 29, 59))
    assert not timing_covers(lunch, at(MONDAY, 13, 30))
    assert next_boundary(lunch, at(MONDAY, 12, 10)) == at(MONDAY, 13, 30)


def test_next_boundary() -> None:
    assert next_boundary(PEAK, at(MONDAY, 7, 59)) == at(MONDAY, 8)
    assert next_boundary(PEAK, at(MONDAY, 8)) == at(MONDAY, 24)  # next midnight
    assert next_boundary(ANY_TIMING, at(MONDAY, 13)) == at(MONDAY, 24)
    assert next_boundary(OFFPEAK_EVENING, at(MONDAY, 18, 59, 59)) == at(MONDAY, 19)
    # Friday night: the weekday filter changes at midnight
    friday = MONDAY + timedelta(days=4)
    assert next_boundary(PEAK, at(friday, 23, 59, 30)) == at(friday, 24)
    assert not timing_covers(PEAK, at(friday, 24))


def test_moment_is_read_in_its_own_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    # 07:30 UTC is 09:30 at +02:00: peak there
    moment = datetime(2014, 8, 4, 9, 30, tzinfo=plus_two)
    assert timing_covers(PEAK, moment)
    assert not timing_covers(PEAK, moment.astimezone(UTC))
    boundary = next_boundary(PEAK, datetime(2014, 8, 4, 7, 0, tzinfo=plus_two))
    assert boundary == datetime(2014, 8, 4, 8, 0, tzinfo=plus_two)
    assert boundary.utcoffset() == timedelta(hours=2)


def test_daylight_saving_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    clock = clock_for(berlin)
    change_day = clock.day_of(epoch_ns(datetime(2014, 3, 30, 12, tzinfo=berlin)))
    assert change_day.end - change_day.start == DAY - HOUR  # clocks jump 02:00 -> 03:00
    assert next_boundary(ANY_TIMING, datetime(2014, 3, 30, 12, tzinfo=berlin)) == datetime(
        2014, 3, 31, tzinfo=berlin
    )
    # wall-clock 08:00 after the jump is 06:00 UTC
    boundary = next_boundary(PEAK, datetime(2014, 3, 31, 7, tzinfo=berlin))
    assert boundary.astimezone(UTC) == datetime(2014, 3, 31, 6, tzinfo=UTC)
    sunday_eight = datetime(2014, 3, 30, 8, tzinfo=berlin)
    assert next_boundary(OFFPEAK_WEEKEND, sunday_eight) == datetime(2014, 3, 31, tzinfo=berlin)


def test_epoch_conversions_are_exact() -> None:
    moment = datetime(2014, 8, 4, 13, 0, 0, 123456, tzinfo=UTC)
    assert epoch_ns(moment) == 1_407_157_200_123_456_000
    assert from_epoch_ns(epoch_ns(moment)) == moment
    assert epoch_ns(datetime(2014, 8, 4, 13)) == epoch_ns(datetime(2014, 8, 4, 13, tzinfo=UTC))


def test_parse_time_of_day() -> None:
    assert parse_time_of_day("") == 0
    assert parse_time_of_day("*asap") == 0
    assert parse_time_of_day("08:00:00") == 8 * HOUR
    assert parse_time_of_day("23:59:59.5") == DAY - SECOND // 2
    assert parse_time_of_day("*:*:00") == 0
    assert parse_time_of_day("*:30:00") == 30 * 60 * SECOND
    for bad in ("8", "08:00", "aa:bb:cc", "25:00:00"):
        with pytest.raises(InvalidValue):
            parse_time_of_day(bad)


@given(st.integers(-(24 * 60 - 1), 24 * 60 - 1), st.integers(0, 59))
def test_clock_json_suffix_is_how_dumps_ends_a_time(minutes: int, seconds: int) -> None:
    zone = timezone(timedelta(minutes=minutes, seconds=seconds if minutes >= 0 else -seconds))
    moment = datetime(2024, 3, 2, 17, 45, tzinfo=zone)
    suffix = clock_for(zone).json_suffix
    if seconds:
        assert suffix is None  # sub-minute offsets: left to dumps itself
    else:
        assert suffix is not None and dumps(moment).endswith(suffix)
    assert clock_for(ZoneInfo("Europe/Berlin")).json_suffix is None  # DST: no fixed text


@given(
    instant=st.integers(-(10**18), 10**19),
    offset_seconds=st.integers(-(24 * 3600 - 1), 24 * 3600 - 1),
    wall_seconds=st.integers(0, 24 * 3600 - 1),
    days_after=st.integers(0, 3),
)
def test_first_day_after_is_after_the_instant_in_every_zone(
    instant: int, offset_seconds: int, wall_seconds: int, days_after: int
) -> None:
    zone = timezone(timedelta(seconds=offset_seconds))
    calendar = date.fromordinal(first_day_after(instant) + days_after)
    moment = datetime.combine(calendar, time(), zone) + timedelta(seconds=wall_seconds)
    assert epoch_ns(moment) > instant


def test_first_day_after_at_whole_days() -> None:
    midnight = epoch_ns(datetime(2024, 3, 10, tzinfo=UTC))
    # 2024-03-11 00:00 at +23:59 is 2024-03-10 00:01 UTC: after; 2024-03-10 00:00 at +01:00
    # is before. One ns later, the bound moves on a whole day (it errs on the late side).
    assert date.fromordinal(first_day_after(midnight)) == date(2024, 3, 11)
    assert date.fromordinal(first_day_after(midnight + 1)) == date(2024, 3, 12)
