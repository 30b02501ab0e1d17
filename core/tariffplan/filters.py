"""Static checks of CGRateS filter rules: Filters.csv rows and inline ``*type:element:values``."""

from __future__ import annotations

from typing import Final

META_PREFIX: Final = "*"
META_NOT: Final = "*not"
META_HTTP: Final = "*http"
META_DESTINATIONS: Final = "*destinations"
META_NOT_DESTINATIONS: Final = "*notdestinations"
DESTINATION_FILTER_TYPES: Final = frozenset({META_DESTINATIONS, META_NOT_DESTINATIONS})
INLINE_SEP: Final = ":"  # CGRateS InInFieldSep
INLINE_VALUES_SEP: Final = "|"  # values inside an inline filter
VALUES_SEP: Final = ";"  # values inside a Filters.csv row
DYNAMIC_START: Final = "<"
DYNAMIC_END: Final = ">"
INDEX_START: Final = "["
INDEX_END: Final = "]"

# engine/filters.go supportedFiltersType / needsFieldName / needsValues.
_NEEDS_ELEMENT_AND_VALUES: Final = frozenset(
    {
        "*string",
        "*contains",
        "*prefix",
        "*suffix",
        "*timings",
        "*rsr",
        "*destinations",
        "*lt",
        "*lte",
        "*gt",
        "*gte",
        "*eq",
        "*ipnet",
        "*apiban",
        "*sentrypeer",
        "*ai",
        "*regex",
    }
)
_NEEDS_ELEMENT_ONLY: Final = frozenset({"*empty", "*exists"})
SUPPORTED_TYPES: Final = _NEEDS_ELEMENT_AND_VALUES | _NEEDS_ELEMENT_ONLY | {META_HTTP}
# "not in" variants CGRateS evaluates as well.
_NI_TYPES: Final = frozenset({"*nistring", "*niprefix", "*niexists", "*nisuffix"})


def base_type(rule_type: str) -> str:
    """``*notstring`` -> ``*string``, ``*http#url`` -> ``*http``; others unchanged."""
    if rule_type in _NI_TYPES:
        return META_PREFIX + rule_type[len("*ni") :]
    if rule_type.startswith(META_NOT):
        return META_PREFIX + rule_type[len(META_NOT) :]
    if rule_type.startswith(META_HTTP):
        return META_HTTP
    return rule_type


def check_filter_rule(rule_type: str, element: str, values: tuple[str, ...]) -> str | None:
    """Why a rule would be refused by CGRateS's ``NewFilterRule``, or ``None``."""
    base = base_type(rule_type)
    if base not in SUPPORTED_TYPES:
        return f"unsupported filter type {rule_type!r}"
    if not element and base in _NEEDS_ELEMENT_AND_VALUES | _NEEDS_ELEMENT_ONLY:
        return f"element is mandatory for filter type {rule_type!r}"
    if not values and base in _NEEDS_ELEMENT_AND_VALUES:
        return f"values are mandatory for filter type {rule_type!r}"
    return None


def is_inline(filter_id: str) -> bool:
    """Inline filters start with ``*``; anything else is the ID of a Filters.csv profile."""
    return filter_id.startswith(META_PREFIX)


def split_inline(filter_id: str) -> tuple[str, str, tuple[str, ...]] | None:
    """``*type:element:v1|v2`` -> parts (``:`` inside ``[...]`` does not split), ``None`` if bad."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(filter_id):
        if char == INDEX_START:
            depth += 1
        elif char == INDEX_END:
            depth -= 1
        elif char == INLINE_SEP and depth == 0:
            parts.append(filter_id[start:index])
            start = index + 1
            if len(parts) == 2:
                break
    if len(parts) != 2:
        return None
    rest = filter_id[start:]
    values = tuple(split_dynamic(rest, INLINE_VALUES_SEP)) if rest else ()
    return parts[0], parts[1], values


def check_filter_ids(filter_ids: tuple[str, ...]) -> list[str]:
    """Problems with the inline filters among ``filter_ids`` (references are checked later)."""
    problems: list[str] = []
    for filter_id in filter_ids:
        if not is_inline(filter_id):
            continue
        parts = split_inline(filter_id)
        if parts is None:
            problems.append(f"inline filter {filter_id!r}: expected *type:element:values")
            continue
        problem = check_filter_rule(*parts)
        if problem:
            problems.append(f"inline filter {filter_id!r}: {problem}")
    return problems


def split_filter_values(text: str) -> list[str]:
    """Filters.csv Values: ``;``-separated, except inside ``<...>`` dynamic parts."""
    return split_dynamic(text, VALUES_SEP)


def split_dynamic(text: str, separator: str) -> list[str]:
    if DYNAMIC_START not in text:
        return text.split(separator)
    result: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == DYNAMIC_START:
            depth += 1
        elif char == DYNAMIC_END and depth:
            depth -= 1
        elif char == separator and depth == 0:
            result.append(text[start:index])
            start = index + 1
    result.append(text[start:])
    return result
