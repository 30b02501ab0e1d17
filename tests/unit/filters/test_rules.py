"""Every filter type, with its ``*not`` negation, inline; values OR-ed, filters AND-ed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.filters import FilterError, FilterService
from core.tariffplan import KIND_FILTERS
from core.tariffplan.models import Destination, FilterProfile, FilterRule, TariffPlan, Timing

from .stack import TENANT, serve, view

EVENT: dict[str, Any] = {
    "Account": "1001",
    "Subject": "1001",
    "Destination": "+4986517174963",
    "Usage": "1m30s",
    "MaxUsage": "1m",
    "Cost": 1.25,
    "Count": 3,
    "Tag": "abc",
    "AnswerTime": "2014-07-29T15:30:00Z",  # a Tuesday
    "Empty": "",
    "List": [],
    "Null": None,
    "Map": {"Nested": "x", "Items": ["a", "b"]},
    "IP": "192.168.1.10",
}
OPTS: dict[str, Any] = {"Prefix": "+4986", "*context": "*sessions"}


def _plan() -> TariffPlan:
    plan = TariffPlan()
    plan.destinations = {
        "DST_DE": Destination("DST_DE", ("+49",)),
        "DST_DE_MUC": Destination("DST_DE_MUC", ("+4989",)),
        "DST_FR": Destination("DST_FR", ("+33",)),
    }
    plan.timings = {
        "WORKHOURS": Timing(
            "WORKHOURS", week_days=frozenset({1, 2, 3, 4, 5}), start_time="08:00:00",
            end_time="18:00:00",
        ),
        "WEEKEND": Timing("WEEKEND", week_days=frozenset({0, 6})),
    }  # fmt: skip
    return plan


@pytest.fixture(scope="module")
def service() -> FilterService:
    filters, _, _ = serve(_plan())
    return filters


# (filter, expected) — each is also checked negated (``*not<type>``) below.
CASES: list[tuple[str, bool]] = [
    # *string: values OR-ed
    ("*string:~*req.Account:1001", True),
    ("*string:~*req.Account:1002|1001", True),
    ("*string:~*req.Account:1002", False),
    ("*string:~*req.Missing:1001", False),
    ("*string:~*req.Map.Nested:x", True),
    ("*string:~*req.Map.Items[1]:b", True),
    ("*string:~*req.Count:3", True),  # numbers compare as CGRateS prints them
    ("*string:~*req.Cost:1.25", True),
    # *prefix / *suffix / *contains
    ("*prefix:~*req.Destination:+49", True),
    ("*prefix:~*req.Destination:+33|+4986", True),
    ("*prefix:~*req.Destination:+33", False),
    ("*suffix:~*req.Destination:963", True),
    ("*suffix:~*req.Destination:000", False),
    ("*contains:~*req.Destination:8651", True),
    ("*contains:~*req.Destination:999", False),
    # *exists / *empty (no values)
    ("*exists:~*req.Account:", True),
    ("*exists:~*req.Null:", True),  # present, even if null
    ("*exists:~*req.Map.Nested:", True),
    ("*exists:~*req.Missing:", False),
    ("*empty:~*req.Empty:", True),
    ("*empty:~*req.List:", True),
    ("*empty:~*req.Null:", True),
    ("*empty:~*req.Missing:", True),
    ("*empty:~*req.Account:", False),
    ("*empty:~*req.Count:", False),
    # *gt *gte *lt *lte: durations, numbers (exact), times
    ("*gt:~*req.Usage:1m", True),
    ("*gt:~*req.Usage:90s", False),
    ("*gte:~*req.Usage:90s", True),
    ("*lt:~*req.Usage:2m", True),
    ("*lt:~*req.Usage:90s", False),
    ("*lte:~*req.Usage:90s", True),
    ("*gt:~*req.Usage:89999999999", True),  # a duration compares as its nanoseconds
    ("*gt:~*req.Cost:1.2", True),
    ("*lte:~*req.Cost:1.25", True),
    ("*lt:~*req.Cost:1.25", False),
    ("*gt:~*req.Count:2.5", True),  # int with float
    ("*gt:~*req.Count:5|2", True),  # OR-ed
    ("*gte:~*req.AnswerTime:2014-07-29T15:30:00Z", True),
    ("*lt:~*req.AnswerTime:2014-07-29T15:00:00Z", False),
    ("*gt:~*req.Missing:1", False),
    # *eq
    ("*eq:~*req.Count:3", True),
    ("*eq:~*req.Cost:1.250", True),
    ("*eq:~*req.Usage:90000000000", True),
    ("*eq:~*req.Tag:abc", True),
    ("*eq:~*req.Tag:abd", False),
    ("*eq:~*req.AnswerTime:2014-07-29T17:30:00+02:00", True),
    # *regex (Go syntax, unanchored)
    (r"*regex:~*req.Destination:^\+49\d+$", True),
    ("*regex:~*req.Destination:^0049", False),
    ("*regex:~*req.Destination:65171", True),
    # *timings: the time falls in one of the timings
    ("*timings:~*req.AnswerTime:WORKHOURS", True),
    ("*timings:~*req.AnswerTime:WEEKEND", False),
    ("*timings:~*req.AnswerTime:UNKNOWN|WORKHOURS", True),
    ("*timings:~*req.Missing:WORKHOURS", False),
    # *destinations: any prefix of the number is in a named destination
    ("*destinations:~*req.Destination:DST_DE", True),
    ("*destinations:~*req.Destination:DST_FR", False),
    ("*destinations:~*req.Destination:DST_DE_MUC", False),
    ("*destinations:~*req.Destination:DST_FR|DST_DE", True),
    # *rsr (CGRateS RSRFilters)
    ("*rsr:~*req.Destination:^+49", True),
    ("*rsr:~*req.Destination:~^\\+4986", True),
    ("*rsr:~*req.Destination:!^+49", False),
    ("*rsr:~*req.Destination:963$", True),
    ("*rsr:~*req.Destination:^+4986517174963$", True),
    ("*rsr:~*req.Destination:5171", True),
    ("*rsr:~*req.Count:>=3", True),
    ("*rsr:~*req.Count:<3", False),
    ("*rsr:~*req.Missing:^$", True),
    ("*rsr:~*req.Missing:^+49", False),
    # *ipnet
    ("*ipnet:~*req.IP:192.168.1.0/24", True),
    ("*ipnet:~*req.IP:10.0.0.0/8|192.168.0.0/16", True),
    ("*ipnet:~*req.IP:10.0.0.0/8", False),
    ("*ipnet:~*req.Account:10.0.0.0/8", False),  # not an address
    # *ai: activation interval on an event time
    ("*ai:~*req.AnswerTime:2014-07-01T00:00:00Z|2014-08-01T00:00:00Z", True),
    ("*ai:~*req.AnswerTime:2014-08-01T00:00:00Z", False),
    ("*ai:~*req.AnswerTime:|2014-07-29T15:00:00Z", False),
]


@pytest.mark.parametrize(("inline", "expected"), CASES)
def test_rule(service: FilterService, inline: str, expected: bool) -> None:
    assert service.passes(TENANT, (inline,), view(EVENT, OPTS)) is expected


@pytest.mark.parametrize(("inline", "expected"), CASES)
def test_negated_rule(service: FilterService, inline: str, expected: bool) -> None:
    negated = "*not" + inline[1:]
    assert service.passes(TENANT, (negated,), view(EVENT, OPTS)) is not expected


@pytest.mark.parametrize(
    ("inline", "expected"),
    [
        ("*nistring:~*req.Account:1001", True),  # "not indexed": evaluated as *string
        ("*niprefix:~*req.Destination:+49", True),
        ("*niexists:~*req.Missing:", False),
    ],
)
def test_not_indexed_variants(service: FilterService, inline: str, expected: bool) -> None:
    assert service.passes(TENANT, (inline,), view(EVENT)) is expected


@pytest.mark.parametrize(
    ("inline", "expected"),
    [
        ("*string:~*req.Account:~*req.Subject", True),
        ("*string:~*req.Account:1002|~*req.Subject", True),
        ("*string:~*req.Account:~*req.Destination", False),
        ("*string:~*req.Account:~*req.Missing", False),  # an unreadable value is skipped
        ("*gt:~*req.Usage:~*req.MaxUsage", True),
        ("*lt:~*req.Usage:~*req.MaxUsage", False),
        ("*prefix:~*req.Destination:~*opts.Prefix", True),
        ("*string:~*opts.*context:*sessions", True),
        ("*string:~*vars.*processRuns:2", True),
    ],
)
def test_dynamic_values(service: FilterService, inline: str, expected: bool) -> None:
    event_view = view(EVENT, OPTS)
    event_view.root["*vars"]["*processRuns"] = 2
    assert service.passes(TENANT, (inline,), event_view) is expected


def test_dynamic_element_path_in_a_stored_filter() -> None:
    # Inline filters split on every ":" (as CGRateS), so a dynamic path goes in a profile.
    plan = _plan()
    rule = FilterRule("*string", "~*req.<~*req.Tag:s/abc/Account/>", ("1001",))
    plan.others[KIND_FILTERS] = {"cgrates.org:FLTR_DYN": FilterProfile(TENANT, "FLTR_DYN", (rule,))}
    filters, _, _ = serve(plan)
    assert filters.passes(TENANT, ("FLTR_DYN",), view(EVENT))
    assert not filters.passes(TENANT, ("FLTR_DYN",), view({**EVENT, "Tag": "xyz"}))


def test_filters_are_and_ed(service: FilterService) -> None:
    event_view = view(EVENT)
    both = ("*string:~*req.Account:1001", "*prefix:~*req.Destination:+49")
    assert service.passes(TENANT, both, event_view)
    assert not service.passes(TENANT, (*both, "*gt:~*req.Count:10"), event_view)
    assert service.passes(TENANT, (), event_view)  # no filters: everything passes


@pytest.mark.parametrize(
    ("inline", "problem"),
    [
        ("*gt:~*req.Tag:abd", "unsupported comparison type"),  # strings do not order
        ("*gt:~*req.AnswerTime:5", "incomparable"),
        ("*timings:~*req.Tag:WORKHOURS", "cannot convert field"),
        ("*apiban:~*req.IP:*all", "NOT_IMPLEMENTED:*apiban"),
        ("*http#http://localhost/check:~*req.Account:", "NOT_IMPLEMENTED"),
    ],
)
def test_evaluation_errors_as_cgrates(service: FilterService, inline: str, problem: str) -> None:
    with pytest.raises(FilterError, match=problem.replace("*", r"\*")):
        service.passes(TENANT, (inline,), view(EVENT))


@pytest.mark.parametrize(
    ("inline", "problem"),
    [
        ("*string:~*req.Account", "inline parse error for string: <*string:~*req.Account>"),
        ("*foo:~*req.Account:1", "Unsupported filter Type: *foo"),
        ("*string::1001", "Element is mandatory for Type: *string"),
        ("*prefix:~*req.Account:", "Values is mandatory for Type: *prefix"),
        ("*string:~*req.Account:1||2", "emtpy RSRParser in rule: <>"),
        ("*regex:~*req.Account:(", "error parsing regexp"),
        ("*string:~*req.Account:1{*unknown}", "unsupported converter definition"),
    ],
)
def test_bad_inline_filters(service: FilterService, inline: str, problem: str) -> None:
    with pytest.raises(FilterError) as raised:
        service.passes(TENANT, (inline,), view(EVENT))
    assert problem in str(raised.value)


def test_inline_filters_compile_once(service: FilterService) -> None:
    inline = "*string:~*req.Account:4242"
    first = service.inline(inline)
    service.passes(TENANT, (inline,), view(EVENT))
    assert service.inline(inline) is first


def test_timings_read_the_time_in_its_own_zone(service: FilterService) -> None:
    # CGRateS reads a time's weekday and clock in the time's own location.
    workhours = ("*timings:~*req.AnswerTime:WORKHOURS",)
    assert service.passes(TENANT, workhours, view({"AnswerTime": "2014-07-29T09:30:00+02:00"}))
    assert not service.passes(TENANT, workhours, view({"AnswerTime": "2014-07-29T07:30:00+02:00"}))


def test_event_times_as_datetime(service: FilterService) -> None:
    moment = datetime(2014, 7, 29, 15, 30, tzinfo=UTC)
    assert service.passes(
        TENANT, ("*timings:~*req.AnswerTime:WORKHOURS",), view({"AnswerTime": moment})
    )
