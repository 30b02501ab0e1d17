"""GetCost's common line (``common_line_writer``, APIerSv1.GetCost's fast answer, with the
general path's wire form when it declines) against the general path.

Whatever path a call takes (first rating, the rated-call memo, another profile reaching the same
interval, zones, midnights, plan reloads, AnswerTime as a datetime or as RFC 3339 text read by
lookups), the bytes must be those of ``dumps(cost_of(...).to_event_cost())`` and the errors
those of ``cost_of``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rating import Rater, RatingError
from core.rating.rater import CommonLine, common_line_writer
from core.rating.service import RatingService
from core.tariffplan.models import (
    DEFAULT_CATEGORY,
    DEFAULT_TENANT,
    DestinationRate,
    Rate,
    RatingPlan,
    TariffPlan,
)
from core.types import InvalidValue, dumps, loads, parse_time

from .plans import (
    ACTIVATION,
    MINUTE,
    S,
    add_profiles,
    binding,
    entry,
    profile,
    single_rate_plan,
    slot,
    tutorial_plan,
)

D = Decimal
CALL_START = datetime(2014, 8, 4, 13, 0, tzinfo=UTC)
ZONES = (
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    ZoneInfo("Europe/Berlin"),
)


# tenant, category, subject, destination, start time (a datetime, or RFC 3339 text), usage
Fields = tuple[str, str, str, str, datetime | str, int]
# By the rater's id, the rater kept alive beside its writer (so the id is never reused): a
# compiled (mypyc) Rater takes no weak references.
_WRITERS: dict[int, tuple[Rater, CommonLine]] = {}


def general(rater: Rater, fields: Fields) -> bytes | str:
    """The general path's encoded EventCost, or its error text."""
    tenant, category, subject, destination, start, usage = fields
    try:
        call = rater.cost_of(tenant, category, subject, destination, parse_time(start), usage, "")
        return dumps(call.to_event_cost())
    except (RatingError, InvalidValue) as exc:
        return f"{type(exc).__name__}: {exc}"


def line_of(rater: Rater) -> CommonLine:
    """One writer per rater, as the API keeps one: its parse caches fill up across calls."""
    known = _WRITERS.get(id(rater))
    if known is not None:
        return known[1]
    source = SimpleNamespace(rater=rater)
    writer = common_line_writer(source, DEFAULT_TENANT, DEFAULT_CATEGORY, UTC)
    _WRITERS[id(rater)] = (rater, writer)
    return writer


def params_of(fields: Fields) -> dict[str, Any]:
    """GetCost's argument object for ``fields``."""
    tenant, category, subject, destination, start, usage = fields
    return {
        "Tenant": tenant,
        "Category": category,
        "Subject": subject,
        "Destination": destination,
        "AnswerTime": start,
        "Usage": usage,
    }


def fast(rater: Rater, fields: Fields, writer: CommonLine | None = None) -> bytes | str:
    """What GetCost writes: the common line, else the general path's wire form."""
    tenant, category, subject, destination, start, usage = fields
    parts = (writer or line_of(rater))(params_of(fields), None)
    if parts is not None:
        return b"".join(parts)
    try:
        call = rater.cost_of(tenant, category, subject, destination, parse_time(start), usage, "")
        return dumps(call.to_event_cost_wire())
    except (RatingError, InvalidValue) as exc:
        return f"{type(exc).__name__}: {exc}"


def as_text(fields: Fields) -> Fields:
    """The same call with its start as RFC 3339 text (a zone's fixed offset at that moment)."""
    start = fields[4]
    assert isinstance(start, datetime)
    return (*fields[:4], start.isoformat(), fields[5])


def wire_cost(rater: Rater, fields: Fields, writer: CommonLine | None = None) -> Decimal:
    return Decimal(str(loads(fast(rater, fields, writer))["Cost"]))


def test_tutorial_known_results_through_the_wire_path() -> None:
    rater = Rater.from_plan(tutorial_plan())
    for _ in range(2):  # rated, then from the memo
        for usage, expected in ((120 * S, "0.7002"), (130 * S, "0.7169")):
            fields: Fields = ("cgrates.org", "call", "1001", "1002", CALL_START, usage)
            assert wire_cost(rater, fields) == D(expected)


def test_memo_hit_gives_the_same_bytes_as_the_general_path() -> None:
    rater = Rater.from_plan(tutorial_plan())
    fields = ("cgrates.org", "call", "1001", "10021234", CALL_START, 130 * S)
    first = fast(rater, fields)
    again = fast(rater, fields)
    assert first == again == general(rater, fields)
    other_time = ("cgrates.org", "call", "1001", "1002", CALL_START + timedelta(days=40), 130 * S)
    assert fast(rater, other_time) == general(rater, other_time)
    assert loads(fast(rater, other_time))["StartTime"] == "2014-09-13T13:00:00Z"


def common_only(rater: Rater, fields: Fields) -> bytes:
    """What the common line alone answers (no fallback to ``Rater.cost_of``: the rater may be
    compiled, so its methods cannot be patched to watch them)."""
    parts = line_of(rater)(params_of(fields), None)
    assert parts is not None, "took the general path"
    return b"".join(parts)


def test_the_common_call_builds_no_call_cost() -> None:
    rater = Rater.from_plan(tutorial_plan())
    first = ("cgrates.org", "call", "1001", "1002", CALL_START, 75 * S)
    expected = general(rater, first)  # rates it: the memo now knows 75 s on this interval
    assert common_only(rater, first) == expected
    # another number under the prefix (its prefix is found), another day: the same timespans
    other_day = datetime(2024, 3, 2, 9, 0, tzinfo=UTC)
    other: Fields = ("cgrates.org", "call", "1001", "100299", other_day, 75 * S)
    assert loads(common_only(rater, other))["Cost"] == loads(expected)["Cost"]


def test_profiles_sharing_an_interval_keep_their_own_rating_filters() -> None:
    # cgrates.com's *any profile and cgrates.org's 1001 both use RP_1001: one rated interval,
    # two matches. Each EventCost must name its own profile.
    rater = Rater.from_plan(tutorial_plan())
    org = ("cgrates.org", "call", "1001", "1002", CALL_START, 120 * S)
    com = ("cgrates.com", "call", "someone", "1002", CALL_START, 120 * S)
    for fields in (org, com, org, com):
        encoded = fast(rater, fields)
        assert encoded == general(rater, fields)
        assert isinstance(encoded, bytes)
        (filters,) = loads(encoded)["RatingFilters"].values()
        assert filters["Subject"] == f"*out:{fields[0]}:call:{'1001' if fields is org else '*any'}"
    call = rater.cost_of(*com, "")
    assert all(span.match.subject == "*out:cgrates.com:call:*any" for span in call.timespans)


def test_calls_across_midnight_and_naive_times_take_the_general_path() -> None:
    rater = Rater.from_plan(tutorial_plan())
    late = datetime(2014, 8, 4, 23, 59, 30, tzinfo=UTC)
    for fields in (
        ("cgrates.org", "call", "1001", "1002", late, 120 * S),
        ("cgrates.org", "call", "1001", "1002", late.replace(tzinfo=None), 120 * S),
        ("cgrates.org", "call", "1001", "1002", late, 0),
    ):
        fast(rater, fields)
        assert fast(rater, fields) == general(rater, fields)


def test_errors_are_the_general_paths() -> None:
    rater = Rater.from_plan(tutorial_plan())
    for fields in (
        ("cgrates.org", "call", "nobody", "1002", CALL_START, 60 * S),  # *any: none for call
        ("cgrates.org", "call", "1001", "999", CALL_START, 60 * S),  # no rate
        ("cgrates.org", "call", "1001", "1002", CALL_START, 200 * 3600 * S),  # max usage
        ("cgrates.org", "call", "1001", "1002", CALL_START, -S),
    ):
        assert isinstance(fast(rater, fields), str)
        assert fast(rater, fields) == general(rater, fields)


def test_a_plan_reload_prices_with_the_new_plan() -> None:
    service = RatingService()
    writer = common_line_writer(service, DEFAULT_TENANT, DEFAULT_CATEGORY, UTC)
    fields: Fields = ("cgrates.org", "call", "peer", "49123", "2014-08-04T13:00:00Z", MINUTE)
    service.prepare(single_rate_plan(Rate("RT", (slot("0", "1", MINUTE, MINUTE, 0),))))()
    assert wire_cost(service.rater, fields, writer) == D(1)
    assert wire_cost(service.rater, fields, writer) == D(1)
    assert writer({"Subject": "peer", "Destination": "49123", "Usage": MINUTE}, None)
    service.prepare(single_rate_plan(Rate("RT", (slot("0", "2", MINUTE, MINUTE, 0),))))()
    assert wire_cost(service.rater, fields, writer) == D(2)


SUBJECTS = st.sampled_from(("1001", "1002", "1003", "nobody", ""))
DESTINATIONS = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(("1001", "1002", "1003", "10", "999", "")),
    st.text("0123456789", max_size=6),
)
USAGES = st.one_of(
    st.integers(0, 4_000).map(lambda seconds: seconds * S),
    st.integers(0, 10**13),
    st.just(1),
)
STARTS = st.datetimes(
    min_value=datetime(2009, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.sampled_from(ZONES)
)


@pytest.fixture(scope="module")
def shared_rater() -> Rater:
    return Rater.from_plan(tutorial_plan())  # one rater: its caches fill up across examples


@settings(max_examples=400, deadline=None)
@given(
    tenant=st.sampled_from(("cgrates.org", "cgrates.com", "")),
    category=st.sampled_from(("call", "sms", "")),
    subject=SUBJECTS,
    destination=DESTINATIONS,
    start=STARTS,
    usage=USAGES,
)
def test_fast_path_equals_general_path(
    shared_rater: Rater,
    tenant: str,
    category: str,
    subject: str,
    destination: str,
    start: datetime,
    usage: int,
) -> None:
    fields: Fields = (tenant, category, subject, destination, start, usage)
    for sent in (fields, as_text(fields)):
        expected = general(shared_rater, sent)
        assert fast(shared_rater, sent) == expected
        assert fast(shared_rater, sent) == expected  # from whatever the first call cached


def test_the_memo_bound_clears_the_common_paths_lookup_too() -> None:
    bound = 4
    rater = Rater.from_plan(tutorial_plan())
    rater.rated_cache_limit = bound

    def common(usage: int) -> bytes | None:
        params = {"Subject": "1001", "Destination": "1002", "AnswerTime": CALL_START}
        parts = line_of(rater)({**params, "Usage": usage}, None)
        return None if parts is None else b"".join(parts)

    first: Fields = ("cgrates.org", "call", "1001", "1002", CALL_START, 61 * S)
    expected = general(rater, first)
    assert common(61 * S) == expected  # rated by the general path: the memo has it
    for seconds in range(62, 62 + bound):  # more usages than the bound: the memo is cleared
        general(rater, ("cgrates.org", "call", "1001", "1002", CALL_START, seconds * S))
    assert common(61 * S) is None  # gone from both lookups: the general path rates it again
    assert fast(rater, first) == expected
    assert common(61 * S) == expected


LATE_ACTIVATION = datetime(2024, 3, 10, 5, 17, tzinfo=UTC)


def two_activation_plan() -> TariffPlan:
    """``peer`` rated 1/min from ACTIVATION on, 2/min from LATE_ACTIVATION on."""
    plan = single_rate_plan(Rate("RT", (slot("0", "1", MINUTE, S, 0),)))
    plan.rates["RT2"] = Rate("RT2", (slot("0", "2", MINUTE, S, 0),))
    plan.destination_rates["DR2"] = DestinationRate("DR2", (entry("DST", "RT2"),))
    plan.rating_plans["RP2"] = RatingPlan("RP2", (binding("DR2"),))
    return add_profiles(
        plan,
        profile("cgrates.org", "call", "peer", (ACTIVATION, "RP"), (LATE_ACTIVATION, "RP2")),
    )


@settings(max_examples=300, deadline=None)
@given(
    seconds_from_activation=st.integers(-3 * 86_400, 3 * 86_400),
    zone_minutes=st.integers(-(24 * 60 - 1), 24 * 60 - 1),
    usage_seconds=st.integers(1, 3 * 3_600),
    microsecond=st.sampled_from((0, 0, 1, 999_999)),
    number=st.sampled_from(("49", "4930", "49301")),
)
def test_calls_around_the_latest_activation_and_local_midnight(
    seconds_from_activation: int,
    zone_minutes: int,
    usage_seconds: int,
    microsecond: int,
    number: str,
) -> None:
    # The memo already holds this usage on both plans' intervals, and the number's match in the
    # latest plan: only the call's start decides whether the common path may answer.
    rater = Rater.from_plan(two_activation_plan())
    zone = timezone(timedelta(minutes=zone_minutes))
    usage = usage_seconds * S
    for warm in (ACTIVATION + timedelta(days=1), LATE_ACTIVATION + timedelta(days=4)):
        general(rater, ("cgrates.org", "call", "peer", number, warm, usage))
    start = (LATE_ACTIVATION + timedelta(seconds=seconds_from_activation)).astimezone(zone)
    fields: Fields = (
        "cgrates.org",
        "call",
        "peer",
        number,
        start.replace(microsecond=microsecond),
        usage,
    )
    for sent in (fields, as_text(fields)):
        expected = general(rater, sent)
        assert fast(rater, sent) == expected
        assert fast(rater, sent) == expected


def test_a_whole_second_call_may_end_at_local_midnight_not_after() -> None:
    rater = Rater.from_plan(tutorial_plan())
    zone = timezone(timedelta(hours=-5))
    usage = 90 * S
    general(rater, ("cgrates.org", "call", "1001", "1002", CALL_START, usage))  # memo: 90 s
    for start, common in (
        (datetime(2014, 8, 4, 23, 58, 30, tzinfo=zone), True),  # ends at midnight
        (datetime(2014, 8, 4, 23, 58, 31, tzinfo=zone), False),  # one second past it
        (datetime(2014, 8, 4, 23, 58, 29, 999_999, tzinfo=zone), True),
        (datetime(2014, 8, 4, 23, 58, 30, 1, tzinfo=zone), False),
    ):
        fields: Fields = ("cgrates.org", "call", "1001", "1002", start, usage)
        for sent in (fields, as_text(fields), as_text(fields)):  # the text: read, then looked up
            params = {"Subject": "1001", "Destination": "1002", "AnswerTime": sent[4]}
            answer = line_of(rater)({**params, "Usage": usage}, None)
            assert (answer is not None) == common, sent
            assert fast(rater, sent) == general(rater, sent)
