"""APIerSv1/APIerSv2 account methods: SetAccount, GetAccount, balances, account triggers."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.accounts import (
    BALANCE_TYPES,
    MONETARY,
    VOICE,
    Account,
    AccountError,
    AccountService,
    Balance,
    BalanceFilter,
    resolve_expiry,
    split_list,
    string_map,
)
from core.actions import ActionService
from core.api._params import ERR_NOT_FOUND, OK, as_object, flag, require, server_error, text
from core.config import GeneralConfig
from core.rpc import CallContext, MethodRegistry, RpcError
from core.types import InvalidValue, parse_duration, to_money


def _value(raw: Any, balance_type: str) -> Decimal:
    """Value: a number, or a duration string for *voice ("5m" -> ns)."""
    if isinstance(raw, str) and balance_type == VOICE:
        try:
            return Decimal(raw)
        except ArithmeticError:
            return Decimal(parse_duration(raw))
    return to_money(raw if raw is not None else 0)


def _balance_filter(args: Mapping[str, Any], balance_type: str, now: Any) -> BalanceFilter:
    """The Balance object of v0.10 (Balance{ID, Weight, ...}) or the older flat fields."""
    raw = args.get("Balance")
    src: Mapping[str, Any] = raw if isinstance(raw, Mapping) else args

    def pick(*names: str) -> Any:
        for name in names:
            if src.get(name) is not None:
                return src[name]
        return None

    expiry = pick("ExpiryTime", "ExpirationDate")
    weight = pick("Weight")
    dests, cats = pick("DestinationIDs", "DestinationIds"), pick("Categories")
    timings, groups = pick("TimingIDs", "TimingIds"), pick("SharedGroups")
    return BalanceFilter(
        uuid=pick("Uuid", "BalanceUUID") or None,
        id=pick("ID", "BalanceID") or None,
        type=balance_type,
        expiry=resolve_expiry(str(expiry), now) if expiry else None,
        expiry_set=bool(expiry),
        weight=to_money(weight) if weight is not None else None,
        destination_ids=string_map(split_list(dests)) if dests is not None else None,
        rating_subject=pick("RatingSubject"),
        categories=string_map(split_list(cats)) if cats is not None else None,
        shared_groups=string_map(split_list(groups)) if groups is not None else None,
        timing_ids=string_map(split_list(timings)) if timings is not None else None,
        blocker=pick("Blocker"),
        disabled=pick("Disabled"),
    )


def register(
    registry: MethodRegistry,
    accounts: AccountService,
    actions: ActionService,
    general: GeneralConfig,
) -> None:
    def ids(args: Mapping[str, Any]) -> tuple[str, str]:
        require(args, "Account")
        return text(args, "Tenant", general.default_tenant), text(args, "Account")

    async def set_account(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        tenant, account_id = ids(args)
        extra = args.get("ExtraOptions") or {}
        allow_negative = args.get("AllowNegative", extra.get("AllowNegative"))
        disabled = args.get("Disabled", extra.get("Disabled"))
        try:
            await actions.set_account(
                tenant,
                account_id,
                plan_ids=list(args.get("ActionPlanIDs") or []),
                plans_overwrite=flag(args, "ActionPlansOverwrite"),
                trigger_ids=list(args.get("ActionTriggerIDs") or []),
                triggers_overwrite=flag(args, "ActionTriggerOverwrite"),
                allow_negative=allow_negative if isinstance(allow_negative, bool) else None,
                disabled=disabled if isinstance(disabled, bool) else None,
            )
        except KeyError as exc:
            raise server_error(f"{ERR_NOT_FOUND}: {exc.args[0]}") from None
        return OK

    async def get_account(params: Any, ctx: CallContext) -> dict[str, Any]:
        tenant, account_id = ids(as_object(params))
        account = await accounts.get(tenant, account_id)
        if account is None:
            raise RpcError(ERR_NOT_FOUND)
        return account.to_wire()

    async def get_accounts_count(params: Any, ctx: CallContext) -> int:
        args = as_object(params) if params is not None else {}
        return await accounts.count(text(args, "Tenant", general.default_tenant))

    async def remove_account(params: Any, ctx: CallContext) -> str:
        tenant, account_id = ids(as_object(params))
        if not await accounts.remove(tenant, account_id):
            raise RpcError(ERR_NOT_FOUND)
        return OK

    def balance_change(mode: str) -> Any:
        """SetBalance (value replaces), AddBalance (adds), DebitBalance (subtracts)."""

        async def handler(params: Any, ctx: CallContext) -> str:
            args = as_object(params)
            tenant, account_id = ids(args)
            require(args, "BalanceType")
            balance_type = text(args, "BalanceType")
            if balance_type not in BALANCE_TYPES:
                raise server_error(f"invalid BalanceType: {balance_type}")
            try:
                amount = _value(args.get("Value"), balance_type)
                flt = _balance_filter(args, balance_type, accounts.clock())
            except InvalidValue as exc:
                raise server_error(exc) from None

            async def change(account: Account) -> None:
                target = next(
                    (
                        b
                        for b in account.balances(balance_type)
                        if (flt.uuid or flt.id) and flt.matches(b)
                    ),
                    None,
                )
                if target is None:
                    target = Balance()
                    account.balances(balance_type).append(target)
                flt.apply_to(target)
                if mode == "set":
                    target.value = amount
                elif mode == "add":
                    target.value += amount
                else:
                    target.value -= amount

            try:
                await accounts.update(tenant, account_id, change, create=mode != "debit")
            except AccountError as exc:
                raise RpcError(exc.code) from None
            return OK

        return handler

    async def remove_balances(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        tenant, account_id = ids(args)
        balance_type = text(args, "BalanceType")
        flt = _balance_filter(args, balance_type or MONETARY, accounts.clock())

        async def change(account: Account) -> int:
            removed = 0
            for kind in [balance_type] if balance_type else list(account.balance_map):
                kept = [b for b in account.balance_map.get(kind, []) if not flt.matches(b)]
                removed += len(account.balance_map.get(kind, [])) - len(kept)
                account.balance_map[kind] = kept
            return removed

        try:
            if not await accounts.update(tenant, account_id, change):
                raise RpcError(ERR_NOT_FOUND)
        except AccountError as exc:
            raise RpcError(exc.code) from None
        return OK

    async def add_account_triggers(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        tenant, account_id = ids(args)
        group_ids = list(args.get("ActionTriggerIDs") or [])
        unknown = [g for g in group_ids if g not in actions.trigger_groups]
        if unknown:
            raise server_error(f"{ERR_NOT_FOUND}: {unknown[0]}")

        async def change(account: Account) -> None:
            if flag(args, "ActionTriggerOverwrite"):
                account.triggers = []
            for group_id in group_ids:
                actions.attach_triggers(account, group_id)

        try:
            await accounts.update(tenant, account_id, change, check_triggers=False)
        except AccountError as exc:
            raise RpcError(exc.code) from None
        return OK

    async def reset_account_triggers(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        tenant, account_id = ids(args)
        group_id, unique_id = text(args, "GroupID"), text(args, "UniqueID")

        async def change(account: Account) -> None:
            for trigger in account.triggers:
                if (not group_id or trigger.id == group_id) and (
                    not unique_id or trigger.unique_id == unique_id
                ):
                    trigger.executed = False

        try:
            await accounts.update(tenant, account_id, change, check_triggers=flag(args, "Executed"))
        except AccountError as exc:
            raise RpcError(exc.code) from None
        return OK

    for version in ("APIerSv1", "APIerSv2"):
        registry.register(f"{version}.SetAccount", set_account)
        registry.register(f"{version}.GetAccount", get_account)
        registry.register(f"{version}.GetAccountsCount", get_accounts_count)
        registry.register(f"{version}.RemoveAccount", remove_account)
        registry.register(f"{version}.SetBalance", balance_change("set"))
        registry.register(f"{version}.AddBalance", balance_change("add"))
        registry.register(f"{version}.DebitBalance", balance_change("debit"))
        registry.register(f"{version}.RemoveBalances", remove_balances)
        registry.register(f"{version}.AddAccountActionTriggers", add_account_triggers)
        registry.register(f"{version}.ResetAccountActionTriggers", reset_account_triggers)
