"""Template fields: parsed once, then evaluated and written into the request's trees."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.filters import Filter, parse_filter
from agents.templating.layouts import compile_layout
from agents.templating.paths import Path, as_text, parse_path
from agents.templating.trees import ReplyTree, RequestTree
from agents.templating.values import Value, parse_value
from core.types import (
    ROUNDING_MIDDLE,
    InvalidValue,
    format_duration,
    format_time,
    money_str,
    parse_duration,
    parse_time,
    round_money,
    to_money,
    zone,
)

# Field types.
CONSTANT: Final = "*constant"
VARIABLE: Final = "*variable"
COMPOSED: Final = "*composed"
GROUP: Final = "*group"
FILLER: Final = "*filler"
USAGE_DIFFERENCE: Final = "*usage_difference"
CC_USAGE: Final = "*cc_usage"
SUM: Final = "*sum"
DIFFERENCE: Final = "*difference"
MULTIPLY: Final = "*multiply"
DIVIDE: Final = "*divide"
VALUE_EXPONENT: Final = "*value_exponent"
UNIX_TIMESTAMP: Final = "*unix_timestamp"
DATETIME: Final = "*datetime"
TEMPLATE: Final = "*template"
REMOVE: Final = "*remove"
REMOVE_ALL: Final = "*removeall"
NONE: Final = "*none"
FIELD_TYPES: Final = frozenset({
    CONSTANT, VARIABLE, COMPOSED, GROUP, FILLER, USAGE_DIFFERENCE, CC_USAGE, SUM, DIFFERENCE,
    MULTIPLY, DIVIDE, VALUE_EXPONENT, UNIX_TIMESTAMP, DATETIME, TEMPLATE, REMOVE, REMOVE_ALL,
    NONE,
})  # fmt: skip
# Types whose value is formatted to `width` (CGRateS's StringTmplType).
STRING_TYPES: Final = frozenset({CONSTANT, VARIABLE, COMPOSED, GROUP, FILLER})
# Number of `;` segments a type needs (CGRateS's ParseAttribute).
SEGMENT_COUNTS: Final = {USAGE_DIFFERENCE: 2, CC_USAGE: 3, VALUE_EXPONENT: 2}
FIELD_KEYS: Final = frozenset({
    "tag", "path", "type", "value", "filters", "mandatory", "blocker", "new_branch", "layout",
    "timezone", "width", "strip", "padding", "attribute_id",
})  # fmt: skip
PAD_LEFT: Final = "*left"
PAD_RIGHT: Final = "*right"
PAD_ZERO_LEFT: Final = "*zeroleft"
PADDINGS: Final = frozenset({"", PAD_LEFT, PAD_RIGHT, PAD_ZERO_LEFT})
STRIPS: Final = frozenset({"", PAD_LEFT, PAD_RIGHT})
# CGRateS's general.rounding_decimals default, used by *value_exponent.
ROUNDING_DECIMALS: Final = 5


@dataclass(frozen=True, slots=True)
class Field:
    tag: str
    type: str
    path: Path | None
    value: Value
    filters: tuple[Filter, ...] = ()
    mandatory: bool = False
    blocker: bool = False
    new_branch: bool = False
    timezone: str = ""
    width: int = 0
    strip: str = ""
    padding: str = ""
    format_time: Callable[[datetime], str] | None = None
    # Derived at construction: the field's value as one closure ``(trees, timezone)``.
    evaluator: Evaluator = dataclass_field(init=False, repr=False, compare=False)
    # Derived at construction: the value of a text field (no timezone needed), else None.
    reader: Reader | None = dataclass_field(init=False, repr=False, compare=False)
    # Derived at construction: writes an evaluated value into the target tree (as ``write``).
    writer: Writer = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        reader = _compile_reader(self)
        object.__setattr__(self, "reader", reader)
        object.__setattr__(self, "evaluator", _evaluator(self, reader))
        object.__setattr__(self, "writer", _compile_writer(self))


Evaluator = Callable[[Mapping[str, RequestTree], str], Any]
Reader = Callable[[Mapping[str, RequestTree]], Any]
Writer = Callable[[ReplyTree, Any], None]


def _evaluator(item: Field, reader: Reader | None) -> Evaluator:
    if reader is None:
        return lambda trees, timezone: evaluate(item, trees, timezone)
    return lambda trees, timezone: reader(trees)


def plain_set(item: Field) -> bool:
    """Whether writing the field is a plain ``set`` (no index, no new branch: most fields)."""
    path = item.path
    return not (
        path is None
        or item.type in (GROUP, COMPOSED)
        or item.new_branch
        or path.indexes is not None
        or not path.names
    )


def top_name(item: Field) -> str | None:
    """The element a plain ``set`` of a top-level leaf writes (``tree.nodes[name] = [value]``),
    None for any other write."""
    if not plain_set(item):
        return None
    assert item.path is not None
    return item.path.names[0] if len(item.path.names) == 1 else None


def _compile_writer(item: Field) -> Writer:
    """``write`` for this field; a plain ``set`` walks the tree directly."""
    path = item.path
    if path is None or not plain_set(item):
        return lambda tree, value: write(item, tree, value)
    *parents, name = path.names
    if not parents:

        def set_top(tree: ReplyTree, value: Any) -> None:
            tree.nodes[name] = [value]

        return set_top

    def set_nested(tree: ReplyTree, value: Any) -> None:
        # As ReplyTree.set: into the last instance of each group, a new one when none is.
        node = tree.nodes
        for parent in parents:
            instances = node.setdefault(parent, [])
            if not instances or not isinstance(instances[-1], dict):
                instances.append({})
            node = instances[-1]
        node[name] = [value]

    return set_nested


def _compile_reader(item: Field) -> Reader | None:
    """Text fields read their value expression directly (a constant is computed once); the
    other types (None here) go through ``evaluate``. Errors are those of ``evaluate``, except
    that a ValueError/ArithmeticError of a text field is not wrapped in FieldValueError."""
    if item.type not in STRING_TYPES:
        return None
    text_of = item.value.text_of
    if item.value.is_constant:
        try:
            constant = _fit(item, text_of({}))
        except FieldValueError:
            pass  # raised per request, as before
        else:
            return lambda trees: constant
    if item.width == 0:
        return text_of
    return lambda trees: _fit(item, text_of(trees))


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A ``*template`` field before resolution: inlined by the loader."""

    tag: str
    name: str
    filters: tuple[Filter, ...]


def parse_field(
    raw: Any, readable: frozenset[str], writable: frozenset[str]
) -> Field | TemplateRef:
    """Parses one field definition; TemplateError names the field's tag."""
    if not isinstance(raw, Mapping):
        raise TemplateError(f"a field must be a mapping, not {type(raw).__name__}")
    tag = str(raw.get("tag") or raw.get("path") or "")
    try:
        return _parse_field(raw, tag, readable, writable)
    except TemplateError as exc:
        raise exc.located(field=tag) from None


def _parse_field(
    raw: Mapping[str, Any], tag: str, readable: frozenset[str], writable: frozenset[str]
) -> Field | TemplateRef:
    unknown = set(raw) - FIELD_KEYS
    if unknown:
        raise TemplateError(f"unknown field keys {sorted(unknown)}")
    kind = raw.get("type", VARIABLE)
    if kind not in FIELD_TYPES:
        raise TemplateError(f"unknown field type {kind!r}")
    filters = tuple(parse_filter(text) for text in _strings(raw.get("filters"), "filters"))
    for flt in filters:
        _check_roots([seg.path for seg in (flt.element,) if seg.path], readable)
    if kind == TEMPLATE:
        name = raw.get("value")
        if not isinstance(name, str) or not name:
            raise TemplateError("*template needs the template name as value")
        return TemplateRef(tag, name, filters)
    path: Path | None = None
    path_text = raw.get("path")
    if kind != NONE:
        if not isinstance(path_text, str) or not path_text:
            raise TemplateError(f"{kind} needs a path")
        path = parse_path(path_text, writable=True, allow_root_only=kind == REMOVE_ALL)
        if path.root not in writable:
            raise TemplateError(f"cannot write to {path.root} (writable: {sorted(writable)})")
    value_text = raw.get("value", "")
    if value_text is None:
        value_text = ""
    if not isinstance(value_text, str):
        value_text = as_text(value_text)  # YAML turns 2001 into an int; CGRateS values are text
    value = parse_value(value_text)
    _check_roots(value.paths(), readable)
    if kind in (CONSTANT, FILLER) and not value.is_constant:
        raise TemplateError(f"{kind} value cannot reference a tree; use *variable")
    expected = SEGMENT_COUNTS.get(kind)
    if expected is not None and len(value.segments) != expected:
        raise TemplateError(f"{kind} needs {expected} ;-separated values")
    if kind in (SUM, DIFFERENCE, MULTIPLY, DIVIDE) and not value.segments:
        raise TemplateError(f"{kind} needs values")
    width = raw.get("width", 0) or 0
    if not isinstance(width, int) or isinstance(width, bool) or width < 0:
        raise TemplateError("width must be a non-negative integer")
    strip = str(raw.get("strip", "") or "")
    padding = str(raw.get("padding", "") or "")
    if kind == FILLER:
        padding = PAD_RIGHT
    if strip not in STRIPS or padding not in PADDINGS:
        raise TemplateError(f"bad strip {strip!r} or padding {padding!r}")
    timezone = str(raw.get("timezone", "") or "")
    if timezone:
        try:
            zone(timezone)
        except InvalidValue as exc:
            raise TemplateError(str(exc)) from None
    layout = raw.get("layout", "")
    formatter = compile_layout(str(layout or "")) if kind == DATETIME else None
    return Field(
        tag,
        kind,
        path,
        value,
        filters,
        mandatory=_bool(raw, "mandatory"),
        blocker=_bool(raw, "blocker"),
        new_branch=_bool(raw, "new_branch"),
        timezone=timezone,
        width=width,
        strip=strip,
        padding=padding,
        format_time=formatter,
    )


def _check_roots(paths: list[Path], readable: frozenset[str]) -> None:
    for path in paths:
        if path.root not in readable:
            raise TemplateError(f"unknown tree {path.root} in {path.text!r}")


def _bool(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise TemplateError(f"{key} must be true or false")
    return value


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TemplateError(f"{key} must be a list of strings")
    return value


# ------------------------------------------------------------------------------- evaluating
class FieldValueError(ValueError):
    """A field's value could not be computed (bad number, time, duration ...)."""


def evaluate(field: Field, trees: Mapping[str, RequestTree], timezone: str) -> Any:
    """The field's value; NotFoundError when a referenced path is missing."""
    kind = field.type
    value = field.value
    try:
        if kind in STRING_TYPES:
            return _fit(field, value.text_of(trees))
        texts = [segment.text_of(trees) for segment in value.segments]
        tz = zone(field.timezone or timezone)
        if kind == USAGE_DIFFERENCE:
            end, start = parse_time(texts[0], tz), parse_time(texts[1], tz)
            return format_duration(_nanoseconds(end - start))
        if kind == CC_USAGE:
            return _cc_usage(texts)
        if kind in (SUM, DIFFERENCE, MULTIPLY, DIVIDE):
            return _arithmetic(kind, texts, tz)
        if kind == VALUE_EXPONENT:
            number = to_money(texts[0])
            exponent = int(texts[1])
            return money_str(
                round_money(number.scaleb(exponent), ROUNDING_DECIMALS, ROUNDING_MIDDLE)
            )
        moment = parse_time("".join(texts), tz)
        if kind == UNIX_TIMESTAMP:
            return str(int(moment.timestamp()))
        assert field.format_time is not None  # DATETIME
        return field.format_time(moment)
    except NotFoundError:
        raise
    except (InvalidValue, ValueError, ArithmeticError) as exc:
        raise FieldValueError(str(exc)) from None


def _nanoseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _cc_usage(texts: list[str]) -> int:
    """Diameter CC usage: used time plus one debit interval per update already granted
    (CC-Request-Number counts from 0 at the initial request), in nanoseconds."""
    try:
        request_number = int(texts[0])
    except ValueError:
        raise FieldValueError(f"invalid requestNumber {texts[0]!r} to *cc_usage") from None
    used = parse_duration(texts[1])
    interval = parse_duration(texts[2])
    return used + interval * max(request_number - 1, 0)


def _arithmetic(kind: str, texts: list[str], tz: Any) -> Any:
    """*sum/*difference/*multiply/*divide over numbers (Decimal) or durations; a
    *difference may start from a time (time minus durations)."""
    numbers = [_as_number(text) for text in texts]
    if all(number is not None for number in numbers):
        values = [number for number in numbers if number is not None]
        result = values[0]
        for item in values[1:]:
            if kind == SUM:
                result += item
            elif kind == DIFFERENCE:
                result -= item
            elif kind == MULTIPLY:
                result *= item
            else:
                result /= item
        return money_str(result)
    if kind == DIFFERENCE and _as_duration(texts[0]) is None:
        moment = parse_time(texts[0], tz)
        for text in texts[1:]:
            moment = moment - _timedelta(parse_duration(text))
        return format_time(moment)
    durations = [parse_duration(text) for text in texts]
    total = durations[0]
    for amount in durations[1:]:
        if kind == SUM:
            total += amount
        elif kind == DIFFERENCE:
            total -= amount
        elif kind == MULTIPLY:
            total *= amount
        else:
            total //= amount
    return total


def _as_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _as_duration(text: str) -> int | None:
    try:
        return parse_duration(text)
    except InvalidValue:
        return None


def _timedelta(nanoseconds: int) -> timedelta:
    return timedelta(microseconds=nanoseconds // 1_000)


def _fit(field: Field, text: str) -> str:
    """CGRateS's FmtFieldWidth: strip or pad ``text`` to the field's width."""
    width = field.width
    if width == 0:
        return text
    if len(text) > width:
        if field.strip == PAD_RIGHT:
            return text[:width]
        if field.strip == PAD_LEFT:
            return text[len(text) - width :]
        raise FieldValueError(f"value {text!r} longer than width {width}")
    if field.padding == PAD_LEFT:
        return text.rjust(width)
    if field.padding == PAD_RIGHT:
        return text.ljust(width)
    if field.padding == PAD_ZERO_LEFT:
        return text.rjust(width, "0")
    return text


def write(field: Field, tree: ReplyTree, value: Any) -> None:
    """Writes an evaluated value as the field's type wants (set, append, compose)."""
    assert field.path is not None
    path = field.path
    if field.type == GROUP:
        tree.append(path.names, value, new_branch=field.new_branch, indexes=path.indexes)
    elif field.type == COMPOSED:
        tree.compose(path.names, str(value), new_branch=field.new_branch, indexes=path.indexes)
    else:
        tree.set(path.names, value, new_branch=field.new_branch, indexes=path.indexes)
