"""The result of rating a call, and its CGRateS EventCost form.

A CallCost is a list of timespans, each rated by one rate interval and slot, holding its
increments compressed as ``(usage per increment, cost per increment, compress factor)``. Account
debits (CGRateS debits per increment: unit balances by usage, monetary balances by cost) walk
``CallCost.increments()``; the connect fee is separate (CGRateS debits it first, on its own).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson

from core.tariffplan.models import RateSlot
from core.types import JSON_OPTIONS, MICROSECOND, ZERO, dumps

from .plan_index import IncrementGroup, RateInterval, RatingMatch, short_id

__all__ = [
    "GO_ZERO_TIME",
    "WIRE_HEAD",
    "CallCost",
    "IncrementGroup",
    "TimeSpan",
    "dump_time",
    "single_match_filters_wire",
    "split_wire",
]

# Go's zero time.Time: the EventCost StartTime when nothing was rated.
GO_ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)


class TimeSpan(NamedTuple):
    """A part of the call rated by one interval and slot.

    ``start``/``end`` are ns from the call start; ``end - start`` is the charged usage (the part
    rounded up to whole increments). ``cost`` is the increments' sum, without the connect fee.
    """

    start: int
    end: int
    interval: RateInterval
    tier_index: int
    match: RatingMatch
    increments: tuple[IncrementGroup, ...]
    cost: Decimal

    @property
    def usage(self) -> int:
        return self.end - self.start

    @property
    def slot(self) -> RateSlot:
        """The rate slot in force (unit and increment defaults applied)."""
        return self.interval.tiers[self.tier_index].slot

    @property
    def timing_id(self) -> str:
        return self.interval.timing.id

    @property
    def rate_id(self) -> str:
        return self.interval.rate.id

    @property
    def rounding_method(self) -> str:
        return self.interval.rounding_method

    @property
    def rounding_decimals(self) -> int:
        return self.interval.rounding_decimals


class CallCost(NamedTuple):
    """A rated call (CGRateS's CallCost).

    ``cost`` is CGRateS's ``CallCost.Cost``: connect fee plus increments, *free cap applied,
    rounded by the timespans' longest RoundingDecimals/RoundingMethod. ``unrounded_cost`` is the
    same before that rounding: the increments' sum, which is what CGRateS's EventCost reports.
    ``max_cost_usage`` is, when a ``*disconnect`` MaxCost would cut the call, the usage (ns from
    the start) the MaxCost allows; ``truncated`` says the timespans were cut there.
    """

    tenant: str
    category: str
    subject: str
    account: str
    destination: str
    tor: str
    start_time: datetime
    usage: int  # requested
    timespans: tuple[TimeSpan, ...]
    connect_fee: Decimal
    cost: Decimal
    unrounded_cost: Decimal
    rated_usage: int  # sum of increments: usage rounded up to increments
    max_cost_reached: bool
    max_cost_usage: int | None
    truncated: bool
    match: RatingMatch | None  # of the first timespan (or of the start, for a zero usage)

    # -- what matched ---------------------------------------------------------------------------
    @property
    def profile_key(self) -> str:
        return self.match.subject if self.match else ""

    @property
    def destination_id(self) -> str:
        return self.match.destination_id if self.match else ""

    @property
    def destination_prefix(self) -> str:
        return self.match.destination_prefix if self.match else ""

    @property
    def rating_plan_id(self) -> str:
        return self.match.rating_plan_id if self.match else ""

    def time_at(self, offset: int) -> datetime:
        """The moment ``offset`` ns after the call start (datetime keeps microseconds)."""
        return self.start_time + timedelta(microseconds=offset // MICROSECOND)

    def round(self, amount: Decimal) -> Decimal:
        """``amount`` rounded as this call's total is (GetLongestRounding: the first timespan
        with the most decimals); used to round what balances paid for the call."""
        if not self.timespans:
            return amount
        rounder = self.timespans[0].interval
        for span in self.timespans:
            if span.interval.rounding_decimals > rounder.rounding_decimals:
                rounder = span.interval
        mode = rounder.round_mode
        return amount.quantize(rounder.round_quantum, mode) if mode is not None else amount

    def after(self, offset: int) -> CallCost:
        """The increments charged from ``offset`` ns into the call on, as their own CallCost.

        A session is debited in chunks, each continuing the same call (CGRateS's DurationIndex):
        rate the call from its start to the chunk's end, then keep what lies past the part
        already charged. Tiers (GroupIntervalStart) and timing splits therefore stay those of
        the whole call, and the connect fee (charged at the start) is dropped. ``offset`` falls
        on an increment boundary when the earlier chunks were charged from the same rating; an
        increment straddling it counts as charged already.
        """
        if offset <= 0:
            return self
        spans: list[TimeSpan] = []
        for span in self.timespans:
            if span.end <= offset:
                continue
            if span.start >= offset:
                spans.append(span)
                continue
            position = span.start
            kept: list[IncrementGroup] = []
            kept_start = span.end
            for group in span.increments:
                group_end = position + group.total_usage
                if group_end > offset and group.usage > 0:
                    skip = max(0, -(-(offset - position) // group.usage))
                    if skip < group.compress_factor:
                        if not kept:
                            kept_start = position + skip * group.usage
                        kept.append(group._replace(compress_factor=group.compress_factor - skip))
                position = group_end
            if kept:
                cost = sum((group.total_cost for group in kept), ZERO)
                spans.append(span._replace(start=kept_start, increments=tuple(kept), cost=cost))
        unrounded = sum((span.cost for span in spans), ZERO)
        return self._replace(
            timespans=tuple(spans),
            connect_fee=ZERO,
            cost=unrounded,
            unrounded_cost=unrounded,
            rated_usage=max(0, self.rated_usage - offset),
        )

    def increments(self) -> Iterator[tuple[TimeSpan, IncrementGroup]]:
        """Every increment group in call order, with its timespan (connect fee not included)."""
        for span in self.timespans:
            for group in span.increments:
                yield span, group

    # -- EventCost ------------------------------------------------------------------------------
    def to_event_cost(self, cgrid: str = "", run_id: str = "") -> dict[str, Any]:
        """The CGRateS v0.10 EventCost that APIerSv1.GetCost answers with.

        As ``NewEventCostFromCallCost`` + ``Compute``: one charge per timespan (consecutive equal
        ones compressed), the connect fee as a leading ``Usage 0`` increment of the first charge,
        ``Usage`` the charged usage and ``Cost`` the increments' sum. Durations are int ns, money
        Decimal, times datetime; ids are short content hashes.

        The top-level dict is new; the nested Charges/Rating/RatingFilters/Rates/Timings values
        are shared between results of equal timespans: treat them as read-only (deep-copy first
        to change them).
        """
        spans = self.timespans
        if not spans:
            # getCost for a zero usage: one empty timespan if a rating was found, else none.
            found = self.match is not None
            return {
                "CGRID": cgrid,
                "RunID": run_id,
                "StartTime": self.start_time if found else GO_ZERO_TIME,
                "Usage": 0,
                "Cost": ZERO,
                "Charges": [{"RatingID": "", "Increments": None, "CompressFactor": 0}]
                if found
                else [],
                "AccountSummary": None,
                "Rating": {},
                "Accounting": {},
                "RatingFilters": {},
                "Rates": {},
                "Timings": {},
            }
        body = _body_of(spans)
        return {
            "CGRID": cgrid,
            "RunID": run_id,
            "StartTime": self.start_time,
            "Usage": self.rated_usage,
            "Cost": self.unrounded_cost,
            "Charges": body.charges,
            "AccountSummary": None,
            "Rating": body.rating,
            "Accounting": {},
            "RatingFilters": body.rating_filters,
            "Rates": body.rates,
            "Timings": body.timings,
        }

    def to_event_cost_wire(self, cgrid: str = "", run_id: str = "") -> Any:
        """``to_event_cost()`` for the JSON layer only: an ``orjson.Fragment`` holding the very
        bytes ``core.types.dumps(self.to_event_cost(...))`` writes. Everything after StartTime
        depends on the timespans, usage and cost only, so it is encoded once per equal
        timespans and cached; a reply joins three byte strings."""
        spans = self.timespans
        if not spans:
            return self.to_event_cost(cgrid, run_id)
        tail = _body_of(spans).wire_tail(self.rated_usage, self.unrounded_cost)
        head = WIRE_HEAD if not cgrid and not run_id else _wire_head(cgrid, run_id)
        return orjson.Fragment(b"".join((head, dump_time(self.start_time), tail)))


def _wire_head(cgrid: str, run_id: str) -> bytes:
    """The EventCost's bytes up to StartTime's value."""
    return b'{"CGRID":%b,"RunID":%b,"StartTime":' % (dumps(cgrid), dumps(run_id))


WIRE_HEAD: Final = _wire_head("", "")
"""An EventCost with empty CGRID and RunID (GetCost's), encoded up to StartTime's value."""
# core.types.dumps for a datetime (orjson encodes those itself), without the Python frame.
dump_time: Final = functools.partial(orjson.dumps, option=JSON_OPTIONS)


def split_wire(spans: tuple[TimeSpan, ...], usage: int, cost: Decimal) -> tuple[bytes, bytes]:
    """The encoded EventCost after StartTime's value, cut around RatingFilters' value, for
    timespans that all have one match: ``WIRE_HEAD``, the time, the first part, the match's
    ``single_match_filters_wire`` and the second part make the whole EventCost."""
    body = _body_of(spans)
    before = dumps(
        {
            "Usage": usage,
            "Cost": cost,
            "Charges": body.charges,
            "AccountSummary": None,
            "Rating": body.rating,
            "Accounting": {},
        }
    )
    after = dumps({"Rates": body.rates, "Timings": body.timings})
    return b"," + before[1:-1] + b',"RatingFilters":', b"," + after[1:]


class _Body:
    """The EventCost parts that depend on the timespans only, and their encoded forms."""

    __slots__ = (
        "_tail",
        "_tail_key",
        "charges",
        "rates",
        "rating",
        "rating_filters",
        "spans",
        "timings",
    )

    def __init__(self, spans: tuple[TimeSpan, ...]) -> None:
        self.spans = spans  # held, so the id keying _BODIES cannot be reused while cached
        self.charges: list[dict[str, Any]] = []
        self.rating: dict[str, Any] = {}
        self.rating_filters: dict[str, Any] = {}
        self.rates: dict[str, Any] = {}
        self.timings: dict[str, Any] = {}
        self._tail = b""
        self._tail_key: tuple[int, Decimal] | None = None

    def wire_tail(self, usage: int, cost: Decimal) -> bytes:
        """The encoded EventCost from the end of StartTime's value to the closing brace."""
        key = (usage, cost)
        if self._tail_key != key:
            whole = dumps(
                {
                    "Usage": usage,
                    "Cost": cost,
                    "Charges": self.charges,
                    "AccountSummary": None,
                    "Rating": self.rating,
                    "Accounting": {},
                    "RatingFilters": self.rating_filters,
                    "Rates": self.rates,
                    "Timings": self.timings,
                }
            )
            self._tail = b"," + whole[1:]  # the members after StartTime, and the "}"
            self._tail_key = key
        return self._tail


_BODY_CACHE_LIMIT: Final = 4096  # bounded: entries hold objects the GC walks
_BODIES: dict[int, _Body] = {}


def _body_of(spans: tuple[TimeSpan, ...]) -> _Body:
    body = _BODIES.get(id(spans))
    if body is None or body.spans is not spans:
        if len(_BODIES) >= _BODY_CACHE_LIMIT:
            _BODIES.clear()
        body = _BODIES[id(spans)] = _event_cost_body(spans)
    return body


def _event_cost_body(spans: tuple[TimeSpan, ...]) -> _Body:
    """The EventCost parts that depend on the timespans only.

    RatingFilters ids number the distinct matches of this EventCost (its first match always has
    the same id), so Rating ids and entries depend on the interval only and are built once.
    """
    body = _Body(spans)
    charges = body.charges
    filters_ids: dict[RatingMatch, str] = {}
    previous: tuple[str, tuple[IncrementGroup, ...]] | None = None
    for index, span in enumerate(spans):
        interval = span.interval
        match = span.match
        filters_id = filters_ids.get(match)
        if filters_id is None:
            filters_id = filters_ids[match] = _filters_id(len(filters_ids))
            body.rating_filters[filters_id] = _filters_entry(match)
        rating_id, rating = interval.charged_rating(filters_id)
        signature = (rating_id, span.increments)
        # The first charge carries the connect fee: it is never compressed with the next.
        if index > 1 and signature == previous:
            charges[-1]["CompressFactor"] += 1
            continue
        previous = signature
        increments = [
            {
                "Usage": group.usage,
                "Cost": group.cost,
                "AccountingID": "",
                "CompressFactor": group.compress_factor,
            }
            for group in span.increments
        ]
        if index == 0:  # CallDescriptor.GetCost prepends the connect fee increment
            connect_fee = interval.connect_fee
            increments.insert(
                0, {"Usage": 0, "Cost": connect_fee, "AccountingID": "", "CompressFactor": 1}
            )
        charges.append({"RatingID": rating_id, "Increments": increments, "CompressFactor": 1})
        if rating_id not in body.rating:
            body.rating[rating_id] = rating
            body.rates[interval.rates_id] = interval.charged_rates()
            body.timings[interval.charged_timing_id] = interval.charged_timing()
    return body


@lru_cache(maxsize=64)
def _filters_id(ordinal: int) -> str:
    return short_id("filters", ordinal)


def _filters_entry(match: RatingMatch) -> dict[str, str]:
    return {
        "DestinationID": match.destination_id,
        "DestinationPrefix": match.destination_prefix,
        "RatingPlanID": match.rating_plan_id,
        "Subject": match.subject,
    }


def single_match_filters_wire(match: RatingMatch) -> bytes:
    """The encoded RatingFilters of an EventCost whose timespans all have ``match``."""
    return dumps({_filters_id(0): _filters_entry(match)})
