"""Data converters (``{*duration_seconds&*round:2}``), as CGRateS's utils/dataconverter.go.

Numbers go through Decimal only (never float), so money stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Final

from agents.templating.errors import TemplateError
from agents.templating.paths import as_text
from core.types import (
    ROUNDING_METHODS,
    ROUNDING_MIDDLE,
    SECOND,
    InvalidValue,
    format_duration,
    parse_duration,
    round_money,
    to_money,
)

Converter = Callable[[Any], Any]
PARAM_SEP: Final = ":"
E164_MARK: Final = ".e164."
MINUTE_NS: Final = 60 * SECOND


class ConversionError(ValueError):
    """A value could not be converted at run time (message says which and why)."""


def _duration(value: Any) -> int:
    try:
        return parse_duration(value if not isinstance(value, Decimal) else int(value))
    except InvalidValue as exc:
        raise ConversionError(str(exc)) from None


def _number(value: Any) -> Decimal:
    try:
        return to_money(value if not isinstance(value, str) else value.strip())
    except InvalidValue as exc:
        raise ConversionError(str(exc)) from None


def _duration_seconds(value: Any) -> Decimal:
    return Decimal(_duration(value)) / SECOND


def _duration_minutes(value: Any) -> Decimal:
    return Decimal(_duration(value)) / MINUTE_NS


def _duration_nanoseconds(value: Any) -> int:
    return _duration(value)


def _duration_text(value: Any) -> str:
    return format_duration(_duration(value))


def _e164(value: Any) -> str:
    name = as_text(value)
    position = name.find(E164_MARK)
    if position == -1:
        raise ConversionError(f"not an e164 NAPTR name: {name!r}")
    return name[:position].replace(".", "")[::-1]


def _e164_domain(value: Any) -> str:
    name = as_text(value)
    position = name.find(E164_MARK)
    if position != -1:
        name = name[position:]
    return name.strip(".")


def _sip_uri_parts(value: Any) -> tuple[str, str]:
    """(user, host) of a SIP URI or name-addr (``"A" <sip:alice@host:5060;tag=x>``)."""
    text = as_text(value).strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    for scheme in ("sips:", "sip:", "tel:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.split(";", 1)[0].split("?", 1)[0]
    user, at, host = text.rpartition("@")
    if not at:
        user, host = "", text
    return user.split(":", 1)[0], host.split(":", 1)[0] if not host.startswith("[") else host


def _sipuri_user(value: Any) -> str:
    return _sip_uri_parts(value)[0]


def _sipuri_host(value: Any) -> str:
    return _sip_uri_parts(value)[1]


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple) else len(as_text(value))


def _string2hex(value: Any) -> str:
    text = as_text(value)
    return "0x" + text.encode().hex() if text else ""


def _round(params: str) -> Converter:
    parts = params.split(PARAM_SEP) if params else []
    if len(parts) > 2:
        raise TemplateError(f"*round takes decimals[:method], not {params!r}")
    try:
        decimals = int(parts[0]) if parts else 0
    except ValueError:
        raise TemplateError(f"*round needs integer decimals, not {parts[0]!r}") from None
    method = parts[1] if len(parts) == 2 else ROUNDING_MIDDLE
    if method not in ROUNDING_METHODS:
        raise TemplateError(f"*round: unknown rounding method {method!r}")
    return lambda value: round_money(_number(value), decimals, method)


def _operand(name: str, params: str) -> Decimal:
    try:
        operand = to_money(params)
    except InvalidValue:
        raise TemplateError(f"{name} needs a number, not {params!r}") from None
    if params.strip() == "":
        raise TemplateError(f"{name} needs a number")
    return operand


def _multiply(params: str) -> Converter:
    factor = _operand("*multiply", params)
    return lambda value: _number(value) * factor


def _divide(params: str) -> Converter:
    divisor = _operand("*divide", params)
    if divisor == 0:
        raise TemplateError("*divide by zero")

    def divide(value: Any) -> Decimal:
        try:
            return _number(value) / divisor
        except (DivisionByZero, InvalidOperation) as exc:
            raise ConversionError(str(exc)) from None

    return divide


# Converters without parameters, by name.
SIMPLE_CONVERTERS: Final[dict[str, Converter]] = {
    "*duration_seconds": _duration_seconds,
    "*duration_nanoseconds": _duration_nanoseconds,
    "*duration_minutes": _duration_minutes,
    "*duration": _duration_text,
    "*e164": _e164,
    "*e164Domain": _e164_domain,
    "*sipuri_user": _sipuri_user,
    "*sipuri_host": _sipuri_host,
    "*len": _length,
    "*string2hex": _string2hex,
}
# Converters taking ``:params``, by name.
PARAM_CONVERTERS: Final[dict[str, Callable[[str], Converter]]] = {
    "*round": _round,
    "*multiply": _multiply,
    "*divide": _divide,
}


def parse_converter(text: str) -> Converter:
    """A converter from its definition (``*round:2:*up``); TemplateError when unknown/bad."""
    simple = SIMPLE_CONVERTERS.get(text)
    if simple is not None:
        return simple
    name, _, params = text.partition(PARAM_SEP)
    factory = PARAM_CONVERTERS.get(name)
    if factory is None:
        raise TemplateError(f"unknown converter {text!r}")
    return factory(params)
