"""APIerSv1 action methods: SetActions/GetActions/ExecuteAction, action plans, action triggers.

Definitions set here go through the tariff-plan loader (validated, stored atomically, served by
the ActionService like CSV-loaded ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.accounts import AccountError
from core.actions import SUPPORTED_ACTIONS, ActionService
from core.api._params import (
    ERR_EXISTS,
    ERR_NOT_FOUND,
    OK,
    as_object,
    flag,
    require,
    server_error,
    text,
)
from core.config import GeneralConfig
from core.rpc import CallContext, MethodRegistry, RpcError
from core.tariffplan import TariffPlanError
from core.tariffplan.kinds import KIND_ACTION_PLANS, KIND_ACTION_TRIGGERS, KIND_ACTIONS
from core.tariffplan.loader import TariffPlanLoader
from core.tariffplan.models import (
    Action,
    ActionGroup,
    ActionPlan,
    ActionTiming,
    ActionTrigger,
    ActionTriggerGroup,
    TariffPlan,
    Timing,
)
from core.types import InvalidValue, parse_duration, to_money


def _items(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(part for part in value.split(";") if part)
    return tuple(str(v) for v in value)


_TRUE = frozenset({"1", "t", "true"})  # Go's strconv.ParseBool, as CGRateS reads TPAction
_FALSE = frozenset({"0", "f", "false"})


def _optional_bool(name: str, value: Any) -> bool | None:
    """A TPAction bool: a JSON bool or a CGRateS string ("true"/"false"); empty = not set."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise InvalidValue(f"{name}: {value!r} is not true or false")


def _action(raw: Mapping[str, Any]) -> Action:
    kind = str(raw.get("Identifier") or "")
    if kind not in SUPPORTED_ACTIONS:
        raise InvalidValue(f"unsupported action: {kind!r}")
    if _items(raw.get("Filter")):
        raise InvalidValue(f"{kind}: action Filter is not supported")
    units = raw.get("Units")
    return Action(
        action_type=kind,
        extra_parameters=str(raw.get("ExtraParameters") or ""),
        filters=_items(raw.get("Filter")),
        balance_id=str(raw.get("BalanceId") or raw.get("BalanceID") or ""),
        balance_type=str(raw.get("BalanceType") or ""),
        categories=_items(raw.get("Categories")),
        destination_ids=_items(raw.get("DestinationIds") or raw.get("DestinationIDs")),
        rating_subject=str(raw.get("RatingSubject") or ""),
        shared_groups=_items(raw.get("SharedGroups")),
        expiry_time=str(raw.get("ExpiryTime") or ""),
        timing_ids=_items(raw.get("TimingTags") or raw.get("TimingIDs")),
        units="" if units is None else str(units),
        balance_weight="" if raw.get("BalanceWeight") is None else str(raw["BalanceWeight"]),
        balance_blocker=_optional_bool("BalanceBlocker", raw.get("BalanceBlocker")),
        balance_disabled=_optional_bool("BalanceDisabled", raw.get("BalanceDisabled")),
        weight=to_money(raw.get("Weight") or 0),
    )


def _action_wire(action: Action) -> dict[str, Any]:
    return {
        "Identifier": action.action_type,
        "BalanceId": action.balance_id,
        "BalanceUuid": "",
        "BalanceType": action.balance_type,
        "Units": action.units,
        "ExpiryTime": action.expiry_time,
        "Filter": ";".join(action.filters),
        "TimingTags": ";".join(action.timing_ids),
        "DestinationIds": ";".join(action.destination_ids),
        "RatingSubject": action.rating_subject,
        "Categories": ";".join(action.categories),
        "SharedGroups": ";".join(action.shared_groups),
        "BalanceWeight": action.balance_weight,
        "ExtraParameters": action.extra_parameters,
        "BalanceBlocker": ""
        if action.balance_blocker is None
        else str(action.balance_blocker).lower(),
        "BalanceDisabled": ""
        if action.balance_disabled is None
        else str(action.balance_disabled).lower(),
        "Weight": action.weight,
    }


def _int_set(raw: Mapping[str, Any], name: str) -> frozenset[int]:
    value = raw.get(name)
    if not value or value == "*any":
        return frozenset()
    parts = value.split(";") if isinstance(value, str) else value
    return frozenset(int(p) for p in parts)


def register(
    registry: MethodRegistry,
    accounts_actions: ActionService,
    loader: TariffPlanLoader,
    general: GeneralConfig,
) -> None:
    service = accounts_actions

    async def load(plan: TariffPlan) -> None:
        try:
            await loader.load_plan(plan)
        except TariffPlanError as exc:
            raise server_error(exc) from None

    async def set_actions(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "ActionsId", "Actions")
        actions_id = text(args, "ActionsId")
        if actions_id in service.actions and not flag(args, "Overwrite"):
            raise RpcError(ERR_EXISTS)
        raw = args["Actions"]
        if not isinstance(raw, list):
            raise server_error("invalid params: Actions must be a list")
        try:
            group = ActionGroup(actions_id, tuple(_action(as_object(a)) for a in raw))
        except InvalidValue as exc:
            raise server_error(exc) from None
        await load(TariffPlan(others={KIND_ACTIONS: {actions_id: group}}))
        return OK

    def get_actions(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        actions_id = params if isinstance(params, str) else text(as_object(params), "ActionsId")
        group = service.actions.get(actions_id)
        if group is None:
            raise RpcError(ERR_NOT_FOUND)
        return [_action_wire(a) for a in group.actions]

    async def execute_action(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "Account", "ActionsId")
        try:
            await service.execute(
                text(args, "Tenant", general.default_tenant),
                text(args, "Account"),
                text(args, "ActionsId"),
            )
        except KeyError:
            raise server_error(ERR_NOT_FOUND) from None
        except AccountError as exc:
            raise server_error(exc.code) from None
        except InvalidValue as exc:  # an action that cannot run (e.g. a transfer's balances)
            raise server_error(exc) from None
        return OK

    async def set_action_plan(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "Id", "ActionPlan")
        plan_id = text(args, "Id")
        if plan_id in service.plans and not flag(args, "Overwrite"):
            raise RpcError(ERR_EXISTS)
        timings: dict[str, Timing] = {}
        rows: list[ActionTiming] = []
        raw_rows = args["ActionPlan"]
        if not isinstance(raw_rows, list):
            raise server_error("invalid params: ActionPlan must be a list")
        for index, item in enumerate(raw_rows):
            raw = as_object(item)
            actions_id = text(raw, "ActionsId")
            if actions_id not in service.actions:
                raise server_error(f"ActionPlan[{index}].ActionsId: {ERR_NOT_FOUND}")
            when = text(raw, "Time")
            if when.startswith("*"):
                timing_id = when  # *asap, *every_minute, *monthly ...
            else:
                timing_id = f"{plan_id}_{index}"
                try:
                    timings[timing_id] = Timing(
                        timing_id,
                        _int_set(raw, "Years"),
                        _int_set(raw, "Months"),
                        _int_set(raw, "MonthDays"),
                        _int_set(raw, "WeekDays"),
                        when,
                    )
                except ValueError as exc:
                    raise server_error(f"ActionPlan[{index}]: {exc}") from None
            rows.append(ActionTiming(actions_id, timing_id, to_money(raw.get("Weight") or 0)))
        plan = TariffPlan(
            timings=timings, others={KIND_ACTION_PLANS: {plan_id: ActionPlan(plan_id, tuple(rows))}}
        )
        await load(plan)
        return OK

    def get_action_plan(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        args = as_object(params)
        wanted = text(args, "ID")
        plans = [service.plans[wanted]] if wanted in service.plans else []
        if not wanted:
            plans = list(service.plans.values())
        if not plans:
            raise RpcError(ERR_NOT_FOUND)
        attached = service.plan_accounts()
        return [
            {
                "Id": plan.id,
                "AccountIDs": {key: True for key in attached.get(plan.id, [])} or None,
                "ActionTimings": [
                    {"ActionsID": t.actions_id, "Timing": {"ID": t.timing_id}, "Weight": t.weight}
                    for t in plan.timings
                ],
            }
            for plan in plans
        ]

    async def set_action_trigger(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "GroupID")
        group_id = text(args, "GroupID")
        existing = service.trigger_groups.get(group_id)
        rows = list(existing.triggers) if existing else []
        unique_id = text(args, "UniqueID")
        try:
            row = ActionTrigger(
                threshold_type=text(args, "ThresholdType"),
                threshold_value=to_money(args.get("ThresholdValue") or 0),
                actions_id=text(args, "ActionsID"),
                unique_id=unique_id,
                recurrent=bool(args.get("Recurrent")),
                min_sleep=parse_duration(args.get("MinSleep") or 0),
                expiry_time=text(args, "ExpirationDate"),
                activation_time=text(args, "ActivationDate"),
                balance_id=text(args, "BalanceID"),
                balance_type=text(args, "BalanceType"),
                balance_destination_ids=_items(args.get("BalanceDestinationIds")),
                balance_weight=Decimal(str(args["BalanceWeight"]))
                if args.get("BalanceWeight") is not None
                else None,
                weight=to_money(args.get("Weight") or 0),
            )
        except InvalidValue as exc:
            raise server_error(exc) from None
        rows = [r for r in rows if not unique_id or r.unique_id != unique_id] + [row]
        await load(
            TariffPlan(
                others={KIND_ACTION_TRIGGERS: {group_id: ActionTriggerGroup(group_id, tuple(rows))}}
            )
        )
        return OK

    def get_action_triggers(params: Any, ctx: CallContext) -> list[dict[str, Any]]:
        args = as_object(params) if params is not None else {}
        wanted = [str(i) for i in args.get("GroupIDs") or []] or list(service.trigger_groups)
        result = []
        for group_id in wanted:
            group = service.trigger_groups.get(group_id)
            if group is None:
                continue
            for row in group.triggers:
                result.append(
                    {
                        "ID": group_id,
                        "UniqueID": row.unique_id,
                        "ThresholdType": row.threshold_type,
                        "ThresholdValue": row.threshold_value,
                        "Recurrent": row.recurrent,
                        "MinSleep": row.min_sleep,
                        "ActionsID": row.actions_id,
                        "Weight": row.weight,
                        "Balance": {"ID": row.balance_id or None, "Type": row.balance_type or None},
                    }
                )
        if not result:
            raise RpcError(ERR_NOT_FOUND)
        return result

    for version in ("APIerSv1", "APIerSv2"):
        registry.register(f"{version}.SetActions", set_actions)
        registry.register(f"{version}.GetActions", get_actions)
        registry.register(f"{version}.ExecuteAction", execute_action)
        registry.register(f"{version}.SetActionPlan", set_action_plan)
        registry.register(f"{version}.GetActionPlan", get_action_plan)
        registry.register(f"{version}.SetActionTrigger", set_action_trigger)
        registry.register(f"{version}.GetActionTriggers", get_action_triggers)
