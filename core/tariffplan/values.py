"""Parsers for single tariff-plan values, shared by the CSV reader and the TP JSON documents.

Each raises ``InvalidValue`` with a short reason (the caller prefixes the field name). They follow
CGRateS's own parse rules (Go ``strconv``/``time`` semantics) so a plan CGRateS accepts loads here,
and they are stricter only where CGRateS would silently load garbage (e.g. ``"abc"`` as a weekday).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from core.tariffplan.models import MAX_COST_STRATEGIES
from core.types import ROUNDING_METHODS, InvalidValue, parse_duration, parse_time, to_money, zone

META_UNLIMITED: Final = "*unlimited"
META_ANY: Final = "*any"
MULTI_SEP: Final = ";"  # CGRateS InfieldSep: separates several values inside one field

MAX_INT64: Final = (1 << 63) - 1
# Go's float64 overflows past ~1.8e308; CGRateS would refuse such numbers, so do we.
_MAX_MONEY_EXPONENT: Final = 308

_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go strconv.ParseBool
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# Time expressions CGRateS resolves when an action runs / a trigger loads, kept as written.
_RELATIVE_TIME_METAS: Final = frozenset(
    {META_UNLIMITED, "*daily", "*monthly", "*monthly_estimated", "*yearly", "*now"}
)
_BALANCE_WEIGHT_METAS: Final = frozenset({"*time_desc", "*time_asc"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Unix timestamps by digit count (CGRateS's regexes): 13 = ms, 16 = us, 19 = ns.
_UNIX_SUBSECOND_DIGITS: Final = {13: 3, 16: 6, 19: 9}


def money(value: Any) -> Decimal:
    """A CSV/JSON money or float field (Go ``float64``): ``""`` is 0, JSON floats go via repr."""
    if isinstance(value, str) and "_" in value:
        raise InvalidValue(f"not a number: {value!r}")  # Decimal() takes "1_0"; Go does not
    try:
        result = to_money(value)
    except (ArithmeticError, ValueError) as exc:
        raise _as_invalid(exc, "not a number", value) from None
    if result.adjusted() > _MAX_MONEY_EXPONENT:
        raise InvalidValue(f"number out of range: {value!r}")
    return result


def integer(value: Any) -> int:
    """A Go ``int`` field (``strconv.Atoi``): optional sign and digits; ``""`` is 0."""
    if isinstance(value, bool):
        raise InvalidValue(f"not an integer: {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str):
        text = value
        if text == "":
            return 0
        digits = text[1:] if text[0] in "+-" else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            raise InvalidValue(f"not an integer: {value!r}")
        result = int(text)
    else:
        raise InvalidValue(f"not an integer: {value!r}")
    if not -MAX_INT64 - 1 <= result <= MAX_INT64:
        raise InvalidValue(f"integer out of range: {value!r}")
    return result


def boolean(value: Any) -> bool:
    """A Go ``bool`` field (``strconv.ParseBool``); ``""`` is false."""
    if isinstance(value, bool):
        return value
    if value == "" or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise InvalidValue(f"not a boolean: {value!r}")


def optional_boolean(value: Any) -> bool | None:
    """A balance-filter bool: ``""``/``*any`` mean "not set"."""
    if value is None or value == "" or value == META_ANY:
        return None
    return boolean(value)


def duration(value: Any) -> int:
    """CGRateS ``ParseDurationWithNanosecs``: ``""`` 0, ``*unlimited`` -1, bare numbers are ns."""
    if value == META_UNLIMITED:
        return -1
    try:
        if isinstance(value, str) and "." in value and _is_plain_decimal(value):
            # Go appends "ns" to any float-looking string; fractional nanoseconds truncate.
            result = int(Decimal(value))
        else:
            result = parse_duration(value)
    except (ArithmeticError, ValueError) as exc:
        raise _as_invalid(exc, "not a duration", value) from None
    if not -MAX_INT64 - 1 <= result <= MAX_INT64:
        raise InvalidValue(f"duration out of range: {value!r}")
    return result


def moment(value: Any, timezone: Any) -> datetime:
    """A time CGRateS parses with ``ParseTimeDetectLayout`` (``""``/``*unlimited``/``0`` = year 1).

    Unix timestamps in milli-, micro- and nanoseconds are told apart by their digit count, as
    CGRateS does; other forms go to ``core.types.parse_time``.
    """
    if value in (META_UNLIMITED, "0"):
        value = ""
    try:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            scale = _UNIX_SUBSECOND_DIGITS.get(len(value))
            if scale is not None:  # datetime keeps microseconds: nanoseconds are truncated
                micros = int(value) * 10**6 // 10**scale
                return _EPOCH + timedelta(microseconds=micros)
        return parse_time(value, timezone)
    except (ArithmeticError, ValueError) as exc:
        raise _as_invalid(exc, "not a time", value) from None


def optional_moment(value: str, timezone: Any) -> datetime | None:
    """A profile activation/expiry time: ``""``/``*unlimited`` mean "no bound"."""
    if value == "" or value == META_UNLIMITED:
        return None
    return moment(value, timezone)


def time_expression(value: str, timezone: Any) -> str:
    """Checks an action expiry-like time (``*monthly``, ``*month_end+1h``, RFC 3339 ...)."""
    text = value.strip()
    if text == "" or text in _RELATIVE_TIME_METAS:
        return value
    if text.startswith("*mo"):  # *month_end[+dur], *mo+dur: CGRateS adds the optional duration
        if text != "*month_end" and not text.startswith(("*month_end+", "*mo+")):
            raise InvalidValue(f"not a time: {value!r}")
        plus = text.find("+")
        if plus >= 0:
            duration(text[plus + 1 :] or "x")
        return value
    moment(text, timezone)
    return value


def balance_weight(value: str) -> str:
    """A balance weight in an action: a number, ``*time_desc``/``*time_asc``, or unset."""
    if value in ("", META_ANY) or value in _BALANCE_WEIGHT_METAS:
        return value
    money(value)
    return value


def id_list(value: str) -> tuple[str, ...]:
    """A ``;``-separated list; empty parts dropped, ``*any``/``""`` mean "none given"."""
    if value == "" or value == META_ANY:
        return ()
    return tuple(part for part in value.split(MULTI_SEP) if part)


def time_zone(name: str | None) -> Any:
    return zone(name)


# ------------------------------------------------------------------------------ rating checks
# Timings value ranges; CGRateS normalises weekday 7 to Sunday (0), as Go's time.Weekday(d % 7).
YEARS: Final = (0, 9999)
MONTHS: Final = (1, 12)
MONTH_DAYS: Final = (1, 31)
LAST_MONTH_DAY: Final = -1  # *month_end uses it
WEEK_DAYS: Final = (0, 7)
DAYS_PER_WEEK: Final = 7
META_ASAP: Final = "*asap"
_TIME_OF_DAY_LIMITS: Final = (24, 60, 60)


def int_set(
    text: str, bounds: tuple[int, int], extra: frozenset[int] = frozenset()
) -> frozenset[int]:
    """A Timings ``;``-list of integers within ``bounds``; ``*any``/empty = any (empty set)."""
    if text in ("", META_ANY):
        return frozenset()
    low, high = bounds
    result: set[int] = set()
    for part in text.split(MULTI_SEP):
        try:
            number = integer(part) if part else None
        except InvalidValue:
            number = None
        if number is None or not (low <= number <= high or number in extra):
            raise InvalidValue(f"not an integer in {low}..{high}: {part!r}")
        result.add(number)
    return frozenset(result)


def week_days(text: str) -> frozenset[int]:
    return frozenset(day % DAYS_PER_WEEK for day in int_set(text, WEEK_DAYS))


def timing_time(text: str) -> tuple[str, str]:
    """Timings ``Time``: ``start[;end]`` as ``HH:MM:SS`` (or ``*asap``) -> (start, end)."""
    times = text.split(MULTI_SEP)
    if len(times) > 2 or not all(part in ("", META_ASAP) or _time_of_day(part) for part in times):
        raise InvalidValue(f"expected HH:MM:SS[;HH:MM:SS] or *asap, got {text!r}")
    return times[0], times[1] if len(times) > 1 else ""


def _time_of_day(text: str) -> bool:
    """``HH:MM:SS`` (``*`` allowed per part, as CGRateS's periodic timings use)."""
    parts = text.split(":")
    if len(parts) != len(_TIME_OF_DAY_LIMITS):
        return False
    for part, limit in zip(parts, _TIME_OF_DAY_LIMITS, strict=True):
        if part == "*":
            continue
        if not (part.isascii() and part.isdigit() and len(part) <= 2 and int(part) < limit):
            return False
    return True


def rate_slot_problems(
    rate: Decimal, unit: int, increment: int, start: int
) -> list[tuple[str, str]]:
    """(field, reason) for a rate slot CGRateS could not rate with."""
    problems: list[tuple[str, str]] = []
    # A zero unit only makes sense for a free slot (tutorial2's connect-fee-only RT_10C_CN).
    if unit < 0 or (unit == 0 and rate != 0):
        problems.append(("RateUnit", "must be positive"))
    if increment <= 0:
        problems.append(("RateIncrement", "must be positive"))
    if start < 0:
        problems.append(("GroupIntervalStart", "must not be negative"))
    return problems


def rounding_method(text: str) -> str:
    if text not in ROUNDING_METHODS:
        raise InvalidValue(f"unknown rounding method {text!r} (expected *up, *down or *middle)")
    return text


def rounding_decimals(value: Any) -> int:
    result = integer(value)
    if result < 0:
        raise InvalidValue(f"must not be negative: {value!r}")
    return result


def max_cost(value: Any) -> Decimal:
    result = money(value)
    if result < 0:
        raise InvalidValue(f"must not be negative: {value!r}")
    return result


def max_cost_strategy(text: str) -> str:
    if text not in MAX_COST_STRATEGIES:
        raise InvalidValue(f"unknown max cost strategy {text!r} (expected *free or *disconnect)")
    return text


def _is_plain_decimal(text: str) -> bool:
    body = text[1:] if text[:1] in ("+", "-") else text
    digits = body.replace(".", "", 1)
    return digits.isascii() and digits.isdigit()


def _as_invalid(exc: BaseException, what: str, value: Any) -> InvalidValue:
    if isinstance(exc, InvalidValue):
        return exc
    return InvalidValue(f"{what}: {value!r}")
