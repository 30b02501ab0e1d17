"""Inline filters over trees."""

from __future__ import annotations

import pytest

from agents.templating import DictTree, ReplyTree, RequestTree, TemplateError
from agents.templating.filters import parse_filter

TREES: dict[str, RequestTree] = {
    "*req": DictTree(
        {
            "CC-Request-Type": 1,
            "Called": "+4915112345678",
            "Empty": "",
            "Usage": "90s",
            "Subscription-Id": [
                {"Subscription-Id-Type": 1, "Subscription-Id-Data": "imsi"},
                {"Subscription-Id-Type": 0, "Subscription-Id-Data": "4915"},
            ],
        }
    ),
    "*vars": DictTree({"QueryType": "NAPTR", "Expected": "1"}),
    "*cgrep": ReplyTree.from_data({"Error": "", "MaxUsage": 300}),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*string:~*req.CC-Request-Type:1", True),
        ("*string:~*req.CC-Request-Type:2|3|1", True),  # values OR-ed
        ("*string:~*req.CC-Request-Type:2|3", False),
        ("*notstring:~*req.CC-Request-Type:2", True),
        ("*notstring:~*req.CC-Request-Type:1", False),
        ("*string:~*req.Missing:1", False),
        ("*notstring:~*req.Missing:1", True),
        ("*prefix:~*req.Called:+49|+40", True),
        ("*notprefix:~*req.Called:+49", False),
        ("*suffix:~*req.Called:678", True),
        ("*contains:~*req.Called:1511", True),
        ("*exists:~*req.Called:", True),
        ("*exists:~*req.Missing:", False),
        ("*notexists:~*req.Missing:", True),
        ("*empty:~*req.Empty:", True),
        ("*empty:~*req.Missing:", True),
        ("*empty:~*cgrep.Error:", True),
        ("*notempty:~*cgrep.Error:", False),
        ("*gt:~*cgrep.MaxUsage:0", True),
        ("*gte:~*cgrep.MaxUsage:300", True),
        ("*lt:~*cgrep.MaxUsage:300", False),
        ("*lte:~*req.Usage:1m30s", True),  # durations compare as durations
        ("*gt:~*req.Called:abc", False),  # not comparable: no pass
        ("*eq:~*cgrep.MaxUsage:300.0", True),
        ("*eq:~*req.Usage:90000000000", True),
        ("*noteq:~*req.Called:abc", True),
        ("*regex:~*req.Called:^\\+49\\d+$", True),
        ("*notregex:~*req.Called:^\\+40", True),
        ("*string:~*vars.QueryType:NAPTR", True),
        ("*string:~*req.CC-Request-Type:~*vars.Expected", True),  # dynamic value
        ("*string:~*req.CC-Request-Type:~*vars.Missing", False),
        ("*string:~*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(0)]:4915", True),
        ("*string:~*req.Usage:s/(\\d+)s/$1/:90", True),  # element with search&replace
        ("*string:~*req.Usage{*duration_seconds}:90", True),
    ],
)
def test_filters(text: str, expected: bool) -> None:
    assert parse_filter(text).passes(TREES) is expected


@pytest.mark.parametrize(
    "text",
    [
        "FLTR_PROFILE_ID",  # engine filter profiles are not reachable from agents
        "*nosuch:~*req.X:1",
        "*string:*req.X:1",
        "*string:~*req.X",
        "*regex:~*req.X:(",
        "*string:~*req.X{*bad}:1",
    ],
)
def test_bad_filters(text: str) -> None:
    with pytest.raises(TemplateError):
        parse_filter(text)
