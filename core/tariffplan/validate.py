"""Reference checks across a tariff plan: every id an item names must exist.

An id may exist in the plan itself, among the built-ins (``*any`` timing, ``*asap`` ...), or, for a
partial load, in what the engine already holds (``existing.has(kind, id)``). Each problem is pinned
to the file, line and column of the referencing field when the plan was read from a folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from core.tariffplan import kinds as k
from core.tariffplan.errors import MAX_ISSUES, TariffPlanError, TariffPlanIssue
from core.tariffplan.filters import DESTINATION_FILTER_TYPES, is_inline, split_inline
from core.tariffplan.models import (
    META_ANY,
    META_ASAP,
    META_NONE,
    AccountAction,
    ActionGroup,
    ActionPlan,
    ActionTriggerGroup,
    AttributeProfile,
    ChargerProfile,
    FilterProfile,
    ResourceProfile,
    RouteProfile,
    StatProfile,
    TariffPlan,
    ThresholdProfile,
    tenant_key,
)
from core.tariffplan.sources import ReadPlan, Ref

# Timings CGRateS always defines (TpReader.addDefaultTimings); RatingPlans and ActionPlans may
# name them without a Timings.csv.
BUILTIN_TIMINGS: Final = frozenset(
    {
        META_ANY,
        META_ASAP,
        "*every_minute",
        "*hourly",
        "*daily",
        "*weekly",
        "*monthly",
        "*monthly_estimated",
        "*month_end",
        "*yearly",
    }
)
NEGATIVE_PREFIX: Final = "!"  # Actions TimingIDs may negate a timing
DYNAMIC_MARKERS: Final = ("~", "<")  # filter values read from the event, not ids

_LABELS: Final = {
    k.KIND_TIMINGS: "timing",
    k.KIND_DESTINATIONS: "destination",
    k.KIND_RATES: "rate",
    k.KIND_DESTINATION_RATES: "destination rate",
    k.KIND_RATING_PLANS: "rating plan",
    k.KIND_RATING_PROFILES: "rating profile",
    k.KIND_ACTIONS: "actions",
    k.KIND_ACTION_PLANS: "action plan",
    k.KIND_ACTION_TRIGGERS: "action triggers",
    k.KIND_ACCOUNT_ACTIONS: "account",
    k.KIND_SHARED_GROUPS: "shared group",
    k.KIND_ATTRIBUTES: "attribute profile",
    k.KIND_CHARGERS: "charger profile",
    k.KIND_FILTERS: "filter",
    k.KIND_ROUTES: "route profile",
    k.KIND_RESOURCES: "resource profile",
    k.KIND_STATS: "stat profile",
    k.KIND_THRESHOLDS: "threshold profile",
}


class ExistingLookup(Protocol):
    """What the engine already holds; ids as the plan keys them (``tenant:ID`` for profiles)."""

    def has(self, kind: str, item_id: str) -> bool: ...


Existing = ExistingLookup | Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class _Problem:
    kind: str  # of the referencing item
    item_id: str
    column: str  # the referencing field, as named in the CSV layout
    value: str  # the id that was not found
    target: str  # the kind it should have been
    written: str  # how it appears in the field (an inline filter holding it, or the id itself)


def validate(
    plan: TariffPlan, existing: Existing | None = None, *, strict: bool = True
) -> list[TariffPlanIssue]:
    """All broken references of ``plan``, in file order (empty if it is consistent).

    ``strict=False`` keeps only the checks CGRateS itself enforces when loading; the others
    (ActionTriggers ActionsID, ``*destinations`` filter values, Routes RatingPlanIDs, Thresholds
    ActionIDs, Chargers AttributeIDs) find real mistakes, but some CGRateS sample plans have them.
    """
    checker = _Checker(plan, existing, strict)
    checker.run()
    return checker.issues()


def check(plan: TariffPlan, existing: Existing | None = None, *, strict: bool = True) -> None:
    """``validate``, raising ``TariffPlanError`` (first ``MAX_ISSUES`` listed) on any issue."""
    issues = validate(plan, existing, strict=strict)
    if issues:
        raise TariffPlanError(issues[:MAX_ISSUES], max(0, len(issues) - MAX_ISSUES))


class _Checker:
    def __init__(self, plan: TariffPlan, existing: Existing | None, strict: bool) -> None:
        self.plan = plan
        self.strict = strict
        if existing is None:
            self.existing: Callable[[str, str], bool] | None = None
        elif callable(existing):
            self.existing = existing
        else:
            self.existing = existing.has
        self.problems: dict[tuple[str, str, str, str], _Problem] = {}

    # --------------------------------------------------------------------------------- lookups
    def items(self, kind: str) -> dict[str, Any]:
        if kind in k.RATING_KINDS:
            items: dict[str, Any] = getattr(self.plan, kind)
            return items
        return self.plan.others.get(kind, {})

    def has(self, kind: str, item_id: str) -> bool:
        if item_id in self.items(kind):
            return True
        return self.existing is not None and self.existing(kind, item_id)

    def need(
        self,
        kind: str,
        item_id: str,
        column: str,
        target: str,
        value: str,
        key: str = "",
        written: str = "",
    ) -> None:
        """Records a problem unless ``target`` has ``key`` (default: ``value``)."""
        if self.has(target, key or value):
            return
        problem_key = (kind, item_id, column, value)
        if problem_key not in self.problems:
            self.problems[problem_key] = _Problem(
                kind, item_id, column, value, target, written or value
            )

    def need_timing(self, kind: str, item_id: str, column: str, timing_id: str) -> None:
        if timing_id not in BUILTIN_TIMINGS:
            self.need(kind, item_id, column, k.KIND_TIMINGS, timing_id)

    def need_filters(
        self, kind: str, item_id: str, column: str, tenant: str, filter_ids: Iterable[str]
    ) -> None:
        """Filter ids resolve in the item's tenant; inline filters only for their destinations."""
        for filter_id in filter_ids:
            if not is_inline(filter_id):
                self.need(
                    kind, item_id, column, k.KIND_FILTERS, filter_id, tenant_key(tenant, filter_id)
                )
                continue
            parts = split_inline(filter_id)
            if self.strict and parts is not None and parts[0] in DESTINATION_FILTER_TYPES:
                for destination in parts[2]:
                    if not destination.startswith(DYNAMIC_MARKERS):
                        self.need(
                            kind,
                            item_id,
                            column,
                            k.KIND_DESTINATIONS,
                            destination,
                            written=filter_id,
                        )

    # ---------------------------------------------------------------------------------- checks
    def run(self) -> None:
        self.rating()
        self.account_actions()
        self.profiles()

    def rating(self) -> None:
        plan = self.plan
        for rate_set in plan.destination_rates.values():
            for entry in rate_set.entries:
                if entry.destination_id != META_ANY:
                    self.need(
                        k.KIND_DESTINATION_RATES,
                        rate_set.id,
                        "DestinationID",
                        k.KIND_DESTINATIONS,
                        entry.destination_id,
                    )
                self.need(
                    k.KIND_DESTINATION_RATES, rate_set.id, "RateID", k.KIND_RATES, entry.rate_id
                )
        for rating_plan in plan.rating_plans.values():
            for binding in rating_plan.bindings:
                self.need(
                    k.KIND_RATING_PLANS,
                    rating_plan.id,
                    "DestinationRatesID",
                    k.KIND_DESTINATION_RATES,
                    binding.destination_rates_id,
                )
                self.need_timing(k.KIND_RATING_PLANS, rating_plan.id, "TimingID", binding.timing_id)
        for key, profile in plan.rating_profiles.items():
            for activation in profile.activations:
                self.need(
                    k.KIND_RATING_PROFILES,
                    key,
                    "RatingPlanID",
                    k.KIND_RATING_PLANS,
                    activation.rating_plan_id,
                )

    def account_actions(self) -> None:
        group: ActionGroup
        for group in self.items(k.KIND_ACTIONS).values():
            for action in group.actions:
                for timing_id in action.timing_ids:
                    timing_id = timing_id.removeprefix(NEGATIVE_PREFIX)
                    self.need_timing(k.KIND_ACTIONS, group.id, "TimingIDs", timing_id)
                # Action filters have no tenant of their own (the account's applies at run time),
                # so only their inline destinations can be checked here.
                self.need_filters(
                    k.KIND_ACTIONS,
                    group.id,
                    "Filter",
                    "",
                    (filter_id for filter_id in action.filters if is_inline(filter_id)),
                )
        action_plan: ActionPlan
        for action_plan in self.items(k.KIND_ACTION_PLANS).values():
            for timing in action_plan.timings:
                self.need(
                    k.KIND_ACTION_PLANS,
                    action_plan.id,
                    "ActionsID",
                    k.KIND_ACTIONS,
                    timing.actions_id,
                )
                self.need_timing(k.KIND_ACTION_PLANS, action_plan.id, "TimingID", timing.timing_id)
        triggers: ActionTriggerGroup
        for triggers in self.items(k.KIND_ACTION_TRIGGERS).values() if self.strict else ():
            for trigger in triggers.triggers:
                self.need(
                    k.KIND_ACTION_TRIGGERS,
                    triggers.id,
                    "ActionsID",
                    k.KIND_ACTIONS,
                    trigger.actions_id,
                )
        account: AccountAction
        for key, account in self.items(k.KIND_ACCOUNT_ACTIONS).items():
            if account.action_plan_id:
                self.need(
                    k.KIND_ACCOUNT_ACTIONS,
                    key,
                    "ActionPlanID",
                    k.KIND_ACTION_PLANS,
                    account.action_plan_id,
                )
            if account.action_triggers_id:
                self.need(
                    k.KIND_ACCOUNT_ACTIONS,
                    key,
                    "ActionTriggersID",
                    k.KIND_ACTION_TRIGGERS,
                    account.action_triggers_id,
                )

    def profiles(self) -> None:
        attribute: AttributeProfile
        for key, attribute in self.items(k.KIND_ATTRIBUTES).items():
            self.need_filters(
                k.KIND_ATTRIBUTES, key, "FilterIDs", attribute.tenant, attribute.filter_ids
            )
            for item in attribute.attributes:
                self.need_filters(
                    k.KIND_ATTRIBUTES, key, "AttributeFilterIDs", attribute.tenant, item.filter_ids
                )
        charger: ChargerProfile
        for key, charger in self.items(k.KIND_CHARGERS).items():
            self.need_filters(k.KIND_CHARGERS, key, "FilterIDs", charger.tenant, charger.filter_ids)
            for attribute_id in charger.attribute_ids:
                if self.strict and attribute_id != META_NONE and not is_inline(attribute_id):
                    self.need(
                        k.KIND_CHARGERS,
                        key,
                        "AttributeIDs",
                        k.KIND_ATTRIBUTES,
                        attribute_id,
                        tenant_key(charger.tenant, attribute_id),
                    )
        filter_profile: FilterProfile
        for key, filter_profile in self.items(k.KIND_FILTERS).items():
            for rule in filter_profile.rules:
                if not self.strict or rule.type not in DESTINATION_FILTER_TYPES:
                    continue
                for destination in rule.values:
                    if not destination.startswith(DYNAMIC_MARKERS):
                        self.need(k.KIND_FILTERS, key, "Values", k.KIND_DESTINATIONS, destination)
        route_profile: RouteProfile
        for key, route_profile in self.items(k.KIND_ROUTES).items():
            tenant = route_profile.tenant
            self.need_filters(k.KIND_ROUTES, key, "FilterIDs", tenant, route_profile.filter_ids)
            for route in route_profile.routes:
                self.need_filters(k.KIND_ROUTES, key, "RouteFilterIDs", tenant, route.filter_ids)
                for plan_id in route.rating_plan_ids if self.strict else ():
                    self.need(
                        k.KIND_ROUTES, key, "RouteRatingPlanIDs", k.KIND_RATING_PLANS, plan_id
                    )
        resource: ResourceProfile
        for key, resource in self.items(k.KIND_RESOURCES).items():
            self.need_filters(
                k.KIND_RESOURCES, key, "FilterIDs", resource.tenant, resource.filter_ids
            )
        stat: StatProfile
        for key, stat in self.items(k.KIND_STATS).items():
            self.need_filters(k.KIND_STATS, key, "FilterIDs", stat.tenant, stat.filter_ids)
            for metric in stat.metrics:
                self.need_filters(
                    k.KIND_STATS, key, "MetricFilterIDs", stat.tenant, metric.filter_ids
                )
        threshold: ThresholdProfile
        for key, threshold in self.items(k.KIND_THRESHOLDS).items():
            self.need_filters(
                k.KIND_THRESHOLDS, key, "FilterIDs", threshold.tenant, threshold.filter_ids
            )
            for action_id in threshold.action_ids:
                if self.strict and action_id != META_NONE:
                    self.need(k.KIND_THRESHOLDS, key, "ActionIDs", k.KIND_ACTIONS, action_id)

    # ---------------------------------------------------------------------------------- output
    def issues(self) -> list[TariffPlanIssue]:
        by_kind: dict[str, list[_Problem]] = {}
        for problem in self.problems.values():
            by_kind.setdefault(problem.kind, []).append(problem)
        sources = self.plan.sources if isinstance(self.plan, ReadPlan) else None
        result: list[TariffPlanIssue] = []
        for kind in k.ALL_KINDS:
            problems = by_kind.get(kind)
            if not problems:
                continue
            refs: list[Ref] = [(p.item_id, p.column, p.written) for p in problems]
            located = sources.locate(kind, refs) if sources is not None else {}
            default_file = sources.default_file(kind) if sources else k.FILE_NAMES[kind]
            found: list[TariffPlanIssue] = []
            for problem, ref in zip(problems, refs, strict=True):
                reason = f"{problem.column}: unknown {_LABELS[problem.target]} {problem.value!r}"
                where = located.get(ref)
                if where is None:
                    found.append(
                        TariffPlanIssue(default_file, 0, 0, f"{problem.item_id}: {reason}")
                    )
                else:
                    found.append(TariffPlanIssue(where[0], where[1], where[2], reason))
            found.sort(key=lambda issue: (issue.file, issue.line, issue.column))
            result.extend(found)
        return result
