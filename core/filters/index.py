"""Candidate selection for profile matching, as CGRateS's filter indexes do it.

Matching every profile's filters against every event does not scale to thousands of profiles
(number mappings, per-account attributes). A profile whose filters include a positive ``*string``
rule on a bare field with constant values (``*string:~*req.Account:1001|1002``, inline or in an
always-active stored filter) can only match events whose field has one of those values: it is
indexed under them. An event's candidates are then the profiles indexed under its field values,
plus the profiles with no such rule. Candidates are still matched in full; the index only skips
profiles that cannot match. Candidates come out in the order the profiles were given (priority).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Generic, TypeVar

from core.tariffplan.filters import is_inline, split_inline
from core.tariffplan.models import FilterProfile, tenant_key

from .errors import FilterError
from .event import MISSING, EventView, Path
from .rsr import ConstExpr, FieldExpr, compile_rule
from .values import as_string

META_STRING: Final = "*string"

Item = TypeVar("Item")


def _string_condition(
    rule_type: str, element: str, values: Iterable[str]
) -> tuple[Path, frozenset[str]] | None:
    if rule_type != META_STRING:
        return None
    try:
        field = compile_rule(element)
        constants = [compile_rule(value) for value in values]
    except FilterError:
        return None
    if not isinstance(field, FieldExpr) or not field.is_plain or not constants:
        return None
    texts: set[str] = set()
    for constant in constants:
        if not isinstance(constant, ConstExpr) or constant.text != constant.rules:
            return None  # converters or dynamic parts: the value is not known up front
        texts.add(constant.text)
    return field.path, frozenset(texts)


def string_condition(
    tenant: str, filter_ids: Iterable[str], stored: Mapping[str, FilterProfile]
) -> tuple[Path, frozenset[str]] | None:
    """A ``(field path, values)`` condition every event matching ``filter_ids`` satisfies."""
    for filter_id in filter_ids:
        if is_inline(filter_id):
            parts = split_inline(filter_id)
            if parts is not None:
                found = _string_condition(*parts)
                if found is not None:
                    return found
            continue
        profile = stored.get(tenant_key(tenant, filter_id))
        if profile is None or profile.activation_interval is not None:
            continue  # an inactive filter is skipped when matching: its rules are not required
        for rule in profile.rules:
            found = _string_condition(rule.type, rule.element, rule.values)
            if found is not None:
                return found
    return None


class CandidateIndex(Generic[Item]):
    """Items in priority order, indexed by one ``*string`` condition each where they have one."""

    __slots__ = ("_by_path", "_items", "_unindexed")

    def __init__(
        self,
        entries: Sequence[tuple[Item, str, tuple[str, ...]]],
        stored: Mapping[str, FilterProfile],
    ) -> None:
        """``entries``: ``(item, tenant, filter_ids)`` in priority order."""
        self._items: tuple[Item, ...] = tuple(item for item, _, _ in entries)
        self._by_path: dict[Path, dict[str, list[int]]] = {}
        unindexed: list[int] = []
        for position, (_, tenant, filter_ids) in enumerate(entries):
            condition = string_condition(tenant, filter_ids, stored)
            if condition is None:
                unindexed.append(position)
                continue
            path, values = condition
            table = self._by_path.setdefault(path, {})
            for value in values:
                table.setdefault(value, []).append(position)
        self._unindexed = tuple(unindexed)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[Item, ...]:
        return self._items

    def candidates(self, view: EventView) -> Sequence[Item]:
        """The items that may match ``view``, in priority order."""
        if not self._by_path:
            return self._items
        positions: set[int] = set(self._unindexed)
        for path, table in self._by_path.items():
            value = view.get(path)
            if value is MISSING:
                continue
            hit = table.get(as_string(value))
            if hit:
                positions.update(hit)
        items = self._items
        return [items[position] for position in sorted(positions)]
