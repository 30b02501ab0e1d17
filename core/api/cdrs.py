"""CDRsV1/CDRsV2: processing, querying and re-rating CDRs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, Final

from core.api._params import ERR_NOT_FOUND, OK, as_object, cgr_event
from core.cdrs.service import CdrError, CdrService
from core.charging import ChargingError, cdr_event_fields
from core.filters.event import CGREvent
from core.rpc import CallContext, MethodRegistry, RpcError
from core.storage.cdr import Cdr, CdrFilter
from core.types import InvalidValue, parse_duration, parse_time, to_money, zone

FLAG_CHARGERS: Final = "*chargers"
FLAG_ATTRIBUTES: Final = "*attributes"
# RPCCDRsFilter list fields -> CdrFilter fields.
_LIST_FILTERS: Final = {
    "CGRIDs": "cgrids",
    "RunIDs": "run_ids",
    "NotRunIDs": "not_run_ids",
    "OriginIDs": "origin_ids",
    "OriginHosts": "origin_hosts",
    "Tenants": "tenants",
    "Categories": "categories",
    "Accounts": "accounts",
    "Subjects": "subjects",
    "DestinationPrefixes": "destination_prefixes",
    "RequestTypes": "request_types",
    "ToRs": "tors",
}
_TIME_FILTERS: Final = {
    "SetupTimeStart": "setup_time_start",
    "SetupTimeEnd": "setup_time_end",
    "AnswerTimeStart": "answer_time_start",
    "AnswerTimeEnd": "answer_time_end",
}


def cdr_filter(params: Any, timezone: tzinfo) -> CdrFilter:
    """CGRateS's RPCCDRsFilter (and AttrGetCdrs' older names) as a CdrFilter."""
    args = params if isinstance(params, Mapping) else {}
    values: dict[str, Any] = {}
    try:
        for wire, name in _LIST_FILTERS.items():
            items = args.get(wire)
            if items:
                if not isinstance(items, list):
                    raise InvalidValue(f"{wire} must be a list")
                values[name] = [str(item) for item in items]
        for wire, name in _TIME_FILTERS.items():
            if args.get(wire):
                values[name] = parse_time(args[wire], timezone)
        for wire, name in (("OrderIDStart", "order_id_start"), ("OrderIDEnd", "order_id_end")):
            if args.get(wire) not in (None, ""):
                values[name] = int(args[wire])
        for wire, name in (("MinUsage", "min_usage"), ("MaxUsage", "max_usage")):
            if args.get(wire) not in (None, ""):
                values[name] = parse_duration(args[wire])
        for wire, name in (("MinCost", "min_cost"), ("MaxCost", "max_cost")):
            if args.get(wire) not in (None, ""):
                values[name] = to_money(args[wire])
        if args.get("Limit") not in (None, ""):
            values["limit"] = int(args["Limit"])
        if args.get("Offset") not in (None, ""):
            values["offset"] = int(args["Offset"])
        return CdrFilter(**values)
    except (InvalidValue, TypeError, ValueError) as exc:
        raise RpcError(f"SERVER_ERROR: invalid params: {exc}") from None


def external_event(args: Mapping[str, Any], default_tenant: str) -> CGREvent:
    """An ExternalCDR (flat CDR fields, ExtraFields beside) as a CGREvent."""
    fields = {key: value for key, value in args.items() if key not in ("ExtraFields", "Tenant")}
    extra = args.get("ExtraFields") or {}
    if not isinstance(extra, Mapping):
        raise RpcError("SERVER_ERROR: invalid params: ExtraFields must be an object")
    fields.update(extra)
    return CGREvent(str(args.get("Tenant") or default_tenant), "", None, fields)


def register(
    registry: MethodRegistry, cdrs: CdrService, *, default_tenant: str, timezone: str
) -> None:
    tz = zone(timezone)

    async def process(event: CGREvent, chargers: bool, attributes: bool = True) -> str:
        try:
            await cdrs.process_event(event, chargers=chargers, attributes=attributes)
        except ChargingError as exc:
            raise RpcError(str(exc)) from None
        except InvalidValue as invalid:  # a name of its own: mypyc types each name once
            raise RpcError(f"SERVER_ERROR: invalid params: {invalid}") from None
        return OK

    async def process_event(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        event = cgr_event(args, default_tenant, tz)
        flags = {str(flag) for flag in args.get("Flags") or []}
        chargers = f"{FLAG_CHARGERS}:false" not in flags
        attributes = f"{FLAG_ATTRIBUTES}:false" not in flags
        return await process(event, chargers, attributes)

    async def process_external(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        event = external_event(args, default_tenant)
        if args.get("PreRated") is True or (
            args.get("Cost") not in (None, "") and to_money(args["Cost"]) >= 0
        ):
            try:
                cdr = cdrs.run_event(event).to_cdr(parse_duration(args.get("Usage") or 0))
            except InvalidValue as exc:
                raise RpcError(f"SERVER_ERROR: invalid params: {exc}") from None
            cdr.cost = to_money(args.get("Cost") or 0)
            cdr.pre_rated = True
            cdr.cost_source = str(args.get("CostSource") or "")
            try:
                await cdrs.store_prerated(cdr)
            except CdrError as refused:  # a name of its own: mypyc types each name once
                raise RpcError(str(refused)) from None
            return OK
        return await process(event, chargers=True)

    async def process_cdr(params: Any, ctx: CallContext) -> str:
        """CDRsV1.ProcessCDR takes a CDR in its wire shape (engine.CDR)."""
        args = as_object(params)
        try:
            cdr = Cdr.from_dict(dict(args))
        except (InvalidValue, TypeError, ValueError) as exc:
            raise RpcError(f"SERVER_ERROR: invalid params: {exc}") from None
        fields = {**cdr.extra_fields, **cdr_event_fields(cdr)}
        event = CGREvent(cdr.tenant or default_tenant, "", None, fields)
        return await process(event, chargers=not cdr.run_id)

    async def get_cdrs(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        found = await cdrs.get_cdrs(cdr_filter(params, tz))
        if not found:
            raise RpcError(ERR_NOT_FOUND)
        return [cdr.to_dict() for cdr in found]

    async def count_cdrs(params: Any, ctx: CallContext) -> int:
        return await cdrs.count_cdrs(cdr_filter(params, tz))

    async def rate_cdrs(params: Any, ctx: CallContext) -> str:
        await cdrs.rate_cdrs(cdr_filter(params, tz))
        return OK

    for version in ("CDRsV1", "CDRsV2"):
        registry.register(f"{version}.ProcessEvent", process_event)
        registry.register(f"{version}.ProcessExternalCDR", process_external)
        registry.register(f"{version}.ProcessCDR", process_cdr)
        registry.register(f"{version}.GetCDRs", get_cdrs)
        registry.register(f"{version}.GetCDRsCount", count_cdrs)
        registry.register(f"{version}.RateCDRs", rate_cdrs)
    registry.register("APIerSv2.GetCDRs", get_cdrs)
    registry.register("APIerSv1.GetCDRs", get_cdrs)
