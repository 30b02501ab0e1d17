"""The CRUD every tenant-scoped profile kind answers (Set/Get/GetIDs/GetIDsCount/Remove).

Filters, attribute, charger (and later route, resource, stat, threshold) profiles are live
tariff-plan items: setters go through a validated, atomic, stored load; readers read the live
plan. Each kind supplies only its wire conversion and its checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from core.api._params import ERR_NOT_FOUND, OK, as_object, require, server_error, text
from core.config import GeneralConfig
from core.rpc import CallContext, MethodRegistry, RpcError
from core.tariffplan import TariffPlanError
from core.tariffplan.loader import TariffPlanLoader, items_of
from core.tariffplan.models import TariffPlan, tenant_key
from core.types import zone


def tenant_of(args: Mapping[str, Any], general: GeneralConfig) -> str:
    return text(args, "Tenant", general.default_tenant)


def tenant_id_args(args: Mapping[str, Any], general: GeneralConfig) -> tuple[str, str]:
    """``TenantID`` arguments: ``ID`` is mandatory, ``Tenant`` defaults."""
    require(args, "ID")
    return tenant_of(args, general), text(args, "ID")


def paginate(ids: list[str], args: Mapping[str, Any]) -> list[str]:
    """CGRateS's Paginator: ``Offset`` then ``Limit``."""
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


@dataclass(frozen=True, slots=True)
class ProfileKind:
    """How one profile kind is named on the wire and converted."""

    kind: str  # the tariff-plan kind
    name: str  # the method stem: "Filter", "AttributeProfile", ...
    from_wire: Callable[[Mapping[str, Any], str, tzinfo], Any]  # (args, tenant, zone) -> model
    to_wire: Callable[[Any], dict[str, Any]]
    required: Sequence[str] = ("ID",)
    check: Callable[[Any], None] | None = None  # raises RpcError for a profile it cannot serve
    before_remove: Callable[[str, str], None] | None = None  # (tenant, id); raises to refuse
    set_versions: Sequence[str] = ("APIerSv1",)
    with_count: bool = False  # also Get<Name>IDsCount


def register_profile_api(
    registry: MethodRegistry, loader: TariffPlanLoader, general: GeneralConfig, spec: ProfileKind
) -> None:
    timezone = zone(general.default_timezone)

    async def set_profile(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, *spec.required)
        profile = spec.from_wire(args, tenant_of(args, general), timezone)
        if spec.check is not None:
            spec.check(profile)
        await load_item(loader, spec.kind, profile.key, profile)
        return OK

    def get_profile(params: Any, ctx: CallContext) -> dict[str, Any]:
        tenant, profile_id = tenant_id_args(as_object(params), general)
        profile = items_of(loader.current, spec.kind).get(tenant_key(tenant, profile_id))
        if profile is None:
            raise RpcError(ERR_NOT_FOUND)
        return spec.to_wire(profile)

    def ids_of(params: Any) -> tuple[list[str], Mapping[str, Any]]:
        args = as_object(params) if params is not None else {}
        ids = profile_ids(loader, spec.kind, tenant_of(args, general))
        if not ids:
            raise RpcError(ERR_NOT_FOUND)
        return ids, args

    def get_profile_ids(params: Any, ctx: CallContext) -> list[str]:
        ids, args = ids_of(params)
        return paginate(ids, args)

    def get_profile_ids_count(params: Any, ctx: CallContext) -> int:
        return len(ids_of(params)[0])

    async def remove_profile(params: Any, ctx: CallContext) -> str:
        tenant, profile_id = tenant_id_args(as_object(params), general)
        if spec.before_remove is not None:
            spec.before_remove(tenant, profile_id)
        await remove_item(loader, spec.kind, tenant_key(tenant, profile_id))
        return OK

    for version in spec.set_versions:
        registry.register(f"{version}.Set{spec.name}", set_profile)
    registry.register(f"APIerSv1.Get{spec.name}", get_profile)
    registry.register(f"APIerSv1.Get{spec.name}IDs", get_profile_ids)
    if spec.with_count:
        registry.register(f"APIerSv1.Get{spec.name}IDsCount", get_profile_ids_count)
    registry.register(f"APIerSv1.Remove{spec.name}", remove_profile)
