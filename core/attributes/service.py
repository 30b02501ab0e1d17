"""AttributeS: alter events with the best matching attribute profile (``engine/attributes.go``).

Matching (``attributeProfileForEvent``): the profiles of the event's tenant bound to the request's
context (or to ``*any``), active at the event's Time (when it has one) and passing their filters;
the highest Weight wins. ``AttributeIDs`` given with the request replace the lookup by context
index (inline ``*constant:*req.X:v`` IDs included) but context, activation and filters still apply.

Processing (``V1ProcessEvent``, v0.11): up to ``ProcessRuns`` runs; each run applies one profile to
the event as altered so far, never the profile of the run before; a Blocker profile ends the runs;
a run that matches nothing ends them quietly, except the first, which answers ``NOT_FOUND``.

Profiles are compiled at load time (values, types, inline filters checked) and bucketed by
tenant and context behind a ``CandidateIndex``, so an event only meets the profiles its
``*string`` filter fields can match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from core.errors import CGRError
from core.filters.errors import FilterError, plan_error
from core.filters.event import (
    META_PROCESS_RUNS,
    META_TENANT,
    MISSING,
    CGREvent,
    EventView,
    Path,
    parse_path,
    split_path,
)
from core.filters.index import CandidateIndex
from core.filters.rsr import AND_SEP, Expr, compile_rules, join_rules, split_rules
from core.filters.service import FilterService, check_filter_ids
from core.filters.values import as_string
from core.tariffplan.kinds import KIND_ATTRIBUTES, KIND_FILTERS
from core.tariffplan.loader import Commit
from core.tariffplan.models import (
    META_ANY,
    Attribute,
    AttributeProfile,
    TariffPlan,
)
from core.types import zone

from .types import META_COMPOSED, Compute, MissingField, TypeSettings, compile_type

META_DEFAULT: Final = "*default"  # the context of a request that names none
META_REMOVE: Final = "*remove"  # a substitute that deletes the field instead of setting it
META_ATTRIBUTES: Final = "*attributes"  # an event value AttributeS had to fill in
INLINE_PREFIX: Final = "*"
INLINE_RULES_SEP: Final = ";"
INLINE_PARTS_SEP: Final = ":"
INLINE_CACHE_LIMIT: Final = 4096
DEFAULT_PROCESS_RUNS: Final = 1
OPTS_CONTEXT: Final = "*context"
# APIOpts naming the process runs and the profile IDs (CGRateS renamed them across v0.11).
OPTS_PROCESS_RUNS: Final = ("*processRuns", "*attributesProcessRuns", "*attrProcessRuns")
OPTS_PROFILE_IDS: Final = ("*attrProfileIDs",)

ERR_NOT_FOUND: Final = "NOT_FOUND"
ERR_SERVER_ERROR: Final = "SERVER_ERROR"
ERR_MANDATORY_IE_MISSING: Final = "MANDATORY_IE_MISSING"


class AttributeSError(CGRError):
    """A request AttributeS cannot answer; ``message`` is CGRateS's error text."""


def _server_error(exc: Exception) -> AttributeSError:
    return AttributeSError(f"{ERR_SERVER_ERROR}: {exc}")


@dataclass(frozen=True, slots=True)
class CompiledAttribute:
    path: str  # as written: "*req.Account", "*tenant"
    segments: list[str]  # where the substitute is written
    read_path: Path  # where *composed reads the current value
    type: str
    filter_ids: tuple[str, ...]
    compute: Compute
    composed: bool


@dataclass(eq=False, slots=True)
class CompiledProfile:
    """An attribute profile ready to match and apply (``eq=False``: hashed by identity)."""

    model: AttributeProfile
    attributes: tuple[CompiledAttribute, ...]
    any_context: bool  # bound to every context: Contexts is exactly [*any] (or not given)
    contexts: frozenset[str]
    rank: int = 0  # position in priority order (Weight descending)

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def weight(self) -> Decimal:
        return self.model.weight

    def matches_context(self, context: str) -> bool:
        return self.any_context or context in self.contexts


@dataclass(slots=True)
class ProcessReply:
    """``AttrSProcessEventReply``: matched profile IDs, altered field paths, altered event."""

    matched_profiles: list[str]
    altered_fields: list[str]
    event: CGREvent

    def __init__(
        self, matched_profiles: list[str], altered_fields: list[str], event: CGREvent
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.matched_profiles = matched_profiles
        self.altered_fields = altered_fields
        self.event = event

    def to_wire(self) -> dict[str, Any]:
        return {
            "MatchedProfiles": self.matched_profiles,
            "AlteredFields": self.altered_fields,
            "CGREvent": self.event.to_wire(),
        }


@dataclass(slots=True)
class _Live:
    profiles: dict[str, dict[str, CompiledProfile]] = field(default_factory=dict)
    buckets: dict[tuple[str, str], CandidateIndex[CompiledProfile]] = field(default_factory=dict)


def effective_contexts(profile: AttributeProfile) -> tuple[str, ...]:
    """The profile's contexts; none given means ``*any`` (the CSV reader drops ``*any``)."""
    return profile.contexts or (META_ANY,)


def compile_attribute(attribute: Attribute, settings: TypeSettings) -> CompiledAttribute:
    return _compile_attribute(attribute, compile_rules(attribute.value), settings)


def _compile_attribute(
    attribute: Attribute, exprs: tuple[Expr, ...], settings: TypeSettings
) -> CompiledAttribute:
    if not attribute.path:
        raise FilterError("empty Path")
    check_filter_ids(attribute.filter_ids)
    return CompiledAttribute(
        attribute.path,
        split_path(attribute.path),
        parse_path(attribute.path),
        attribute.type,
        attribute.filter_ids,
        compile_type(attribute.type, exprs, attribute.path, settings),
        attribute.type == META_COMPOSED,
    )


def compile_profile(profile: AttributeProfile, settings: TypeSettings) -> CompiledProfile:
    """Compiles a profile; ``FilterError`` names the first bad part."""
    check_filter_ids(profile.filter_ids)
    attributes = []
    for position, attribute in enumerate(profile.attributes):
        try:
            attributes.append(compile_attribute(attribute, settings))
        except FilterError as exc:
            raise FilterError(f"Attributes[{position}]: {exc}") from None
    contexts = effective_contexts(profile)
    return CompiledProfile(profile, tuple(attributes), contexts == (META_ANY,), frozenset(contexts))


def inline_profile(tenant: str, inline_id: str, settings: TypeSettings) -> CompiledProfile:
    """``NewAttributeFromInline``: ``*type:path:value[;*type:path:value]``, values ``&``-joined;
    bound to every context."""
    attributes: list[CompiledAttribute] = []
    models: list[Attribute] = []
    for rule in inline_id.split(INLINE_RULES_SEP):
        parts = rule.split(INLINE_PARTS_SEP, 2)
        if len(parts) < 3:
            raise FilterError(f"inline parse error for string: <{rule}>")
        attr_type, path, value = parts
        if not path:
            raise FilterError(f"empty path in inline AttributeProfile <{inline_id}>")
        exprs = compile_rules(value, AND_SEP)
        model = Attribute(path, attr_type, join_rules([e.rules for e in exprs]))
        models.append(model)
        attributes.append(_compile_attribute(model, exprs, settings))
    model_profile = AttributeProfile(
        tenant, inline_id, contexts=(META_ANY,), attributes=tuple(models)
    )
    return CompiledProfile(model_profile, tuple(attributes), True, frozenset({META_ANY}))


def process_runs_of(opts: Mapping[str, Any]) -> int | None:
    """The process runs an event's APIOpts ask for (unusable values are ignored)."""
    for name in OPTS_PROCESS_RUNS:
        value = opts.get(name)
        if value is None or isinstance(value, bool):
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


def profile_ids_of(opts: Mapping[str, Any]) -> tuple[str, ...]:
    """The attribute profile IDs an event's APIOpts ask for."""
    for name in OPTS_PROFILE_IDS:
        value = opts.get(name)
        if isinstance(value, list):
            return tuple(str(item) for item in value)
        if isinstance(value, str) and value:
            return tuple(value.split(INLINE_RULES_SEP))
    return ()


def _priority(profile: CompiledProfile) -> tuple[Decimal, str, str]:
    return (-profile.weight, profile.model.tenant, profile.id)


class AttributeService:
    """The live attribute profiles; a PlanListener of the loader."""

    def __init__(
        self,
        filters: FilterService,
        *,
        default_tenant: str,
        process_runs: int = DEFAULT_PROCESS_RUNS,
        rounding_decimals: int = 5,
        timezone: str = "UTC",
    ) -> None:
        self._filters = filters
        self.default_tenant = default_tenant
        self.process_runs = process_runs
        self._settings = TypeSettings(zone(timezone), rounding_decimals)
        self._live = _Live()
        self._inline_compiled: dict[tuple[str, str], CompiledProfile] = {}

    # --------------------------------------------------------------------------- plan listener
    def prepare(self, plan: TariffPlan) -> Commit:
        compiled: list[CompiledProfile] = []
        problems: list[tuple[str, str]] = []
        model: AttributeProfile
        for key, model in plan.others.get(KIND_ATTRIBUTES, {}).items():
            try:
                compiled.append(compile_profile(model, self._settings))
            except FilterError as exc:
                problems.append((key, str(exc)))
        if problems:
            raise plan_error(KIND_ATTRIBUTES, problems)
        compiled.sort(key=_priority)
        live = _Live()
        grouped: dict[tuple[str, str], list[CompiledProfile]] = {}
        for rank, profile in enumerate(compiled):
            profile.rank = rank
            live.profiles.setdefault(profile.model.tenant, {})[profile.id] = profile
            for context in profile.contexts:
                grouped.setdefault((profile.model.tenant, context), []).append(profile)
        stored = plan.others.get(KIND_FILTERS, {})
        for bucket, profiles in grouped.items():
            entries = [(p, p.model.tenant, p.model.filter_ids) for p in profiles]
            live.buckets[bucket] = CandidateIndex(entries, stored)

        def commit() -> None:
            self._live = live

        return commit

    def compile(self, model: AttributeProfile) -> CompiledProfile:
        """Compiles a profile with this service's settings (``FilterError`` if it is bad)."""
        return compile_profile(model, self._settings)

    def compile_inline(self, tenant: str, inline_id: str) -> CompiledProfile:
        return inline_profile(tenant, inline_id, self._settings)

    # ------------------------------------------------------------------------------ matching
    def profile(self, tenant: str, profile_id: str) -> CompiledProfile | None:
        """A live profile, or an inline one (``*constant:*req.X:1``) compiled on first use."""
        if profile_id.startswith(INLINE_PREFIX):
            key = (tenant, profile_id)
            compiled = self._inline_compiled.get(key)
            if compiled is None:
                compiled = inline_profile(tenant, profile_id, self._settings)
                if len(self._inline_compiled) >= INLINE_CACHE_LIMIT:
                    self._inline_compiled.clear()
                self._inline_compiled[key] = compiled
            return compiled
        return self._live.profiles.get(tenant, {}).get(profile_id)

    def _candidates(
        self, tenant: str, context: str, attribute_ids: Sequence[str], view: EventView
    ) -> Sequence[CompiledProfile]:
        if attribute_ids:
            if len(attribute_ids) == 1:  # a charger's one profile, the usual case: no sort
                one = self.profile(tenant, attribute_ids[0])
                return (one,) if one is not None else ()
            found = [self.profile(tenant, profile_id) for profile_id in attribute_ids]
            # Given IDs are tried in Weight order, ties in the order given.
            return sorted((p for p in found if p is not None), key=lambda p: -p.weight)
        buckets = self._live.buckets
        own = buckets.get((tenant, context))
        anywhere = buckets.get((tenant, META_ANY)) if context != META_ANY else None
        if own is None:
            return anywhere.candidates(view) if anywhere is not None else ()
        if anywhere is None:
            return own.candidates(view)
        merged = {*own.candidates(view), *anywhere.candidates(view)}
        return sorted(merged, key=lambda p: p.rank)

    def _match(
        self,
        tenant: str,
        context: str,
        attribute_ids: Sequence[str],
        when: datetime | None,
        view: EventView,
        last_id: str,
    ) -> CompiledProfile | None:
        """The highest-weight profile for the event, other than ``last_id`` (FilterError)."""
        for candidate in self._candidates(tenant, context, attribute_ids, view):
            if candidate.id == last_id or not candidate.matches_context(context):
                continue
            model = candidate.model
            if self._filters.profile_passes(
                tenant, model.activation_interval, model.filter_ids, view, when
            ):
                return candidate
        return None

    def attribute_for_event(
        self,
        event: CGREvent,
        *,
        context: str | None = None,
        attribute_ids: Sequence[str] = (),
    ) -> CompiledProfile:
        """``V1GetAttributeForEvent``: the profile ProcessEvent would apply first."""
        view = EventView(event.event, event.opts, {META_PROCESS_RUNS: 0})
        try:
            found = self._match(
                event.tenant, context or META_DEFAULT, attribute_ids, event.time, view, ""
            )
        except FilterError as exc:
            raise _server_error(exc) from None
        if found is None:
            raise AttributeSError(ERR_NOT_FOUND)
        return found

    # ---------------------------------------------------------------------------- processing
    def process_event(
        self,
        event: CGREvent,
        *,
        context: str | None = None,
        process_runs: int | None = None,
        attribute_ids: Sequence[str] = (),
        owned: bool = False,
    ) -> ProcessReply:
        """``V1ProcessEvent``: ``event`` is left as it is; the reply holds the altered copy.
        ``owned``: the caller's private copy, altered in place (no second copy); after an
        AttributeSError it may be partly altered (a first run that read a missing field)."""
        runs = process_runs or self.process_runs
        context = context or META_DEFAULT
        # The event is only read until a profile matches: copied then (most passes of CDRs
        # and sessions match nothing, and need no copy). ``owned``: never copied.
        altered_event = event
        copied = owned
        tenant = altered_event.tenant
        variables: dict[str, Any] = {META_PROCESS_RUNS: 0}
        view = EventView(altered_event.event, altered_event.opts, variables, tenant)
        matched: list[str] = []
        altered: dict[str, None] = {}  # ordered set of paths
        last_id = ""
        not_found = False
        for run in range(runs):
            variables[META_PROCESS_RUNS] = run + 1
            try:
                profile = self._match(
                    tenant, context, attribute_ids, altered_event.time, view, last_id
                )
                if profile is None:
                    not_found = run == 0
                    break
                if not copied:
                    altered_event = event.clone()
                    view = EventView(altered_event.event, altered_event.opts, variables, tenant)
                    copied = True
                paths = self._apply(profile, altered_event, view, tenant)
            except MissingField:
                not_found = run == 0  # a value read a missing field: that run did not happen
                break
            except FilterError as exc:
                raise _server_error(exc) from None
            tenant = altered_event.tenant
            last_id = profile.id
            matched.append(profile.id)
            altered.update(dict.fromkeys(paths))
            if profile.model.blocker:
                break
        if META_ATTRIBUTES in altered_event.event.values():  # a C-level scan, most often a miss
            for name, value in altered_event.event.items():
                if value == META_ATTRIBUTES:  # a field the caller wanted filled is still a request
                    raise AttributeSError(f"{ERR_MANDATORY_IE_MISSING}: [{name}]")
        if not_found:
            raise AttributeSError(ERR_NOT_FOUND)
        return ProcessReply(matched, list(altered), altered_event if copied else event.clone())

    def _apply(
        self, profile: CompiledProfile, event: CGREvent, view: EventView, tenant: str
    ) -> list[str]:
        """Applies a profile's attributes in order; returns the paths it altered."""
        altered: list[str] = []
        for attribute in profile.attributes:
            if attribute.filter_ids and not self._filters.passes(
                tenant, attribute.filter_ids, view
            ):
                continue
            substitute = attribute.compute(view)
            if attribute.path not in altered:
                altered.append(attribute.path)
            if attribute.path == META_TENANT:
                event.tenant = event.tenant + substitute if attribute.composed else substitute
                view.root[META_TENANT] = substitute
                continue
            if substitute == META_REMOVE:
                view.remove(attribute.segments)
                continue
            if attribute.composed:
                current = view.get(attribute.read_path)
                substitute = ("" if current is MISSING else as_string(current)) + substitute
            view.set(attribute.segments, substitute)
        return altered


def rules_of(value: str) -> list[str]:
    """The RSR rules of an attribute Value as CGRateS lists them (``[{"Rules": ...}]``)."""
    return split_rules(value) if value else []
