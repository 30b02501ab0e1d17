"""APIerSv1 filter profile methods (SetFilter, GetFilter, GetFilterIDs, RemoveFilter), and the
wire helpers the profile APIs share (string lists, activation intervals)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Final

from core.api._params import (
    server_error,
    text,
)
from core.api._profiles import ProfileKind, register_profile_api
from core.config import GeneralConfig
from core.filters import FilterError, FilterService, compile_profile
from core.rpc import MethodRegistry
from core.tariffplan import KIND_FILTERS, OTHER_KINDS
from core.tariffplan.loader import TariffPlanLoader, items_of
from core.tariffplan.models import (
    ActivationInterval,
    FilterProfile,
    FilterRule,
    TariffPlan,
    tenant_key,
)
from core.types import InvalidValue, dumps, format_time, parse_time

GO_ZERO_YEAR: Final = 1  # Go's zero time.Time (0001-01-01T00:00:00Z) means "not set"
ACTIVATION_TIME: Final = "ActivationTime"
EXPIRY_TIME: Final = "ExpiryTime"
# Reverse-index names CGRateS reports when a filter still has users.
_INDEX_NAMES: Final = {
    "attributes": "*attribute_filter_indexes",
    "chargers": "*charger_filter_indexes",
    "routes": "*route_filter_indexes",
    "resources": "*resource_filter_indexes",
    "stats": "*stat_filter_indexes",
    "thresholds": "*threshold_filter_indexes",
}


# ------------------------------------------------------------------------------ shared helpers


def string_list(args: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = args.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise server_error(f"invalid params: {name} must be a list of strings")
    return tuple(value)


def _moment(value: Any, timezone: tzinfo, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = parse_time(value, timezone)
    except (InvalidValue, ValueError, OverflowError):
        raise server_error(f"invalid params: ActivationInterval.{name}: {value!r}") from None
    return None if moment.year == GO_ZERO_YEAR else moment


def interval_from_wire(value: Any, timezone: tzinfo) -> ActivationInterval | None:
    """``{"ActivationTime", "ExpiryTime"}`` (Go zero times or missing mean unbounded)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise server_error("invalid params: ActivationInterval must be an object")
    start = _moment(value.get(ACTIVATION_TIME), timezone, ACTIVATION_TIME)
    end = _moment(value.get(EXPIRY_TIME), timezone, EXPIRY_TIME)
    if start is None and end is None:
        return None
    return ActivationInterval(start, end)


def _go_time(moment: datetime | None) -> str:
    return format_time(moment) if moment is not None else "0001-01-01T00:00:00Z"


def interval_to_wire(interval: ActivationInterval | None) -> dict[str, str] | None:
    if interval is None:
        return None
    return {
        ACTIVATION_TIME: _go_time(interval.activation_time),
        EXPIRY_TIME: _go_time(interval.expiry_time),
    }


def filter_users(plan: TariffPlan, tenant: str, filter_id: str) -> dict[str, dict[str, Any]]:
    """Items of ``tenant`` whose FilterIDs (or nested FilterIDs) name ``filter_id``."""
    users: dict[str, dict[str, Any]] = {}
    for kind in OTHER_KINDS:
        index_name = _INDEX_NAMES.get(kind)
        if index_name is None:
            continue
        for item in items_of(plan, kind).values():
            if item.tenant != tenant:
                continue
            nested = [
                *getattr(item, "attributes", ()),
                *getattr(item, "routes", ()),
                *getattr(item, "metrics", ()),
            ]
            used = filter_id in item.filter_ids or any(
                filter_id in part.filter_ids for part in nested
            )
            if used:
                users.setdefault(index_name, {})[item.id] = {}
    return users


# ------------------------------------------------------------------------------------ filters
def filter_from_wire(args: Mapping[str, Any], tenant: str, timezone: tzinfo) -> FilterProfile:
    raw_rules = args.get("Rules") or []
    if not isinstance(raw_rules, list):
        raise server_error("invalid params: Rules must be a list")
    rules: list[FilterRule] = []
    for position, raw in enumerate(raw_rules):
        if not isinstance(raw, Mapping):
            raise server_error(f"invalid params: Rules[{position}] must be an object")
        rules.append(
            FilterRule(text(raw, "Type"), text(raw, "Element"), string_list(raw, "Values"))
        )
    return FilterProfile(
        tenant,
        text(args, "ID"),
        tuple(rules),
        interval_from_wire(args.get("ActivationInterval"), timezone),
    )


def filter_to_wire(profile: FilterProfile) -> dict[str, Any]:
    return {
        "Tenant": profile.tenant,
        "ID": profile.id,
        "Rules": [
            {"Type": rule.type, "Element": rule.element, "Values": list(rule.values)}
            for rule in profile.rules
        ],
        "ActivationInterval": interval_to_wire(profile.activation_interval),
    }


def register(
    registry: MethodRegistry,
    filters: FilterService,
    loader: TariffPlanLoader,
    general: GeneralConfig,
) -> None:
    """Registers the APIerSv1 filter methods (``filters`` is the live FilterS, kept for symmetry
    with the other services; profiles are read from the loader's plan)."""

    def check(profile: FilterProfile) -> None:
        try:
            compile_profile(profile)
        except FilterError as exc:
            raise server_error(exc) from None

    def refuse_if_used(tenant: str, filter_id: str) -> None:
        users = filter_users(loader.current, tenant, filter_id)
        if users:
            raise server_error(
                f"cannot remove filter <{tenant_key(tenant, filter_id)}> because will broken "
                f"the reference to following items: {dumps(users).decode()}"
            )

    register_profile_api(
        registry,
        loader,
        general,
        ProfileKind(
            KIND_FILTERS,
            "Filter",
            filter_from_wire,
            filter_to_wire,
            check=check,
            before_remove=refuse_if_used,
        ),
    )
