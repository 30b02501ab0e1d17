"""The rating part of a TariffPlan compiled for the query path.

Everything a query needs is precomputed here once per load: rate slots with their defaults
applied, intervals (binding x destination-rate entry, CGRateS's ``RateInterval``) grouped by
destination id per plan (CGRateS's ``RatingPlan.DestinationRates``), activations sorted by time.
Small derived values (the price of N increments of a slot, a destination's winning interval over
one local day) are cached on the objects that own them, bounded.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Final, NamedTuple

from core.tariffplan.models import (
    MAX_COST_DISCONNECT,
    MAX_COST_FREE,
    META_ANY,
    DestinationRateEntry,
    Rate,
    RateSlot,
)
from core.types import ROUNDING_DOWN, ROUNDING_MIDDLE, ROUNDING_UP, SECOND, ZERO

from .timings import LocalClock, LocalDay, TimingRule, first_day_after

# GetRateParameters: a RateUnit or RateIncrement of 0 means one second.
DEFAULT_RATE_UNIT: Final = SECOND
DEFAULT_RATE_INCREMENT: Final = SECOND

_PRICE_CACHE_LIMIT: Final = 4096  # distinct part durations remembered per rate slot
_SCHEDULE_CACHE_LIMIT: Final = 1024  # local days remembered per destination rating
_NEVER: Final = 1 << 127  # an epoch-ns instant after any call
_ID_LENGTH: Final = 7  # CGRateS's UUIDSha1Prefix length
_ROUNDING_MODES: Final = {
    ROUNDING_UP: ROUND_CEILING,
    ROUNDING_DOWN: ROUND_FLOOR,
    ROUNDING_MIDDLE: ROUND_HALF_UP,
}


def short_id(*parts: object) -> str:
    """A short deterministic id from content (CGRateS uses random 7-hex ids here).

    CRC-32 keeps it cheap; ids only need to differ within one EventCost, which holds a handful.
    """
    text = "\x1f".join(map(str, parts))
    return format(zlib.crc32(text.encode()), "08x")[:_ID_LENGTH]


class RatingMatch(NamedTuple):
    """What a timespan was rated by: CGRateS's ``RatingMatchedFilters`` / ``RatingInfo``."""

    subject: str  # the matched rating profile key, *out:tenant:category:subject
    rating_plan_id: str
    destination_id: str
    destination_prefix: str


class IncrementGroup(NamedTuple):
    """``compress_factor`` equal increments of ``usage`` ns costing ``cost`` each."""

    usage: int
    cost: Decimal
    compress_factor: int

    @property
    def total_usage(self) -> int:
        return self.usage * self.compress_factor

    @property
    def total_cost(self) -> Decimal:
        return self.cost * self.compress_factor


class Tier:
    """One rate slot (a GroupIntervalStart step) with CGRateS's part pricing."""

    __slots__ = (
        "_prices",
        "_quantum",
        "connect_fee",
        "group_interval_start",
        "index",
        "rate",
        "rate_increment",
        "rate_unit",
        "slot",
    )

    def __init__(self, slot: RateSlot, quantum: Decimal, index: int = 0) -> None:
        self.index = index  # position in its interval's tiers
        unit = slot.rate_unit or DEFAULT_RATE_UNIT
        increment = slot.rate_increment or DEFAULT_RATE_INCREMENT
        if unit != slot.rate_unit or increment != slot.rate_increment:
            slot = RateSlot(slot.connect_fee, slot.rate, unit, increment, slot.group_interval_start)
        self.slot = slot
        self.connect_fee = slot.connect_fee
        self.rate = slot.rate
        self.rate_unit = unit
        self.rate_increment = increment
        self.group_interval_start = slot.group_interval_start
        self._quantum = quantum
        self._prices: dict[int, tuple[int, tuple[IncrementGroup], Decimal]] = {}

    def price(self, duration: int) -> tuple[int, tuple[IncrementGroup], Decimal]:
        """``(charged usage, (increments,), cost)`` of a part of ``duration`` ns in this slot.

        As CGRateS (``roundTimeSpansToIncrement`` then ``createIncrementsSlice``): the part is
        rounded up to whole increments, its cost is ``usage * rate / unit`` rounded (*middle, global
        decimals), and each increment costs that divided by the count, rounded again; the part
        costs N x that.
        """
        cached = self._prices.get(duration)
        if cached is None:
            increment = self.rate_increment
            count = -(-duration // increment)
            charged = count * increment
            span_cost = (self.rate * charged / self.rate_unit).quantize(
                self._quantum, ROUND_HALF_UP
            )
            unit_cost = (span_cost / count).quantize(self._quantum, ROUND_HALF_UP)
            cached = (charged, (IncrementGroup(increment, unit_cost, count),), unit_cost * count)
            if len(self._prices) >= _PRICE_CACHE_LIMIT:
                self._prices.clear()
            self._prices[duration] = cached
        return cached


class RateInterval:
    """A binding's timing and weight with a destination-rate entry's rate, rounding and MaxCost
    (immutable). Entries differing only in their destination share one (CGRateS's RIRate)."""

    __slots__ = (
        "_charged_rates",
        "_charged_ratings",
        "_charged_timing",
        "_rates_id",
        "_timing_id",
        "caps",
        "connect_fee",
        "destination_rates_id",
        "max_cost",
        "max_cost_strategy",
        "rate",
        "rated_by_usage",
        "round_mode",
        "round_quantum",
        "rounding_decimals",
        "rounding_method",
        "tier_starts",
        "tiers",
        "timing",
        "weight",
    )

    def __init__(
        self,
        timing: TimingRule,
        weight: Decimal,
        destination_rates_id: str,
        entry: DestinationRateEntry,
        rate: Rate,
        quantum: Decimal,
    ) -> None:
        if not rate.slots:
            raise ValueError(f"rate {rate.id!r} has no slots")
        self.timing = timing
        self.weight = weight
        self.destination_rates_id = destination_rates_id
        self.rate = rate
        slots = sorted(rate.slots, key=lambda slot: slot.group_interval_start)
        self.tiers = tuple(Tier(slot, quantum, index) for index, slot in enumerate(slots))
        self.tier_starts = tuple(tier.group_interval_start for tier in self.tiers)
        # GetRateInterval: the connect fee is the first slot's, charged once per call.
        self.connect_fee = self.tiers[0].connect_fee
        self.rounding_method = entry.rounding_method
        self.rounding_decimals = entry.rounding_decimals
        # utils.Round: 0 decimals (GetLongestRounding's method stays "") or an unknown method
        # leave the total as it is.
        self.round_mode = _ROUNDING_MODES.get(entry.rounding_method)
        if entry.rounding_decimals <= 0:
            self.round_mode = None
        self.round_quantum = Decimal(1).scaleb(-max(entry.rounding_decimals, 0))
        self.max_cost = entry.max_cost
        self.max_cost_strategy = entry.max_cost_strategy
        self.caps = self.max_cost > ZERO and self.max_cost_strategy in (
            MAX_COST_FREE,
            MAX_COST_DISCONNECT,
        )
        self._rates_id = ""
        self._timing_id = ""
        self._charged_rates: list[dict[str, Any]] | None = None
        self._charged_ratings: dict[str, tuple[str, dict[str, Any]]] = {}
        self._charged_timing: dict[str, Any] | None = None
        # The rater's uncut rated calls of this interval alone, by usage (ns): filled and
        # cleared by the Rater that built this interval (GetCost's common path reads them).
        self.rated_by_usage: dict[int, Any] = {}

    @property
    def timing_id(self) -> str:
        return self.timing.id

    @property
    def rate_id(self) -> str:
        return self.rate.id

    def tier_at(self, elapsed: int) -> tuple[Tier, int | None]:
        """The slot in force ``elapsed`` ns into the call, and where the next one starts."""
        tiers = self.tiers
        if len(tiers) == 1:
            return tiers[0], None
        index = max(bisect_right(self.tier_starts, elapsed) - 1, 0)
        following = index + 1
        return tiers[index], (self.tier_starts[following] if following < len(tiers) else None)

    # -- EventCost pieces: content ids (equal content, same id in every EventCost), built once
    # and shared by every EventCost, read-only.
    @property
    def rates_id(self) -> str:
        if not self._rates_id:
            self._rates_id = short_id(
                "rates",
                *(
                    (t.group_interval_start, str(t.rate), t.rate_increment, t.rate_unit)
                    for t in self.tiers
                ),
            )
        return self._rates_id

    @property
    def charged_timing_id(self) -> str:
        if not self._timing_id:
            self._timing_id = short_id("timing", *self.charged_timing().values())
        return self._timing_id

    def charged_rating(self, filters_id: str) -> tuple[str, dict[str, Any]]:
        """``(id, entry)`` of this interval's EventCost Rating under a RatingFilters id."""
        found = self._charged_ratings.get(filters_id)
        if found is None:
            rating = {
                "ConnectFee": self.connect_fee,
                "RoundingMethod": self.rounding_method,
                "RoundingDecimals": self.rounding_decimals,
                "MaxCost": self.max_cost,
                "MaxCostStrategy": self.max_cost_strategy,
                "TimingID": self.charged_timing_id,
                "RatesID": self.rates_id,
                "RatingFiltersID": filters_id,
            }
            found = self._charged_ratings[filters_id] = (
                short_id("rating", *rating.values()),
                rating,
            )
        return found

    def charged_rates(self) -> list[dict[str, Any]]:
        if self._charged_rates is None:
            self._charged_rates = [
                {
                    "GroupIntervalStart": tier.group_interval_start,
                    "Value": tier.rate,
                    "RateIncrement": tier.rate_increment,
                    "RateUnit": tier.rate_unit,
                }
                for tier in self.tiers
            ]
        return self._charged_rates

    def charged_timing(self) -> dict[str, Any]:
        if self._charged_timing is None:
            timing = self.timing.timing
            self._charged_timing = {
                "Years": sorted(timing.years),
                "Months": sorted(timing.months),
                "MonthDays": sorted(timing.month_days),
                "WeekDays": sorted(timing.week_days),
                "StartTime": timing.start_time,
            }
        return self._charged_timing

    def __repr__(self) -> str:
        return (
            f"RateInterval(timing={self.timing.id!r}, weight={self.weight}, "
            f"destination_rates={self.destination_rates_id!r}, rate={self.rate.id!r})"
        )


class DestinationRating:
    """The intervals one rating plan has for one destination id (or ``*any``)."""

    __slots__ = ("_schedules", "always_active", "destination_id", "intervals", "single", "weight")

    def __init__(self, destination_id: str, intervals: Iterable[RateInterval]) -> None:
        self.destination_id = destination_id
        self.intervals = tuple(intervals)
        # RateIntervalList.GetWeight: the heaviest interval's weight, whatever its timing.
        self.weight = max(interval.weight for interval in self.intervals)
        self.always_active = any(interval.timing.always for interval in self.intervals)
        heaviest = [i for i in self.intervals if i.weight == self.weight]
        # One interval that always applies and outweighs the rest wins at every moment.
        self.single = heaviest[0] if len(heaviest) == 1 and heaviest[0].timing.always else None
        self._schedules: dict[tuple[LocalClock, int], tuple[tuple[int, ...], tuple[Any, ...]]] = {}

    def active_at(self, instant: int, clock: LocalClock) -> bool:
        """Some interval applies at ``instant`` (CGRateS's ``timeChecker`` on the call start)."""
        if self.always_active:
            return True
        day = clock.day_of(instant)
        wall = clock.wall_ns(instant, day)
        return any(interval.timing.covers(day, wall) for interval in self.intervals)

    def interval_at(self, instant: int, clock: LocalClock) -> tuple[RateInterval | None, int]:
        """The interval rating ``instant`` and the instant (epoch ns) where that may change."""
        if self.single is not None:
            return self.single, clock.day_of(instant).end
        day = clock.day_of(instant)
        starts, winners = self._schedule(day, clock)
        index = bisect_right(starts, instant) - 1
        following = index + 1
        boundary = starts[following] if following < len(starts) else day.end
        winner: RateInterval | None = winners[max(index, 0)]
        return winner, boundary

    def _schedule(
        self, day: LocalDay, clock: LocalClock
    ) -> tuple[tuple[int, ...], tuple[RateInterval | None, ...]]:
        """The day cut where the winning interval changes (cached per clock and day)."""
        key = (clock, day.ordinal)
        cached = self._schedules.get(key)
        if cached is not None:
            return cached
        candidates = [i for i in self.intervals if i.timing.always or i.timing.active_on(day)]
        points = sorted({0}.union(*(i.timing.day_changes() for i in candidates)))
        starts: list[int] = []
        winners: list[RateInterval | None] = []
        for point in points:
            winner = self._winner(candidates, day, point)
            if winners and winners[-1] is winner:
                continue
            starts.append(clock.wall_to_instant(day, point))
            winners.append(winner)
        schedule = (tuple(starts), tuple(winners))
        if len(self._schedules) >= _SCHEDULE_CACHE_LIMIT:
            self._schedules.clear()
        self._schedules[key] = schedule
        return schedule

    @staticmethod
    def _winner(candidates: list[RateInterval], day: LocalDay, wall: int) -> RateInterval | None:
        # SelectRatingIntevalsForTimespan: heaviest first, then the closest start (latest start
        # time of the day); the first listed wins a tie.
        best: RateInterval | None = None
        for interval in candidates:
            if not interval.timing.covers(day, wall):
                continue
            if best is None or (interval.weight, interval.timing.start) > (
                best.weight,
                best.timing.start,
            ):
                best = interval
        return best


class PlanIndex:
    """One rating plan: destination id -> its DestinationRating.

    ``static``: every rating applies at all times, so which one a destination gets does not
    depend on the call's time and can be cached per destination.
    """

    __slots__ = ("any_rating", "by_destination", "id", "static")

    def __init__(self, plan_id: str, by_destination: dict[str, DestinationRating]) -> None:
        self.id = plan_id
        self.by_destination = by_destination
        self.any_rating = by_destination.get(META_ANY)
        self.static = all(rating.always_active for rating in by_destination.values())


class Activation(NamedTuple):
    time: int  # epoch ns
    plan: PlanIndex
    fallback_keys: tuple[str, ...]  # rating profile keys, in the order CGRateS tries them
    # destination -> (match, rating) or None, for static plans (bounded by the rater)
    matches: dict[str, MatchedRating | None]


class MatchedRating:
    """A destination's match in a plan, its rating, and the match as an encoded EventCost
    RatingFilters object (``{"<id>":{...}}``, the id of a call's first match): one interned
    instance per match, shared by every call that gets it. A slots class, not a NamedTuple:
    GetCost's common path reads its fields, and slot reads are the cheap ones."""

    __slots__ = ("filters_wire", "match", "rated_by_usage", "rating")

    def __init__(self, match: RatingMatch, rating: DestinationRating, filters_wire: bytes) -> None:
        self.match = match
        self.rating = rating
        self.filters_wire = filters_wire
        # The rated calls of the rating's single interval (None without one): fixed when the
        # rating is built, so GetCost's common path finds them in one step.
        single = rating.single
        self.rated_by_usage = None if single is None else single.rated_by_usage


class ProfileIndex:
    """One rating profile with its activations sorted by time."""

    __slots__ = (
        "activations",
        "category",
        "key",
        "latest",
        "latest_day",
        "latest_static_matches",
        "latest_time",
        "tenant",
        "times",
    )

    def __init__(
        self, key: str, tenant: str, category: str, activations: Iterable[Activation]
    ) -> None:
        self.key = key
        self.tenant = tenant
        self.category = category
        self.activations = tuple(sorted(activations, key=lambda activation: activation.time))
        self.times = [activation.time for activation in self.activations]
        # The activation in force from its time on, for every call starting then or later.
        self.latest = self.activations[-1] if self.activations else None
        self.latest_time = self.times[-1] if self.times else _NEVER
        # A call on this local date or later, in any fixed-offset zone, starts after
        # latest_time: the common path then needs no epoch arithmetic to know it.
        self.latest_day = first_day_after(self.latest_time)
        # The latest activation's destination matches when its plan is static (the rater
        # fills them), else None: GetCost's common path reads them in one step.
        latest = self.latest
        self.latest_static_matches = (
            latest.matches if latest is not None and latest.plan.static else None
        )
