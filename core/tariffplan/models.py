"""Typed tariff-plan items, as CGRateS defines them.

These are the engine's own objects: the CSV reader and the TP JSON APIs both produce them, the
loader validates their references, storage keeps them (``to_doc``/``from_doc``), and rating reads
them. Money is Decimal, durations are integer nanoseconds, times are aware datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

META_ANY: Final = "*any"
META_ASAP: Final = "*asap"
META_NONE: Final = "*none"

MAX_COST_FREE: Final = "*free"
MAX_COST_DISCONNECT: Final = "*disconnect"
MAX_COST_STRATEGIES: Final = frozenset({"", MAX_COST_FREE, MAX_COST_DISCONNECT})

DEFAULT_TENANT: Final = "cgrates.org"
DEFAULT_CATEGORY: Final = "call"


@dataclass(frozen=True, slots=True)
class Timing:
    """When a rating plan binding applies. Empty sets mean "any"."""

    id: str
    years: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()  # 1..12
    month_days: frozenset[int] = frozenset()  # 1..31
    week_days: frozenset[int] = frozenset()  # 0=Sunday..6=Saturday, as CGRateS (Go's Weekday)
    start_time: str = ""  # "HH:MM:SS", "" = 00:00:00, "*asap" = at load time
    end_time: str = ""  # "HH:MM:SS", "" = end of day


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RateSlot:
    connect_fee: Decimal
    rate: Decimal  # price of one rate_unit
    rate_unit: int  # ns (or unit count for *sms/*data)
    rate_increment: int  # ns; usage is charged in whole increments
    group_interval_start: int  # ns from the start of the call where this slot begins


@dataclass(frozen=True, slots=True)
class Rate:
    id: str
    slots: tuple[RateSlot, ...]  # sorted by group_interval_start


@dataclass(frozen=True, slots=True)
class DestinationRateEntry:
    destination_id: str  # or "*any"
    rate_id: str
    rounding_method: str  # *up | *down | *middle
    rounding_decimals: int
    max_cost: Decimal
    max_cost_strategy: str  # "" | *free | *disconnect


@dataclass(frozen=True, slots=True)
class DestinationRate:
    id: str
    entries: tuple[DestinationRateEntry, ...]


@dataclass(frozen=True, slots=True)
class RatingPlanBinding:
    destination_rates_id: str
    timing_id: str
    weight: Decimal


@dataclass(frozen=True, slots=True)
class RatingPlan:
    id: str
    bindings: tuple[RatingPlanBinding, ...]


@dataclass(frozen=True, slots=True)
class RatingActivation:
    activation_time: datetime
    rating_plan_id: str
    fallback_subjects: tuple[str, ...] = ()  # RatesFallbackSubject, tried in order


@dataclass(frozen=True, slots=True)
class RatingProfile:
    tenant: str
    category: str
    subject: str
    activations: tuple[RatingActivation, ...]  # sorted by activation_time

    @property
    def key(self) -> str:
        return rating_profile_key(self.tenant, self.category, self.subject)


def rating_profile_key(tenant: str, category: str, subject: str) -> str:
    """CGRateS's RatingProfile id: ``*out:tenant:category:subject``."""
    return f"*out:{tenant}:{category}:{subject}"


@dataclass(slots=True)
class TariffPlan:
    """Everything one load brings, keyed by id (rating profiles by ``rating_profile_key``).

    The rating part is typed above; the other CGRateS files (Actions, Filters, Routes, ...) are
    carried as validated row-level models defined next to their reader until their subsystem
    lands, under ``others[kind]``.
    """

    timings: dict[str, Timing] = field(default_factory=dict)
    destinations: dict[str, Destination] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    destination_rates: dict[str, DestinationRate] = field(default_factory=dict)
    rating_plans: dict[str, RatingPlan] = field(default_factory=dict)
    rating_profiles: dict[str, RatingProfile] = field(default_factory=dict)
    others: dict[str, dict[str, Any]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Non-rating items, as read from the other CGRateS files and grouped the way CGRateS groups them.
# They are validated now and carried in ``TariffPlan.others[kind]`` until their subsystem lands.
# Time expressions CGRateS resolves when the item is used (``*monthly``, ``*month_end+1h``) are
# kept as written (validated); ``;``-lists become tuples in first-seen order (CGRateS uses sets).


@dataclass(frozen=True, slots=True)
class ActivationInterval:
    """When a profile is active; ``None`` = unbounded on that side."""

    activation_time: datetime | None = None
    expiry_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """One Actions.csv row (balance filters: ``""``/``()``/``None`` = not set, as ``*any``)."""

    action_type: str
    extra_parameters: str = ""
    filters: tuple[str, ...] = ()
    balance_id: str = ""
    balance_type: str = ""
    categories: tuple[str, ...] = ()
    destination_ids: tuple[str, ...] = ()
    rating_subject: str = ""
    shared_groups: tuple[str, ...] = ()
    expiry_time: str = ""  # time expression, resolved when the action runs
    timing_ids: tuple[str, ...] = ()
    units: str = ""  # number, duration for *voice, or a JSON value formula
    balance_weight: str = ""  # number or *time_desc/*time_asc
    balance_blocker: bool | None = None
    balance_disabled: bool | None = None
    weight: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ActionGroup:
    """Actions.csv rows sharing an ActionsId, in file order."""

    id: str
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class ActionTiming:
    actions_id: str
    timing_id: str
    weight: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ActionPlan:
    id: str
    timings: tuple[ActionTiming, ...]


@dataclass(frozen=True, slots=True)
class ActionTrigger:
    """One ActionTriggers.csv row."""

    threshold_type: str
    threshold_value: Decimal
    actions_id: str
    unique_id: str = ""
    recurrent: bool = False
    min_sleep: int = 0  # ns
    expiry_time: str = ""  # time expressions, resolved when the trigger is loaded
    activation_time: str = ""
    balance_id: str = ""
    balance_type: str = ""
    balance_categories: tuple[str, ...] = ()
    balance_destination_ids: tuple[str, ...] = ()
    balance_rating_subject: str = ""
    balance_shared_groups: tuple[str, ...] = ()
    balance_expiry_time: str = ""
    balance_timing_ids: tuple[str, ...] = ()
    balance_weight: Decimal | None = None
    balance_blocker: bool | None = None
    balance_disabled: bool | None = None
    weight: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ActionTriggerGroup:
    id: str
    triggers: tuple[ActionTrigger, ...]


@dataclass(frozen=True, slots=True)
class AccountAction:
    tenant: str
    account: str
    action_plan_id: str = ""
    action_triggers_id: str = ""
    allow_negative: bool = False
    disabled: bool = False

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.account)


@dataclass(frozen=True, slots=True)
class SharedGroupMember:
    account: str
    strategy: str
    rating_subject: str = ""


@dataclass(frozen=True, slots=True)
class SharedGroup:
    id: str
    members: tuple[SharedGroupMember, ...]


@dataclass(frozen=True, slots=True)
class Attribute:
    path: str
    type: str
    value: str
    filter_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttributeProfile:
    tenant: str
    id: str
    contexts: tuple[str, ...] = ()
    filter_ids: tuple[str, ...] = ()
    activation_interval: ActivationInterval | None = None
    attributes: tuple[Attribute, ...] = ()
    blocker: bool = False
    weight: Decimal = Decimal(0)

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


@dataclass(frozen=True, slots=True)
class ChargerProfile:
    tenant: str
    id: str
    filter_ids: tuple[str, ...] = ()
    activation_interval: ActivationInterval | None = None
    run_id: str = ""
    attribute_ids: tuple[str, ...] = ()  # ids, "*none", or inline "*constant:path:value"
    weight: Decimal = Decimal(0)

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


@dataclass(frozen=True, slots=True)
class FilterRule:
    type: str
    element: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FilterProfile:
    tenant: str
    id: str
    rules: tuple[FilterRule, ...] = ()
    activation_interval: ActivationInterval | None = None

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    filter_ids: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()
    rating_plan_ids: tuple[str, ...] = ()
    resource_ids: tuple[str, ...] = ()
    stat_ids: tuple[str, ...] = ()
    weight: Decimal = Decimal(0)
    blocker: bool = False
    route_parameters: str = ""


@dataclass(frozen=True, slots=True)
class RouteProfile:
    tenant: str
    id: str
    filter_ids: tuple[str, ...] = ()
    activation_interval: ActivationInterval | None = None
    sorting: str = ""
    sorting_parameters: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    weight: Decimal = Decimal(0)

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


@dataclass(frozen=True, slots=True)
class ResourceProfile:
    tenant: str
    id: str
    filter_ids: tuple[str, ...] = ()
    activation_interval: ActivationInterval | None = None
    usage_ttl: int = 0  # ns; 0 = none, -1 = unlimited
    limit: Decimal = Decimal(0)
    allocation_message: str = ""
    blocker: bool = False
    stored: bool = False
    weight: Decimal = Decimal(0)
    threshold_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


@dataclass(frozen=True, slots=True)
class StatMetric:
    metric_id: str
    filter_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatProfile:
    tenant: str
    id: str
    filter_ids: tuple[str, ...] = ()
    activation_interval: ActivationInterval | None = None
    queue_length: int = 0
    ttl: int = 0  # ns
    min_items: int = 0
    metrics: tuple[StatMetric, ...] = ()
    stored: bool = False
    blocker: bool = False
    weight: Decimal = Decimal(0)
    threshold_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


@dataclass(frozen=True, slots=True)
class ThresholdProfile:
    tenant: str
    id: str
    filter_ids: tuple[str, ...] = ()
    activation_interval: ActivationInterval | None = None
    max_hits: int = 0
    min_hits: int = 0
    min_sleep: int = 0  # ns
    blocker: bool = False
    weight: Decimal = Decimal(0)
    action_ids: tuple[str, ...] = ()
    asynchronous: bool = False  # CGRateS "Async"
    ee_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return tenant_key(self.tenant, self.id)


def tenant_key(tenant: str, item_id: str) -> str:
    """CGRateS's ``TenantID`` string, the id of tenant-scoped items: ``cgrates.org:ATTR_1``."""
    return f"{tenant}:{item_id}"
