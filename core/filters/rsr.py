"""CGRateS RSR value expressions (``config/rsrparser.go``), compiled once, evaluated per event.

A rule is one of:

* a constant: ``1001``, ``*prepaid`` (anything not starting with ``~``);
* a field reference: ``~*req.Destination``, optionally followed by search-and-replace steps
  ``:s/<Go regexp>/<template>/`` (CGRateS's ``ReSearchReplace``: when the regexp matches, the
  result is the *expanded template*, ``${1}`` etc.; when it does not, the value is unchanged);
* either of these followed by converters ``{*duration_seconds&*round:2}``;
* a dynamic rule holding ``<...>``: the part inside is evaluated first and the rule it yields is
  then evaluated (``~*req.<~*req.Field>``).

Several rules joined by ``;`` (or ``&`` in inline attributes) concatenate their results; text in
backquotes is never split. Evaluation returns ``None`` when a referenced field is missing
(CGRateS's ``ErrNotFound``) and raises ``FilterError`` for conversion failures.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from core.types import ROUNDING_METHODS, ROUNDING_MIDDLE, round_money

from .errors import FilterError
from .event import DYNAMIC_PREFIX, MISSING, EventView, Path, parse_path
from .values import (
    GoDuration,
    as_duration,
    as_number,
    as_string,
    decimal_or_error,
    to_value,
)

RSR_SEP: Final = ";"  # CGRateS's default rsr_separator
AND_SEP: Final = "&"  # separates converters, and rules of an inline attribute value
CONST_QUOTE: Final = "`"
DYN_START: Final = "<"
DYN_END: Final = ">"
CONVERTER_PREFIX: Final = "{*"
CONVERTER_SUFFIX: Final = "}"
CONVERTER_PARAM_SEP: Final = ":"
MAX_DYNAMIC_DEPTH: Final = 16  # nesting of <...>; deeper rules are refused, not recursed into
DYNAMIC_CACHE_LIMIT: Final = 1024  # rules compiled at run time, kept per dynamic expression

_SEARCH_REPLACE_SPLIT: Final = re.compile(r":s/")
# CGRateS's rulesRgxp: "<search>/<replace>/", slashes escaped with a backslash inside.
_SEARCH_REPLACE_RULE: Final = re.compile(r"(?:(.*[^\\])/(.*[^\\])*/){1,}")
_GO_NAMED_GROUP: Final = re.compile(r"\(\?<(?![=!])")
_TEMPLATE_NAME: Final = re.compile(r"[A-Za-z0-9_]+")
_MAX_GROUP_NUMBER: Final = 100_000_000  # Go's regexp.extract gives up on larger numbers

META_DURATION_SECONDS: Final = "*duration_seconds"
META_DURATION_NANOSECONDS: Final = "*duration_nanoseconds"
META_DURATION: Final = "*duration"
META_ROUND: Final = "*round"
META_MULTIPLY: Final = "*multiply"
META_DIVIDE: Final = "*divide"
_NANOS_PER_SECOND: Final = Decimal(1_000_000_000)


# ------------------------------------------------------------------------------------ regexps
@lru_cache(maxsize=4096)
def go_regex(pattern: str) -> re.Pattern[str]:
    """Compiles a Go (RE2) regexp with Python's engine, translating the syntax that differs."""
    translated = _GO_NAMED_GROUP.sub("(?P<", pattern).replace(r"\z", r"\Z")
    try:
        with warnings.catch_warnings():
            # Python warns on "[[" (a future nested-set syntax); RE2 reads it as a literal "[".
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(translated)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise FilterError(f"error parsing regexp: {exc}: `{pattern}`") from None


class _Template:
    """A Go ``Regexp.Expand`` template (``$1``, ``${1}``, ``$name``, ``$$``), parsed once."""

    __slots__ = ("pieces",)

    def __init__(self, text: str) -> None:
        # Literal text (str), a group number (int, -1 = expands to nothing), a group name (1-tuple).
        pieces: list[str | int | tuple[str]] = []
        literal: list[str] = []
        position = 0
        while position < len(text):
            char = text[position]
            if char != "$" or position + 1 == len(text):
                literal.append(char)
                position += 1
                continue
            if text[position + 1] == "$":
                literal.append("$")
                position += 2
                continue
            name, end = _template_name(text, position + 1)
            if name is None:  # malformed: "$" is kept as text, as Go does
                literal.append(char)
                position += 1
                continue
            if literal:
                pieces.append("".join(literal))
                literal = []
            number = _group_number(name)
            pieces.append((name,) if number is None else number)
            position = end
        if literal:
            pieces.append("".join(literal))
        self.pieces = tuple(pieces)

    def expand(self, match: re.Match[str]) -> str:
        out: list[str] = []
        groups = match.re.groups
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
            elif isinstance(piece, int):
                if 0 <= piece <= groups:
                    out.append(match.group(piece) or "")
            elif piece[0] in match.re.groupindex:
                out.append(match.group(piece[0]) or "")
        return "".join(out)


def _template_name(text: str, start: int) -> tuple[str | None, int]:
    """The group name after a ``$`` at ``start - 1`` and where it ends (Go's ``extract``)."""
    if text[start] == "{":
        closing = text.find("}", start + 1)
        name = text[start + 1 : closing] if closing > 0 else ""
        if not name or not _TEMPLATE_NAME.fullmatch(name):
            return None, start
        return name, closing + 1
    found = _TEMPLATE_NAME.match(text, start)
    if found is None:
        return None, start
    return found.group(), found.end()


def _group_number(name: str) -> int | None:
    if not name.isdigit() or not name.isascii():
        return None
    if len(name) > 1 and name[0] == "0":
        return -1  # Go refuses leading zeros: such a reference expands to nothing
    number = int(name)
    return number if number < _MAX_GROUP_NUMBER else -1


class SearchReplace:
    """CGRateS's ``ReSearchReplace``: on a match, the expanded template replaces the value."""

    __slots__ = ("regex", "template")

    def __init__(self, search: str, template: str) -> None:
        self.regex = go_regex(search)
        self.template = _Template(template)

    def process(self, value: str) -> str:
        match = self.regex.search(value)
        if match is None:
            return value  # no match: unaltered, so national and international numbers coexist
        return self.template.expand(match)


# --------------------------------------------------------------------------------- converters
Converter = Callable[[Any], Any]


def _round_converter(params: str) -> Converter:
    parts = params.split(CONVERTER_PARAM_SEP) if params else []
    if len(parts) > 2:
        raise FilterError(f"unsupported {META_ROUND} converter parameters: <{params}>")
    decimals = 0
    if parts:
        try:
            decimals = int(parts[0])
        except ValueError:
            raise FilterError(
                f"{META_ROUND} converter needs integer as decimals, have: <{parts[0]}>"
            ) from None
    method = parts[1] if len(parts) == 2 else ROUNDING_MIDDLE

    def convert(value: Any) -> Any:
        number = as_number(value)
        if method not in ROUNDING_METHODS:
            return number  # CGRateS's Round leaves the value alone for unknown methods
        return round_money(number, decimals, method)

    return convert


def _factor(name: str, params: str) -> Decimal:
    if not params:
        raise FilterError(f"MANDATORY_IE_MISSING: {name} converter needs a value")
    factor = decimal_or_error(params)
    if not factor.is_finite() or (name == META_DIVIDE and factor == 0):
        raise FilterError(f"invalid {name} converter value: <{params}>")
    return factor


def new_converter(definition: str) -> Converter:
    """One of CGRateS's data converters (the ones attributes and filters use)."""
    if definition == META_DURATION_SECONDS:
        return lambda value: Decimal(as_duration(value)) / _NANOS_PER_SECOND
    if definition == META_DURATION_NANOSECONDS:
        return as_duration
    if definition == META_DURATION:
        return lambda value: GoDuration(as_duration(value))
    name, _, params = definition.partition(CONVERTER_PARAM_SEP)
    if name == META_ROUND:
        return _round_converter(params)
    if name == META_MULTIPLY:
        multiplier = _factor(name, params)
        return lambda value: as_number(value) * multiplier
    if name == META_DIVIDE:
        divisor = _factor(name, params)
        return lambda value: as_number(value) / divisor
    raise FilterError(f"unsupported converter definition: <{definition}>")


def _convert(converters: tuple[Converter, ...], text: str) -> str:
    value: Any = text
    for converter in converters:
        value = converter(value)
    return as_string(value)


# -------------------------------------------------------------------------------- expressions
class Expr:
    """One compiled RSR rule. ``rules`` is its text as written."""

    __slots__ = ("rules",)

    def __init__(self, rules: str) -> None:
        self.rules = rules

    def string(self, view: EventView) -> str | None:
        """``ParseDataProvider``: the value as text, ``None`` if a field is missing."""
        raise NotImplementedError

    def raw(self, view: EventView) -> Any:
        """``DPDynamicInterface``: the field's own value (``MISSING`` if absent), or the
        constant as a typed value (comparisons read values this way)."""
        raise NotImplementedError

    def constant(self) -> str:
        """``ParseValue("")``: what ``*constant`` attributes give (field references read "")."""
        raise NotImplementedError

    @property
    def is_constant(self) -> bool:
        return False


class ConstExpr(Expr):
    __slots__ = ("_raw", "text")

    def __init__(self, rules: str, path: str, converters: tuple[Converter, ...]) -> None:
        super().__init__(rules)
        self.text = _convert(converters, path) if converters else path
        self._raw = to_value(rules)

    def string(self, view: EventView) -> str | None:
        return self.text

    def raw(self, view: EventView) -> Any:
        return self._raw

    def constant(self) -> str:
        return self.text

    @property
    def is_constant(self) -> bool:
        return True


class FieldExpr(Expr):
    __slots__ = ("converters", "path", "steps")

    def __init__(
        self,
        rules: str,
        path: Path,
        steps: tuple[SearchReplace, ...],
        converters: tuple[Converter, ...],
    ) -> None:
        super().__init__(rules)
        self.path = path
        self.steps = steps
        self.converters = converters

    def string(self, view: EventView) -> str | None:
        value = view.get(self.path)
        if value is MISSING:
            return None
        return self._finish(as_string(value))

    def raw(self, view: EventView) -> Any:
        return view.get(self.path)

    def constant(self) -> str:
        return self._finish("")

    def _finish(self, text: str) -> str:
        for step in self.steps:
            text = step.process(text)
        return _convert(self.converters, text) if self.converters else text

    @property
    def is_plain(self) -> bool:
        """A bare field reference: its value is the field's text, nothing applied."""
        return not self.steps and not self.converters


class DynamicExpr(Expr):
    """A rule with ``<...>``: the inner rules give text that completes the rule at run time."""

    __slots__ = ("_cache", "depth", "inner", "prefix", "suffix")

    def __init__(
        self, rules: str, prefix: str, inner: tuple[Expr, ...], suffix: str, depth: int
    ) -> None:
        super().__init__(rules)
        self.prefix = prefix
        self.inner = inner
        self.suffix = suffix
        self.depth = depth
        self._cache: dict[str, Expr] = {}

    def resolve(self, view: EventView) -> Expr | None:
        """The rule this one stands for with this event's values, or ``None``."""
        middle = join_string(self.inner, view)
        if middle is None:
            return None
        text = self.prefix + middle + self.suffix
        expr = self._cache.get(text)
        if expr is None:
            if len(self._cache) >= DYNAMIC_CACHE_LIMIT:
                self._cache.clear()
            expr = compile_rule(text, self.depth + 1)
            if expr is None:
                raise FilterError(f"empty RSRParser in rule: <{self.rules}>")
            self._cache[text] = expr
        return expr

    def string(self, view: EventView) -> str | None:
        expr = self.resolve(view)
        return None if expr is None else expr.string(view)

    def raw(self, view: EventView) -> Any:
        expr = self.resolve(view)
        return MISSING if expr is None else expr.raw(view)

    def constant(self) -> str:
        return ""


def join_string(exprs: Sequence[Expr], view: EventView) -> str | None:
    """Parsers concatenated (``RSRParsers.ParseDataProvider``); ``None`` if a field is missing."""
    if len(exprs) == 1:
        return exprs[0].string(view)
    out: list[str] = []
    for expr in exprs:
        text = expr.string(view)
        if text is None:
            return None
        out.append(text)
    return "".join(out)


def join_constant(exprs: Sequence[Expr]) -> str:
    return "".join(expr.constant() for expr in exprs)


# ---------------------------------------------------------------------------------- compiling
def split_rules(text: str, separator: str = RSR_SEP) -> list[str]:
    """Splits on ``separator`` except inside backquotes (which are dropped)."""
    if CONST_QUOTE not in text:
        return text.split(separator)
    if text.count(CONST_QUOTE) % 2:
        raise FilterError("Unclosed unspilit syntax")
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == CONST_QUOTE:
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def compile_rules(text: str, separator: str = RSR_SEP, depth: int = 0) -> tuple[Expr, ...]:
    """``NewRSRParsers``: ``""`` is no rules; an empty rule between separators is an error."""
    if text == "":
        return ()
    return compile_list(split_rules(text, separator), depth)


def compile_list(rules: Sequence[str], depth: int = 0) -> tuple[Expr, ...]:
    """``NewRSRParsersFromSlice``: one expression per rule, none may be empty."""
    exprs: list[Expr] = []
    for rule in rules:
        expr = compile_rule(rule, depth)
        if expr is None:
            raise FilterError(f"emtpy RSRParser in rule: <{rule}>")
        exprs.append(expr)
    return tuple(exprs)


def compile_rule(rules: str, depth: int = 0) -> Expr | None:
    """``NewRSRParser``: ``None`` for ``""``; raises ``FilterError`` for a bad rule."""
    if rules == "":
        return None
    if depth > MAX_DYNAMIC_DEPTH:
        raise FilterError(f"too deeply nested dynamic rule: <{rules}>")
    start = rules.find(DYN_START)
    if start != -1:
        end = rules.find(DYN_END, start)
        if end != -1:
            inner = compile_rules(rules[start + 1 : end], RSR_SEP, depth + 1)
            return DynamicExpr(rules, rules[:start], inner, rules[end + 1 :], depth)
    text = rules
    converters: tuple[Converter, ...] = ()
    position = text.find(CONVERTER_PREFIX)
    if position != -1:
        if not text.endswith(CONVERTER_SUFFIX):
            raise FilterError(f"invalid converter terminator in rule: <{rules}>")
        definitions = text[position + 1 : -1].split(AND_SEP)
        converters = tuple(new_converter(definition) for definition in definitions)
        text = text[:position]
    if not text.startswith(DYNAMIC_PREFIX) or len(text) == 1:
        return ConstExpr(rules, text, converters)
    pieces = _SEARCH_REPLACE_SPLIT.split(text)
    steps: list[SearchReplace] = []
    for piece in pieces[1:]:
        found = _SEARCH_REPLACE_RULE.search(piece)
        if found is None:
            raise FilterError(f"not enough members in Search&Replace, ruleStr: <{piece}>")
        steps.append(SearchReplace(found.group(1), found.group(2) or ""))
    return FieldExpr(rules, parse_path(pieces[0][1:]), tuple(steps), converters)


def join_rules(rules: Sequence[str], separator: str = RSR_SEP) -> str:
    """The text ``compile_rules`` reads back as exactly ``rules`` (backquoting any rule that
    holds the separator)."""
    parts: list[str] = []
    for rule in rules:
        if CONST_QUOTE in rule:
            raise FilterError(f"backquote inside a rule cannot be kept: <{rule}>")
        parts.append(f"{CONST_QUOTE}{rule}{CONST_QUOTE}" if separator in rule else rule)
    return separator.join(parts)
