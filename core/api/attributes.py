"""AttributeSv1 (ProcessEvent, GetAttributeForEvent) and the APIerSv1 attribute profile methods.

``SetAttributeProfile`` takes CGRateS's profile shape; each attribute's ``Value`` may be the RSR
list CGRateS stores (``[{"Rules": "~*req.Account"}]``) or the plain string of the CSV files and
later APIs (``"~*req.Account"``). Profiles come back with the RSR list form.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, Final

from core.api._params import (
    ERR_MANDATORY_IE_MISSING,
    as_object,
    cgr_event,
    flag,
    require,
    server_error,
    text,
)
from core.api._profiles import ProfileKind, register_profile_api
from core.api.filters import interval_from_wire, interval_to_wire, string_list
from core.attributes import (
    OPTS_CONTEXT,
    AttributeSError,
    AttributeService,
    effective_contexts,
    process_runs_of,
    profile_ids_of,
    rules_of,
)
from core.config import GeneralConfig
from core.filters import CGREvent, FilterError
from core.filters.rsr import join_rules
from core.rpc import CallContext, MethodRegistry, RpcError
from core.tariffplan import KIND_ATTRIBUTES
from core.tariffplan.loader import TariffPlanLoader
from core.tariffplan.models import Attribute, AttributeProfile
from core.types import InvalidValue, to_money, zone

RULES: Final = "Rules"


# --------------------------------------------------------------------------------- profiles
def _value_from_wire(value: Any, position: int) -> str:
    """An attribute Value: a string, or CGRateS's RSR list ``[{"Rules": "..."}]``."""
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        raise server_error(f"invalid params: Attributes[{position}].Value")
    rules: list[str] = []
    for item in value:
        rule = item.get(RULES) if isinstance(item, Mapping) else None
        if rule in (None, ""):
            raise RpcError(f"{ERR_MANDATORY_IE_MISSING}: [{RULES}]")
        if not isinstance(rule, str):
            raise server_error(f"invalid params: Attributes[{position}].Value.Rules")
        rules.append(rule)
    try:
        return join_rules(rules)
    except FilterError as exc:
        raise server_error(exc) from None


def attribute_from_wire(args: Mapping[str, Any], tenant: str, timezone: tzinfo) -> AttributeProfile:
    raw_attributes = args.get("Attributes")
    if not isinstance(raw_attributes, list):
        raise server_error("invalid params: Attributes must be a list")
    attributes: list[Attribute] = []
    for position, raw in enumerate(raw_attributes):
        if not isinstance(raw, Mapping):
            raise server_error(f"invalid params: Attributes[{position}] must be an object")
        require(raw, "Path")
        attributes.append(
            Attribute(
                text(raw, "Path"),
                text(raw, "Type"),
                _value_from_wire(raw.get("Value"), position),
                string_list(raw, "FilterIDs"),
            )
        )
    try:
        weight = to_money(args.get("Weight") or 0)
    except InvalidValue as exc:
        raise server_error(f"invalid params: Weight: {exc}") from None
    return AttributeProfile(
        tenant,
        text(args, "ID"),
        contexts=string_list(args, "Contexts"),
        filter_ids=string_list(args, "FilterIDs"),
        activation_interval=interval_from_wire(args.get("ActivationInterval"), timezone),
        attributes=tuple(attributes),
        blocker=flag(args, "Blocker"),
        weight=weight,
    )


def attribute_to_wire(profile: AttributeProfile) -> dict[str, Any]:
    return {
        "Tenant": profile.tenant,
        "ID": profile.id,
        "Contexts": list(effective_contexts(profile)),
        "FilterIDs": list(profile.filter_ids),
        "ActivationInterval": interval_to_wire(profile.activation_interval),
        "Attributes": [
            {
                "FilterIDs": list(attribute.filter_ids),
                "Path": attribute.path,
                "Type": attribute.type,
                "Value": [{RULES: rule} for rule in rules_of(attribute.value)],
            }
            for attribute in profile.attributes
        ],
        "Blocker": profile.blocker,
        "Weight": profile.weight,
    }


# ----------------------------------------------------------------------------------- events
def event_request(
    params: Any, general: GeneralConfig, timezone: tzinfo, *, need_event: bool
) -> tuple[Mapping[str, Any], CGREvent]:
    """The argument object and its CGREvent (``AttrArgsProcessEvent``: a flat CGREvent plus
    ``Context``, ``ProcessRuns``, ``AttributeIDs``)."""
    args = as_object(params)
    return args, cgr_event(args, general.default_tenant, timezone, need_event=need_event)


def context_of(args: Mapping[str, Any], event: CGREvent) -> str | None:
    """The request's context: ``Context`` (v0.10) or ``APIOpts.*context`` (v0.11)."""
    context = text(args, "Context") or event.opts.get(OPTS_CONTEXT)
    return str(context) if context else None


def attribute_ids_of(args: Mapping[str, Any], event: CGREvent) -> tuple[str, ...]:
    return string_list(args, "AttributeIDs") or profile_ids_of(event.opts)


def _process_runs(args: Mapping[str, Any], event: CGREvent) -> int | None:
    runs = args.get("ProcessRuns")
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool)):
        raise server_error("invalid params: ProcessRuns must be an integer")
    return runs or process_runs_of(event.opts)


def register(
    registry: MethodRegistry,
    attributes: AttributeService,
    loader: TariffPlanLoader,
    general: GeneralConfig,
) -> None:
    timezone = zone(general.default_timezone)

    # ----------------------------------------------------------------------------- AttributeSv1
    def process_event(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_request(params, general, timezone, need_event=True)
        try:
            reply = attributes.process_event(
                event,
                context=context_of(args, event),
                process_runs=_process_runs(args, event),
                attribute_ids=attribute_ids_of(args, event),
            )
        except AttributeSError as exc:
            raise RpcError(exc.message) from None
        return reply.to_wire()

    def get_attribute_for_event(params: Any, ctx: CallContext) -> dict[str, Any]:
        args, event = event_request(params, general, timezone, need_event=False)
        try:
            profile = attributes.attribute_for_event(
                event, context=context_of(args, event), attribute_ids=attribute_ids_of(args, event)
            )
        except AttributeSError as exc:
            raise RpcError(exc.message) from None
        return attribute_to_wire(profile.model)

    registry.register("AttributeSv1.ProcessEvent", process_event)
    registry.register("AttributeSv1.GetAttributeForEvent", get_attribute_for_event)

    # ------------------------------------------------------------------------------- profiles
    def check(profile: Any) -> None:
        try:
            attributes.compile(profile)
        except FilterError as exc:
            raise server_error(exc) from None

    register_profile_api(
        registry,
        loader,
        general,
        ProfileKind(
            KIND_ATTRIBUTES,
            "AttributeProfile",
            attribute_from_wire,
            attribute_to_wire,
            required=("ID", "Attributes"),
            check=check,
            set_versions=("APIerSv1", "APIerSv2"),
            with_count=True,
        ),
    )
