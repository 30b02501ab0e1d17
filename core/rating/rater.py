"""The rater: CGRateS's CallDescriptor.GetCost over an in-memory index of one TariffPlan.

Semantics follow CGRateS v0.10 (engine/calldesc.go, ratingprofile.go, timespans.go,
rateinterval.go):

* Profile ``*out:tenant:category:subject``; if there is none, ``*out:tenant:category:*any``;
  neither -> RATING_PLAN_NOT_FOUND. A found profile that cannot rate the whole call ->
  UNAUTHORIZED_DESTINATION (the ``*any`` subject is then *not* tried).
* Activations: the newest at or before the call start, and every later one up to the call end
  (a voice call is split at each). No activation yet at the start -> that part is rated by the
  ``*any`` subject. An activation whose plan has no rate for the destination is rated by its
  RatesFallbackSubject profiles (``;``-separated subjects, tried in sorted key order, nested at
  most 3 deep); without fallbacks it is skipped (the previous plan goes on).
* Destination: the longest prefix for which the plan has a destination id wins (prefix length
  beats weight); among ids on that prefix, the heaviest, among those with an interval active at
  the call start; then the plan's ``*any`` destination.
* Voice calls are split at activation times, local midnights, where the winning interval changes
  (heaviest, then latest start time) and at GroupIntervalStarts; each part is rounded up to
  whole increments, a part running past its end pushes the next part's start forward. Other
  ToRs are rated by the interval in force at the start, split only at GroupIntervalStarts.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final, NamedTuple, Protocol, cast

from core.tariffplan.models import (
    DEFAULT_CATEGORY,
    DEFAULT_TENANT,
    MAX_COST_FREE,
    META_ANY,
    TariffPlan,
    Timing,
    rating_profile_key,
)
from core.types import HOUR, MICROSECOND, SECOND, ZERO, InvalidValue, parse_duration, parse_time

from .callcost import (
    WIRE_HEAD,
    CallCost,
    IncrementGroup,
    TimeSpan,
    dump_time,
    single_match_filters_wire,
    split_wire,
)
from .destinations import DestinationIndex
from .errors import (
    ERR_MAX_USAGE_EXCEEDED,
    ERR_RATING_PLAN_NOT_FOUND,
    ERR_UNAUTHORIZED_DESTINATION,
    RatingError,
)
from .plan_index import (
    Activation,
    DestinationRating,
    MatchedRating,
    PlanIndex,
    ProfileIndex,
    RateInterval,
    RatingMatch,
)
from .timings import BUILTIN_TIMINGS, DAY, LocalClock, clock_for, compile_timing, epoch_ns
from .timings import CLOCKS as _CLOCKS

TOR_VOICE: Final = "*voice"
TOR_DATA: Final = "*data"
TOR_SMS: Final = "*sms"
TOR_MMS: Final = "*mms"

DEFAULT_ROUNDING_DECIMALS: Final = 5  # CGRateS general.rounding_decimals
MAX_FALLBACK_DEPTH: Final = 3  # CGRateS RECURSION_MAX_DEPTH
FALLBACK_SEPARATOR: Final = ";"  # utils.FALLBACK_SEP in RatesFallbackSubject
# rals.max_computed_usage defaults; a ToR not listed uses *any.
DEFAULT_MAX_COMPUTED_USAGE: Final[Mapping[str, int]] = {
    META_ANY: 189 * HOUR,
    TOR_VOICE: 72 * HOUR,
    TOR_DATA: 107_374_182_400,
    TOR_SMS: 10_000,
    TOR_MMS: 10_000,
}
_MATCH_CACHE_LIMIT: Final = 65536  # destinations remembered per activation, matches interned
_RATED_CACHE_LIMIT: Final = 8192  # (interval, usage) results; GC walks them, keep few
_NO_BOUNDARY: Final = 1 << 127  # beyond any epoch-ns instant
_PROFILE_CACHE_LIMIT: Final = 65536  # subjects whose profile is remembered
_UNKNOWN: Final[Any] = object()  # not in a cache yet (None is a cached "no rate")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = _EPOCH.toordinal()
_SECONDS_PER_MINUTE: Final = 60
_SECONDS_PER_HOUR: Final = 3600
# A whole-second RFC 3339 time, the form read by lookups: its date and hour (up to the first
# ":"), then its minutes, seconds and zone.
_WHOLE_SECOND_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DAY_LIMIT: Final = 4096  # dates remembered (pure; one a day)
_HOUR_LIMIT: Final = 4096  # date-hours remembered (pure; 24 a day)
_TAIL_LIMIT: Final = 16384  # "MM:SS" + zone texts remembered per writer (3,600 per zone)
_USAGE_LIMIT: Final = 4096  # Usage texts remembered parsed per writer
_NOW: Final = "*now"
_DATE_END: Final = 10  # "2014-08-04"
# "T13" -> (seconds into the day at that hour, b"13:"): every valid hour.
_HOUR_TEXTS: Final = {
    f"T{hour:02d}": (hour * _SECONDS_PER_HOUR, b"%02d:" % hour) for hour in range(24)
}
# "2014-08-04" -> (its ordinal, a GetCost EventCost's bytes up to StartTime's hour), for dates
# read from whole-second RFC 3339 times before; shared by every writer (pure).
_DAYS: dict[str, tuple[int, bytes]] = {}
# "2014-08-04T13" -> (its date's ordinal, seconds into the day at that hour, a GetCost
# EventCost's bytes up to StartTime's minutes): the dates' hours met so far (pure, shared).
_HOURS: dict[str, tuple[int, int, bytes]] = {}


def _hour_of(date_hour: str) -> tuple[int, int, bytes] | None:
    """A new hour of a date read before, from the date's and the hour's parts (remembered);
    None for a date not read before or anything but ``T00``..``T23`` after it."""
    day = _DAYS.get(date_hour[:_DATE_END])
    hour = _HOUR_TEXTS.get(date_hour[_DATE_END:])
    if day is None or hour is None:
        return None
    found = (day[0], hour[0], day[1] + hour[1])
    if len(_HOURS) >= _HOUR_LIMIT:
        _HOURS.clear()
    _HOURS[date_hour] = found
    return found


_ONE_MICROSECOND: Final = timedelta(microseconds=1)
# CallCost(...) runs the NamedTuple's generated __new__ (17 keyword-capable arguments); building
# the tuple directly is several times cheaper on the GetCost path.
_call_cost: Final = cast(
    Callable[[tuple[Any, ...]], CallCost], functools.partial(tuple.__new__, CallCost)
)


class CostQuery(NamedTuple):
    """One GetCost request. ``usage`` is ns (a unit count for *sms/*data).

    ``tor`` "" is APIerSv1.GetCost's case: rated as *voice, limited by max_computed_usage[*any].
    Empty tenant/category take CGRateS's defaults; an empty subject takes the account.
    """

    tenant: str
    category: str
    subject: str
    destination: str
    start_time: datetime
    usage: int
    tor: str = TOR_VOICE
    account: str = ""


class _Segment(NamedTuple):
    """A stretch of the call [start, end) (epoch ns) rated by one plan's destination rating."""

    start: int
    end: int
    match: RatingMatch
    rating: DestinationRating


class _Piece(NamedTuple):
    start: int
    match: RatingMatch | None
    rating: DestinationRating | None
    fallback_keys: tuple[str, ...]


class _Rated:
    """The time-independent part of a rated call (cached for calls that can share it), and
    its encoded EventCost around the match-dependent RatingFilters, built when first needed."""

    __slots__ = (
        "connect_fee",
        "cost",
        "last_start_second",
        "max_cost_reached",
        "max_cost_usage",
        "rated_usage",
        "spans",
        "truncated",
        "unrounded_cost",
        "wire",
    )

    def __init__(
        self,
        spans: tuple[TimeSpan, ...],
        connect_fee: Decimal,
        cost: Decimal,
        unrounded_cost: Decimal,
        rated_usage: int,
        max_cost_reached: bool,
        max_cost_usage: int | None,
        truncated: bool,
    ) -> None:
        self.spans = spans
        self.connect_fee = connect_fee
        self.cost = cost
        self.unrounded_cost = unrounded_cost
        self.rated_usage = rated_usage
        self.max_cost_reached = max_cost_reached
        self.max_cost_usage = max_cost_usage
        self.truncated = truncated
        self.wire: tuple[bytes, bytes] | None = None
        # Set where the common path may find it (by interval and usage): the latest local
        # second of the day a whole-second call of that usage may start without running past
        # midnight. Below every second until then.
        self.last_start_second = -1

    def with_match(self, match: RatingMatch) -> _Rated:
        """The same result for a call whose rating was reached through another match."""
        spans = tuple(span._replace(match=match) for span in self.spans)
        return _Rated(
            spans,
            self.connect_fee,
            self.cost,
            self.unrounded_cost,
            self.rated_usage,
            self.max_cost_reached,
            self.max_cost_usage,
            self.truncated,
        )


class Rater:
    """Immutable index of a TariffPlan's rating part; rates calls without touching storage.

    Build it once per load (``from_plan``) and share it; queries only read it. Internal caches
    (bounded) remember, per activation of a time-independent plan, which rating a destination
    number gets, and, for calls one interval rates whole (no timing change, no midnight), the
    rated timespans per (interval, usage): those do not depend on the call's start time.
    """

    def __init__(
        self,
        profiles: dict[str, ProfileIndex],
        plans: dict[str, PlanIndex],
        destinations: DestinationIndex,
        *,
        rounding_decimals: int = DEFAULT_ROUNDING_DECIMALS,
        max_computed_usage: Mapping[str, int] = DEFAULT_MAX_COMPUTED_USAGE,
        subject_prefix_matching: bool = False,
    ) -> None:
        self.profiles = profiles
        self.plans = plans
        self.destinations = destinations
        self.rounding_decimals = rounding_decimals
        self.max_computed_usage = dict(max_computed_usage)
        self.subject_prefix_matching = subject_prefix_matching
        self._prefixes = destinations.mapping
        self._lengths = destinations.lengths
        self._any_limit = self.max_computed_usage.get(META_ANY, _NO_BOUNDARY)
        self._limits = {**self.max_computed_usage, "": self._any_limit}
        self._utc_clock = clock_for(UTC)
        self._matches: dict[RatingMatch, MatchedRating] = {}
        self._rated: dict[tuple[RateInterval, int, bool], _Rated] = {}
        self.rated_cache_limit = _RATED_CACHE_LIMIT  # an attribute: tests try small bounds
        # The intervals whose rated_by_usage holds some of _rated's uncut calls (the common
        # path's lookup without a key tuple): emptied with _rated.
        self._rated_intervals: set[RateInterval] = set()
        # (tenant, category, subject) -> its profile, or the *any one: the rater is rebuilt on
        # every plan load, so this never outlives the plan it was resolved in.
        self._profiles_by_subject: dict[tuple[str, str, str], ProfileIndex] = {}

    # ------------------------------------------------------------------------------------ build
    @classmethod
    def from_plan(
        cls,
        plan: TariffPlan,
        *,
        rounding_decimals: int = DEFAULT_ROUNDING_DECIMALS,
        max_computed_usage: Mapping[str, int] = DEFAULT_MAX_COMPUTED_USAGE,
        subject_prefix_matching: bool = False,
    ) -> Rater:
        """Compiles the rating part of ``plan``. Raises InvalidValue on a dangling reference."""
        quantum = Decimal(1).scaleb(-rounding_decimals)
        timings = {**BUILTIN_TIMINGS, **plan.timings}
        intervals: dict[tuple[str, Decimal, str, str, str, int, Decimal, str], RateInterval] = {}
        plans: dict[str, PlanIndex] = {}
        for plan_id, rating_plan in plan.rating_plans.items():
            grouped: dict[str, list[RateInterval]] = {}
            for binding in rating_plan.bindings:
                timing = timings.get(binding.timing_id)
                if timing is None and binding.timing_id.startswith("*"):
                    # The scheduler's load-relative timings (*daily, *monthly...) mean nothing
                    # to rating (CGRateS's getLeftMargin cannot read them): all day, like *asap.
                    timing = Timing(binding.timing_id)
                destination_rate = plan.destination_rates.get(binding.destination_rates_id)
                if timing is None or destination_rate is None:
                    missing = "timing" if timing is None else "destination rates"
                    raise InvalidValue(
                        f"rating plan {plan_id!r}: unknown {missing} in binding {binding!r}"
                    )
                rule = compile_timing(timing)
                for entry in destination_rate.entries:
                    rate = plan.rates.get(entry.rate_id)
                    if rate is None:
                        raise InvalidValue(
                            f"destination rates {destination_rate.id!r}: unknown rate "
                            f"{entry.rate_id!r}"
                        )
                    shared_key = (
                        binding.timing_id,
                        binding.weight,
                        destination_rate.id,
                        entry.rate_id,
                        entry.rounding_method,
                        entry.rounding_decimals,
                        entry.max_cost,
                        entry.max_cost_strategy,
                    )
                    interval = intervals.get(shared_key)
                    if interval is None:
                        interval = RateInterval(
                            rule, binding.weight, destination_rate.id, entry, rate, quantum
                        )
                        intervals[shared_key] = interval
                    same_destination = grouped.setdefault(entry.destination_id, [])
                    if interval not in same_destination:
                        same_destination.append(interval)
            plans[plan_id] = PlanIndex(
                plan_id,
                {dest: DestinationRating(dest, ivs) for dest, ivs in grouped.items()},
            )
        profiles: dict[str, ProfileIndex] = {}
        for key, profile in plan.rating_profiles.items():
            activations = []
            for activation in profile.activations:
                plan_index = plans.get(activation.rating_plan_id)
                if plan_index is None:
                    raise InvalidValue(
                        f"rating profile {key!r}: unknown rating plan {activation.rating_plan_id!r}"
                    )
                activations.append(
                    Activation(
                        epoch_ns(activation.activation_time),
                        plan_index,
                        fallback_keys(
                            profile.tenant, profile.category, activation.fallback_subjects
                        ),
                        {},
                    )
                )
            profiles[key] = ProfileIndex(key, profile.tenant, profile.category, activations)
        return cls(
            profiles,
            plans,
            DestinationIndex.from_destinations(plan.destinations.values()),
            rounding_decimals=rounding_decimals,
            max_computed_usage=max_computed_usage,
            subject_prefix_matching=subject_prefix_matching,
        )

    # ------------------------------------------------------------------------------------ query
    def get_cost(self, query: CostQuery, *, cut_at_max_cost: bool = False) -> CallCost:
        """Rates a call as CGRateS's GetCost. Raises RatingError.

        A ``*disconnect`` MaxCost does not shorten GetCost in CGRateS (only debits cut there): the
        call is rated whole, ``max_cost_reached`` and ``max_cost_usage`` tell where the cut falls.
        ``cut_at_max_cost=True`` rates only up to there, as a dry-run debit does.
        """
        return self.cost_of(*query, cut_at_max_cost=cut_at_max_cost)

    def cost_of(
        self,
        tenant: str,
        category: str,
        subject: str,
        destination: str,
        start_time: datetime,
        usage: int,
        tor: str = TOR_VOICE,
        account: str = "",
        *,
        cut_at_max_cost: bool = False,
    ) -> CallCost:
        """``get_cost`` with the query's fields as arguments (no CostQuery to build)."""
        if not tenant:
            tenant = DEFAULT_TENANT
        if not category:
            category = DEFAULT_CATEGORY
        if not subject:
            subject = account
        if usage > self._limits.get(tor, self._any_limit):
            raise RatingError(ERR_MAX_USAGE_EXCEEDED, f"{usage} ns of {tor or META_ANY}")
        if usage < 0:
            raise InvalidValue(f"negative usage: {usage}")
        zone = start_time.tzinfo
        if zone is None:
            start_time = start_time.replace(tzinfo=UTC)
            zone = UTC
        clock = self._utc_clock if zone is UTC else clock_for(zone)
        start = (start_time - _EPOCH) // _ONE_MICROSECOND * MICROSECOND
        end = start + usage

        if usage == 0:
            # getCost for a zero usage swallows rating errors and charges nothing.
            try:
                resolved = self._resolve(tenant, category, subject, destination, start, end, clock)
                match: RatingMatch | None = resolved[0].match
            except RatingError:
                match = None
            return _call_cost(
                (tenant, category, subject, account, destination, tor, start_time, 0, (),
                 ZERO, ZERO, ZERO, 0, False, None, False, match)
            )  # fmt: skip

        voice = tor == TOR_VOICE or not tor
        found = self._whole_call(tenant, category, subject, destination, start, clock)
        segments: list[_Segment] | None = None
        if found is not None:
            match, rating = found.match, found.rating
        else:
            segments = self._resolve(tenant, category, subject, destination, start, end, clock)
            match, rating = segments[0].match, segments[0].rating
        rated: _Rated | None = None
        if segments is None or len(segments) == 1:
            # One interval rates the whole call (for voice: no timing change, no midnight before
            # its end): the timespans then depend on the interval and the usage only.
            interval = rating.single
            if voice:
                if interval is not None:
                    boundary = clock.day_end(start)
                else:
                    interval, boundary = rating.interval_at(start, clock)
                if interval is not None and end > boundary:
                    interval = None
            elif interval is None:
                interval = rating.interval_at(start, clock)[0]
            if interval is not None:
                key = (interval, usage, cut_at_max_cost)
                rated = self._rated.get(key)
                if rated is None:
                    rated = _finish(_rate_flat(interval, match, usage), cut_at_max_cost)
                    if len(self._rated) >= self.rated_cache_limit:
                        self._forget_rated()
                    self._rated[key] = rated
                    if not cut_at_max_cost:
                        interval.rated_by_usage[usage] = rated
                        self._rated_intervals.add(interval)
                        rated.last_start_second = (DAY - usage) // SECOND
                elif rated.spans and rated.spans[0].match is not match:
                    rated = rated.with_match(match)  # the same rating reached another way
        if rated is None:
            if segments is None:
                segments = [_Segment(start, end, match, rating)]
            rated = _finish(self._rate(segments, start, end, voice, clock), cut_at_max_cost)
        return _call_cost(
            (tenant, category, subject, account, destination, tor, start_time, usage,
             rated.spans, rated.connect_fee, rated.cost, rated.unrounded_cost, rated.rated_usage,
             rated.max_cost_reached, rated.max_cost_usage, rated.truncated, match)
        )  # fmt: skip

    def max_usage(self, query: CostQuery, budget: Decimal) -> int:
        """How much of ``query.usage`` (ns) ``budget`` money pays for, as a monetary balance.

        As CGRateS's getMaxSessionDuration over one monetary balance: nothing if the budget does
        not cover the connect fee; then whole increments in order while the rest covers each
        (free ones always pass); a ``*disconnect`` MaxCost stops it; capped at ``query.usage``.
        """
        if query.usage <= 0:
            return 0
        rated = self.get_cost(query, cut_at_max_cost=True)
        remaining = budget - rated.connect_fee
        if remaining < ZERO:
            return 0
        allowed = 0
        for _span, group in rated.increments():
            if group.cost <= ZERO:
                allowed += group.total_usage
                continue
            affordable = min(group.compress_factor, int(remaining // group.cost))
            allowed += affordable * group.usage
            if affordable < group.compress_factor:
                break
            remaining -= affordable * group.cost
        return min(allowed, query.usage)

    # ----------------------------------------------------------------------------- resolution
    def _profile(self, key: str) -> ProfileIndex | None:
        profile = self.profiles.get(key)
        if profile is not None or not self.subject_prefix_matching or key.endswith(META_ANY):
            return profile
        # rp_subject_prefix_matching: the longest prefix of the subject with a profile.
        base, _, subject = key.rpartition(":")
        for length in range(len(subject) - 1, 0, -1):
            profile = self.profiles.get(f"{base}:{subject[:length]}")
            if profile is not None:
                return profile
        return None

    def _whole_call(
        self,
        tenant: str,
        category: str,
        subject: str,
        destination: str,
        start: int,
        clock: LocalClock,
    ) -> MatchedRating | None:
        """The common case, found cheaply: the profile's latest activation started before the
        call (so it rates all of it) and its plan rates the destination. None sends the call to
        ``_resolve``, which handles everything else."""
        key = (tenant, category, subject)
        profile = self._profiles_by_subject.get(key)
        if profile is None:
            profile = self._find_profile(tenant, category, subject)
            if profile is None:
                return None
            if len(self._profiles_by_subject) >= _PROFILE_CACHE_LIMIT:
                self._profiles_by_subject.clear()
            self._profiles_by_subject[key] = profile
        times = profile.times
        if not times or times[-1] > start:
            return None
        activation = profile.activations[-1]
        if activation.plan.static:
            found = activation.matches.get(destination, _UNKNOWN)
            if found is not _UNKNOWN:
                return found  # type: ignore[no-any-return]
        return self._activation_match(profile.key, activation, destination, start, clock)

    def _forget_rated(self) -> None:
        """Empties the rated-call memo, the intervals' lookups of it too (its bound is reached)."""
        self._rated.clear()
        for interval in self._rated_intervals:
            interval.rated_by_usage.clear()
        self._rated_intervals.clear()

    def _find_profile(self, tenant: str, category: str, subject: str) -> ProfileIndex | None:
        """The rating profile of a subject, else the category's ``*any`` one (or None)."""
        profile = self._profile(f"*out:{tenant}:{category}:{subject}")
        if profile is None:
            profile = self.profiles.get(f"*out:{tenant}:{category}:{META_ANY}")
        return profile

    def _resolve(
        self,
        tenant: str,
        category: str,
        subject: str,
        destination: str,
        start: int,
        end: int,
        clock: LocalClock,
    ) -> list[_Segment]:
        """Which plan and destination rating rate each stretch of [start, end) (LoadRatingPlans)."""
        profile = self._find_profile(tenant, category, subject)
        if profile is None:
            raise RatingError(
                ERR_RATING_PLAN_NOT_FOUND, f"{tenant}:{category}:{subject} -> {destination}"
            )
        # The common case: one activation in force over the whole call, with a rate.
        times = profile.times
        index = bisect_right(times, start) - 1
        if index >= 0 and (index + 1 == len(times) or times[index + 1] > end):
            found = self._activation_match(
                profile.key, profile.activations[index], destination, start, clock
            )
            if found is not None:
                return [_Segment(start, end, found.match, found.rating)]
        segments = self._segments(profile, destination, start, end, start, 1, clock)
        if segments is None:
            raise RatingError(ERR_UNAUTHORIZED_DESTINATION, f"{profile.key} -> {destination}")
        return segments

    def _segments(
        self,
        profile: ProfileIndex,
        destination: str,
        start: int,
        end: int,
        checked_at: int,
        depth: int,
        clock: LocalClock,
    ) -> list[_Segment] | None:
        """Rating of [start, end) by one profile (GetRatingPlansForPrefix + fallbacks), or None."""
        times = profile.times
        first = max(bisect_right(times, start) - 1, 0)
        last = bisect_right(times, end)  # activations after the call end play no part
        if first >= last:
            return None
        pieces: list[_Piece] = []
        if times[first] > start:
            # Nothing active yet at the call start: CGRateS asks the *any subject for that part.
            any_key = rating_profile_key(profile.tenant, profile.category, META_ANY)
            pieces.append(_Piece(start, None, None, (any_key,)))
        for activation in profile.activations[first:last]:
            found = self._activation_match(profile.key, activation, destination, checked_at, clock)
            piece_start = max(activation.time, start)
            if found is not None:
                pieces.append(
                    _Piece(piece_start, found.match, found.rating, activation.fallback_keys)
                )
            elif activation.fallback_keys:
                pieces.append(_Piece(piece_start, None, None, activation.fallback_keys))
            # else: no rate and no fallback: the previous activation's plan goes on
        if not pieces or pieces[0].start > start:
            return None
        segments: list[_Segment] = []
        for index, piece in enumerate(pieces):
            piece_end = pieces[index + 1].start if index + 1 < len(pieces) else end
            if piece_end <= piece.start:
                continue
            if piece.match is not None and piece.rating is not None:
                segments.append(_Segment(piece.start, piece_end, piece.match, piece.rating))
                continue
            fallback = self._fallback(
                piece.fallback_keys, destination, piece.start, piece_end, depth + 1, clock
            )
            if fallback is None:
                return None
            segments.extend(fallback)
        return segments or None

    def _fallback(
        self,
        keys: tuple[str, ...],
        destination: str,
        start: int,
        end: int,
        depth: int,
        clock: LocalClock,
    ) -> list[_Segment] | None:
        if depth > MAX_FALLBACK_DEPTH:
            return None
        for key in keys:
            profile = self._profile(key)
            if profile is None:
                continue
            segments = self._segments(profile, destination, start, end, start, depth, clock)
            if segments is not None:
                return segments
        return None

    def _activation_match(
        self,
        profile_key: str,
        activation: Activation,
        destination: str,
        checked_at: int,
        clock: LocalClock,
    ) -> MatchedRating | None:
        """The match of a destination in an activation's plan (cached when the plan is static)."""
        plan = activation.plan
        if plan.static:
            cache = activation.matches
            if destination in cache:
                return cache[destination]
        found = self._match(plan, destination, checked_at, clock)
        result = None
        if found is not None:
            prefix, rating = found
            result = self._intern(
                RatingMatch(profile_key, plan.id, rating.destination_id, prefix), rating
            )
        if plan.static:
            if len(cache) >= _MATCH_CACHE_LIMIT:
                cache.clear()
            cache[destination] = result
        return result

    def _match(
        self, plan: PlanIndex, destination: str, checked_at: int, clock: LocalClock
    ) -> tuple[str, DestinationRating] | None:
        """The plan's rating for a destination: longest prefix, then heaviest, then ``*any``."""
        if destination and destination != META_ANY:
            by_destination = plan.by_destination
            prefixes = self._prefixes
            size = len(destination)
            for length in self._lengths:
                if length > size:
                    continue
                prefix = destination[:length]
                ids = prefixes.get(prefix)
                if ids is None:
                    continue
                best: DestinationRating | None = None
                for destination_id in ids:
                    rating = by_destination.get(destination_id)
                    if (
                        rating is not None
                        and (best is None or rating.weight > best.weight)
                        and rating.active_at(checked_at, clock)
                    ):
                        best = rating
                if best is not None:
                    return prefix, best
        if plan.any_rating is not None:
            return META_ANY, plan.any_rating
        return None

    def _intern(self, match: RatingMatch, rating: DestinationRating) -> MatchedRating:
        """One shared (match, rating) pair per match: caches hold references, not copies, and
        EventCost ids (cached per match) hit."""
        interned = self._matches.get(match)
        if interned is None:
            if len(self._matches) >= _MATCH_CACHE_LIMIT:
                self._matches.clear()
            interned = MatchedRating(match, rating, single_match_filters_wire(match))
            self._matches[match] = interned
        return interned

    # --------------------------------------------------------------------------------- rating
    def _rate(
        self, segments: list[_Segment], start: int, end: int, voice: bool, clock: LocalClock
    ) -> tuple[TimeSpan, ...]:
        """Splits [start, end) into parts and prices each (splitInTimeSpans + increments)."""
        spans: list[TimeSpan] = []
        segment_index = 0
        segment = segments[0]
        interval: RateInterval | None = None
        boundary = _NO_BOUNDARY
        if not voice:  # no time splits: the interval in force at the start rates it all
            interval = segment.rating.interval_at(start, clock)[0]
        instant = start
        while instant < end:
            if voice:
                while segment.end <= instant and segment_index + 1 < len(segments):
                    segment_index += 1
                    segment = segments[segment_index]
                interval, boundary = segment.rating.interval_at(instant, clock)
            if interval is None:
                raise RatingError(
                    ERR_UNAUTHORIZED_DESTINATION,
                    f"{segment.match.subject}: no timing covers {instant} ns",
                )
            part_end = end
            if voice:
                if segment.end < part_end:
                    part_end = segment.end
                if boundary < part_end:
                    part_end = boundary
            elapsed = instant - start
            tier, next_tier_start = interval.tier_at(elapsed)
            if next_tier_start is not None and start + next_tier_start < part_end:
                part_end = start + next_tier_start
            charged, increments, cost = tier.price(part_end - instant)
            spans.append(
                TimeSpan(
                    elapsed,
                    elapsed + charged,
                    interval,
                    tier.index,
                    segment.match,
                    increments,
                    cost,
                )
            )
            instant += charged
        return tuple(spans)


def _rate_flat(interval: RateInterval, match: RatingMatch, usage: int) -> tuple[TimeSpan, ...]:
    """``_rate`` for a call one interval rates whole: only GroupIntervalStarts split it."""
    tiers = interval.tiers
    if len(tiers) == 1:
        charged, increments, cost = tiers[0].price(usage)
        return (TimeSpan(0, charged, interval, 0, match, increments, cost),)
    starts = interval.tier_starts
    last = len(tiers) - 1
    index = 0
    elapsed = 0
    spans = []
    while elapsed < usage:
        while index < last and starts[index + 1] <= elapsed:
            index += 1
        part_end = usage
        if index < last and starts[index + 1] < part_end:
            part_end = starts[index + 1]
        charged, increments, cost = tiers[index].price(part_end - elapsed)
        spans.append(TimeSpan(elapsed, elapsed + charged, interval, index, match, increments, cost))
        elapsed += charged
    return tuple(spans)


def fallback_keys(tenant: str, category: str, subjects: tuple[str, ...]) -> tuple[str, ...]:
    """RatesFallbackSubject as CGRateS reads it (utils.FallbackSubjKeys): ``;``-separated
    subjects, made profile keys in the profile's tenant and category, deduplicated and *sorted*
    (CGRateS keeps them in a sorted slice, so that is the order it tries them)."""
    keys = {
        rating_profile_key(tenant, category, subject.strip())
        for item in subjects
        for subject in item.split(FALLBACK_SEPARATOR)
        if subject.strip()
    }
    return tuple(sorted(keys))


def _finish(spans: tuple[TimeSpan, ...], cut: bool) -> _Rated:
    """Connect fee, MaxCost and the total's rounding (GetCost after splitInTimeSpans)."""
    first = spans[0].interval
    connect_fee = first.connect_fee
    max_cost_reached = False
    max_cost_usage: int | None = None
    truncated = False
    unrounded = connect_fee
    rounder = first  # GetLongestRounding: the first timespan with the most decimals
    if len(spans) == 1 and not first.caps:
        unrounded += spans[0].cost
    else:
        if any(span.interval.caps for span in spans):
            spans, max_cost_reached, max_cost_usage, truncated = _apply_max_cost(
                spans, connect_fee, cut
            )
        for span in spans:
            unrounded += span.cost
            if span.interval.rounding_decimals > rounder.rounding_decimals:
                rounder = span.interval
    mode = rounder.round_mode
    cost = unrounded.quantize(rounder.round_quantum, mode) if mode is not None else unrounded
    return _Rated(
        spans,
        connect_fee,
        cost,
        unrounded,
        spans[-1].end if spans else 0,
        max_cost_reached,
        max_cost_usage,
        truncated,
    )


def _apply_max_cost(
    spans: tuple[TimeSpan, ...], connect_fee: Decimal, cut: bool
) -> tuple[tuple[TimeSpan, ...], bool, int | None, bool]:
    """MaxCost over the timespans, the running cost counting the connect fee.

    ``*free``: increments are charged until the running cost reaches MaxCost (the one crossing
    it pays only what is left), the rest cost nothing; the total is MaxCost, as
    CallDescriptor.GetCost caps it. ``*disconnect``: an increment starting once the running cost
    has reached MaxCost is where a debit cuts the call (balances.go); GetCost itself rates on.
    Returns (spans, reached, usage allowed by a *disconnect, truncated).
    """
    running = connect_fee
    result: list[TimeSpan] = []
    reached = False
    allowed: int | None = None
    for span in spans:
        interval = span.interval
        if not interval.caps:
            result.append(span)
            running += span.cost
            continue
        max_cost = interval.max_cost
        (group,) = span.increments  # fresh from _rate: one group per span
        unit_cost, count, unit_usage = group.cost, group.compress_factor, group.usage
        if interval.max_cost_strategy == MAX_COST_FREE:
            if running + span.cost < max_cost or unit_cost <= ZERO:
                result.append(span)
                running += span.cost
                continue
            reached = True
            room = max(max_cost - running, ZERO)
            paid = min(count, int(room // unit_cost))
            rest = room - paid * unit_cost
            groups: list[IncrementGroup] = []
            if paid:
                groups.append(IncrementGroup(unit_usage, unit_cost, paid))
            free = count - paid
            if free and rest > ZERO:
                groups.append(IncrementGroup(unit_usage, rest, 1))
                free -= 1
            if free:
                groups.append(IncrementGroup(unit_usage, ZERO, free))
            capped = room if room < span.cost else span.cost
            result.append(span._replace(increments=tuple(groups), cost=capped))
            running += capped
            continue
        # *disconnect
        if running >= max_cost:
            permitted = 0
        elif unit_cost <= ZERO:
            permitted = count
        else:
            needed = ((max_cost - running) / unit_cost).to_integral_value(ROUND_CEILING)
            permitted = min(count, int(needed))
        if permitted < count:
            reached = True
            if allowed is None:
                allowed = span.start + permitted * unit_usage
            if cut:
                if permitted:
                    result.append(
                        span._replace(
                            end=span.start + permitted * unit_usage,
                            increments=(IncrementGroup(unit_usage, unit_cost, permitted),),
                            cost=unit_cost * permitted,
                        )
                    )
                return tuple(result), reached, allowed, True
        result.append(span)
        running += span.cost
    return tuple(result), reached, allowed, False


# ------------------------------------------------------------------ GetCost's common answer
CommonLine = Callable[[Any, object], tuple[bytes, ...] | None]
"""``line(params, ctx)``: a GetCost argument object's encoded EventCost in parts, or None."""


class RaterSource(Protocol):
    """Whatever holds the live rater (``RatingService``): read on every call, since a plan
    load replaces it."""

    @property
    def rater(self) -> Rater: ...


_Moment = tuple[int, int, int, int, LocalClock, datetime]
"""ordinal, seconds into the day at the hour, seconds into the hour, microsecond, clock, the
time itself."""


def common_line_writer(
    source: RaterSource, default_tenant: str, default_category: str, default_zone: tzinfo
) -> CommonLine:
    """APIerSv1.GetCost's answer for the common call, read straight from its argument object:
    ``line(params, ctx)`` gives the encoded EventCost in parts to write one after the other (not
    joined: a connection writes many replies in one buffer), or None: then the checked path
    (``Rater.cost_of``) answers, with the same EventCost for every call. ``ctx`` is unused (the
    JSON-RPC reply writer's signature).

    The common call: its subject's profile was resolved before and its latest activation
    started before the call (so it rates all of it); that activation's plan is static and rates
    the destination with one all-day interval; no local midnight falls inside the call (in a
    zone without DST changes); and a call of this usage was rated on that interval before (the
    timespans depend on nothing else). Its EventCost is then joined from encoded parts: the
    answer time's, the rated call's and the match's.

    Every value is looked up in caches that only the general path fills, with values it
    checked: an argument of the wrong type (a number, a list) cannot hit and gives None, so
    callers need not check the arguments first. An empty subject or destination (which GetCost
    refuses, other callers may rate) gives None too. A whole-second RFC 3339 AnswerTime is read
    by two lookups (its date and hour, its minutes, seconds and zone) once its date and that
    tail were read the general way (a new hour of a known date: from the date's parts).
    """
    usages: dict[str, int] = {}  # Usage text -> ns (pure parse; calls last whole seconds)
    # "MM:SS" plus the zone as sent ("00:00Z", "00:00+02:00", "00:00" for the default zone) ->
    # (seconds into the hour, the zone's clock, minutes, seconds and zone as dumps writes them).
    tails: dict[str, tuple[int, LocalClock, bytes]] = {}
    utc_clock = clock_for(UTC)

    def read_time(raw_time: Any) -> _Moment | None:
        """AnswerTime read as the checked path reads it (None: let that path answer or fail);
        a whole-second RFC 3339 text's date and tail are remembered for the lookups."""
        try:
            start_time = parse_time(raw_time or _NOW, default_zone)
        except (InvalidValue, ValueError):
            return None
        zone = start_time.tzinfo
        # UTC by identity first: hashing a tzinfo costs more than the rest of this lookup.
        clock = utc_clock if zone is UTC else _CLOCKS.get(zone)  # type: ignore[arg-type]
        if clock is None or clock.fixed_offset is None:
            return None
        ordinal = start_time.toordinal()
        hour = start_time.hour
        minute = start_time.minute
        second = start_time.second
        microsecond = start_time.microsecond
        minute_second = minute * _SECONDS_PER_MINUTE + second
        suffix = clock.json_suffix
        if (  # fractions and *now (microseconds) skip the pattern
            not microsecond
            and suffix is not None
            and type(raw_time) is str
            and _WHOLE_SECOND_TIME.fullmatch(raw_time) is not None
        ):
            date_hour, _, rest = raw_time.partition(":")
            if len(_DAYS) >= _DAY_LIMIT:
                _DAYS.clear()
            _DAYS[date_hour[:_DATE_END]] = (
                ordinal,
                WIRE_HEAD
                + b'"%04d-%02d-%02dT' % (start_time.year, start_time.month, start_time.day),
            )
            _hour_of(date_hour)
            if len(tails) >= _TAIL_LIMIT:
                tails.clear()
            tails[rest] = (minute_second, clock, b"%02d:%02d" % (minute, second) + suffix)
        return (ordinal, hour * _SECONDS_PER_HOUR, minute_second, microsecond, clock, start_time)

    def line(params: Any, ctx: object = None) -> tuple[bytes, ...] | None:
        if type(params) is not dict:
            return None
        try:  # subscripts: cheaper than get() where a missing field means the checked path
            subject = params["Subject"]
            destination = params["Destination"]
            raw_usage = params["Usage"]  # none: a zero usage, not a common call
        except KeyError:
            return None
        raw_time: Any = params.get("AnswerTime")
        start_time: datetime | None = None
        hour_read = None
        if type(raw_time) is str:  # its date and hour, and the rest, each read before?
            date_hour, _, rest = raw_time.partition(":")  # one call: cheaper than two slices
            time_read = tails.get(rest)  # get, not a subscript: no exception on a miss
            if time_read is not None:
                # a new hour of a date read before: from the date's parts, no parse either
                hour_read = _HOURS.get(date_hour) or _hour_of(date_hour)
                if hour_read is not None:  # no datetime needed
                    ordinal, hour_second, head = hour_read
                    minute_second, clock, time_tail = time_read
                    microsecond = 0
        if hour_read is None:
            moment = read_time(raw_time)
            if moment is None:
                return None
            ordinal, hour_second, minute_second, microsecond, clock, start_time = moment
        if type(raw_usage) is str:
            usage = usages.get(raw_usage)
            if usage is None:
                try:
                    usage = parse_duration(raw_usage)
                except (InvalidValue, ValueError):
                    return None  # the checked path reports it, after the mandatory fields
                if len(usages) >= _USAGE_LIMIT:
                    usages.clear()
                usages[raw_usage] = usage
        elif type(raw_usage) is int:
            usage = raw_usage
        else:
            try:
                usage = parse_duration(raw_usage or 0)
            except (InvalidValue, ValueError):
                return None
        rater = source.rater
        # other callers may have cached "" for the subject or the destination
        if not subject or not destination or not 0 < usage <= rater._any_limit:
            return None
        try:
            profile = rater._profiles_by_subject.get(
                (
                    params.get("Tenant") or default_tenant,
                    params.get("Category") or default_category,
                    subject,
                )
            )
            if profile is None:
                return None
            matches = profile.latest_static_matches
            if matches is None:
                return None
            found = matches.get(destination, _UNKNOWN)
        except TypeError:  # unhashable: not a value any cache holds
            return None
        wall_second = hour_second + minute_second
        if ordinal < profile.latest_day or found is _UNKNOWN or microsecond:
            # Epoch ns from the wall clock and the zone's fixed offset. Whole-second calls on
            # a date after the activation's, to numbers the plan matched before, need none.
            wall = wall_second * SECOND + microsecond * MICROSECOND
            start = (ordinal - _EPOCH_ORDINAL) * DAY + wall - cast(int, clock.fixed_offset)
            if start < profile.latest_time or wall + usage > DAY:  # or it crosses midnight
                return None
            if found is _UNKNOWN:  # a number new to this plan: find its prefix
                latest = profile.latest
                if type(destination) is not str or latest is None:
                    return None
                found = rater._activation_match(profile.key, latest, destination, start, clock)
        if found is None:
            return None
        by_usage = found.rated_by_usage
        if by_usage is None:
            return None
        rated = by_usage.get(usage)
        # The last check is the whole-second form of "the call crosses local midnight".
        if rated is None or not rated.spans or wall_second > rated.last_start_second:
            return None
        wire = rated.wire
        if wire is None:
            wire = rated.wire = split_wire(rated.spans, rated.rated_usage, rated.unrounded_cost)
        if start_time is not None:  # read the general way: StartTime as dumps writes it
            return (WIRE_HEAD, dump_time(start_time), wire[0], found.filters_wire, wire[1])
        return (head, time_tail, wire[0], found.filters_wire, wire[1])

    return line
