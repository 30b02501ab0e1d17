"""FilterS: stored filter profiles and inline filters, compiled once, evaluated per event.

``FilterService`` is a ``PlanListener``: each load compiles the plan's filter profiles off to the
side and the commit switches them in with the plan's timings. Inline filters
(``*string:~*req.Account:1001``) are compiled on first use and cached.

``passes(tenant, filter_ids, view)`` is CGRateS's ``FilterS.Pass``: every filter must pass (rules
of a profile AND-ed, values of a rule OR-ed); an unknown ID is ``FilterError("NOT_FOUND:<id>")``;
a profile outside its ActivationInterval *now* is skipped (CGRateS checks filter profiles against
the current time, not the event's), and if every filter was skipped the event does not pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime
from typing import Final, Protocol

from core.tariffplan.filters import is_inline
from core.tariffplan.kinds import KIND_FILTERS
from core.tariffplan.loader import Commit
from core.tariffplan.models import ActivationInterval, FilterProfile, TariffPlan
from core.types import UTC_ZONE, zone

from .errors import FilterError, not_found, plan_error
from .event import EventView
from .rules import (
    CompiledFilter,
    DestinationLookup,
    FilterEnv,
    compile_inline,
    compile_rule_parts,
    is_active,
)

INLINE_CACHE_LIMIT: Final = 65536  # distinct inline filters kept compiled


class PrefixIndex(Protocol):
    """What ``destination_ids_from`` needs of the rater's ``DestinationIndex``."""

    def longest_matches(self, number: str) -> Iterator[tuple[str, tuple[str, ...]]]: ...


def destination_ids_from(index: Callable[[], PrefixIndex]) -> DestinationLookup:
    """A ``destination_ids_for`` reading the live index ``index()`` returns: the ids of every
    destination holding any prefix of the number (CGRateS walks all prefixes, longest first)."""

    def destination_ids_for(number: str) -> Collection[str]:
        found: set[str] = set()
        for _, ids in index().longest_matches(number):
            found.update(ids)
        return found

    return destination_ids_for


def compile_profile(profile: FilterProfile) -> CompiledFilter:
    """A stored filter profile compiled; ``FilterError`` names the first bad rule."""
    rules = []
    for position, rule in enumerate(profile.rules):
        try:
            rules.append(compile_rule_parts(rule.type, rule.element, rule.values))
        except FilterError as exc:
            raise FilterError(f"Rules[{position}]: {exc}") from None
    return CompiledFilter(profile.tenant, profile.id, tuple(rules), profile.activation_interval)


def check_filter_ids(filter_ids: Iterable[str]) -> None:
    """Compiles the inline filters among ``filter_ids`` (raises ``FilterError`` for a bad one);
    references to stored profiles are the loader's to check."""
    for filter_id in filter_ids:
        if is_inline(filter_id):
            compile_inline(filter_id)


def _utc_now() -> datetime:
    return datetime.now(UTC_ZONE)


class FilterService:
    """The live filter profiles and the inline-filter cache; a PlanListener of the loader."""

    def __init__(
        self,
        destination_ids_for: DestinationLookup | None = None,
        *,
        timezone: str = "UTC",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """``destination_ids_for(number)`` gives the destination ids of a number (see
        ``destination_ids_from``); ``timezone`` reads times without a zone; ``clock`` is "now"
        for profile activation intervals."""
        self._env = FilterEnv(
            destination_ids_for or FilterEnv().destination_ids_for, {}, zone(timezone)
        )
        self._clock = clock
        self._stored: dict[str, dict[str, CompiledFilter]] = {}  # tenant -> id -> filter
        self._inline_compiled: dict[str, CompiledFilter] = {}

    @property
    def env(self) -> FilterEnv:
        return self._env

    # --------------------------------------------------------------------------- plan listener
    def prepare(self, plan: TariffPlan) -> Commit:
        stored: dict[str, dict[str, CompiledFilter]] = {}
        problems: list[tuple[str, str]] = []
        profile: FilterProfile
        for key, profile in plan.others.get(KIND_FILTERS, {}).items():
            try:
                compiled = compile_profile(profile)
            except FilterError as exc:
                problems.append((key, str(exc)))
                continue
            stored.setdefault(profile.tenant, {})[profile.id] = compiled
        if problems:
            raise plan_error(KIND_FILTERS, problems)
        env = FilterEnv(self._env.destination_ids_for, dict(plan.timings), self._env.timezone)

        def commit() -> None:
            self._stored = stored
            self._env = env

        return commit

    # ------------------------------------------------------------------------------ lookups
    def profile(self, tenant: str, filter_id: str) -> CompiledFilter | None:
        return self._stored.get(tenant, {}).get(filter_id)

    def inline(self, filter_id: str) -> CompiledFilter:
        """The compiled inline filter (cached); raises ``FilterError`` if it is malformed."""
        compiled = self._inline_compiled.get(filter_id)
        if compiled is None:
            compiled = compile_inline(filter_id)
            if len(self._inline_compiled) >= INLINE_CACHE_LIMIT:
                self._inline_compiled.clear()
            self._inline_compiled[filter_id] = compiled
        return compiled

    def _resolve(self, tenant: str, filter_id: str) -> CompiledFilter:
        if filter_id[:1] == "*":
            return self.inline(filter_id)
        compiled = self._stored.get(tenant, {}).get(filter_id)
        if compiled is None:
            raise not_found(filter_id)
        return compiled

    # ------------------------------------------------------------------------------ matching
    def profile_passes(
        self,
        tenant: str,
        activation: ActivationInterval | None,
        filter_ids: Iterable[str],
        view: EventView,
        when: datetime | None,
    ) -> bool:
        """Whether a profile (attribute, charger, route ...) applies to the event: active at the
        event's time ``when`` (no time or no interval: active) and passing ``filter_ids``."""
        if activation is not None and when is not None and not is_active(activation, when):
            return False
        return self.passes(tenant, filter_ids, view)

    def passes(self, tenant: str, filter_ids: Iterable[str], view: EventView) -> bool:
        """Whether the event passes all ``filter_ids`` (stored IDs resolve in ``tenant``)."""
        env = self._env
        passed = False
        given = False
        now: datetime | None = None
        for filter_id in filter_ids:
            given = True
            compiled = self._resolve(tenant, filter_id)
            if compiled.activation is not None:
                now = now or self._clock()
                if not is_active(compiled.activation, now):
                    continue
            for rule in compiled.rules:
                if not rule.passes(view, env):
                    return False
            passed = True
        return passed or not given
