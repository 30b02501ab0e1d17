"""RSR value expressions, Go value semantics, the event shape and paths."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.filters import CGREvent, FilterError, parse_path
from core.filters.event import MISSING, EventView, lookup
from core.filters.rsr import (
    compile_rule,
    compile_rules,
    go_regex,
    join_rules,
    join_string,
    split_rules,
)
from core.filters.values import GoDuration, as_string, equal_to, greater_than, to_value

from .stack import view

FIELDS: dict[str, Any] = {
    "Destination": "004930123456",
    "Account": "1001",
    "Usage": "1m30s",
    "Cost": 0.1,
    "Nested": {"Items": [{"Id": "a"}, {"Id": "b"}]},
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("1001", "1001"),
        ("*prepaid", "*prepaid"),
        ("~", "~"),  # a lone ~ is a constant
        ("~*req.Account", "1001"),
        ("~*req.Cost", "0.1"),
        ("~*req.Nested.Items[1].Id", "b"),
        # search and replace: the expanded template replaces the value on a match
        (r"~*req.Destination:s/^00(\d+)$/+${1}/", "+4930123456"),
        (r"~*req.Destination:s/^0049(\d+)/49$1/", "4930123456"),
        (r"~*req.Account:s/^9(\d+)/$1/", "1001"),  # no match: unchanged
        (r"~*req.Destination:s/^00(\d+)/${1}/:s/^49(\d+)/+49${1}/", "+4930123456"),  # chained
        (r"~*req.Destination:s/^00//", ""),  # the template is the whole result
        ("~*req.Account:s/(1)/$$1/", "$1"),
        # converters
        ("~*req.Usage{*duration_seconds}", "90"),
        ("~*req.Usage{*duration_nanoseconds}", "90000000000"),
        ("~*req.Usage{*duration_seconds&*multiply:2}", "180"),
        ("~*req.Cost{*multiply:3&*round:2}", "0.3"),
        ("~*req.Cost{*divide:4&*round:3:*up}", "0.025"),
        ("90000000000{*duration}", "1m30s"),
        # dynamic paths
        ("~*req.<~*req.Account:s/1001/Usage/>", "1m30s"),
    ],
)
def test_rules(rule: str, expected: str) -> None:
    expr = compile_rule(rule)
    assert expr is not None
    assert expr.string(view(FIELDS)) == expected


def test_go_regexp_syntax() -> None:
    # Named groups hold "<...>", which RSR rules read as dynamic parts (as CGRateS does), so
    # they only occur in *regex filter values.
    assert go_regex("^(?<cc>49)").match("4930") is not None
    assert go_regex(r"49\z").search("0049") is not None
    assert compile_rule("~*req.A:s/(?<x>1)/2/").__class__.__name__ == "DynamicExpr"


def test_missing_fields_are_none() -> None:
    expr = compile_rule("~*req.Missing")
    assert expr is not None
    assert expr.string(view(FIELDS)) is None
    assert join_string(compile_rules("a;~*req.Missing"), view(FIELDS)) is None


def test_several_rules_concatenate() -> None:
    exprs = compile_rules("+;~*req.Account;@example.com")
    assert join_string(exprs, view(FIELDS)) == "+1001@example.com"


def test_backquotes_keep_separators() -> None:
    assert split_rules("a;`b;c`;d") == ["a", "b;c", "d"]
    assert split_rules("x`;`y") == ["x;y"]
    rules = ["~*req.Account:s/1/;/", "plain"]
    assert [expr.rules for expr in compile_rules(join_rules(rules))] == rules
    with pytest.raises(FilterError, match="Unclosed"):
        split_rules("a`b")


def test_constant_reads_field_references_as_empty() -> None:
    # CGRateS's *constant parses values without the event: a reference gives "".
    expr = compile_rule("~*req.Account")
    assert expr is not None
    assert expr.constant() == ""


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("~*req.A:s/x", "not enough members in Search&Replace"),
        ("~*req.A:s/(/x/", "error parsing regexp"),
        ("~*req.A{*duration_seconds", "invalid converter terminator"),
        ("~*req.A{*nope}", "unsupported converter definition: <*nope>"),
        ("~*req.A{*round:x}", "needs integer as decimals"),
        ("~*req.A{*divide:0}", "invalid *divide converter value"),
    ],
)
def test_bad_rules(rule: str, problem: str) -> None:
    with pytest.raises(FilterError) as raised:
        compile_rule(rule)
    assert problem in str(raised.value)


def test_conversion_errors_at_run_time() -> None:
    expr = compile_rule("~*req.Account{*duration_seconds}")
    assert expr is not None
    assert expr.string(view({"Account": "10s"})) == "10"
    with pytest.raises(FilterError):
        expr.string(view({"Account": "abc"}))


# ------------------------------------------------------------------------------------- values
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("42", 42),
        ("-7", -7),
        ("true", True),
        ("F", False),
        ("1.50", Decimal("1.50")),
        ("1e3", Decimal("1e3")),
        ("1m30s", GoDuration(90_000_000_000)),
        ("2014-07-29T15:00:00Z", datetime(2014, 7, 29, 15, tzinfo=UTC)),
        ("2014-07-29 15:00:00", datetime(2014, 7, 29, 15, tzinfo=UTC)),
        ("abc", "abc"),
        ("1001abc", "1001abc"),
    ],
)
def test_string_to_interface(text: str, expected: Any) -> None:
    assert to_value(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (3, "3"),
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1000000000000000000000"),
        (Decimal("2.50"), "2.5"),
        (GoDuration(3_600_000_000_000), "1h0m0s"),
        (datetime(2014, 7, 29, 15, 0, 0, 500, tzinfo=UTC), "2014-07-29T15:00:00Z"),
        ({"a": 1}, '{"a":1}'),
    ],
)
def test_iface_as_string(value: Any, expected: str) -> None:
    assert as_string(value) == expected


def test_comparisons_as_cgrates() -> None:
    assert greater_than(2, Decimal("1.5"), or_equal=False)
    assert greater_than(GoDuration(60), 60, or_equal=True)
    assert not greater_than(GoDuration(60), 60, or_equal=False)
    assert equal_to(Decimal("1.0"), 1)
    assert equal_to("abc", "abc")
    with pytest.raises(FilterError, match="incomparable"):
        greater_than("abc", 1, or_equal=False)
    with pytest.raises(FilterError, match="unsupported comparison type"):
        greater_than("abc", "abd", or_equal=False)
    with pytest.raises(FilterError, match="unsupported comparison type"):
        equal_to(True, True)


# -------------------------------------------------------------------------------------- event
def test_paths() -> None:
    assert parse_path("*req.A.B[0]") == (("*req", None), ("A", None), ("B", "0"))
    assert parse_path("*req.A[x.y].C") == (("*req", None), ("A", "x.y"), ("C", None))
    root = {"*req": {"A": {"B": ["x"], "S": "text"}}}
    assert lookup(root, parse_path("*req.A.B[0]")) == "x"
    assert lookup(root, parse_path("*req.A.B[1]")) is MISSING
    assert lookup(root, parse_path("*req.A.S.X")) is MISSING  # through a non-map


def test_view_writes_through_to_the_event() -> None:
    event = CGREvent("cgrates.org", "ev", None, {"A": "1"}, {})
    event_view = event.view()
    event_view.set(["*req", "B", "C"], "x")
    event_view.set(["*opts", "*context"], "*cdrs")
    event_view.remove(["*req", "A"])
    assert event.event == {"B": {"C": "x"}}
    assert event.opts == {"*context": "*cdrs"}
    with pytest.raises(FilterError, match="WRONG_PATH"):
        EventView({"A": "1"}).set(["*req", "A", "B"], "x")


def test_cgr_event_wire_round_trip() -> None:
    wire = {
        "Tenant": "",
        "ID": "ev1",
        "Time": "2014-07-29T15:00:00Z",
        "Event": {"Account": "1001", "Nested": {"A": [1]}},
        "Opts": {"*context": "*sessions"},  # v0.10 name
    }
    event = CGREvent.from_wire(wire, "cgrates.org")
    assert event.tenant == "cgrates.org"
    assert event.time == datetime(2014, 7, 29, 15, tzinfo=UTC)
    assert event.to_wire() == {
        "Tenant": "cgrates.org",
        "ID": "ev1",
        "Time": "2014-07-29T15:00:00Z",
        "Event": {"Account": "1001", "Nested": {"A": [1]}},
        "APIOpts": {"*context": "*sessions"},
    }
    event.event["Nested"]["A"].append(2)  # copies: the caller's objects are untouched
    assert wire["Event"] == {"Account": "1001", "Nested": {"A": [1]}}
    clone = event.clone()
    clone.event["Nested"]["A"].append(3)
    assert event.event["Nested"]["A"] == [1, 2]
