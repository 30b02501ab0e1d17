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
    for balances in account.balance_map.values():
        for balance in balances:
            balance.value = Decimal(0)
    for counter in account.unit_counters:
        counter.value = Decimal(0)
    for trigger in account.triggers:
        trigger.executed = False


def reset_triggers(account: Account, action: Action) -> None:
    """*reset_triggers: the triggers matching the action's balance type (all if none)."""
    for trigger in account.triggers:
        if not action.balance_type or trigger.balance.type == action.balance_type:
            trigger.executed = False


def transfer_balance(account: Account, action: Action, now: datetime) -> None:
    """*transfer_balance within the account: ExtraParameters {"DestinationAccountID" is not
    supported}; moves Units from the addressed balance to the one named DestinationBalanceID."""
    params = _json_params(action.extra_parameters)
    target_id = str(params.get("DestinationBalanceID") or "")
    if not target_id:
        raise InvalidValue("*transfer_balance needs DestinationBalanceID")
    units = action_units(action)
    source = _target(account, action_filter(action, now))
    destination = _target(account, BalanceFilter(id=target_id, type=action.balance_type or None))
    source.value -= units
    destination.value += units


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
