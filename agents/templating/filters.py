"""Inline filters over the request's trees (``*string:~*req.CC-Request-Type:1|2``).

The engine's FilterS is not reachable from an agent, so this is a small evaluator of
CGRateS's inline filter syntax: ``*type:~element:value|value``; a ``*not`` prefix negates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.paths import as_text, compare, duration_or_none, number_or_none
from agents.templating.trees import RequestTree
from agents.templating.values import Segment, parse_segment

NEGATION: Final = "*not"
VALUE_OR: Final = "|"
FILTER_SEP: Final = ":"
UNARY_TYPES: Final = frozenset({"*exists", "*empty"})
COMPARE_TYPES: Final[dict[str, Callable[[int], bool]]] = {
    "*gt": lambda order: order > 0,
    "*gte": lambda order: order >= 0,
    "*lt": lambda order: order < 0,
    "*lte": lambda order: order <= 0,
}
STRING_TYPES: Final[dict[str, Callable[[str, str], bool]]] = {
    "*string": lambda value, operand: value == operand,
    "*prefix": lambda value, operand: value.startswith(operand),
    "*suffix": lambda value, operand: value.endswith(operand),
    "*contains": lambda value, operand: operand in value,
}
EQUAL: Final = "*eq"  # equal as numbers/durations, else as text (CGRateS's EqualTo)
FILTER_TYPES: Final = frozenset({*UNARY_TYPES, *COMPARE_TYPES, *STRING_TYPES, "*regex", EQUAL})


@dataclass(frozen=True, slots=True)
class Operand:
    """A filter value: a literal (with its regex precompiled for ``*regex``) or a reference."""

    literal: str
    reference: Segment | None = None
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Filter:
    kind: str
    negated: bool
    element: Segment
    operands: tuple[Operand, ...]
    source: str
    # Derived at construction: the compiled test (``*string`` on literals is a set lookup).
    check: Callable[[Mapping[str, RequestTree]], bool] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", _compile(self))

    def passes(self, trees: Mapping[str, RequestTree]) -> bool:
        return self.check(trees)

    def _positive(self, trees: Mapping[str, RequestTree]) -> bool:
        try:
            value: Any = self.element.value_of(trees)
        except NotFoundError:
            return self.kind == "*empty"
        if self.kind == "*exists":
            return True
        if self.kind == "*empty":
            return is_empty(value)
        text = value if type(value) is str else as_text(value)
        for operand in self.operands:
            if operand.reference is None:
                other, pattern = operand.literal, operand.pattern
            else:
                try:
                    other = operand.reference.text_of(trees)
                except NotFoundError:
                    continue
                pattern = None
            if self._matches(text, other, pattern):
                return True
        return False

    def _matches(self, text: str, other: str, pattern: re.Pattern[str] | None) -> bool:
        if self.kind == "*regex":
            try:
                compiled = pattern if pattern is not None else re.compile(other)
            except re.error:
                return False
            return compiled.search(text) is not None
        string_test = STRING_TYPES.get(self.kind)
        if string_test is not None:
            return bool(string_test(text, other))
        order = compare(text, other)
        if self.kind == EQUAL:
            return order == 0 if order is not None else text == other
        return order is not None and bool(COMPARE_TYPES[self.kind](order))


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _literal_test(kind: str, literals: tuple[str, ...]) -> Callable[[str], bool] | None:
    """A direct test of the element's text against literal operands, for the string types."""
    if kind == "*string":
        accepted = frozenset(literals)
        return accepted.__contains__
    if kind == "*prefix":
        return lambda text: text.startswith(literals)
    if kind == "*suffix":
        return lambda text: text.endswith(literals)
    if kind == "*contains":
        return lambda text: any(literal in text for literal in literals)
    return None


def _compile(flt: Filter) -> Callable[[Mapping[str, RequestTree]], bool]:
    """The filter as one closure; the general path (references, comparisons, regexes) goes
    through ``Filter._positive``."""
    value_of, negated, kind = flt.element.value_of, flt.negated, flt.kind
    positive: Callable[[Mapping[str, RequestTree]], bool]
    test = None
    if all(operand.reference is None for operand in flt.operands):
        test = _literal_test(kind, tuple(operand.literal for operand in flt.operands))
    if kind == "*exists":

        def positive(trees: Mapping[str, RequestTree]) -> bool:
            try:
                value_of(trees)
            except NotFoundError:
                return False
            return True

    elif kind == "*empty":

        def positive(trees: Mapping[str, RequestTree]) -> bool:
            try:
                value = value_of(trees)
            except NotFoundError:
                return True
            return is_empty(value)

    elif test is not None:
        matches = test

        def positive(trees: Mapping[str, RequestTree]) -> bool:
            try:
                value = value_of(trees)
            except NotFoundError:
                return False
            return matches(value if type(value) is str else as_text(value))

    elif kind in COMPARE_TYPES or kind == EQUAL:
        positive = _compiled_compare(flt)
    else:
        positive = flt._positive
    if negated:
        return lambda trees: not positive(trees)
    return positive


def _compiled_compare(flt: Filter) -> Callable[[Mapping[str, RequestTree]], bool]:
    """``*gt``/``*eq``/...: literal operands parsed once; as ``compare``: numbers when both
    sides are numbers, else durations; ``*eq`` falls back to text equality."""
    value_of, equal = flt.element.value_of, flt.kind == EQUAL
    accept = COMPARE_TYPES.get(flt.kind)
    operands = tuple(
        (operand.reference.text_of, "", None, None)
        if operand.reference is not None
        else (
            None,
            operand.literal,
            number_or_none(operand.literal),
            duration_or_none(operand.literal),
        )
        for operand in flt.operands
    )

    def positive(trees: Mapping[str, RequestTree]) -> bool:
        try:
            value = value_of(trees)
        except NotFoundError:
            return False
        text = value if type(value) is str else as_text(value)
        # An int compares exactly with a Decimal: no conversion for the commonest value.
        number: Decimal | int | None = value if type(value) is int else number_or_none(text)
        duration: int | bool | None = False  # parsed on first need
        for reference, other, other_number, other_duration in operands:
            order: int | None = None
            if reference is not None:
                try:
                    other = reference(trees)
                except NotFoundError:
                    continue
                order = order_with(value, other)
            elif number is not None and other_number is not None:
                order = (number > other_number) - (number < other_number)
            else:
                if duration is False:
                    duration = duration_or_none(text)
                if duration is not None and other_duration is not None:
                    assert not isinstance(duration, bool)
                    order = (duration > other_duration) - (duration < other_duration)
            if equal:
                if (order == 0) if order is not None else (text == other):
                    return True
            elif order is not None and accept is not None and accept(order):
                return True
        return False

    return positive


# The texts comparisons meet (a grant "60000000000", a usage "60s") as a number and as a
# duration: a pure function of the text, so remembered; bounded (cleared when full).
_PARSED: dict[str, tuple[Decimal | None, int | None]] = {}
_PARSED_MAX: Final = 4096


def parsed(text: str) -> tuple[Decimal | None, int | None]:
    """``(number_or_none(text), duration_or_none(text))``, remembered per text."""
    found = _PARSED.get(text)
    if found is None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        found = _PARSED[text] = (number_or_none(text), duration_or_none(text))
    return found


def order_with(value: Any, other: str) -> int | None:
    """How ``value`` orders against a referenced operand's text ``other``, as a comparison
    filter orders them: as numbers when both are (an int value as itself), else as
    durations; None when they are not comparable."""
    text = value if type(value) is str else as_text(value)
    value_parsed = _PARSED.get(text) or parsed(text)
    other_number, other_duration = _PARSED.get(other) or parsed(other)
    number = value if type(value) is int else value_parsed[0]
    if number is not None and other_number is not None:
        return (number > other_number) - (number < other_number)
    duration = value_parsed[1]
    if duration is None or other_duration is None:
        return None
    return (duration > other_duration) - (duration < other_duration)


def parse_filter(text: str) -> Filter:
    """Parses one inline filter; TemplateError on unknown type or bad syntax."""
    if not isinstance(text, str):
        raise TemplateError(f"filter must be a string, not {type(text).__name__}")
    kind, sep, rest = text.partition(FILTER_SEP)
    if not sep or not kind.startswith("*"):
        raise TemplateError(
            f"filter {text!r}: only inline filters *type:~element:values are supported"
        )
    negated = kind.startswith(NEGATION) and kind != NEGATION
    base = "*" + kind[len(NEGATION) :] if negated else kind
    if base not in FILTER_TYPES:
        raise TemplateError(f"filter {text!r}: unknown filter type {kind!r}")
    element_text, values_text = _split_element(rest)
    if not element_text.startswith("~"):
        raise TemplateError(f"filter {text!r}: the element must be a ~reference")
    element = parse_segment(element_text)
    operands: tuple[Operand, ...] = ()
    if base not in UNARY_TYPES:
        if values_text == "":
            raise TemplateError(f"filter {text!r}: {base} needs values")
        operands = tuple(_operand(part, base, text) for part in values_text.split(VALUE_OR))
    return Filter(base, negated, element, operands, text)


def _split_element(rest: str) -> tuple[str, str]:
    """Splits ``~elem:values`` at the first ``:`` outside brackets, braces and ``:s/`` rules."""
    depth = 0
    position = 0
    while position < len(rest):
        char = rest[position]
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == ":" and depth == 0:
            if rest.startswith(":s/", position):
                # skip the search&replace rule up to its closing /
                end = rest.find("/", rest.find("/", position + 3) + 1)
                if end == -1:
                    break
                position = end + 1
                continue
            return rest[:position], rest[position + 1 :]
        position += 1
    return rest, ""


def _operand(text: str, kind: str, source: str) -> Operand:
    if text.startswith("~") and len(text) > 1:
        return Operand("", parse_segment(text))
    pattern = None
    if kind == "*regex":
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise TemplateError(f"filter {source!r}: bad regex {text!r}: {exc}") from None
    return Operand(text, None, pattern)
