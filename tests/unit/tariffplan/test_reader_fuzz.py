"""Whatever a tariff-plan file holds, reading it gives a plan or a TariffPlanError, nothing else."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.tariffplan import (
    ALL_KINDS,
    FILE_NAMES,
    RATING_KINDS,
    TariffPlanError,
    from_doc,
    from_tp_json,
    read_folder,
    to_doc,
    to_tp_json,
    validate,
)
from core.tariffplan.csvfmt import COLUMNS

EXAMPLES = int(os.environ.get("TP_FUZZ_EXAMPLES", "300"))  # raise it for a longer hunt
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Values that reach the parsers' interesting paths, mixed with arbitrary text.
TOKENS = st.sampled_from(
    [
        "", "*any", "*none", "*up", "*down", "*middle", "*free", "*disconnect", "*asap",
        "*unlimited", "*monthly", "*month_end+1h", "*voice", "0", "1", "-1", "7", "13", "1.5",
        "1e999", "99999999999999999999", "1_0", "NaN", "60s", "1m30s", "-5s", "1x", "true",
        "maybe", "2014-01-14T00:00:00Z", "+1h", "2014-01-14T00:00:00Z;*unlimited", "00:00:00",
        "25:00:00", "08:00:00;19:00:00", "*string:~*req.Account:1001", "*string:x",
        "*destinations:~*req.Destination:DST_1|<~*req.X>", "FLTR_1;FLTR_2", "a;b;;c",
        "*constant:*req.X:1", '{"Method":"*incremental"}', '"quoted"', '"a,b"', '"unclosed',
        'bare"quote', "\u00e9\u20ac", "#", "cgrates.org", "DST_1", "RT_1",
    ]
)
FIELD = st.one_of(TOKENS, st.text(max_size=12))


def read_text(name: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_text(text, encoding="utf-8")
        try:
            plan = read_folder(Path(folder))
        except TariffPlanError:
            return
        validate(plan)  # must not raise either
        for kind in RATING_KINDS:
            for model in getattr(plan, kind).values():
                assert from_tp_json(kind, to_tp_json(kind, model, "T")) == model
        for kind, items in plan.others.items():
            for model in items.values():
                assert from_doc(kind, to_doc(kind, model)) == model


@FUZZ
@given(st.text())
def test_arbitrary_text_in_rates(text: str) -> None:
    read_text("Rates.csv", text)


@FUZZ
@given(st.binary())
def test_arbitrary_bytes_in_rates(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "Rates.csv").write_bytes(data)
        with contextlib.suppress(TariffPlanError):
            read_folder(Path(folder))


# Mostly-valid values per column (by name), so that many generated files load and the loaded
# items go through validation and the document round trips.
_IDS = st.sampled_from(["A", "B", "cgrates.org", "DST_1", "RT_1", "*any"])
_MONEY = st.decimals(allow_nan=False, allow_infinity=False, places=4, max_value=10**6, min_value=0)
_VALID_BY_COLUMN: dict[str, st.SearchStrategy[str]] = {
    **dict.fromkeys(
        ["ConnectFee", "Rate", "MaxCost", "Weight", "RouteWeight", "ThresholdValue", "Limit"],
        _MONEY.map(str),
    ),
    **dict.fromkeys(
        ["RateUnit", "RateIncrement", "MinSleep", "TTL", "UsageTTL"],
        st.sampled_from(["1s", "60s", "1", "1m30s", "1.5"]),
    ),
    "GroupIntervalStart": st.sampled_from(["0s", "60s", "0", ""]),
    **dict.fromkeys(
        ["Blocker", "Stored", "Async", "Recurrent", "AllowNegative", "Disabled", "RouteBlocker"],
        st.sampled_from(["", "true", "false", "1"]),
    ),
    **dict.fromkeys(
        ["BalanceBlocker", "BalanceDisabled"], st.sampled_from(["", "true", "false", "*any"])
    ),
    "RoundingMethod": st.sampled_from(["*up", "*down", "*middle"]),
    **dict.fromkeys(
        ["RoundingDecimals", "QueueLength", "MinItems", "MaxHits", "MinHits"],
        st.integers(-1, 10).map(str),
    ),
    "MaxCostStrategy": st.sampled_from(["", "*free", "*disconnect"]),
    "Years": st.sampled_from(["*any", "2020;2021", ""]),
    "Months": st.sampled_from(["*any", "1;12"]),
    "MonthDays": st.sampled_from(["*any", "1;-1"]),
    "WeekDays": st.sampled_from(["*any", "1;7", "0"]),
    "Time": st.sampled_from(["00:00:00", "*asap", "08:00:00;12:00:00"]),
    **dict.fromkeys(
        ["ActivationTime", "ExpiryTime", "BalanceExpiryTime"],
        st.sampled_from(["", "2014-01-14T00:00:00Z", "1389657600", "2014-01-14 10:00:00"]),
    ),
    "ActivationInterval": st.sampled_from(
        ["", "2014-01-14T00:00:00Z", "2014-01-14T00:00:00Z;2015-01-01T00:00:00Z", "*unlimited"]
    ),
    "Type": st.sampled_from(["*string", "*prefix", "*exists", "", "*destinations"]),
    "Element": st.sampled_from(["~*req.Account", "~*req.Destination"]),
    "Values": st.sampled_from(["1001", "1001;1002", "DST_1", "<~*req.X;y>"]),
    **dict.fromkeys(
        ["FilterIDs", "AttributeFilterIDs", "RouteFilterIDs", "MetricFilterIDs", "Filter"],
        st.sampled_from(["", "FLTR_1", "FLTR_1;*string:~*req.A:1", "*prefix:~*req.D:49|33"]),
    ),
    "AttributeIDs": st.sampled_from(["", "*none", "ATTR_1;*constant:*req.X:1", "A;B"]),
    "Units": st.sampled_from(["", "10", "1m", '{"Method":"*incremental"}']),
    "BalanceWeight": st.sampled_from(["", "10", "*any"]),
}
_IDS_BY_DEFAULT = st.one_of(_IDS, st.sampled_from(["", "x;y", "*req.X"]))


def column_value(name: str) -> st.SearchStrategy[str]:
    """About one field in 15 is arbitrary; the rest plausible for the column."""
    valid = _VALID_BY_COLUMN.get(name, _IDS_BY_DEFAULT)
    return st.integers(0, 14).flatmap(lambda pick: FIELD if pick == 0 else valid)


@st.composite
def rows_for(draw: st.DrawFn, kind: str) -> str:
    def row() -> str:
        return ",".join(draw(column_value(name)) for name in COLUMNS[kind])

    return "".join(row() + "\n" for _ in range(draw(st.integers(1, 4))))


@FUZZ
@given(st.data())
def test_well_shaped_rows_of_every_file(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(ALL_KINDS))
    read_text(FILE_NAMES[kind], data.draw(rows_for(kind)))
