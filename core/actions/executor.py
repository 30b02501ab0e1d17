"""Running CGRateS actions (engine/action.go) on one locked account.

Each function changes the in-memory account it is given (the caller holds its lock and writes it
through). ``*http_post`` is posted off the caller's path by the ActionService.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from core.accounts import (
    MONETARY,
    VOICE,
    Account,
    AccountTrigger,
    Balance,
    BalanceFilter,
    resolve_expiry,
    string_map,
)
from core.accounts.models import META_DEFAULT
from core.tariffplan.models import Action, ActionTrigger
from core.types import InvalidValue, parse_duration, parse_time, to_money

log = logging.getLogger("chargeflow.actions")

TOPUP: Final = "*topup"
TOPUP_RESET: Final = "*topup_reset"
DEBIT: Final = "*debit"
DEBIT_RESET: Final = "*debit_reset"
RESET_ACCOUNT: Final = "*reset_account"
TRANSFER_BALANCE: Final = "*transfer_balance"
LOG: Final = "*log"
CDRLOG: Final = "*cdrlog"
HTTP_POST: Final = "*http_post"
DISABLE_ACCOUNT: Final = "*disable_account"
ENABLE_ACCOUNT: Final = "*enable_account"
RESET_TRIGGERS: Final = "*reset_triggers"
REMOVE_ACCOUNT: Final = "*remove_account"
ALLOW_NEGATIVE: Final = "*allow_negative"
DENY_NEGATIVE: Final = "*deny_negative"
SUPPORTED_ACTIONS: Final = frozenset(
    {
        TOPUP, TOPUP_RESET, DEBIT, DEBIT_RESET, RESET_ACCOUNT, TRANSFER_BALANCE, LOG, CDRLOG,
        HTTP_POST, DISABLE_ACCOUNT, ENABLE_ACCOUNT, RESET_TRIGGERS, REMOVE_ACCOUNT,
        ALLOW_NEGATIVE, DENY_NEGATIVE,
    }
)  # fmt: skip


def action_units(action: Action) -> Decimal:
    """The action's Units: a duration for *voice ("5m"), a number otherwise."""
    text = action.units.strip()
    if not text:
        return Decimal(0)
    if action.balance_type == VOICE:
        try:
            return Decimal(text)
        except ArithmeticError:
            return Decimal(parse_duration(text))
    return to_money(text)


def action_filter(action: Action, now: datetime) -> BalanceFilter:
    """The balance an action addresses, and the attributes it sets."""
    weight: Decimal | None = None
    if action.balance_weight.strip():
        try:
            weight = to_money(action.balance_weight)
        except InvalidValue:
            weight = None  # *time_desc & co order balances; not supported as a value
    expiry_set = bool(action.expiry_time.strip())
    return BalanceFilter(
        id=action.balance_id or None,
        type=action.balance_type or None,
        expiry=resolve_expiry(action.expiry_time, now) if expiry_set else None,
        expiry_set=expiry_set,
        weight=weight,
        destination_ids=_map_or_none(action.destination_ids),
        rating_subject=action.rating_subject or None,
        categories=_map_or_none(action.categories),
        shared_groups=_map_or_none(action.shared_groups),
        timing_ids=_map_or_none(action.timing_ids),
        blocker=action.balance_blocker,
        disabled=action.balance_disabled,
    )


def _map_or_none(items: tuple[str, ...]) -> dict[str, bool] | None:
    return string_map(items) if items else None


def _target(account: Account, flt: BalanceFilter) -> Balance:
    """The balance a topup/debit changes: the matching one, else a new one (CGRateS
    Account.debitBalanceAction: by Uuid/ID, else by the filter's attributes)."""
    balance_type = flt.type or MONETARY
    for balance in account.balances(balance_type):
        if flt.matches(balance):
            return balance
    balance = Balance()
    flt.apply_to(balance)
    account.balances(balance_type).append(balance)
    return balance


def change_balance(account: Account, action: Action, now: datetime) -> None:
    """*topup, *topup_reset, *debit, *debit_reset."""
    flt = action_filter(action, now)
    units = action_units(action)
    balance = _target(account, flt)
    flt.apply_to(balance)
    kind = action.action_type
    if kind == TOPUP:
        balance.value += units
    elif kind == TOPUP_RESET:
        balance.value = units
    elif kind == DEBIT:
        balance.value -= units
    elif kind == DEBIT_RESET:
        balance.value = -units


def reset_account(account: Account) -> None:
    """*reset_account (CGRateS genericReset): each balance type keeps one empty balance, the
    counters restart from zero and every trigger may fire again (the caller checks them)."""
    for kind in account.balance_map:
        account.balance_map[kind] = [Balance()]
    for counter in account.unit_counters:
        counter.value = Decimal(0)
    for trigger in account.triggers:
        trigger.executed = False


def reset_triggers(account: Account, action: Action) -> None:
    """*reset_triggers (CGRateS ResetActionTriggers): the triggers the action matches may fire
    again. ExtraParameters {"GroupID"} or {"UniqueID"} pick triggers by id, {"ThresholdType"}
    by type; BalanceType (if set) must be the trigger's."""
    params = _json_params(action.extra_parameters)
    group_id = str(params.get("GroupID") or "")
    unique_id = str(params.get("UniqueID") or "")
    threshold_type = str(params.get("ThresholdType") or "")
    for trigger in account.triggers:
        if action.balance_type and (trigger.balance.type or MONETARY) != action.balance_type:
            continue
        if group_id:
            matches = trigger.id == group_id
        elif unique_id:
            matches = trigger.unique_id == unique_id
        else:
            matches = not threshold_type or trigger.threshold_type == threshold_type
        if matches:
            trigger.executed = False


def transfer_destination(account: Account, action: Action) -> str:
    """The key ("tenant:id") of the account a *transfer_balance moves units to: its
    ExtraParameters' DestinationAccountID (the tenant defaults to the source's), else the
    source account itself."""
    name = str(_json_params(action.extra_parameters).get("DestinationAccountID") or "")
    if not name:
        return account.key
    return name if ":" in name else f"{account.tenant}:{name}"


def transfer_balance(
    account: Account, action: Action, now: datetime, destination: Account | None = None
) -> None:
    """*transfer_balance (CGRateS transferBalanceAction): moves Units from the source balance
    (BalanceID, which must exist and not be expired) to the balance DestinationBalanceID of the
    same type in ``destination`` (default: the same account), created if missing. With
    DestinationReferenceValue the amount is whatever brings the destination to that value.
    A non-*default source cannot go below zero, nor a non-*default destination."""
    params = _json_params(action.extra_parameters)
    target_id = str(params.get("DestinationBalanceID") or "")
    if not target_id:
        raise InvalidValue("*transfer_balance needs ExtraParameters DestinationBalanceID")
    if not action.balance_id:
        raise InvalidValue("*transfer_balance needs the source BalanceID")
    found = next(
        (
            (kind, balance)
            for kind, balances in account.balance_map.items()
            if not action.balance_type or kind == action.balance_type
            for balance in balances
            if balance.id == action.balance_id
        ),
        None,
    )
    if found is None or found[1].is_expired(now):
        raise InvalidValue(f"*transfer_balance: source balance {action.balance_id} not found")
    kind, source = found
    target_account = account if destination is None else destination
    target = next((b for b in target_account.balances(kind) if b.id == target_id), None)
    if target is not None and target.is_expired(now):
        raise InvalidValue(f"*transfer_balance: destination balance {target_id} expired")
    if target is None:
        target = Balance(id=target_id)
        target_account.balances(kind).append(target)
    reference = params.get("DestinationReferenceValue")
    units = action_units(action) if reference is None else to_money(reference) - target.value
    if not units:
        raise InvalidValue("*transfer_balance: transfer amount is missing or 0")
    if source.id != META_DEFAULT and units > source.value:
        raise InvalidValue(
            f"*transfer_balance: insufficient credit in {account.key} balance {source.id}"
        )
    if target.id != META_DEFAULT and -units > target.value:
        raise InvalidValue(
            f"*transfer_balance: insufficient credit in {target_account.key} balance {target.id}"
        )
    source.value -= units
    target.value += units


def _json_params(text: str) -> dict[str, Any]:
    from core.types import loads

    if not text.strip():
        return {}
    parsed = loads(text)
    return parsed if isinstance(parsed, dict) else {}


def account_trigger(group_id: str, index: int, row: ActionTrigger, now: datetime) -> AccountTrigger:
    """An ActionTriggers.csv row attached to an account (times resolved now)."""
    expiry_set = bool(row.balance_expiry_time.strip())
    return AccountTrigger(
        id=group_id,
        unique_id=row.unique_id or f"{group_id}_{index}",
        threshold_type=row.threshold_type,
        threshold_value=row.threshold_value,
        actions_id=row.actions_id,
        balance=BalanceFilter(
            id=row.balance_id or None,
            type=row.balance_type or None,
            expiry=resolve_expiry(row.balance_expiry_time, now) if expiry_set else None,
            expiry_set=expiry_set,
            weight=row.balance_weight,
            destination_ids=_map_or_none(row.balance_destination_ids),
            rating_subject=row.balance_rating_subject or None,
            categories=_map_or_none(row.balance_categories),
            shared_groups=_map_or_none(row.balance_shared_groups),
            timing_ids=_map_or_none(row.balance_timing_ids),
            blocker=row.balance_blocker,
            disabled=row.balance_disabled,
        ),
        recurrent=row.recurrent,
        min_sleep=row.min_sleep,
        expiry=parse_time(row.expiry_time, now=now) if row.expiry_time.strip() else None,
        activation=parse_time(row.activation_time, now=now)
        if row.activation_time.strip()
        else None,
        weight=row.weight,
    )
