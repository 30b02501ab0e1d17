"""Go value semantics CGRateS applies to event fields (``utils/reflect.go``).

Events carry JSON-shaped values; CGRateS turns strings into typed values with
``StringToInterface`` (int, bool, float, time, duration, else string), prints values with
``IfaceAsString`` and compares them with ``GreaterThan``/``EqualTo``. Here Go's ``int64`` is
``int``, ``float64`` is ``Decimal`` (exact, never binary float), ``time.Duration`` is ``GoDuration``
and ``time.Time`` an aware ``datetime``. Numbers of different kinds compare as numbers (CGRateS
converts both to float64); anything else of different kinds, or strings/bools ordered, is an
error, as in CGRateS (the request then fails with ``SERVER_ERROR``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from core.types import (
    UTC_ZONE,
    InvalidValue,
    dumps,
    format_duration,
    money_str,
    parse_duration,
    parse_time,
)

from .errors import FilterError

_GO_INT: Final = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
# A string can only be a time if it looks like one: saves the layout attempts on plain words.
_TIME_HINT: Final = re.compile(r"[0-9]{4}[-./:T0-9]|\*now$|\+")
_DURATION_HINT: Final = re.compile(r"[+-]?[0-9.]+[nuµμmsh]")


@dataclass(frozen=True, slots=True)
class GoDuration:
    """Go's ``time.Duration``: integer nanoseconds, printed as ``1m30s``."""

    ns: int

    def __str__(self) -> str:
        return format_duration(self.ns)


def to_value(text: str, timezone: tzinfo = UTC_ZONE) -> Any:
    """CGRateS's ``StringToInterface``: the typed value a string stands for."""
    if text == "":
        return text
    if _GO_INT.fullmatch(text):
        number = int(text)
        if _INT64_MIN <= number <= _INT64_MAX:
            return number
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    if _GO_FLOAT.fullmatch(text):
        return Decimal(text)
    if _TIME_HINT.match(text):
        try:
            return parse_time(text, timezone)
        except (InvalidValue, ValueError, OverflowError, ArithmeticError):
            pass
    if _DURATION_HINT.match(text):
        try:
            return GoDuration(parse_duration(text))
        except (InvalidValue, ValueError, OverflowError, ArithmeticError):
            pass
    return text


def typed(value: Any, timezone: tzinfo = UTC_ZONE) -> Any:
    """An event value as CGRateS compares it: strings parsed, JSON floats exact."""
    if isinstance(value, str):
        return to_value(value, timezone)
    if isinstance(value, float):
        return _float(value)
    return value


def _float(value: float) -> Decimal | str:
    if math.isfinite(value):
        return Decimal(repr(value))
    return as_string(value)


def as_string(value: Any) -> str:
    """CGRateS's ``IfaceAsString``."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return money_str(Decimal(repr(value)))
    if isinstance(value, GoDuration):
        return format_duration(value.ns)
    if isinstance(value, datetime):
        return go_rfc3339(value)
    if isinstance(value, timedelta):
        return format_duration(duration_ns(value))
    try:
        return dumps(value).decode()
    except TypeError:
        return str(value)


def go_rfc3339(moment: datetime) -> str:
    """Go's ``time.RFC3339`` layout: whole seconds, ``Z`` for UTC."""
    moment = moment.replace(microsecond=0)
    offset = moment.utcoffset()
    if offset is None or offset == timedelta(0):
        return moment.replace(tzinfo=None).isoformat() + "Z"
    return moment.isoformat()


def duration_ns(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


# ----------------------------------------------------------------------------------- conversions
def as_duration(value: Any) -> int:
    """``IfaceAsDuration`` in nanoseconds."""
    if isinstance(value, GoDuration):
        return value.ns
    if isinstance(value, bool):
        raise FilterError(f"cannot convert field: {as_string(value)} to time.Duration")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        return int(value)
    if isinstance(value, timedelta):
        return duration_ns(value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except (InvalidValue, ValueError, OverflowError, ArithmeticError):
            raise FilterError(f"time: invalid duration {value!r}") from None
    raise FilterError(f"cannot convert field: {as_string(value)} to time.Duration")


def as_number(value: Any) -> Decimal:
    """``IfaceAsFloat64`` (exact)."""
    if isinstance(value, bool):
        raise FilterError(f"cannot convert field: {as_string(value)} to float64")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, GoDuration):
        return Decimal(value.ns)
    if isinstance(value, float):
        converted = _float(value)
        if isinstance(converted, Decimal):
            return converted
    if isinstance(value, str) and _GO_FLOAT.fullmatch(value):
        return Decimal(value)
    raise FilterError(f"cannot convert field: {as_string(value)} to float64")


def as_int(value: Any) -> int:
    """``IfaceAsInt64``: ints, durations and integer strings only."""
    if isinstance(value, bool):
        raise FilterError(f"cannot convert field: {as_string(value)} to int")
    if isinstance(value, int):
        return value
    if isinstance(value, GoDuration):
        return value.ns
    if isinstance(value, str) and _GO_INT.fullmatch(value):
        return int(value)
    raise FilterError(f"cannot convert field: {as_string(value)} to int")


def as_time(value: Any, timezone: tzinfo = UTC_ZONE) -> datetime:
    """``IfaceAsTime``: a time, or a string in one of the time layouts."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone)
    if isinstance(value, str):
        try:
            return parse_time(value, timezone)
        except (InvalidValue, ValueError, OverflowError, ArithmeticError):
            raise FilterError(f"cannot convert field: {value} to time.Time") from None
    raise FilterError(f"cannot convert field: {as_string(value)} to time.Time")


# ----------------------------------------------------------------------------------- comparisons
def _numeric(value: Any) -> Decimal | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, GoDuration):
        return value.ns  # Go's Duration is an int64 kind: it compares as its nanoseconds
    return None


def _incomparable(item: Any, other: Any) -> FilterError:
    return FilterError(f"incomparable: <{as_string(item)}> with <{as_string(other)}>")


def greater_than(item: Any, other: Any, or_equal: bool) -> bool:
    """``GreaterThan``: numbers with numbers, times with times; anything else is an error."""
    number, other_number = _numeric(item), _numeric(other)
    if number is not None and other_number is not None:
        return number >= other_number if or_equal else number > other_number
    if isinstance(item, datetime) and isinstance(other, datetime):
        return item >= other if or_equal else item > other
    if type(item) is type(other):
        raise FilterError(f"unsupported comparison type: {type(item).__name__}")
    raise _incomparable(item, other)


def equal_to(item: Any, other: Any) -> bool:
    """``EqualTo``: as ``greater_than``, and strings compare with strings."""
    number, other_number = _numeric(item), _numeric(other)
    if number is not None and other_number is not None:
        return number == other_number
    if isinstance(item, datetime) and isinstance(other, datetime):
        return item == other
    if isinstance(item, str) and isinstance(other, str):
        return item == other
    if type(item) is type(other):
        raise FilterError(f"unsupported comparison type: {type(item).__name__}")
    raise _incomparable(item, other)


def is_empty(value: Any) -> bool:
    """``*empty``: null, ``""``, an empty list or map; anything else is not empty."""
    if value is None:
        return True
    if isinstance(value, str | list | tuple | dict):
        return len(value) == 0
    return False


def decimal_or_error(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise FilterError(f"invalid number: {text!r}") from None
