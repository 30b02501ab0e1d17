"""Filter rules compiled for evaluation (``engine/filters.go`` ``FilterRule.Pass``).

A rule is compiled once (element and values parsed, regexps compiled, constant values gathered in
sets) and then only evaluated. Within a rule the values are OR-ed; a ``*not`` type negates the
result. A missing element fails every positive type except ``*empty`` (and ``*rsr`` with ``^$``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

from core.rating.timings import timing_covers
from core.tariffplan.filters import split_inline
from core.tariffplan.models import ActivationInterval, Timing
from core.types import UTC_ZONE

from .errors import FilterError, not_implemented
from .event import MISSING, EventView
from .rsr import Expr, FieldExpr, compile_list, compile_rule, go_regex
from .values import as_time, equal_to, greater_than, is_empty, to_value, typed

META_NOT: Final = "*not"
META_NI: Final = "*ni"  # "not indexed" variants: evaluated as the base type
META_STRING: Final = "*string"
META_PREFIX: Final = "*prefix"
META_SUFFIX: Final = "*suffix"
META_CONTAINS: Final = "*contains"
META_EXISTS: Final = "*exists"
META_EMPTY: Final = "*empty"
META_GT: Final = "*gt"
META_GTE: Final = "*gte"
META_LT: Final = "*lt"
META_LTE: Final = "*lte"
META_EQ: Final = "*eq"
META_REGEX: Final = "*regex"
META_TIMINGS: Final = "*timings"
META_DESTINATIONS: Final = "*destinations"
META_RSR: Final = "*rsr"
META_IPNET: Final = "*ipnet"
META_ACTIVATION_INTERVAL: Final = "*ai"
META_HTTP: Final = "*http"
META_APIBAN: Final = "*apiban"
META_SENTRYPEER: Final = "*sentrypeer"
HTTP_URL_SEP: Final = "#"

_EVALUATED: Final = frozenset(
    {
        META_STRING, META_PREFIX, META_SUFFIX, META_CONTAINS, META_EXISTS, META_EMPTY,
        META_GT, META_GTE, META_LT, META_LTE, META_EQ, META_REGEX, META_TIMINGS,
        META_DESTINATIONS, META_RSR, META_IPNET, META_ACTIVATION_INTERVAL,
    }
)  # fmt: skip
# Types CGRateS accepts but which need outside services: refused when evaluated, as CGRateS
# refuses types it does not implement.
_EXTERNAL: Final = frozenset({META_HTTP, META_APIBAN, META_SENTRYPEER})
_NEEDS_ELEMENT: Final = _EVALUATED | {META_APIBAN, META_SENTRYPEER}
_NEEDS_VALUES: Final = _NEEDS_ELEMENT - {META_EXISTS, META_EMPTY}
_NI_TYPES: Final = frozenset({"*nistring", "*niprefix", "*nisuffix", "*niexists"})
_GREATER: Final = frozenset({META_GT, META_GTE})
_OR_EQUAL: Final = frozenset({META_GTE, META_LT})  # *lt is "not >=", *lte is "not >"

DestinationLookup = Callable[[str], Collection[str]]


def _no_destinations(number: str) -> Collection[str]:
    return ()


@dataclass(frozen=True, slots=True)
class FilterEnv:
    """What rules consult besides the event: the live tariff plan's timings and destinations."""

    destination_ids_for: DestinationLookup = _no_destinations
    timings: Mapping[str, Timing] | None = None
    timezone: tzinfo = UTC_ZONE


EMPTY_ENV: Final = FilterEnv()


# ------------------------------------------------------------------------------------- rules
class Rule:
    """A compiled rule. ``passes`` is the only method callers use."""

    __slots__ = ("element", "negative", "type", "values")

    def __init__(self, rule_type: str, element: Expr | None, negative: bool) -> None:
        self.type = rule_type
        self.element = element
        self.negative = negative

    def passes(self, view: EventView, env: FilterEnv) -> bool:
        return self.check(view, env) != self.negative

    def check(self, view: EventView, env: FilterEnv) -> bool:
        raise NotImplementedError

    def _element_string(self, view: EventView) -> str | None:
        assert self.element is not None
        return self.element.string(view)


class _ValuesRule(Rule):
    """Rules whose values are RSR expressions; constant values are kept apart for speed."""

    __slots__ = ("constants", "dynamic")

    def __init__(
        self, rule_type: str, element: Expr, negative: bool, values: tuple[Expr, ...]
    ) -> None:
        super().__init__(rule_type, element, negative)
        self.constants = tuple(value.constant() for value in values if value.is_constant)
        self.dynamic = tuple(value for value in values if not value.is_constant)

    def dynamic_values(self, view: EventView) -> list[str]:
        found: list[str] = []
        for expr in self.dynamic:
            try:
                text = expr.string(view)
            except FilterError:
                continue  # CGRateS skips a value it cannot parse
            if text is not None:
                found.append(text)
        return found


class StringRule(_ValuesRule):
    __slots__ = ("constant_set",)

    def __init__(
        self, rule_type: str, element: Expr, negative: bool, values: tuple[Expr, ...]
    ) -> None:
        super().__init__(rule_type, element, negative, values)
        self.constant_set = frozenset(self.constants)

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        if text in self.constant_set:
            return True
        return bool(self.dynamic) and text in self.dynamic_values(view)


class PrefixRule(_ValuesRule):
    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        if text.startswith(self.constants):
            return True
        return bool(self.dynamic) and text.startswith(tuple(self.dynamic_values(view)))


class SuffixRule(_ValuesRule):
    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        if text.endswith(self.constants):
            return True
        return bool(self.dynamic) and text.endswith(tuple(self.dynamic_values(view)))


class ContainsRule(_ValuesRule):
    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        if any(value in text for value in self.constants):
            return True
        return any(value in text for value in self.dynamic_values(view))


class ExistsRule(Rule):
    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        assert self.element is not None
        return self.element.raw(view) is not MISSING


class EmptyRule(Rule):
    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        assert self.element is not None
        value = self.element.raw(view)
        return value is MISSING or is_empty(value)


class CompareRule(Rule):
    """``*gt *gte *lt *lte *eq``: numbers (exact), durations and times, as CGRateS compares."""

    __slots__ = ("exprs", "greater", "or_equal")

    def __init__(
        self, rule_type: str, element: Expr, negative: bool, values: tuple[Expr, ...]
    ) -> None:
        super().__init__(rule_type, element, negative)
        self.exprs = values
        self.greater = rule_type in _GREATER
        self.or_equal = rule_type in _OR_EQUAL

    def check(self, view: EventView, env: FilterEnv) -> bool:
        assert self.element is not None
        field = self.element.raw(view)
        if field is MISSING:
            return False
        field = typed(field, env.timezone)
        for expr in self.exprs:
            other = expr.raw(view)
            if other is MISSING:
                continue
            other = typed(other, env.timezone)
            if self.type == META_EQ:
                if equal_to(field, other):
                    return True
            elif greater_than(field, other, self.or_equal) == self.greater:
                return True
        return False


class RegexRule(Rule):
    __slots__ = ("patterns",)

    def __init__(self, rule_type: str, element: Expr, negative: bool, values: tuple[str, ...]):
        super().__init__(rule_type, element, negative)
        self.patterns = tuple(go_regex(value) for value in values)

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        return any(pattern.search(text) for pattern in self.patterns)


class _RSRFilter:
    """One ``*rsr`` value (``utils.RSRFilter``): ``~regexp``, ``^exact$``, ``^prefix``,
    ``suffix$``, ``^$`` (empty), ``>=n``/``<=n``/``>n``/``<n``, else "contains"; ``!`` negates."""

    __slots__ = ("argument", "kind", "negative", "pattern", "rule")

    def __init__(self, text: str) -> None:
        self.negative = text.startswith("!")
        rule = text[1:] if self.negative else text
        self.rule = rule
        self.pattern = go_regex(rule[1:]) if rule.startswith("~") else None
        self.kind, self.argument = _rsr_kind(rule)

    def passes(self, value: str) -> bool:
        kind, argument = self.kind, self.argument
        if kind == "":
            return not self.negative
        if self.pattern is not None:
            result = self.pattern.search(value) is not None
        elif kind == "^$":
            result = value == ""
        elif kind == "^$x":
            result = value == argument
        elif kind == "^":
            result = value.startswith(argument)
        elif kind == "$":
            result = value.endswith(argument)
        elif kind in (">=", ">", "<=", "<"):
            try:
                if kind[0] == ">":
                    result = greater_than(to_value(value), to_value(argument), kind == ">=")
                else:
                    result = greater_than(to_value(argument), to_value(value), kind == "<=")
            except FilterError:
                return False  # CGRateS logs the comparison error and fails the value
        else:
            result = argument in value
        return result != self.negative


def _rsr_kind(rule: str) -> tuple[str, str]:
    if rule == "":
        return "", ""
    if rule.startswith("~"):
        return "~", rule[1:]
    if rule == "^$":
        return "^$", ""
    if rule.startswith("^"):
        if rule.endswith("$"):
            return "^$x", rule[1:-1]
        return "^", rule[1:]
    if rule.endswith("$"):
        return "$", rule[:-1]
    for operator in (">=", "<="):
        if len(rule) > len(operator) and rule.startswith(operator):
            return operator, rule[len(operator) :]
    if rule[0] in "><":
        return rule[0], rule[1:]
    return "contains", rule


class RSRRule(Rule):
    __slots__ = ("filters", "matches_missing")

    def __init__(self, rule_type: str, element: Expr, negative: bool, values: tuple[str, ...]):
        super().__init__(rule_type, element, negative)
        self.filters = tuple(_RSRFilter(value) for value in values)
        # A missing field passes only a rule set that asks for an empty value.
        self.matches_missing = "".join(f.rule for f in self.filters) == "^$"

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return self.matches_missing
        return not self.filters or any(f.passes(text) for f in self.filters)


class TimingsRule(_ValuesRule):
    """``*timings``: the element's time falls in one of the named Timings."""

    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        assert self.element is not None
        value = self.element.raw(view)
        if value is MISSING:
            return False
        if not isinstance(value, datetime):
            value = self._element_string(view)
        moment = as_time(value, env.timezone)
        timings = env.timings or {}
        for timing_id in (*self.constants, *self.dynamic_values(view)):
            timing = timings.get(timing_id)
            if timing is not None and timing_covers(timing, moment):
                return True
        return False


class DestinationsRule(_ValuesRule):
    """``*destinations``: one of the number's prefixes belongs to a named destination."""

    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        number = self._element_string(view)
        if number is None:
            return False
        ids = env.destination_ids_for(number)
        if not ids:
            return False
        return any(dest_id in ids for dest_id in (*self.constants, *self.dynamic_values(view)))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _network(text: str) -> Network | None:
    if "/" not in text:
        return None  # Go's ParseCIDR needs the prefix length
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # Go keeps IPv4 addresses in the v4-mapped form
    return address


class IPNetRule(_ValuesRule):
    __slots__ = ("networks",)

    def __init__(
        self, rule_type: str, element: Expr, negative: bool, values: tuple[Expr, ...]
    ) -> None:
        super().__init__(rule_type, element, negative, values)
        self.networks = tuple(n for n in map(_network, self.constants) if n is not None)

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        address = _address(text)
        if address is None:
            return False
        networks = list(self.networks)
        networks.extend(n for n in map(_network, self.dynamic_values(view)) if n is not None)
        return any(
            address.version == network.version and address in network for network in networks
        )


class ActivationRule(Rule):
    """``*ai``: the element's time is after the first value and, if given, before the second
    (``|end`` alone: only before the end)."""

    __slots__ = ("end", "start")

    def __init__(
        self, rule_type: str, element: Expr, negative: bool, values: tuple[str, ...]
    ) -> None:
        super().__init__(rule_type, element, negative)
        if len(values) > 2:
            raise FilterError(f"too many values for {META_ACTIVATION_INTERVAL}: {len(values)}")
        self.start = compile_rule(values[0])
        self.end = compile_rule(values[1]) if len(values) == 2 else None
        if self.start is None and self.end is None:
            raise FilterError(f"Values is mandatory for Type: {rule_type}")

    def check(self, view: EventView, env: FilterEnv) -> bool:
        text = self._element_string(view)
        if text is None:
            return False
        moment = as_time(text, env.timezone)
        if self.end is not None:
            end = self.end.string(view)
            if end is None or not moment < as_time(end, env.timezone):
                return False
        if self.start is None:
            return True
        start = self.start.string(view)
        return start is not None and as_time(start, env.timezone) < moment


class ExternalRule(Rule):
    """A type that needs a service we do not run (``*http#url``, ``*apiban``...)."""

    __slots__ = ()

    def check(self, view: EventView, env: FilterEnv) -> bool:
        raise not_implemented(self.type)


# --------------------------------------------------------------------------------- compiling
def base_type(rule_type: str) -> tuple[str, bool]:
    """``*notprefix`` -> (``*prefix``, negated); ``*nistring`` -> (``*string``, not negated)."""
    if rule_type in _NI_TYPES:
        return "*" + rule_type[len(META_NI) :], False
    if rule_type.startswith(META_NOT):
        return "*" + rule_type[len(META_NOT) :], True
    if rule_type.startswith(META_HTTP + HTTP_URL_SEP):
        return META_HTTP, False
    return rule_type, False


_VALUE_RULES: Final[dict[str, type[_ValuesRule]]] = {
    META_STRING: StringRule,
    META_PREFIX: PrefixRule,
    META_SUFFIX: SuffixRule,
    META_CONTAINS: ContainsRule,
    META_TIMINGS: TimingsRule,
    META_DESTINATIONS: DestinationsRule,
    META_IPNET: IPNetRule,
}


def compile_rule_parts(rule_type: str, element: str, values: tuple[str, ...]) -> Rule:
    """``NewFilterRule``: checks and compiles one rule; raises ``FilterError`` with CGRateS's
    texts (``Unsupported filter Type: *x``, ``Element is mandatory for Type: *x`` ...)."""
    base, negative = base_type(rule_type)
    if base not in _EVALUATED and base not in _EXTERNAL:
        raise FilterError(f"Unsupported filter Type: {rule_type}")
    if not element and base in _NEEDS_ELEMENT:
        raise FilterError(f"Element is mandatory for Type: {rule_type}")
    if not values and base in _NEEDS_VALUES:
        raise FilterError(f"Values is mandatory for Type: {rule_type}")
    parsed = compile_rule(element)
    if base in _EXTERNAL:
        return ExternalRule(rule_type, parsed, negative)
    if parsed is None:
        raise FilterError(f"empty RSRParser in rule: <{element}>")
    if base == META_EXISTS:
        return ExistsRule(base, parsed, negative)
    if base == META_EMPTY:
        return EmptyRule(base, parsed, negative)
    if base == META_REGEX:
        return RegexRule(base, parsed, negative, values)
    if base == META_RSR:
        return RSRRule(base, parsed, negative, values)
    if base == META_ACTIVATION_INTERVAL:
        return ActivationRule(base, parsed, negative, values)
    exprs = compile_list(values)
    if base in _VALUE_RULES:
        return _VALUE_RULES[base](base, parsed, negative, exprs)
    return CompareRule(base, parsed, negative, exprs)


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter profile (or one inline filter) ready to evaluate: its rules are AND-ed."""

    tenant: str
    id: str
    rules: tuple[Rule, ...]
    activation: ActivationInterval | None = None

    def rules_pass(self, view: EventView, env: FilterEnv) -> bool:
        return all(rule.passes(view, env) for rule in self.rules)


def is_active(interval: ActivationInterval, moment: datetime) -> bool:
    """CGRateS's ``IsActiveAtTime``: strictly after activation and strictly before expiry."""
    start, end = interval.activation_time, interval.expiry_time
    return (start is None or start < moment) and (end is None or end > moment)


def compile_inline(filter_id: str) -> CompiledFilter:
    """An inline filter ``*type:element:v1|v2`` (``NewFilterFromInline``)."""
    try:
        parts = split_inline(filter_id)
    except (ValueError, RecursionError):
        parts = None
    if parts is None:
        raise FilterError(f"inline parse error for string: <{filter_id}>")
    return CompiledFilter("", filter_id, (compile_rule_parts(*parts),))


def plain_field(rule: Rule) -> FieldExpr | None:
    """The element when it is a bare field reference (what profile indexes can key on)."""
    element = rule.element
    if isinstance(element, FieldExpr) and element.is_plain:
        return element
    return None
