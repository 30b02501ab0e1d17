"""The CGRateS CSV dialect: column layouts per file and a record splitter that knows positions.

CGRateS reads its files with Go's ``encoding/csv`` (comma separated, ``#`` comment lines, blank
lines skipped, RFC 4180 quotes, no lazy quotes) and requires an exact field count per file. Lines
without a ``"`` (nearly all) are split with ``str.split``; only quoted lines take the slow path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from core.tariffplan import kinds as k
from core.tariffplan.models import rating_profile_key, tenant_key

COMMENT: Final = "#"
SEPARATOR: Final = ","
QUOTE: Final = '"'

# Column names per file (CGRateS's header order); error reasons name the field with these.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    k.KIND_TIMINGS: ("ID", "Years", "Months", "MonthDays", "WeekDays", "Time"),
    k.KIND_DESTINATIONS: ("ID", "Prefix"),
    k.KIND_RATES: ("ID", "ConnectFee", "Rate", "RateUnit", "RateIncrement", "GroupIntervalStart"),
    k.KIND_DESTINATION_RATES: (
        "ID",
        "DestinationID",
        "RateID",
        "RoundingMethod",
        "RoundingDecimals",
        "MaxCost",
        "MaxCostStrategy",
    ),
    k.KIND_RATING_PLANS: ("ID", "DestinationRatesID", "TimingID", "Weight"),
    k.KIND_RATING_PROFILES: (
        "Tenant",
        "Category",
        "Subject",
        "ActivationTime",
        "RatingPlanID",
        "RatesFallbackSubject",
    ),
    k.KIND_ACTIONS: (
        "ActionsID",
        "Action",
        "ExtraParameters",
        "Filter",
        "BalanceID",
        "BalanceType",
        "Categories",
        "DestinationIDs",
        "RatingSubject",
        "SharedGroup",
        "ExpiryTime",
        "TimingIDs",
        "Units",
        "BalanceWeight",
        "BalanceBlocker",
        "BalanceDisabled",
        "Weight",
    ),
    k.KIND_ACTION_PLANS: ("ID", "ActionsID", "TimingID", "Weight"),
    k.KIND_ACTION_TRIGGERS: (
        "ID",
        "UniqueID",
        "ThresholdType",
        "ThresholdValue",
        "Recurrent",
        "MinSleep",
        "ExpiryTime",
        "ActivationTime",
        "BalanceID",
        "BalanceType",
        "BalanceCategories",
        "BalanceDestinationIDs",
        "BalanceRatingSubject",
        "BalanceSharedGroup",
        "BalanceExpiryTime",
        "BalanceTimingIDs",
        "BalanceWeight",
        "BalanceBlocker",
        "BalanceDisabled",
        "ActionsID",
        "Weight",
    ),
    k.KIND_ACCOUNT_ACTIONS: (
        "Tenant",
        "Account",
        "ActionPlanID",
        "ActionTriggersID",
        "AllowNegative",
        "Disabled",
    ),
    k.KIND_SHARED_GROUPS: ("ID", "Account", "Strategy", "RatingSubject"),
    k.KIND_ATTRIBUTES: (
        "Tenant",
        "ID",
        "Contexts",
        "FilterIDs",
        "ActivationInterval",
        "AttributeFilterIDs",
        "Path",
        "Type",
        "Value",
        "Blocker",
        "Weight",
    ),
    k.KIND_CHARGERS: (
        "Tenant",
        "ID",
        "FilterIDs",
        "ActivationInterval",
        "RunID",
        "AttributeIDs",
        "Weight",
    ),
    k.KIND_FILTERS: ("Tenant", "ID", "Type", "Element", "Values", "ActivationInterval"),
    k.KIND_ROUTES: (
        "Tenant",
        "ID",
        "FilterIDs",
        "ActivationInterval",
        "Sorting",
        "SortingParameters",
        "RouteID",
        "RouteFilterIDs",
        "RouteAccountIDs",
        "RouteRatingPlanIDs",
        "RouteResourceIDs",
        "RouteStatIDs",
        "RouteWeight",
        "RouteBlocker",
        "RouteParameters",
        "Weight",
    ),
    k.KIND_RESOURCES: (
        "Tenant",
        "ID",
        "FilterIDs",
        "ActivationInterval",
        "UsageTTL",
        "Limit",
        "AllocationMessage",
        "Blocker",
        "Stored",
        "Weight",
        "ThresholdIDs",
    ),
    k.KIND_STATS: (
        "Tenant",
        "ID",
        "FilterIDs",
        "ActivationInterval",
        "QueueLength",
        "TTL",
        "MinItems",
        "MetricIDs",
        "MetricFilterIDs",
        "Stored",
        "Blocker",
        "Weight",
        "ThresholdIDs",
    ),
    k.KIND_THRESHOLDS: (
        "Tenant",
        "ID",
        "FilterIDs",
        "ActivationInterval",
        "MaxHits",
        "MinHits",
        "MinSleep",
        "Blocker",
        "Weight",
        "ActionIDs",
        "Async",
        "EeIDs",
    ),
}

# Field counts accepted besides the full layout: CGRateS v0.10 Thresholds.csv had no EeIDs column.
# Shorter rows are padded with empty fields.
LEGACY_COUNTS: Final[dict[str, frozenset[int]]] = {k.KIND_THRESHOLDS: frozenset({11})}


def column_index(kind: str, name: str) -> int:
    return COLUMNS[kind].index(name)


def item_key(kind: str, fields: list[str]) -> str:
    """The id a row contributes to, as the reader keys ``TariffPlan`` (and CGRateS groups rows)."""
    if kind == k.KIND_RATING_PROFILES:
        return rating_profile_key(fields[0], fields[1], fields[2])
    if COLUMNS[kind][0] == "Tenant":
        return tenant_key(fields[0], fields[1])
    return fields[0]


Position = tuple[int, int]  # (line, column), both 1-based
# (line, column, reason) of a syntax problem
SyntaxReporter = Callable[[int, int, str], None]
Record = tuple[int, list[str], list[Position] | None]


def field_position(
    line: int, fields: list[str], positions: list[Position] | None, index: int
) -> Position:
    """Where field ``index`` of the record starting at ``line`` starts.

    Plain lines carry no positions (saving the work for the million rows that are fine): the
    column is derived from the field lengths, which is exact because such lines hold no quotes.
    """
    if positions is not None:
        return positions[min(index, len(positions) - 1)]  # padded legacy fields: the last one
    column = 1
    for field in fields[:index]:
        column += len(field) + 1
    return (line, column)


def iter_records(
    text: str, on_error: SyntaxReporter, separator: str = SEPARATOR
) -> Iterator[Record]:
    """Yields ``(line, fields, positions)`` per record; ``positions`` only for quoted lines.

    ``text`` must already have ``\\r\\n`` normalised to ``\\n``. Syntax errors are reported and the
    record skipped, so the rest of the file is still checked.
    """
    numbered = enumerate(text.split("\n"), 1)
    for line_no, line in numbered:
        if not line or line[0] == COMMENT:
            continue
        if QUOTE not in line:
            yield line_no, line.split(separator), None
            continue
        parsed = _split_quoted(line_no, line, numbered, on_error, separator)
        if parsed is not None:
            yield line_no, parsed[0], parsed[1]


def _split_quoted(
    line_no: int,
    line: str,
    more: Iterator[tuple[int, str]],
    on_error: SyntaxReporter,
    separator: str,
) -> tuple[list[str], list[Position]] | None:
    """Go ``encoding/csv`` rules for a record holding quotes (it may span several lines)."""
    fields: list[str] = []
    positions: list[Position] = []
    pos = 0
    while True:
        start = (line_no, pos + 1)
        if pos < len(line) and line[pos] == QUOTE:
            parts: list[str] = []
            pos += 1
            while True:
                quote = line.find(QUOTE, pos)
                if quote < 0:  # the quoted field goes on on the next line
                    parts.append(line[pos:])
                    parts.append("\n")
                    following = next(more, None)
                    if following is None:
                        on_error(start[0], start[1], 'quoted field not closed (missing ")')
                        return None
                    line_no, line = following
                    pos = 0
                    continue
                parts.append(line[pos:quote])
                pos = quote + 1
                if pos < len(line) and line[pos] == QUOTE:  # "" is an escaped quote
                    parts.append(QUOTE)
                    pos += 1
                    continue
                break
            fields.append("".join(parts))
            positions.append(start)
            if pos == len(line):
                return fields, positions
            if line[pos] != separator:
                on_error(line_no, pos + 1, 'extraneous or missing " in quoted field')
                return None
            pos += 1
            continue
        comma = line.find(separator, pos)
        end = len(line) if comma < 0 else comma
        bare = line.find(QUOTE, pos, end)
        if bare >= 0:
            on_error(line_no, bare + 1, 'bare " in non-quoted field')
            return None
        fields.append(line[pos:end])
        positions.append(start)
        if comma < 0:
            return fields, positions
        pos = comma + 1


def decode(data: bytes, on_error: SyntaxReporter) -> str | None:
    """UTF-8 text with ``\\r\\n`` normalised (a leading BOM is dropped); ``None`` if undecodable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        line = head.count(b"\n") + 1
        column = len(head[head.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        on_error(line, column, "not valid UTF-8")
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text
