"""ChargerSv1 (ProcessEvent, GetChargersForEvent) and the APIerSv1 charger profile methods."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, Final

from core.api._params import (
    as_object,
    cgr_event,
    server_error,
    text,
)
from core.api._profiles import ProfileKind, register_profile_api
from core.api.filters import interval_from_wire, interval_to_wire, string_list
from core.attributes import AttributeService
from core.chargers import ChargerSError, ChargerService
from core.config import GeneralConfig
from core.filters import CGREvent, FilterError, check_filter_ids
from core.rpc import CallContext, MethodRegistry, RpcError
from core.tariffplan import KIND_CHARGERS
from core.tariffplan.loader import TariffPlanLoader
from core.tariffplan.models import META_NONE, ChargerProfile
from core.types import InvalidValue, to_money, zone

INLINE_PREFIX: Final = "*"


def charger_from_wire(args: Mapping[str, Any], tenant: str, timezone: tzinfo) -> ChargerProfile:
    try:
        weight = to_money(args.get("Weight") or 0)
    except InvalidValue as exc:
        raise server_error(f"invalid params: Weight: {exc}") from None
    return ChargerProfile(
        tenant,
        text(args, "ID"),
        filter_ids=string_list(args, "FilterIDs"),
        activation_interval=interval_from_wire(args.get("ActivationInterval"), timezone),
        run_id=text(args, "RunID"),
        attribute_ids=string_list(args, "AttributeIDs"),
        weight=weight,
    )


def charger_to_wire(profile: ChargerProfile) -> dict[str, Any]:
    return {
        "Tenant": profile.tenant,
        "ID": profile.id,
        "FilterIDs": list(profile.filter_ids),
        "ActivationInterval": interval_to_wire(profile.activation_interval),
        "RunID": profile.run_id,
        "AttributeIDs": list(profile.attribute_ids),
        "Weight": profile.weight,
    }


def check_charger(profile: ChargerProfile, attributes: AttributeService) -> None:
    """Inline filters and inline attributes must compile (references are the loader's)."""
    try:
        check_filter_ids(profile.filter_ids)
        for attribute_id in profile.attribute_ids:
            if attribute_id != META_NONE and attribute_id.startswith(INLINE_PREFIX):
                attributes.compile_inline(profile.tenant, attribute_id)
    except FilterError as exc:
        raise server_error(exc) from None


def register(
    registry: MethodRegistry,
    chargers: ChargerService,
    attributes: AttributeService,
    loader: TariffPlanLoader,
    general: GeneralConfig,
) -> None:
    timezone = zone(general.default_timezone)

    def event_of(params: Any) -> CGREvent:
        return cgr_event(as_object(params), general.default_tenant, timezone, need_event=True)

    # ------------------------------------------------------------------------------- ChargerSv1
    def process_event(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        try:
            runs = chargers.process(event_of(params))
        except ChargerSError as exc:
            raise RpcError(exc.message) from None
        return [run.to_wire() for run in runs]

    def get_chargers_for_event(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        try:
            profiles = chargers.chargers_for_event(event_of(params))
        except ChargerSError as exc:
            raise RpcError(exc.message) from None
        return [charger_to_wire(profile) for profile in profiles]

    registry.register("ChargerSv1.ProcessEvent", process_event)
    registry.register("ChargerSv1.GetChargersForEvent", get_chargers_for_event)

    # ------------------------------------------------------------------------------- profiles
    register_profile_api(
        registry,
        loader,
        general,
        ProfileKind(
            KIND_CHARGERS,
            "ChargerProfile",
            charger_from_wire,
            charger_to_wire,
            check=lambda profile: check_charger(profile, attributes),
        ),
    )
