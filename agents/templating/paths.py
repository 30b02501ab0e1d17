"""Parsed paths: ``*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(0)]``.

Parsed once at load; reading resolves indexes, sibling selectors and ``Length`` over the
plain-path ``get`` of a tree, so every codec gets them for free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from agents.templating.errors import TemplateError
from agents.templating.trees import DictTree, RequestTree
from core.types import InvalidValue, dumps, money_str, parse_duration

PATH_SEP: Final = "."
INDEX_START: Final = "["
INDEX_END: Final = "]"
SELECTOR_OR: Final = "|"  # several selectors must all match the same instance
RULE_AND: Final = "&"
LENGTH: Final = "Length"
RAW: Final = "*raw"  # CGRateS: the unconverted value of an engine reply field
_SELECTOR: Final = re.compile(r"~([^()]+)(?:\((.*)\))?")


# ---------------------------------------------------------------------------- RSR filter rules
@dataclass(frozen=True, slots=True)
class RsrRule:
    """One CGRateS RSRFilter rule as used in selectors: ``!`` negates, ``~re`` regex, ``^$``
    empty, ``^x$`` exact, ``^x`` prefix, ``x$`` suffix, ``>=x`` ``<=x`` ``>x`` ``<x``
    comparisons, anything else: contains."""

    kind: str
    operand: str
    negative: bool
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> RsrRule:
        negative = text.startswith("!")
        if negative:
            text = text[1:]
        if text == "":
            return cls("any", "", negative)
        if text[0] == "~":
            try:
                return cls("regex", text[1:], negative, re.compile(text[1:]))
            except re.error as exc:
                raise TemplateError(f"bad selector regex {text[1:]!r}: {exc}") from None
        if text == "^$":
            return cls("empty", "", negative)
        if text[0] == "^":
            if len(text) > 1 and text[-1] == "$":
                return cls("exact", text[1:-1], negative)
            return cls("prefix", text[1:], negative)
        if text[-1] == "$":
            return cls("suffix", text[:-1], negative)
        for operator in (">=", "<=", ">", "<"):
            if text.startswith(operator) and len(text) > len(operator):
                return cls(operator, text[len(operator) :], negative)
        return cls("contains", text, negative)

    def passes(self, value: str) -> bool:
        kind = self.kind
        if kind == "any":
            result = True
        elif kind == "regex":
            assert self.pattern is not None
            result = self.pattern.search(value) is not None
        elif kind == "empty":
            result = value == ""
        elif kind == "exact":
            result = value == self.operand
        elif kind == "prefix":
            result = value.startswith(self.operand)
        elif kind == "suffix":
            result = value.endswith(self.operand)
        elif kind == "contains":
            result = self.operand in value
        else:
            order = compare(value, self.operand)
            if order is None:
                return False
            result = {">=": order >= 0, "<=": order <= 0, ">": order > 0, "<": order < 0}[kind]
        return result != self.negative


def compare(left: str, right: str) -> int | None:
    """Orders two values as numbers, else as durations; ``None`` when not comparable."""
    a, b = number_or_none(left), number_or_none(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    c, d = duration_or_none(left), duration_or_none(right)
    if c is not None and d is not None:
        return (c > d) - (c < d)
    return None


def number_or_none(text: str) -> Decimal | None:
    text = text.strip()
    if not text or not (text[-1].isdigit() or text[-1] == "."):
        return None  # a finite number ends so: no exception to pay for "60s" or ""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def duration_or_none(text: str) -> int | None:
    """Integer nanoseconds (exact: no Decimal needed to compare them), or None."""
    try:
        return parse_duration(text)
    except InvalidValue:
        return None


# ------------------------------------------------------------------------------------- paths
@dataclass(frozen=True, slots=True)
class Selector:
    """``[~Sibling(rule&rule)]``: picks the instance whose sibling element passes the rules."""

    sibling: str
    rules: tuple[RsrRule, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One path element, optionally narrowed to one instance by ``[index]`` or selectors."""

    name: str
    index: int | None = None
    selectors: tuple[Selector, ...] = ()

    @property
    def narrowed(self) -> bool:
        return self.index is not None or bool(self.selectors)


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed path: tree ``root`` (``*req``) and its steps (``Option[0]``, ``Uri``)."""

    root: str
    steps: tuple[Step, ...]
    text: str = ""
    names: tuple[str, ...] = ()  # the plain element names, derived
    indexes: tuple[int | None, ...] | None = None  # per step, None when no step has one
    plain: bool = True  # derived: no step narrows (the common case, read with one ``get``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(step.name for step in self.steps))
        if any(step.index is not None for step in self.steps):
            object.__setattr__(self, "indexes", tuple(step.index for step in self.steps))
        object.__setattr__(self, "plain", not any(step.narrowed for step in self.steps))

    def read(self, trees: Mapping[str, RequestTree]) -> list[Any]:
        """Every value at this path (only the selected instance where a step narrows)."""
        tree: RequestTree | None = trees.get(self.root)
        if tree is None:
            return []
        if self.plain:
            values = tree.get(self.names)
            if not values and self.names and self.names[-1] == LENGTH:
                return [len(tree.get(self.names[:-1]))]
            return values
        start = 0
        last = len(self.steps) - 1
        for position, step in enumerate(self.steps):
            if not step.narrowed:
                continue
            names = self.names[start : position + 1]
            picked = _narrow(tree, names, step)
            if not picked or position == last:
                return picked
            tree = as_tree(picked[0])  # continue inside the chosen group instance
            if tree is None:
                return []
            start = position + 1
        names = self.names[start:]
        values = tree.get(names)
        if not values and names and names[-1] == LENGTH:
            return [len(tree.get(names[:-1]))]
        return values


def _narrow(tree: RequestTree, names: tuple[str, ...], step: Step) -> list[Any]:
    values = tree.get(names)
    if not values:
        return []
    if step.index is not None:
        return [values[step.index]] if step.index < len(values) else []
    if len(step.selectors) == 1:  # the common case: the first instance whose sibling passes
        selector = step.selectors[0]
        siblings = tree.get((*names[:-1], selector.sibling))
        if len(siblings) != len(values):  # as CGRateS: no 1:1 pairing, no selection
            return []
        rules = selector.rules
        for position, sibling in enumerate(siblings):
            text = as_text(sibling)
            if all(rule.passes(text) for rule in rules):
                return [values[position]]
        return []
    matching: set[int] | None = None
    for selector in step.selectors:
        siblings = tree.get((*names[:-1], selector.sibling))
        if len(siblings) != len(values):  # as CGRateS: no 1:1 pairing, no selection
            return []
        passing = {
            position
            for position, sibling in enumerate(siblings)
            if all(rule.passes(as_text(sibling)) for rule in selector.rules)
        }
        matching = passing if matching is None else matching & passing
    if not matching:
        return []
    return [values[min(matching)]]


def as_tree(value: Any) -> RequestTree | None:
    """A group instance as a tree: codecs may return sub-trees, plain trees return dicts."""
    if isinstance(value, Mapping):
        return DictTree(value)
    if getattr(value, "get", None) is not None:  # a RequestTree (a Protocol: no isinstance)
        tree: RequestTree = value
        return tree
    return None


def parse_path(text: str, *, writable: bool = False, allow_root_only: bool = False) -> Path:
    """Parses ``*root.A[0].B[~C(1)]`` (no leading ``~``); raises TemplateError on bad syntax.

    Writable paths may use ``[index]`` but not selectors.
    """
    if not text.startswith("*"):
        raise TemplateError(f"path {text!r} must start with a tree name such as *req")
    parts = _split_steps(text)
    root = parts[0]
    if len(root) < 2 or INDEX_START in root:
        raise TemplateError(f"bad path {text!r}: bad tree name")
    if len(parts) == 1 and not allow_root_only:
        raise TemplateError(f"bad path {text!r}: no element after the tree name")
    steps = tuple(_parse_step(part, text, writable) for part in parts[1:])
    return Path(root, steps, text)


def _split_steps(text: str) -> list[str]:
    """Splits on ``.`` outside brackets (selector rules may hold dots: ``(>1.5)``)."""
    parts: list[str] = []
    depth = 0
    current = 0
    for position, char in enumerate(text):
        if char == INDEX_START:
            depth += 1
        elif char == INDEX_END:
            depth -= 1
            if depth < 0:
                raise TemplateError(f"bad path {text!r}: unbalanced ]")
        elif char == PATH_SEP and depth == 0:
            parts.append(text[current:position])
            current = position + 1
    if depth != 0:
        raise TemplateError(f"bad path {text!r}: selector must end with ]")
    parts.append(text[current:])
    return parts


def _parse_step(part: str, text: str, writable: bool) -> Step:
    name, bracket, inner = part.partition(INDEX_START)
    if name == "":
        raise TemplateError(f"bad path {text!r}: empty element")
    if not bracket:
        return Step(name)
    if not inner.endswith(INDEX_END):
        raise TemplateError(f"bad path {text!r}: selector must end the element with ]")
    inner = inner[: -len(INDEX_END)]
    if inner == RAW:
        return Step(name)  # our trees hold the raw values already
    if inner.isdigit():
        return Step(name, int(inner))
    if writable:
        raise TemplateError(f"bad path {text!r}: selectors are read-only, use an [index]")
    return Step(name, None, tuple(_parse_selector(item, text) for item in inner.split(SELECTOR_OR)))


def _parse_selector(text: str, path: str) -> Selector:
    match = _SELECTOR.fullmatch(text)
    if match is None:
        raise TemplateError(f"bad selector {text!r} in path {path!r}: want ~Element(rule)")
    rules_text = match.group(2) or ""
    rules = tuple(RsrRule.parse(rule) for rule in rules_text.split(RULE_AND))
    return Selector(match.group(1), rules)


def as_text(value: Any) -> str:
    """A value as CGRateS's IfaceAsString writes it."""
    if isinstance(value, str):
        return value
    if type(value) is int:  # the common non-text value (Diameter integers, ns durations)
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return dumps(value).decode()
    return str(value)
