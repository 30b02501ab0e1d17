"""The fast paths of core.types that GetCost relies on: they must agree with the general ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.types import (
    HOUR,
    MINUTE,
    SECOND,
    InvalidValue,
    format_time,
    parse_duration,
    parse_time,
)

ZONE = timezone(timedelta(hours=3))


@given(st.integers(0, 10**9), st.sampled_from((("s", SECOND), ("m", MINUTE), ("h", HOUR))))
def test_one_unit_durations(count: int, unit: tuple[str, int]) -> None:
    assert parse_duration(f"{count}{unit[0]}") == count * unit[1]


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59))
def test_go_clock_durations(hours: int, minutes: int, seconds: int) -> None:
    expected = hours * HOUR + minutes * MINUTE + seconds * SECOND
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == expected
    assert parse_duration(f"{minutes}m{seconds}s") == minutes * MINUTE + seconds * SECOND
    assert parse_duration(f"{hours}h{seconds}s") == hours * HOUR + seconds * SECOND


@pytest.mark.parametrize("text", ["٣s", "١٢", "s", "m5s", "5s5", "٣m٣s"])
def test_non_ascii_or_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "nanoseconds"), [("1", 1), ("300ms", 300_000_000), ("1.5s", 1_500_000_000)]
)
def test_other_durations_still_parse(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@settings(max_examples=300)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from((UTC, ZONE)),
    ),
    st.sampled_from(("Z", "+00:00", "+03:00", "")),
)
def test_rfc3339_fast_path_matches_fromisoformat(moment: datetime, suffix: str) -> None:
    text = moment.replace(tzinfo=None).isoformat() + suffix
    parsed = parse_time(text, ZONE)
    reference = datetime.fromisoformat(text)
    assert parsed == (reference if reference.tzinfo else reference.replace(tzinfo=ZONE))
    assert parse_time(text, ZONE) == parsed  # again: from the cache
    if reference.tzinfo is None:  # the zone is part of the cached key
        assert parse_time(text, UTC) == reference.replace(tzinfo=UTC)


def _go_time_reference(moment: datetime) -> str:
    """format_time's definition, written the slow, obvious way."""
    if moment.tzinfo is None or moment.utcoffset() == timedelta(0):
        return moment.replace(tzinfo=None).isoformat() + "Z"
    return moment.isoformat()


@given(
    st.datetimes(
        timezones=st.one_of(
            st.none(),
            st.just(UTC),
            st.timedeltas(
                min_value=-timedelta(hours=23, minutes=59),
                max_value=timedelta(hours=23, minutes=59),
            ).map(timezone),
            st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata"]).map(ZoneInfo),
        )
    )
)
def test_format_time_matches_go_rfc3339(moment: datetime) -> None:
    text = format_time(moment)
    assert text == _go_time_reference(moment)
    assert text.endswith("Z") == (moment.utcoffset() in (None, timedelta(0)))


@pytest.mark.parametrize(
    "value", [10**20, -(10**20), "99999999999999999", "+9999999999h", float("nan"), float("inf")]
)
def test_times_out_of_range_are_invalid_values_not_crashes(value: object) -> None:
    # Past year 9999 (or NaN): the API answers a clear error, never an OverflowError.
    with pytest.raises(InvalidValue, match="not a time"):
        parse_time(value)
