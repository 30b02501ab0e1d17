"""When a Timing applies, and where coverage can change after a moment.

CGRateS semantics (``engine/rateinterval.go`` ``RITiming.IsActiveAt``): a timing is active at ``t``
when the year, month, month day and weekday sets are empty or contain ``t``'s, and ``t`` is at or
after the timing's StartTime on ``t``'s day. The day filters change only at midnight and the start
time only makes a timing *become* active, so within a day the active set only grows: coverage
changes at the start time and at midnight. All of it is read in the moment's own time zone, as Go
reads ``t.Day()``/``t.Weekday()`` in ``t``'s location.

Rating never sees an EndTime in CGRateS (``GetRateInterval`` does not copy it, Timings.csv has no
such column); the model has one, so we honour it as the end of the daily window, exclusive.
``*asap`` as a start time means "from load time" for actions; for rating it is midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Final, NamedTuple

from core.tariffplan.models import META_ANY, META_ASAP, Timing
from core.types import HOUR, MICROSECOND, MINUTE, SECOND, InvalidValue

DAY: Final = 24 * HOUR
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_ONE_DAY: Final = timedelta(days=1)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_DAY_CACHE_LIMIT: Final = 4096  # local days kept per clock; a rater touches a handful a day

# The timings CGRateS's loader always defines (tpreader.go NewTpReader): rating plans may bind
# them without a Timings.csv row.
ANY_TIMING: Final = Timing(id=META_ANY, start_time="00:00:00")
ASAP_TIMING: Final = Timing(id=META_ASAP)
BUILTIN_TIMINGS: Final = {META_ANY: ANY_TIMING, META_ASAP: ASAP_TIMING}


# ------------------------------------------------------------------------------------- instants
def epoch_ns(moment: datetime) -> int:
    """Exact integer nanoseconds since the Unix epoch (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MICROSECOND * MICROSECOND  # exact: integer timedelta division


def first_day_after(instant: int) -> int:
    """The first date (ordinal) whose every wall-clock time, in any zone less than a day off
    UTC, falls after ``instant`` (epoch ns): even its midnight a day behind UTC does."""
    return _EPOCH_ORDINAL + 1 - (-instant // DAY)


def from_epoch_ns(nanoseconds: int, zone: tzinfo | None = UTC) -> datetime:
    """The aware datetime of an epoch instant in ``zone`` (datetime keeps microseconds)."""
    moment = _EPOCH + timedelta(microseconds=nanoseconds // MICROSECOND)
    return moment.astimezone(zone) if zone is not None and zone is not UTC else moment


def parse_time_of_day(text: str) -> int:
    """``"HH:MM:SS"`` (seconds may carry a fraction) to ns after midnight; ``""``/``*asap`` = 0.

    A ``*`` part (periodic timings, ``*:*:00``) reads as 0, as Go's failed ``strconv.Atoi`` does
    in ``getLeftMargin``.
    """
    value = text.strip()
    if value in ("", META_ASAP):
        return 0
    parts = ["0" if part == "*" else part for part in value.split(":")]
    if len(parts) != 3:
        raise InvalidValue(f"not a time of day: {text!r}")
    try:
        hours, minutes = int(parts[0]), int(parts[1])
        seconds = Decimal(parts[2])
    except (ValueError, ArithmeticError):
        raise InvalidValue(f"not a time of day: {text!r}") from None
    total = hours * HOUR + minutes * MINUTE + int(seconds * SECOND)
    if not 0 <= total <= DAY:
        raise InvalidValue(f"time of day out of range: {text!r}")
    return total


# ------------------------------------------------------------------------------------ local days
class LocalDay(NamedTuple):
    """One calendar day on a clock: its absolute bounds (epoch ns) and what timings look at."""

    ordinal: int
    start: int  # epoch ns of local midnight
    end: int  # epoch ns of the next local midnight (23 h or 25 h on DST change days)
    year: int
    month: int
    day: int
    weekday: int  # 0 = Sunday .. 6 = Saturday, as Go's time.Weekday


def _local_day(ordinal: int, start: int, end: int) -> LocalDay:
    calendar = date.fromordinal(ordinal)
    return LocalDay(
        ordinal,
        start,
        end,
        calendar.year,
        calendar.month,
        calendar.day,
        (calendar.weekday() + 1) % 7,  # Python: Monday = 0; Go: Sunday = 0
    )


def _json_suffix(offset: int | None) -> bytes | None:
    if offset is None or offset % MINUTE:
        return None
    if offset == 0:
        return b'Z"'  # orjson with OPT_UTC_Z, as Go marshals UTC
    hours, minutes = divmod(abs(offset) // MINUTE, 60)
    return b'%c%02d:%02d"' % (b"-" if offset < 0 else b"+", hours, minutes)


class LocalClock:
    """Local calendar of one time zone, over epoch nanoseconds."""

    __slots__ = ("_days", "fixed_offset", "json_suffix", "zone")

    def __init__(self, zone: tzinfo, fixed_offset: int | None = None) -> None:
        self.zone = zone
        self.fixed_offset = fixed_offset  # ns east of UTC, for zones without DST changes
        # How core.types.dumps ends a time in this zone, closing quote included (b'Z"',
        # b'+02:00"'); None where it is not one fixed text (DST zones, sub-minute offsets).
        self.json_suffix = _json_suffix(fixed_offset)
        self._days: dict[int, LocalDay] = {}

    def day_of(self, instant: int) -> LocalDay:
        raise NotImplementedError

    def day_end(self, instant: int) -> int:
        """Epoch ns of the local midnight after ``instant``."""
        return self.day_of(instant).end

    def wall_ns(self, instant: int, day: LocalDay) -> int:
        """Wall-clock time of day of ``instant`` (which lies in ``day``), in ns after midnight."""
        raise NotImplementedError

    def wall_to_instant(self, day: LocalDay, wall: int) -> int:
        """Epoch ns of the wall-clock time ``wall`` (ns after midnight) on ``day``."""
        raise NotImplementedError

    def _remember(self, day: LocalDay) -> LocalDay:
        if len(self._days) >= _DAY_CACHE_LIMIT:
            self._days.clear()
        self._days[day.ordinal] = day
        return day


class FixedClock(LocalClock):
    """A zone with a constant UTC offset (UTC itself, ``+02:00``): pure integer arithmetic."""

    __slots__ = ("_offset",)

    def __init__(self, zone: tzinfo, offset: int) -> None:
        super().__init__(zone, offset)
        self._offset = offset

    def day_of(self, instant: int) -> LocalDay:
        index = (instant + self._offset) // DAY
        day = self._days.get(index + _EPOCH_ORDINAL)
        if day is None:
            start = index * DAY - self._offset
            day = self._remember(_local_day(index + _EPOCH_ORDINAL, start, start + DAY))
        return day

    def day_end(self, instant: int) -> int:
        return ((instant + self._offset) // DAY + 1) * DAY - self._offset

    def wall_ns(self, instant: int, day: LocalDay) -> int:
        return instant - day.start

    def wall_to_instant(self, day: LocalDay, wall: int) -> int:
        return day.start + wall


class ZoneClock(LocalClock):
    """A zone with daylight-saving changes: days and wall times go through ``datetime``."""

    __slots__ = ()

    def _midnight(self, calendar: date) -> int:
        return epoch_ns(datetime.combine(calendar, time(), self.zone))

    def day_of(self, instant: int) -> LocalDay:
        calendar = from_epoch_ns(instant, self.zone).date()
        day = self._days.get(calendar.toordinal())
        if day is None:
            start = self._midnight(calendar)
            end = self._midnight(calendar + _ONE_DAY)
            day = self._remember(_local_day(calendar.toordinal(), start, end))
        return day

    def wall_ns(self, instant: int, day: LocalDay) -> int:
        local = from_epoch_ns(instant, self.zone)
        wall = local.hour * HOUR + local.minute * MINUTE + local.second * SECOND
        return wall + local.microsecond * MICROSECOND + instant % MICROSECOND

    def wall_to_instant(self, day: LocalDay, wall: int) -> int:
        if wall >= DAY:
            return day.end
        whole, rest = divmod(wall, MICROSECOND)
        moment = datetime.combine(date.fromordinal(day.ordinal), time(), self.zone)
        moment += timedelta(microseconds=whole)  # wall-clock arithmetic in an aware zone
        return min(max(epoch_ns(moment) + rest, day.start), day.end)


CLOCKS: Final[dict[tzinfo, LocalClock]] = {}
"""The clocks made so far by ``clock_for``, by zone (read-only for others)."""


def clock_for(zone: tzinfo | None) -> LocalClock:
    """The (cached) clock of a zone; None is UTC."""
    zone = zone or UTC
    clock = CLOCKS.get(zone)
    if clock is None:
        offset = zone.utcoffset(None) if isinstance(zone, timezone) else None
        if offset is None and getattr(zone, "key", None) in ("UTC", "Etc/UTC"):
            offset = timedelta(0)
        if offset is not None:
            clock = FixedClock(zone, (offset.days * 86_400 + offset.seconds) * SECOND)
        else:
            clock = ZoneClock(zone)
        CLOCKS[zone] = clock
    return clock


# ---------------------------------------------------------------------------------- timing rules
class TimingRule:
    """A Timing compiled for fast checks. ``always`` = covers every moment (e.g. ``*any``)."""

    __slots__ = (
        "always",
        "end",
        "id",
        "month_days",
        "months",
        "start",
        "timing",
        "week_days",
        "years",
    )

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.id = timing.id
        self.years = timing.years
        self.months = timing.months
        self.month_days = timing.month_days
        self.week_days = timing.week_days
        self.start = parse_time_of_day(timing.start_time)
        end = parse_time_of_day(timing.end_time) if timing.end_time else DAY
        self.end = end if end > 0 else DAY  # "00:00:00" as an end reads as the end of the day
        self.always = (
            not (self.years or self.months or self.month_days or self.week_days)
            and self.start == 0
            and self.end == DAY
        )

    def active_on(self, day: LocalDay) -> bool:
        """The day filters (years, months, month days, weekdays) accept ``day``."""
        return (
            (not self.years or day.year in self.years)
            and (not self.months or day.month in self.months)
            and (not self.month_days or day.day in self.month_days)
            and (not self.week_days or day.weekday in self.week_days)
        )

    def covers(self, day: LocalDay, wall: int) -> bool:
        """Active at wall-clock ``wall`` (ns after midnight) of ``day``."""
        return self.always or (self.start <= wall < self.end and self.active_on(day))

    def day_changes(self) -> tuple[int, ...]:
        """Wall-clock times inside a day (ns after midnight) where coverage may change."""
        return tuple(point for point in (self.start, self.end) if 0 < point < DAY)

    def __repr__(self) -> str:
        return f"TimingRule({self.timing!r})"


@lru_cache(maxsize=4096)
def compile_timing(timing: Timing) -> TimingRule:
    return TimingRule(timing)


def _rule(timing: Timing | TimingRule) -> TimingRule:
    return timing if isinstance(timing, TimingRule) else compile_timing(timing)


def timing_covers(timing: Timing | TimingRule, moment: datetime) -> bool:
    """Whether the timing applies at ``moment`` (read in the moment's own zone)."""
    rule = _rule(timing)
    if rule.always:
        return True
    clock = clock_for(moment.tzinfo)
    instant = epoch_ns(moment)
    day = clock.day_of(instant)
    return rule.covers(day, clock.wall_ns(instant, day))


def next_boundary(timing: Timing | TimingRule, moment: datetime) -> datetime:
    """The first moment after ``moment`` where the timing's coverage may change.

    That is the timing's start (or end) time later the same day, else the next local midnight
    (where the day filters are read anew). A call crossing it is split there.
    """
    clock = clock_for(moment.tzinfo)
    instant = epoch_ns(moment)
    day = clock.day_of(instant)
    wall = clock.wall_ns(instant, day)
    rule = _rule(timing)
    later = [point for point in rule.day_changes() if point > wall]
    boundary = clock.wall_to_instant(day, min(later)) if later else day.end
    return from_epoch_ns(boundary, moment.tzinfo or UTC)
