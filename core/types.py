"""Value types shared by the whole suite: money, durations, times and JSON.

Money is always ``decimal.Decimal``; usage is always integer nanoseconds (CGRateS's wire unit).
Agents may import this module (it has no engine state).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from mypy_extensions import mypyc_attr

NANOSECOND: Final = 1
MICROSECOND: Final = 1_000
MILLISECOND: Final = 1_000_000
SECOND: Final = 1_000_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

ZERO: Final = Decimal(0)

# CGRateS rounding method names.
ROUNDING_UP: Final = "*up"
ROUNDING_DOWN: Final = "*down"
ROUNDING_MIDDLE: Final = "*middle"
_ROUNDING_MODES: Final = {
    ROUNDING_UP: ROUND_CEILING,
    ROUNDING_DOWN: ROUND_FLOOR,
    ROUNDING_MIDDLE: ROUND_HALF_UP,
}
ROUNDING_METHODS: Final = frozenset(_ROUNDING_MODES)


class InvalidValue(ValueError):
    """A value on the wire or in a file could not be understood (message says which and why)."""


# ---------------------------------------------------------------------------------------- money
def to_money(value: Any) -> Decimal:
    """Converts a wire or file value to Decimal exactly.

    Floats come from JSON parsers; ``repr`` gives the shortest string that round-trips, so
    ``10.1`` becomes ``Decimal("10.1")`` and not the binary approximation.
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise InvalidValue(f"not a number: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return ZERO
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise InvalidValue(f"not a number: {value!r}") from None
        if not result.is_finite():
            raise InvalidValue(f"not a finite number: {value!r}")
        return result
    raise InvalidValue(f"not a number: {value!r}")


_QUANTUMS: Final = [Decimal(1).scaleb(-n) for n in range(0, 20)]


def round_money(amount: Decimal, decimals: int, method: str = ROUNDING_MIDDLE) -> Decimal:
    """Rounds as CGRateS utils.Round: ``*up`` ceiling, ``*down`` floor, ``*middle`` half-up."""
    quantum = (
        _QUANTUMS[decimals] if 0 <= decimals < len(_QUANTUMS) else Decimal(1).scaleb(-decimals)
    )
    return amount.quantize(quantum, rounding=_ROUNDING_MODES[method])


def money_str(amount: Decimal) -> str:
    """Plain decimal notation without trailing zeros: ``Decimal("0.70020")`` -> ``"0.7002"``."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("", "-", "-0"):
        return "0"
    return text


# ------------------------------------------------------------------------------------ durations
_GO_DURATION: Final = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS: Final = {
    "ns": Decimal(NANOSECOND),
    "us": Decimal(MICROSECOND),
    "µs": Decimal(MICROSECOND),
    "μs": Decimal(MICROSECOND),
    "ms": Decimal(MILLISECOND),
    "s": Decimal(SECOND),
    "m": Decimal(MINUTE),
    "h": Decimal(HOUR),
}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_SIMPLE_DURATION: Final = re.compile(r"([0-9]+)(ns|us|ms|s|m|h)")  # "120s": the common case
_UNIT_INT: Final = {unit: int(size) for unit, size in _UNIT_NS.items()}
_CLOCK_DURATION: Final = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
# One-letter units: "<digits>s" is what most clients send; read it without a regex.
_LETTER_UNIT_INT: Final = {"s": SECOND, "m": MINUTE, "h": HOUR}


def parse_duration(value: Any) -> int:
    """Parses a duration to integer nanoseconds, as CGRateS's ``ParseDurationWithNanosecs``.

    Accepts integer nanoseconds, Go duration strings (``"1m30s"``, ``"300ms"``, ``"-5s"``), and
    unitless integer strings, which are nanoseconds (unit counts for ``*sms``/``*data``).
    ``""`` is zero.
    """
    if type(value) is str:
        unit = _LETTER_UNIT_INT.get(value[-1:])
        if unit is not None:
            digits = value[:-1]
            # isdigit() alone also accepts non-ASCII digits, which Go does not.
            if digits.isdigit() and digits.isascii():
                return int(digits) * unit
            clock = _CLOCK_DURATION.fullmatch(value)  # "2m10s", "1h0m0s" (Go's own format)
            if clock is not None:
                hours, minutes, seconds = clock.groups("0")
                return int(hours) * HOUR + int(minutes) * MINUTE + int(seconds) * SECOND
        elif value.isdigit() and value.isascii():
            return int(value)  # unitless: nanoseconds, or units for *sms
    elif type(value) is int:
        return value
    if isinstance(value, bool):
        raise InvalidValue(f"not a duration: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidValue(f"not a duration: {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise InvalidValue(f"not a duration: {value!r}")
    simple = _SIMPLE_DURATION.fullmatch(value)
    if simple is not None:
        return int(simple.group(1)) * _UNIT_INT[simple.group(2)]
    text = value.strip()
    if text == "":
        return 0
    if _INTEGER.fullmatch(text):
        return int(text)
    sign = 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    position = 0
    total = Decimal(0)
    for match in _GO_DURATION.finditer(text):
        number = match.group(1)
        if match.start() != position or number in ("", "."):
            raise InvalidValue(f"not a duration: {value!r}")
        total += Decimal(number) * _UNIT_NS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise InvalidValue(f"not a duration: {value!r}")
    return sign * int(total)


def format_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String`` style: ``90s`` -> ``"1m30s"``, ``0`` -> ``"0s"``."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    remaining = abs(nanoseconds)
    if remaining < SECOND:
        for unit, size in (("ms", MILLISECOND), ("µs", MICROSECOND), ("ns", NANOSECOND)):
            if remaining >= size:
                return sign + money_str(Decimal(remaining) / size) + unit
    hours, remaining = divmod(remaining, HOUR)
    minutes, remaining = divmod(remaining, MINUTE)
    seconds = money_str(Decimal(remaining) / SECOND)
    text = ""
    if hours:
        text += f"{hours}h"
    if hours or minutes:
        text += f"{minutes}m"
    return sign + text + f"{seconds}s"


# ---------------------------------------------------------------------------------------- times
UTC_ZONE: Final = UTC
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_LAYOUTS: Final = (
    "%Y-%m-%d %H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y-%m-%dT%H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
)


def zone(name: str | None) -> Any:
    """Resolves a timezone name (``""``/``"UTC"``/``"Local"``/IANA name) to a tzinfo."""
    if not name or name.upper() == "UTC":
        return UTC
    if name == "Local":
        return datetime.now().astimezone().tzinfo
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"unknown timezone: {name!r}") from None


def parse_time(value: Any, timezone: Any = UTC, now: datetime | None = None) -> datetime:
    """Parses a time as CGRateS's ``ParseTimeDetectLayout`` does, returning an aware datetime.

    RFC 3339 (with or without zone; naive times take ``timezone``), Unix seconds (int or digit
    string), ``*now``, ``+<duration>`` relative to now, and the common SQL-like layouts.
    """
    if type(value) is str and value[10:11] == "T":
        # RFC 3339, what clients send: the general path below ends in the same fromisoformat.
        iso = _parsed_rfc3339(value, timezone)
        if iso is not None:
            return iso
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone)
    if isinstance(value, bool):
        raise InvalidValue(f"not a time: {value!r}")
    try:
        return _parse_time_general(value, timezone, now)
    except InvalidValue:
        raise
    except (OverflowError, ValueError):  # past year 9999, or a NaN number
        raise InvalidValue(f"not a time: {value!r}") from None


def _parse_time_general(value: Any, timezone: Any, now: datetime | None) -> datetime:
    if isinstance(value, int | float):
        return _EPOCH + timedelta(seconds=value)
    if not isinstance(value, str):
        raise InvalidValue(f"not a time: {value!r}")
    text = value.strip()
    if text == "" or text == "0001-01-01T00:00:00Z":
        return _EPOCH.replace(year=1)
    if text == "*now":
        return now or datetime.now(UTC)
    if text[0] == "+":
        return (now or datetime.now(UTC)) + timedelta(microseconds=parse_duration(text[1:]) // 1000)
    if text.isdigit() and len(text) != 14:
        return _EPOCH + timedelta(seconds=int(text))
    parsed = _parse_layouts(text)
    if parsed is None:
        raise InvalidValue(f"not a time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone)


_from_iso: Final = datetime.fromisoformat
RFC3339_CACHE_SIZE: Final = 4096  # SetupTime/AnswerTime texts of the calls in progress


@lru_cache(maxsize=RFC3339_CACHE_SIZE)
def _parsed_rfc3339(text: str, timezone: Any) -> datetime | None:
    """``text`` as an RFC 3339 time (``timezone`` when it names none), or None when it is not
    one. Cached: a call's events repeat the same few times, and the parse is pure (datetimes
    are immutable); ``*now`` and ``+5m`` read the clock and never get here."""
    try:
        iso = _from_iso(text)
    except ValueError:
        return None
    return iso if iso.tzinfo else iso.replace(tzinfo=timezone)


def _parse_layouts(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for layout in _TIME_LAYOUTS:
        try:
            return datetime.strptime(text, layout)
        except ValueError:
            continue
    return None


_UTC_SUFFIX: Final = "+00:00"


def format_time(moment: datetime) -> str:
    """RFC 3339 as Go marshals it: ``2014-08-04T13:00:00Z``."""
    # Every account and session document stores times: no replace() or timedelta per call.
    offset = moment.utcoffset()
    if offset is None:
        return moment.isoformat() + "Z"
    if not offset:  # a zero offset: isoformat() ends in "+00:00", Go writes "Z"
        return moment.isoformat().removesuffix(_UTC_SUFFIX) + "Z"
    return moment.isoformat()


# ----------------------------------------------------------------------------------------- JSON
# Encoded amounts, reused: orjson calls back into Python for every Decimal, and a reply carries
# the same few amounts over and over (rates, increments, fees). Equal Decimals (0.70 == 0.7)
# share one entry, which is right because the encoded form is normalised anyway.
_FRAGMENT_CACHE_LIMIT: Final = 65536
_fragments: dict[Decimal, orjson.Fragment] = {}


@mypyc_attr(native_class=False)  # mypyc: a native class cannot derive from tuple
class JsonParts(tuple[bytes, ...]):
    """A value already encoded as JSON, in parts to be written one after the other.

    Handlers may return one for a reply that is mostly pre-encoded: ``encode_response`` joins
    the parts straight into the reply line (no intermediate copy), and ``dumps`` embeds them
    anywhere else.
    """

    __slots__ = ()


def _json_default(value: Any) -> Any:
    if type(value) is JsonParts:
        return orjson.Fragment(b"".join(value))
    if isinstance(value, Decimal):
        fragment = _fragments.get(value)
        if fragment is None:
            if len(_fragments) >= _FRAGMENT_CACHE_LIMIT:
                _fragments.clear()
            fragment = _fragments[value] = orjson.Fragment(money_str(value).encode())
        return fragment
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


# Go marshals UTC as "Z"; CGRateS clients compare those strings.
JSON_OPTIONS: Final = orjson.OPT_UTC_Z


def dumps(value: Any) -> bytes:
    """JSON-encodes with Decimal as an exact JSON number (never through float)."""
    return orjson.dumps(value, default=_json_default, option=JSON_OPTIONS)


loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError
