"""Attribute types: how an attribute's Value becomes the text written at its Path.

CGRateS's ``ParseAttribute`` (``engine/attributes.go``). Each type is compiled once into a
function of the event view. A field the value refers to that the event lacks is ``MissingField``
(CGRateS's ``ErrNotFound``: the whole ProcessEvent answers ``NOT_FOUND`` if it happens in the
first run); other failures are ``FilterError`` (answered as ``SERVER_ERROR``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final

from core.filters.errors import FilterError
from core.filters.event import DYNAMIC_PREFIX, EventView
from core.filters.rsr import Expr, compile_rule, join_constant, join_string
from core.filters.values import (
    GoDuration,
    as_duration,
    as_int,
    as_number,
    as_string,
    as_time,
    duration_ns,
    to_value,
)
from core.types import ROUNDING_MIDDLE, UTC_ZONE, format_duration, round_money

META_NONE: Final = "*none"
META_CONSTANT: Final = "*constant"
META_VARIABLE: Final = "*variable"
META_COMPOSED: Final = "*composed"
META_USAGE_DIFFERENCE: Final = "*usage_difference"
META_SUM: Final = "*sum"
META_DIFFERENCE: Final = "*difference"
META_MULTIPLY: Final = "*multiply"
META_DIVIDE: Final = "*divide"
META_VALUE_EXPONENT: Final = "*value_exponent"
META_UNIX_TIMESTAMP: Final = "*unix_timestamp"
META_PREFIX: Final = "*prefix"
META_SUFFIX: Final = "*suffix"
META_CC_USAGE: Final = "*cc_usage"
META_SIPCID: Final = "*sipcid"
DEFAULT_TYPE: Final = META_VARIABLE  # an empty Type reads fields, as CGRateS's FirstNonEmpty
ERR_NOT_ENOUGH_PARAMETERS: Final = "NotEnoughParameters"
SIPCID_SEP: Final = ";"

Compute = Callable[[EventView], str]


class MissingField(Exception):
    """A field the attribute's value reads is not in the event."""


@dataclass(frozen=True, slots=True)
class TypeSettings:
    """Engine settings some types use."""

    timezone: tzinfo = UTC_ZONE
    rounding_decimals: int = 5


def _text(expr: Expr, view: EventView) -> str:
    text = expr.string(view)
    if text is None:
        raise MissingField
    return text


def _joined(exprs: Sequence[Expr], view: EventView) -> str:
    text = join_string(exprs, view) if exprs else ""
    if text is None:
        raise MissingField
    return text


def _values(exprs: Sequence[Expr], view: EventView, timezone: tzinfo) -> list[Any]:
    """``GetIfaceFromValues``: each value's text typed as CGRateS's StringToInterface."""
    return [to_value(_text(expr, view), timezone) for expr in exprs]


def _need(count: int, exprs: Sequence[Expr], attr_type: str, exact: bool = True) -> None:
    if (len(exprs) != count) if exact else (len(exprs) < count):
        rules = [expr.rules for expr in exprs]
        raise FilterError(f"invalid arguments <{rules}> to {attr_type}")


# ------------------------------------------------------------------------------- arithmetic
def go_sum(items: list[Any]) -> Any:
    """``utils.Sum``: typed by the first item; ``None`` for types it does not add."""
    if len(items) < 2:
        raise FilterError(ERR_NOT_ENOUGH_PARAMETERS)
    first, rest = items[0], items[1:]
    if isinstance(first, GoDuration):
        return GoDuration(first.ns + sum(as_duration(item) for item in rest))
    if isinstance(first, datetime):
        return first + timedelta(microseconds=sum(as_duration(item) for item in rest) // 1000)
    if isinstance(first, Decimal):
        return first + sum((as_number(item) for item in rest), Decimal(0))
    if isinstance(first, int) and not isinstance(first, bool):
        return first + sum(as_int(item) for item in rest)
    return None


def go_difference(items: list[Any], timezone: tzinfo) -> Any:
    """``utils.Difference``: times minus times are durations, minus durations are times."""
    if len(items) < 2:
        raise FilterError(ERR_NOT_ENOUGH_PARAMETERS)
    result, rest = items[0], items[1:]
    if isinstance(result, GoDuration):
        return GoDuration(result.ns - sum(as_duration(item) for item in rest))
    if isinstance(result, datetime):
        moment: datetime | GoDuration = result
        for item in rest:
            if isinstance(moment, GoDuration):
                moment = GoDuration(moment.ns - as_duration(item))
            elif isinstance(item, datetime):
                moment = GoDuration(duration_ns(moment - item))
            else:
                moment = moment - timedelta(microseconds=as_duration(item) // 1000)
        return moment
    if isinstance(result, Decimal):
        return result - sum((as_number(item) for item in rest), Decimal(0))
    if isinstance(result, int) and not isinstance(result, bool):
        return result - sum(as_int(item) for item in rest)
    raise FilterError("unsupported type")


def go_multiply(items: list[Any]) -> Any:
    if len(items) < 2:
        raise FilterError(ERR_NOT_ENOUGH_PARAMETERS)
    result = items[0]
    if isinstance(result, Decimal):
        for item in items[1:]:
            result *= as_number(item)
        return result
    if isinstance(result, int) and not isinstance(result, bool):
        for item in items[1:]:
            result *= as_int(item)
        return result
    raise FilterError("unsupported type")


def go_divide(items: list[Any]) -> Any:
    if len(items) < 2:
        raise FilterError(ERR_NOT_ENOUGH_PARAMETERS)
    result = items[0]
    try:
        if isinstance(result, Decimal):
            for item in items[1:]:
                result /= as_number(item)
            return result
        if isinstance(result, int) and not isinstance(result, bool):
            for item in items[1:]:
                divisor = as_int(item)
                # Go's integer division truncates toward zero.
                quotient = abs(result) // abs(divisor)
                result = quotient if (result >= 0) == (divisor > 0) else -quotient
            return result
    except ArithmeticError:
        raise FilterError("division by zero") from None
    raise FilterError("unsupported type")


# ----------------------------------------------------------------------------------- compiling
def compile_type(
    attr_type: str, exprs: tuple[Expr, ...], path: str, settings: TypeSettings
) -> Compute:
    """The function computing an attribute's substitute; ``FilterError`` for an unknown type or
    the wrong number of values."""
    attr_type = attr_type or DEFAULT_TYPE
    zone_ = settings.timezone
    if attr_type == META_NONE:
        return lambda view: ""
    if attr_type == META_CONSTANT:
        constant = join_constant(exprs)
        return lambda view: constant
    if attr_type in (META_VARIABLE, META_COMPOSED):
        return lambda view: _joined(exprs, view)
    if attr_type == META_USAGE_DIFFERENCE:
        _need(2, exprs, attr_type)
        end, start = exprs

        def usage_difference(view: EventView) -> str:
            later = as_time(_text(end, view), UTC_ZONE)
            earlier = as_time(_text(start, view), UTC_ZONE)
            return format_duration(duration_ns(later - earlier))

        return usage_difference
    if attr_type == META_SUM:
        return lambda view: as_string(go_sum(_values(exprs, view, zone_)))
    if attr_type == META_DIFFERENCE:
        return lambda view: as_string(go_difference(_values(exprs, view, zone_), zone_))
    if attr_type == META_MULTIPLY:
        return lambda view: as_string(go_multiply(_values(exprs, view, zone_)))
    if attr_type == META_DIVIDE:
        return lambda view: as_string(go_divide(_values(exprs, view, zone_)))
    if attr_type == META_VALUE_EXPONENT:
        return _value_exponent(exprs, settings.rounding_decimals)
    if attr_type == META_UNIX_TIMESTAMP:

        def unix_timestamp(view: EventView) -> str:
            moment = as_time(_joined(exprs, view), zone_)
            return str(math.floor(moment.timestamp()))

        return unix_timestamp
    if attr_type in (META_PREFIX, META_SUFFIX):
        current = compile_rule(DYNAMIC_PREFIX + path)
        assert current is not None
        if attr_type == META_PREFIX:
            return lambda view: _joined(exprs, view) + _text(current, view)
        return lambda view: _text(current, view) + _joined(exprs, view)
    if attr_type == META_CC_USAGE:
        return _cc_usage(exprs)
    if attr_type == META_SIPCID:
        return _sipcid(exprs)
    raise FilterError(f"unsupported type: <{attr_type}>")


def _value_exponent(exprs: tuple[Expr, ...], decimals: int) -> Compute:
    _need(2, exprs, META_VALUE_EXPONENT)
    number_expr, exponent_expr = exprs

    def value_exponent(view: EventView) -> str:
        text = _text(number_expr, view)
        try:
            number = as_number(text)
        except FilterError:
            raise FilterError(f"invalid value <{text}> to {META_VALUE_EXPONENT}") from None
        exponent = as_int(_text(exponent_expr, view))
        return as_string(round_money(number.scaleb(exponent), decimals, ROUNDING_MIDDLE))

    return value_exponent


def _cc_usage(exprs: tuple[Expr, ...]) -> Compute:
    """Diameter CCR usage: used time plus the debit interval of each request before this."""
    _need(3, exprs, META_CC_USAGE)
    number_expr, used_expr, interval_expr = exprs

    def cc_usage(view: EventView) -> str:
        number_text = _text(number_expr, view)
        try:
            request_number = as_int(number_text)
        except FilterError:
            raise FilterError(f"invalid requestNumber <{number_text}> to {META_CC_USAGE}") from None
        used = as_duration(_text(used_expr, view))
        interval = as_duration(_text(interval_expr, view))
        return format_duration(used + interval * max(request_number - 1, 0))

    return cc_usage


def _sipcid(exprs: tuple[Expr, ...]) -> Compute:
    """SIP call id: the first value, then the other non-empty values sorted, ``;``-joined."""
    _need(1, exprs, META_SIPCID, exact=False)
    first, others = exprs[0], exprs[1:]

    def sipcid(view: EventView) -> str:
        parts = [_text(first, view)]
        extra = sorted(text for expr in others if (text := expr.string(view)))
        return SIPCID_SEP.join(parts + extra)

    return sipcid
