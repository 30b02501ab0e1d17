"""AccountService: accounts in DataDB (kind "accounts", key "tenant:id"), cached, one lock each.

Every change runs under the account's own asyncio.Lock on a copy of the account; the copy is
written to DataDB before it replaces the cached one and before the caller gets an answer, so a
failed write changes nothing and concurrent debits never lose an update. Action triggers are
checked after each change, still under the lock: the trigger executor (the ActionService) runs
actions on the same in-memory copy, so actions never take the lock again (no deadlock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

from core.rating import Rater
from core.storage import DataDB, Write
from core.tariffplan.models import Timing
from core.types import MICROSECOND, ZERO

from .debit import Charge, DebitEvent, DebitResult, debit_account, max_event_usage
from .models import (
    KIND_ACCOUNTS,
    MONETARY,
    TRIGGER_BALANCE_EXPIRED,
    TRIGGER_MAX_BALANCE,
    TRIGGER_MAX_EVENT_COUNTER,
    TRIGGER_MIN_BALANCE,
    TRIGGER_MIN_EVENT_COUNTER,
    Account,
    AccountTrigger,
    Balance,
    BalanceFilter,
    UnitCounter,
)

log = logging.getLogger("chargeflow.accounts")

# CGRateS utils/errors.go strings.
ERR_ACCOUNT_NOT_FOUND: Final = "ACCOUNT_NOT_FOUND"
ERR_ACCOUNT_DISABLED: Final = "ACCOUNT_DISABLED"
ERR_NOT_FOUND: Final = "NOT_FOUND"
ERR_INSUFFICIENT_CREDIT: Final = "INSUFFICIENT_CREDIT"

COUNTER_TRIGGERS: Final = frozenset({TRIGGER_MIN_EVENT_COUNTER, TRIGGER_MAX_EVENT_COUNTER})

T = TypeVar("T")
Clock = Callable[[], datetime]


class AccountError(Exception):
    """An account operation failed; ``str(error)`` is the CGRateS error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class ChargedCall:
    """What :meth:`AccountService.charge_call` did: the rounded money taken and, per balance
    uuid, what was taken from it (units or money); empty when ``repeated``."""

    def __init__(self, cost: Decimal, amounts: dict[str, Decimal], *, repeated: bool) -> None:
        self.cost = cost
        self.amounts = amounts
        self.repeated = repeated


class TriggerExecutor(Protocol):
    async def __call__(self, account: Account, trigger: AccountTrigger) -> None:
        """Runs the trigger's actions on ``account`` (already locked; mutate it in place)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AccountService:
    def __init__(
        self,
        datadb: DataDB,
        rater: Callable[[], Rater],
        timings: Callable[[], Mapping[str, Timing]] = dict,
        clock: Clock = _utc_now,
    ) -> None:
        self._datadb = datadb
        self._rater = rater
        self._timings = timings
        self.clock = clock
        self._cache: dict[str, Account] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.trigger_executor: TriggerExecutor | None = None

    # ------------------------------------------------------------------------------- reading
    def lock(self, tenant: str, account_id: str) -> asyncio.Lock:
        return self._lock_of(f"{tenant}:{account_id}")

    def _lock_of(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _load(self, key: str) -> Account | None:
        account = self._cache.get(key)
        if account is None:
            doc = await self._datadb.get(KIND_ACCOUNTS, key)
            if doc is None:
                return None
            account = self._cache[key] = Account.from_doc(doc)
        return account

    async def get(self, tenant: str, account_id: str) -> Account | None:
        """A snapshot copy of the account, or None."""
        account = await self._load(f"{tenant}:{account_id}")
        return account.clone() if account is not None else None

    async def count(self, tenant: str = "") -> int:
        return await self._datadb.count(KIND_ACCOUNTS, f"{tenant}:" if tenant else "")

    async def all_keys(self) -> list[str]:
        """Every stored account key ("tenant:id")."""
        return await self._datadb.keys(KIND_ACCOUNTS)

    async def ids(self, tenant: str) -> list[str]:
        prefix = f"{tenant}:"
        return [key[len(prefix) :] for key in await self._datadb.keys(KIND_ACCOUNTS, prefix)]

    # ------------------------------------------------------------------------------ changing
    async def update(
        self,
        tenant: str,
        account_id: str,
        change: Callable[[Account], Awaitable[T]],
        *,
        create: bool = False,
        check_triggers: bool = True,
        also: Callable[[T], Iterable[Write]] | None = None,
    ) -> T:
        """Runs ``change`` on a copy of the account under its lock, checks the triggers, writes
        the result through, then makes it live. Missing account: ACCOUNT_NOT_FOUND unless
        ``create``. ``also`` gives, from the change's result, other DataDB writes that commit
        in the same transaction as the account (all or none)."""
        key = f"{tenant}:{account_id}"
        async with self._lock_of(key):
            # A cached account (the usual case) is read without a coroutine.
            live = self._cache.get(key) or await self._load(key)
            account = self._copy_to_change(live, tenant, account_id, create)
            result = await change(account)
            if check_triggers and account.triggers and not account.removed:
                await self.run_triggers(account)
            await self._store(account, () if also is None else also(result))
            return result

    async def _update_now(
        self,
        tenant: str,
        account_id: str,
        change: Callable[[Account], T],
        also: Callable[[T], Iterable[Write]] | None,
    ) -> T:
        """:meth:`update` for a change that never awaits (debits, refunds): the change is a
        plain call, not one more coroutine per account write."""
        key = f"{tenant}:{account_id}"
        async with self._lock_of(key):
            # A cached account (the usual case) is read without a coroutine.
            live = self._cache.get(key) or await self._load(key)
            account = self._copy_to_change(live, tenant, account_id, False)
            result = change(account)
            if account.triggers and not account.removed:
                await self.run_triggers(account)
            await self._store(account, () if also is None else also(result))
            return result

    async def update_many(
        self,
        keys: list[tuple[str, str]],
        change: Callable[[list[Account]], Awaitable[T]],
        *,
        create: bool = False,
    ) -> T:
        """:meth:`update` over several accounts (a balance transfer between them): their locks
        are taken in key order, ``change`` gets copies in the order of ``keys`` (the first one
        created if missing and ``create``; the others must exist), triggers run on each, and
        all are written in one transaction."""
        names = list(dict.fromkeys(f"{tenant}:{account_id}" for tenant, account_id in keys))
        locks = [self._lock_of(key) for key in sorted(names)]
        taken = 0
        try:
            for lock in locks:
                await lock.acquire()
                taken += 1
            copies: dict[str, Account] = {}
            for index, key in enumerate(names):
                tenant, _, account_id = key.partition(":")
                live = self._cache.get(key) or await self._load(key)
                copies[key] = self._copy_to_change(live, tenant, account_id, create and not index)
            result = await change([copies[f"{t}:{a}"] for t, a in keys])
            for account in copies.values():
                if account.triggers and not account.removed:
                    await self.run_triggers(account)
            now = self.clock()
            for account in copies.values():
                account.update_time = now
            await self._datadb.apply(
                [
                    Write(KIND_ACCOUNTS, key, None if account.removed else account.to_doc())
                    for key, account in copies.items()
                ]
            )
            for key, account in copies.items():
                if account.removed:
                    self._cache.pop(key, None)
                else:
                    self._cache[key] = account
            return result
        finally:
            for lock in locks[:taken]:
                lock.release()

    @staticmethod
    def _copy_to_change(
        live: Account | None, tenant: str, account_id: str, create: bool
    ) -> Account:
        """A copy of the live account to change; a new one if missing and ``create``."""
        if live is None:
            if not create:
                raise AccountError(ERR_ACCOUNT_NOT_FOUND)
            return Account(tenant, account_id)
        return live.clone()

    async def update_locked(self, account: Account) -> None:
        """Writes an account changed by a caller already holding its lock (triggers, actions)."""
        await self._store(account)

    async def _store(self, account: Account, also: Iterable[Write] = ()) -> None:
        key = account.key
        others = list(also)
        if account.removed:
            if others:
                await self._datadb.apply([Write(KIND_ACCOUNTS, key, None), *others])
            else:
                await self._datadb.remove(KIND_ACCOUNTS, key)
            self._cache.pop(key, None)
            return
        account.update_time = self.clock()
        if others:
            await self._datadb.apply([Write(KIND_ACCOUNTS, key, account.to_doc()), *others])
        else:
            await self._datadb.set(KIND_ACCOUNTS, key, account.to_doc())
        self._cache[key] = account

    async def set_account(
        self,
        tenant: str,
        account_id: str,
        *,
        allow_negative: bool | None = None,
        disabled: bool | None = None,
    ) -> Account:
        async def change(account: Account) -> Account:
            if allow_negative is not None:
                account.allow_negative = allow_negative
            if disabled is not None:
                account.disabled = disabled
            return account.clone()

        return await self.update(tenant, account_id, change, create=True, check_triggers=False)

    async def remove(self, tenant: str, account_id: str) -> bool:
        key = f"{tenant}:{account_id}"
        async with self.lock(tenant, account_id):
            self._cache.pop(key, None)
            return await self._datadb.remove(KIND_ACCOUNTS, key)

    # ------------------------------------------------------------------------------- charging
    def _timing(self, timing_id: str) -> Timing | None:
        return self._timings().get(timing_id)

    def debit(
        self,
        event: DebitEvent,
        *,
        allow_negative: bool | None = None,
        charge_connect_fee: bool = True,
        idempotency_key: str = "",
        also: Callable[[DebitResult], Iterable[Write]] | None = None,
    ) -> Coroutine[Any, Any, DebitResult]:
        """Charges ``event`` to its account. ``allow_negative`` None = the account's flag (True is
        CGRateS's default !DenyNegativeAccount for postpaid). ``also``: DataDB writes made from
        the result that commit with the balances (a session's backup recording this debit).
        Raises AccountError ACCOUNT_NOT_FOUND / ACCOUNT_DISABLED, RatingError when the event
        cannot be rated."""
        rater = self._rater()

        def change(account: Account) -> DebitResult:
            if idempotency_key and idempotency_key in account.charge_keys:
                # Already charged (a repeat after a crash): report it, take nothing.
                taken = Decimal(account.charge_keys[idempotency_key])
                return DebitResult(event, event.usage, taken, [], None, repeated=True)
            if account.disabled:
                raise AccountError(ERR_ACCOUNT_DISABLED)
            negative = account.allow_negative if allow_negative is None else allow_negative
            result = debit_account(
                account,
                event,
                rater,
                self._timing,
                allow_negative=negative,
                charge_connect_fee=charge_connect_fee,
            )
            count_debits(account, result.charges)
            if idempotency_key:
                account.remember_charge(idempotency_key, result.cost)
            result.account = None  # the live account changes on: callers read it with get()
            return result

        # The update's own coroutine, not one more around it (a debit is on every request).
        return self._update_now(event.tenant, event.account, change, also)

    def charge_call(
        self,
        event: DebitEvent,
        rounder: Callable[[Decimal], Decimal],
        *,
        idempotency_key: str,
        give_back: Mapping[str, Decimal] | None = None,
    ) -> Coroutine[Any, Any, ChargedCall]:
        """Charges a whole call (a CDR) in one change under the account's lock: first gives
        back ``give_back`` (balance uuid -> what an earlier charge of it took, units or money;
        balances removed since are skipped), then debits ``event`` (past the credit: the call
        happened), then rounds the money as ``rounder`` does, taking or giving back the
        difference on the balance that paid last. All of it is written at once, or nothing.
        An ``idempotency_key`` charged before takes nothing and gives nothing back (repeated)."""
        rater = self._rater()
        returned = dict(give_back or {})

        def change(account: Account) -> ChargedCall:
            if idempotency_key in account.charge_keys:
                taken = Decimal(account.charge_keys[idempotency_key])
                return ChargedCall(taken, {}, repeated=True)
            if account.disabled:
                raise AccountError(ERR_ACCOUNT_DISABLED)
            by_uuid = {b.uuid: b for balances in account.balance_map.values() for b in balances}
            for uuid, amount in returned.items():
                balance = by_uuid.get(uuid)
                if balance is not None:
                    balance.value += amount
            result = debit_account(account, event, rater, self._timing, allow_negative=True)
            count_debits(account, result.charges)
            amounts = result.balance_amounts()
            rounded = rounder(result.cost)
            correction = rounded - result.cost
            if correction != ZERO:
                payer = _take_money(account, correction, result.last_payer)
                amounts[payer] = amounts.get(payer, ZERO) + correction
            account.remember_charge(idempotency_key, rounded)
            return ChargedCall(rounded, amounts, repeated=False)

        return self._update_now(event.tenant, event.account, change, None)

    async def max_usage(
        self,
        event: DebitEvent,
        *,
        charge_connect_fee: bool = True,
        stop_where_unrated: bool = False,
    ) -> int:
        """How much of ``event.usage`` (ns) the balances allow; 0 = no credit (the session layer
        answers INSUFFICIENT_CREDIT). Raises ACCOUNT_NOT_FOUND / ACCOUNT_DISABLED.
        ``stop_where_unrated``: see ``debit_account``."""
        account = await self._load(f"{event.tenant}:{event.account}")
        if account is None:
            raise AccountError(ERR_ACCOUNT_NOT_FOUND)
        if account.disabled:
            raise AccountError(ERR_ACCOUNT_DISABLED)
        return max_event_usage(
            account,
            event,
            self._rater(),
            self._timing,
            charge_connect_fee=charge_connect_fee,
            stop_where_unrated=stop_where_unrated,
        )

    async def charge_money(
        self,
        tenant: str,
        account_id: str,
        amount: Decimal,
        balance_uuid: str = "",
        *,
        also: Callable[[str], Iterable[Write]] | None = None,
    ) -> str:
        """Takes ``amount`` (negative gives back) from one monetary balance: the one with
        ``balance_uuid`` if it still exists, else ``*default``. Used for the rounding
        correction of a call (CGRateS's rounding increment), which may go below zero.
        Returns the uuid of the balance charged ("" when ``amount`` is zero). ``also``: DataDB
        writes made from that uuid that commit with the balances (see :meth:`update`)."""
        if amount == ZERO:
            return ""

        def change(account: Account) -> str:
            return _take_money(account, amount, balance_uuid)

        return await self._update_now(tenant, account_id, change, also)

    def refund(
        self,
        tenant: str,
        account_id: str,
        charges: Iterable[Charge],
        *,
        also: Callable[[Decimal], Iterable[Write]] | None = None,
    ) -> Coroutine[Any, Any, Decimal]:
        """Gives back what ``charges`` took (e.g. ``DebitResult.unused_charges(unused)``);
        balances removed since are skipped. Returns the money refunded. ``also``: DataDB
        writes made from that amount that commit with the balances (see :meth:`update`)."""
        items = list(charges)

        def change(account: Account) -> Decimal:
            by_uuid = {b.uuid: b for balances in account.balance_map.values() for b in balances}
            refunded = ZERO
            for charge in items:
                unit = by_uuid.get(charge.unit_balance) if charge.unit_balance else None
                if unit is not None:
                    unit.value += charge.total_units
                money = by_uuid.get(charge.money_balance) if charge.money_balance else None
                if money is not None:
                    money.value += charge.total_cost
                    refunded += charge.total_cost
            return refunded

        return self._update_now(tenant, account_id, change, also)

    # ------------------------------------------------------------------------------ triggers
    async def run_triggers(self, account: Account) -> None:
        """CGRateS ExecuteActionTriggers: heavier first; non-recurrent ones fire once until
        reset; recurrent ones each time the condition holds, MinSleep apart."""
        executor = self.trigger_executor
        if executor is None or not account.triggers:
            return
        now = self.clock()
        for trigger in sorted(account.triggers, key=lambda t: -t.weight):
            if trigger.executed or not trigger.is_active(now):
                continue
            if not self._condition_holds(account, trigger, now):
                continue
            if (
                trigger.recurrent
                and trigger.last_execution is not None
                and now - trigger.last_execution
                < timedelta(microseconds=trigger.min_sleep // MICROSECOND)
            ):
                continue
            trigger.last_execution = now
            if account.disabled:
                log.warning("account %s disabled: trigger %s not run", account.key, trigger.id)
                continue
            trigger.executed = True
            try:
                await executor(account, trigger)
            except Exception:  # an action failing must not fail the debit that fired it
                log.exception("trigger %s/%s on %s", trigger.id, trigger.unique_id, account.key)
            if trigger.recurrent:
                trigger.executed = False
            if account.removed:
                return

    def _condition_holds(self, account: Account, trigger: AccountTrigger, now: datetime) -> bool:
        kind = trigger.threshold_type
        threshold = trigger.threshold_value
        if kind in COUNTER_TRIGGERS:
            for counter in account.unit_counters:
                if counter.filter is not trigger.balance and counter.filter != trigger.balance:
                    continue
                if kind == TRIGGER_MAX_EVENT_COUNTER and counter.value >= threshold:
                    return True
                if kind == TRIGGER_MIN_EVENT_COUNTER and counter.value <= threshold:
                    return True
            return False
        balance_type = trigger.balance.type or MONETARY
        for balance in account.balance_map.get(balance_type, []):
            if not _trigger_matches(trigger.balance, balance):
                continue
            if kind == TRIGGER_MIN_BALANCE and balance.value <= threshold:
                return True
            if kind == TRIGGER_MAX_BALANCE and balance.value >= threshold:
                return True
            if kind == TRIGGER_BALANCE_EXPIRED and balance.is_expired(now):
                return True
        return False


def _trigger_matches(flt: BalanceFilter, balance: Balance) -> bool:
    """A trigger's balance filter: only the attributes it sets (ids included) must agree."""
    if flt.id and flt.id != balance.id:
        return False
    if flt.uuid and flt.uuid != balance.uuid:
        return False
    probe = BalanceFilter(
        destination_ids=flt.destination_ids or None,
        categories=flt.categories or None,
        rating_subject=flt.rating_subject or None,
        shared_groups=flt.shared_groups or None,
        timing_ids=flt.timing_ids or None,
        weight=flt.weight,
    )
    return probe.matches(balance)


def init_counters(account: Account) -> None:
    """One *event counter per counter trigger filter (CGRateS InitCounters); values kept."""
    wanted: list[UnitCounter] = []
    for trigger in account.triggers:
        if trigger.threshold_type not in COUNTER_TRIGGERS:
            continue
        same = next((c for c in account.unit_counters if c.filter == trigger.balance), None)
        if same is not None and same not in wanted:
            wanted.append(same)
        elif same is None:
            wanted.append(UnitCounter(trigger.balance.type or MONETARY, trigger.balance))
    account.unit_counters = wanted


def count_debits(account: Account, charges: Iterable[Charge]) -> None:
    """Adds what was debited to the matching counters (money for *monetary ones, units else)."""
    if not account.unit_counters:
        return
    by_uuid = {
        b.uuid: (kind, b) for kind, balances in account.balance_map.items() for b in balances
    }
    for charge in charges:
        for uuid, amount in (
            (charge.money_balance, charge.total_cost),
            (charge.unit_balance, charge.total_units),
        ):
            found = by_uuid.get(uuid) if uuid else None
            if found is None:
                continue
            kind, balance = found
            for counter in account.unit_counters:
                if counter.balance_type == kind and _trigger_matches(counter.filter, balance):
                    counter.value += amount


def _take_money(account: Account, amount: Decimal, balance_uuid: str) -> str:
    """Takes ``amount`` (negative gives back) from the monetary balance with ``balance_uuid``
    if it still exists, else from ``*default``; returns the uuid of the balance it took from."""
    target = next(
        (b for b in account.balances(MONETARY) if balance_uuid and b.uuid == balance_uuid), None
    )
    if target is None:
        target = account.default_money_balance()
    target.value -= amount
    return target.uuid
