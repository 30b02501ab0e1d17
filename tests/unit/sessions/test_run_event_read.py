"""read_run_event's fast path (every text field a string) and its time cache give exactly what
the field-by-field read gives."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import types
from core.charging import (
    DEFAULT_RUN_ID,
    VOICE,
    RunEvent,
    _text,
    read_run_event,
)
from core.types import InvalidValue, parse_duration, parse_time

TEXT_FIELDS = (
    "RunID", "RequestType", "ToR", "Category", "Account", "Subject", "Destination", "OriginID",
    "OriginHost", "Source",
)  # fmt: skip
DEFAULT_CATEGORY = "call"
DEFAULT_REQUEST_TYPE = "*rated"


def reference_read(tenant: str, fields: Mapping[str, Any], timezone: tzinfo) -> RunEvent:
    """The general read: one checked field at a time, times parsed every time."""

    def moment(name: str) -> datetime | None:
        raw = fields.get(name)
        if raw in (None, ""):
            return None
        try:
            return parse_time(raw, timezone)
        except InvalidValue as exc:
            raise InvalidValue(f"{name}: {exc}") from None

    raw_usage = fields.get("Usage")
    usage = None if raw_usage in (None, "") else parse_duration(raw_usage)
    return RunEvent(
        tenant,
        _text(fields, "RunID", DEFAULT_RUN_ID),
        _text(fields, "RequestType", DEFAULT_REQUEST_TYPE),
        _text(fields, "ToR", VOICE),
        _text(fields, "Category", DEFAULT_CATEGORY),
        _text(fields, "Account"),
        _text(fields, "Subject"),
        _text(fields, "Destination"),
        _text(fields, "OriginID"),
        _text(fields, "OriginHost"),
        _text(fields, "Source"),
        moment("SetupTime"),
        moment("AnswerTime"),
        usage,
        fields,
    )


def read(fields: Mapping[str, Any], timezone: tzinfo = UTC) -> RunEvent:
    return read_run_event(
        "cgrates.org",
        fields,
        default_category=DEFAULT_CATEGORY,
        default_request_type=DEFAULT_REQUEST_TYPE,
        timezone=timezone,
    )


def outcome(call: Any) -> Any:
    try:
        return call()
    except InvalidValue as exc:
        return ("error", str(exc))


field_values = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["", "*prepaid", "*default", "1001", "*voice"]),
    st.none(),
    st.integers(-5, 5),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
times = st.one_of(
    st.sampled_from(
        ["", "2014-08-04T13:00:00Z", "2014-08-04T13:00:07+02:00", "2014-08-04T13:00:00",
         "2014-08-04 13:00:00", "1407157200", "2014-08-04Tnonsense", "not a time"]
    ),
    st.none(),
    st.integers(0, 2_000_000_000),
)  # fmt: skip


@given(
    texts=st.dictionaries(st.sampled_from(TEXT_FIELDS), field_values),
    setup=times,
    answer=times,
    usage=st.sampled_from([None, "", "60s", "1m30s", 0, 5]),
    zone=st.sampled_from([UTC, ZoneInfo("Europe/Berlin")]),
)
def test_read_matches_the_field_by_field_read(
    texts: dict[str, Any], setup: Any, answer: Any, usage: Any, zone: tzinfo
) -> None:
    fields: dict[str, Any] = {**texts, "SetupTime": setup, "AnswerTime": answer, "Usage": usage}
    expected = outcome(lambda: reference_read("cgrates.org", fields, zone))
    assert outcome(lambda: read(fields, zone)) == expected
    assert outcome(lambda: read(fields, zone)) == expected  # again: from the time cache


def test_relative_times_are_never_cached() -> None:
    before = types._parsed_rfc3339.cache_info()
    first = read({"SetupTime": "*now", "AnswerTime": "+1s"})
    second = read({"SetupTime": "*now", "AnswerTime": "+1s"})
    after = types._parsed_rfc3339.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)
    assert first.setup_time is not None and second.setup_time is not None
    assert second.setup_time >= first.setup_time
    assert first.answer_time is not None and first.answer_time > first.setup_time


def test_a_timezone_is_part_of_the_cached_key() -> None:
    berlin = read({"AnswerTime": "2014-08-04T13:00:00"}, ZoneInfo("Europe/Berlin"))
    utc = read({"AnswerTime": "2014-08-04T13:00:00"}, UTC)
    assert berlin.answer_time is not None and utc.answer_time is not None
    assert (utc.answer_time - berlin.answer_time).total_seconds() == 2 * 3600  # CEST


def test_a_bool_text_field_is_refused() -> None:
    with pytest.raises(InvalidValue, match="Account"):
        read({"Account": True})


def read_like(previous: RunEvent | None, tenant: str, fields: Mapping[str, Any]) -> RunEvent:
    return read_run_event(
        tenant,
        fields,
        default_category=DEFAULT_CATEGORY,
        default_request_type=DEFAULT_REQUEST_TYPE,
        timezone=UTC,
        like=previous,
    )


changed_fields = st.one_of(
    st.tuples(st.sampled_from([*TEXT_FIELDS, "Extra"]), field_values),
    st.tuples(st.sampled_from(["SetupTime", "AnswerTime"]), times),
    st.tuples(st.just("Usage"), st.sampled_from([None, "", "60s", "90s", 5, -1, "bad"])),
)
every_field = st.sampled_from([*TEXT_FIELDS, "Usage", "SetupTime", "AnswerTime", "Extra"])


@given(
    request=st.dictionaries(st.sampled_from(TEXT_FIELDS), field_values),
    setup=times,
    usage=st.sampled_from([None, "", "60s", 5]),
    changes=st.lists(changed_fields, max_size=6).map(dict),
    removed=st.lists(every_field, max_size=3),
    tenant=st.sampled_from(["cgrates.org", "other.org"]),
)
def test_a_copy_read_from_its_original_reads_as_the_copy_itself(
    request: dict[str, Any],
    setup: Any,
    usage: Any,
    changes: dict[str, Any],
    removed: list[str],
    tenant: str,
) -> None:
    """A charger run (the request copied, some fields set or dropped) read from the request's
    reading gives what reading the run gives: the same RunEvent or the same first error."""
    original: dict[str, Any] = {**request, "SetupTime": setup, "Usage": usage}
    copy = {**original, **changes}
    for name in removed:
        copy.pop(name, None)
    try:
        previous = read_like(None, "cgrates.org", original)
    except InvalidValue:
        return  # a request that does not read is refused before its runs are made
    expected = outcome(lambda: read_like(None, tenant, copy))  # read_run_event
    assert outcome(lambda: read_like(previous, tenant, copy)) == expected


def test_the_very_event_read_again_is_the_same_reading() -> None:
    fields = {"Account": "1001", "Usage": "60s"}
    previous = read(fields)
    assert read_like(previous, "cgrates.org", fields) is previous
    assert read_like(previous, "other.org", fields).tenant == "other.org"


def test_only_the_changed_text_fields_are_read_again() -> None:
    """A run whose charger set its RunID and RequestType keeps the request's other readings
    (the same parsed times), and a bad changed field is named as read_run_event names it."""
    request = {"Account": "1001", "SetupTime": "2014-08-04T13:00:00Z", "Usage": "60s"}
    previous = read(request)
    run = read_like(previous, "cgrates.org", {**request, "RunID": "*raw", "RequestType": "*none"})
    assert (run.run_id, run.request_type, run.account) == ("*raw", "*none", "1001")
    assert run.setup_time is previous.setup_time
    with pytest.raises(InvalidValue, match="RequestType"):
        read_like(previous, "cgrates.org", {**request, "RequestType": True, "Subject": False})
