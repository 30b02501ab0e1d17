"""Inline filters over the request's trees (``*string:~*req.CC-Request-Type:1|2``).

The engine's FilterS is not reachable from an agent, so this is a small evaluator of
CGRateS's inline filter syntax: ``*type:~element:value|value``; a ``*not`` prefix negates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.paths import as_text, compare
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

    def passes(self, trees: Mapping[str, RequestTree]) -> bool:
        return self._positive(trees) != self.negated

    def _positive(self, trees: Mapping[str, RequestTree]) -> bool:
        try:
            value: Any = self.element.value(trees)
        except NotFoundError:
            return self.kind == "*empty"
        if self.kind == "*exists":
            return True
        if self.kind == "*empty":
            return value is None or (isinstance(value, str | list | dict) and len(value) == 0)
        text = as_text(value)
        for operand in self.operands:
            if operand.reference is None:
                other, pattern = operand.literal, operand.pattern
            else:
                try:
                    other = operand.reference.text(trees)
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
