"""Value expressions and converters."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.templating import DictTree, TemplateError, parse_path, parse_value
from agents.templating.converters import parse_converter
from agents.templating.filters import parse_filter

TREES = {
    "*req": DictTree(
        {
            "CC-Time": "30",
            "Called": "sip:+4915112345678@example.org:5060;user=phone",
            "Name": "8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa.",
            "Amount": "10.1",
            "Usage": 90_000_000_000,
        }
    ),
    "*vars": DictTree({"Host": "h1"}),
}


def text(expression: str) -> str:
    return parse_value(expression).text(TREES)


def test_literals_references_and_segments() -> None:
    assert text("abc") == "abc"
    assert text("~*req.CC-Time") == "30"
    assert text("~*vars.Host;-;~*req.CC-Time") == "h1-30"
    assert text("`a;b`;c") == "a;bc"
    assert text("") == ""


def test_regex_substitution_go_syntax() -> None:
    assert text("~*req.CC-Time:s/(.*)/${1}s/") == "30s"
    assert text("~*req.CC-Time:s/(.*)/$1-s/") == "30-s"
    # Go reads $1s as the group named "1s" and silently gives ""; we refuse it at load
    with pytest.raises(TemplateError, match="1s"):
        parse_value("~*req.CC-Time:s/(.*)/$1s/")
    # no match leaves the value as it is (CGRateS: national vs international numbers)
    assert text("~*req.CC-Time:s/^x(.*)/$1/") == "30"
    # chained rules; the result is the expanded template only, as Go's Expand
    assert text("~*req.CC-Time:s/(.*)/${1}0/:s/^(\\d)(.*)/+$1$2/") == "+300"
    assert text("~*req.CC-Time:s/^(\\d)/+$1/") == "+3"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("~*req.Name{*e164}", "4915112345678"),
        ("~*req.Name{*e164Domain}", "e164.arpa"),
        ("~*req.Called{*sipuri_user}", "+4915112345678"),
        ("~*req.Called{*sipuri_host}", "example.org"),
        ("~*req.CC-Time{*len}", "2"),
        ("~*req.Usage{*duration_seconds}", "90"),
        ("~*req.Usage{*duration}", "1m30s"),
        ("~*req.CC-Time:s/(.*)/${1}s/{*duration_nanoseconds}", "30000000000"),
        ("~*req.CC-Time:s/(.*)/${1}s/{*duration_minutes}", "0.5"),
        ("1500ms{*duration_seconds}", "1.5"),
        ("~*req.Amount{*multiply:3}", "30.3"),  # exact: 10.1 * 3, never 30.299999...
        ("~*req.Amount{*divide:4}", "2.525"),
        ("~*req.Amount{*divide:3&*round:2}", "3.37"),
        ("~*req.Amount{*divide:3&*round:2:*down}", "3.36"),
        ("~*req.Amount{*round}", "10"),
        ("~*req.Usage{*duration_seconds&*multiply:2}", "180"),
    ],
)
def test_converters(expression: str, expected: str) -> None:
    assert text(expression) == expected


def test_converters_use_decimal() -> None:
    assert parse_converter("*multiply:0.1")(Decimal("0.2")) == Decimal("0.02")


@pytest.mark.parametrize(
    "expression",
    [
        "~*req.X{*nosuch}",
        "~*req.X{*round:x}",
        "~*req.X{*round:2:*sideways}",
        "~*req.X{*multiply}",
        "~*req.X{*divide:0}",
        "~*req.X{*duration",
        "~*req.X:s/(/x/",
        "~*req.X:s/a/b",
        "~*req.X:s/(a)/${2}/",
        "a;;b",
        "`a",
        "~req.X",
    ],
)
def test_bad_values_raise_template_error(expression: str) -> None:
    with pytest.raises(TemplateError):
        parse_value(expression)


@given(st.text(max_size=60))
def test_any_string_parses_or_raises_template_error(expression: str) -> None:
    with contextlib.suppress(TemplateError):
        parse_value(expression)


@given(st.text(alphabet="*~.[]()|&^$!<>=0123456789abcXYZ-:;{}/`s", max_size=40))
def test_syntax_heavy_strings_parse_or_raise_template_error(expression: str) -> None:
    parsers = (parse_value, parse_path, lambda s: parse_path(s, writable=True), parse_filter)
    for parse in parsers:
        with contextlib.suppress(TemplateError):
            parse(expression)
