"""APIerSv1 filter profile methods (SetFilter, GetFilter, GetFilterIDs, RemoveFilter), and the
helpers the profile APIs (attributes, chargers) share: tenants, activation intervals, ID lists,
loads through the ``TariffPlanLoader``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Final

from core.api._params import (
    ERR_NOT_FOUND,
    OK,
    as_object,
    require,
    server_error,
    text,
)
from core.config import GeneralConfig
from core.filters import FilterError, FilterService, compile_profile
from core.rpc import CallContext, MethodRegistry, RpcError
from core.tariffplan import KIND_FILTERS, OTHER_KINDS, TariffPlanError
from core.tariffplan.loader import TariffPlanLoader, items_of
from core.tariffplan.models import (
    ActivationInterval,
    FilterProfile,
    FilterRule,
    TariffPlan,
    tenant_key,
)
from core.types import InvalidValue, dumps, format_time, parse_time, zone

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
def tenant_of(args: Mapping[str, Any], general: GeneralConfig) -> str:
    return text(args, "Tenant", general.default_tenant)


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


def paginate(ids: list[str], args: Mapping[str, Any]) -> list[str]:
    """CGRateS's ``Paginator``: optional ``Offset`` and ``Limit``."""
    offset = args.get("Offset") or 0
    limit = args.get("Limit")
    if not isinstance(offset, int) or (limit is not None and not isinstance(limit, int)):
        raise server_error("invalid params: Offset and Limit must be integers")
    ids = ids[offset:]
    return ids[:limit] if limit is not None else ids


def profile_ids(loader: TariffPlanLoader, kind: str, tenant: str) -> list[str]:
    """IDs of one kind's tenant-scoped items in ``tenant``, sorted."""
    return sorted(
        item.id for item in items_of(loader.current, kind).values() if item.tenant == tenant
    )


async def load_item(loader: TariffPlanLoader, kind: str, key: str, model: Any) -> None:
    """Adds or replaces one item through a validated, atomic load."""
    try:
        await loader.load_plan(TariffPlan(others={kind: {key: model}}))
    except TariffPlanError as exc:
        raise server_error(exc) from None


async def remove_item(loader: TariffPlanLoader, kind: str, key: str) -> None:
    if not await loader.remove(kind, [key]):
        raise RpcError(ERR_NOT_FOUND)


def tenant_id_args(args: Mapping[str, Any], general: GeneralConfig) -> tuple[str, str]:
    """``TenantID`` arguments: ``ID`` is mandatory, ``Tenant`` defaults."""
    require(args, "ID")
    return tenant_of(args, general), text(args, "ID")


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
    timezone = zone(general.default_timezone)

    async def set_filter(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "ID")
        profile = filter_from_wire(args, tenant_of(args, general), timezone)
        try:
            compile_profile(profile)
        except FilterError as exc:
            raise server_error(exc) from None
        await load_item(loader, KIND_FILTERS, profile.key, profile)
        return OK

    def get_filter(params: Any, ctx: CallContext) -> dict[str, Any]:
        tenant, filter_id = tenant_id_args(as_object(params), general)
        profile = items_of(loader.current, KIND_FILTERS).get(tenant_key(tenant, filter_id))
        if profile is None:
            raise RpcError(ERR_NOT_FOUND)
        return filter_to_wire(profile)

    def get_filter_ids(params: Any, ctx: CallContext) -> list[str]:
        args = as_object(params) if params is not None else {}
        ids = profile_ids(loader, KIND_FILTERS, tenant_of(args, general))
        if not ids:
            raise RpcError(ERR_NOT_FOUND)
        return paginate(ids, args)

    async def remove_filter(params: Any, ctx: CallContext) -> str:
        tenant, filter_id = tenant_id_args(as_object(params), general)
        key = tenant_key(tenant, filter_id)
        users = filter_users(loader.current, tenant, filter_id)
        if users:
            raise server_error(
                f"cannot remove filter <{key}> because will broken the reference to "
                f"following items: {dumps(users).decode()}"
            )
        await remove_item(loader, KIND_FILTERS, key)
        return OK

    registry.register("APIerSv1.SetFilter", set_filter)
    registry.register("APIerSv1.GetFilter", get_filter)
    registry.register("APIerSv1.GetFilterIDs", get_filter_ids)
    registry.register("APIerSv1.RemoveFilter", remove_filter)
