"""Debiting an event from an account's balances (CGRateS Account.debitCreditBalance, simplified).

Order: the event's ToR balances, then ``*generic``, then ``*monetary``; within a type, balances
whose destination matched a longer prefix first, then heavier first (Balances.Sort). A unit
balance with a ``*zero<dur>`` rating subject (or none: rals.balance_rating_subject defaults to
``*zero1s`` for voice, ``*zero1ns`` otherwise) consumes units in those increments and costs no
money; a unit balance with a real rating subject consumes each rated increment's usage and pays
its cost (rated with that subject) from the monetary balances. Monetary balances pay the rated
increments in order, spilling from one balance to the next, whole increments only. The connect
fee is paid by the first balance with enough money when the first charging stage starts.

Simplifications (documented for the session layer): after a free balance covered a part, the
rest is rated as a call of its own starting there (GroupIntervalStart counts from that point and
a ``*disconnect`` MaxCost restarts), as CGRateS does when it moves cd.TimeStart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

from core.rating import CallCost, CostQuery, DestinationIndex, Rater, RatingError, timing_covers
from core.tariffplan.models import DEFAULT_CATEGORY, Timing
from core.types import ZERO

from .models import (
    GENERIC,
    META_ANY,
    MONETARY,
    VOICE,
    Account,
    Balance,
    parse_zero_rating_subject,
    string_map_matches,
)

NO_PRECISION: Final = -1  # the balance's destinations exclude the event's destination

TimingLookup = Callable[[str], Timing | None]


@dataclass(frozen=True, slots=True)
class DebitEvent:
    """What to charge. ``usage`` is ns (units for *data/*sms); ``subject`` "" = the account.

    ``elapsed`` is how much of the same call earlier debits charged already: this debit covers
    [elapsed, elapsed + usage) of a call that started at ``start_time`` (session chunks), so
    tiers and timing splits continue those of the whole call and the connect fee is not
    charged again.
    """

    tenant: str
    account: str
    destination: str
    start_time: datetime
    usage: int
    tor: str = VOICE
    category: str = DEFAULT_CATEGORY
    subject: str = ""
    elapsed: int = 0

    def __init__(
        self,
        tenant: str,
        account: str,
        destination: str,
        start_time: datetime,
        usage: int,
        tor: str = VOICE,
        category: str = DEFAULT_CATEGORY,
        subject: str = "",
        elapsed: int = 0,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        object.__setattr__(self, "tenant", tenant)  # frozen: set as the generated one does
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "destination", destination)
        object.__setattr__(self, "start_time", start_time)
        object.__setattr__(self, "usage", usage)
        object.__setattr__(self, "tor", tor)
        object.__setattr__(self, "category", category)
        object.__setattr__(self, "subject", subject)
        object.__setattr__(self, "elapsed", elapsed)

    def cost_query(self, subject: str = "") -> CostQuery:
        """The whole call up to this debit's end, rated from its start."""
        return CostQuery(
            self.tenant,
            self.category,
            subject or self.subject or self.account,
            self.destination,
            self.start_time,
            self.elapsed + self.usage,
            self.tor,
            self.account,
        )


@dataclass(frozen=True, slots=True)
class Charge:
    """``count`` increments of ``usage`` starting ``offset`` ns into the event, each taking
    ``units`` from the unit balance and ``cost`` from the money balance (uuids; "" = none).
    A connect fee is one increment of usage 0."""

    offset: int
    usage: int
    count: int
    unit_balance: str = ""
    unit_type: str = ""
    units: Decimal = ZERO
    money_balance: str = ""
    cost: Decimal = ZERO

    def __init__(
        self,
        offset: int,
        usage: int,
        count: int,
        unit_balance: str = "",
        unit_type: str = "",
        units: Decimal = ZERO,
        money_balance: str = "",
        cost: Decimal = ZERO,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        object.__setattr__(self, "offset", offset)  # frozen: set as the generated one does
        object.__setattr__(self, "usage", usage)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "unit_balance", unit_balance)
        object.__setattr__(self, "unit_type", unit_type)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "money_balance", money_balance)
        object.__setattr__(self, "cost", cost)

    @property
    def total_usage(self) -> int:
        return self.usage * self.count

    @property
    def total_units(self) -> Decimal:
        return self.units * self.count

    @property
    def total_cost(self) -> Decimal:
        return self.cost * self.count

    @property
    def end(self) -> int:
        return self.offset + self.total_usage


@dataclass(slots=True)
class DebitResult:
    """What a debit did. ``usage`` is the usage covered (<= requested); ``cost`` the money."""

    event: DebitEvent
    usage: int
    cost: Decimal
    charges: list[Charge] = field(default_factory=list)
    account: Account | None = None  # snapshot after the debit (None for dry runs by max_usage)
    max_cost_reached: bool = False
    repeated: bool = False  # its idempotency key was charged before: nothing was taken now

    def __init__(
        self,
        event: DebitEvent,
        usage: int,
        cost: Decimal,
        charges: list[Charge] | None = None,
        account: Account | None = None,
        max_cost_reached: bool = False,
        repeated: bool = False,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.event = event
        self.usage = usage
        self.cost = cost
        self.charges = [] if charges is None else charges
        self.account = account
        self.max_cost_reached = max_cost_reached
        self.repeated = repeated

    @property
    def last_payer(self) -> str:
        """The uuid of the money balance that paid last ("" when money paid nothing): where
        a rounding correction of the call goes."""
        return next((c.money_balance for c in reversed(self.charges) if c.money_balance), "")

    def balance_amounts(self) -> dict[str, Decimal]:
        """uuid -> amount taken (money for monetary balances, units for unit balances)."""
        return charge_amounts(self.charges)

    def unused_charges(self, unused: int) -> list[Charge]:
        """The whole increments lying in the last ``unused`` ns of the covered usage, to give back
        with AccountService.refund (CGRateS refunds whole increments; the connect fee stays)."""
        cutoff = self.usage - unused
        refunds: list[Charge] = []
        for charge in self.charges:
            if charge.usage <= 0 or charge.end <= cutoff:
                continue
            skip = 0 if charge.offset >= cutoff else -(-(cutoff - charge.offset) // charge.usage)
            if skip < charge.count:
                refunds.append(
                    Charge(
                        charge.offset + skip * charge.usage,
                        charge.usage,
                        charge.count - skip,
                        charge.unit_balance,
                        charge.unit_type,
                        charge.units,
                        charge.money_balance,
                        charge.cost,
                    )
                )
        return refunds


def charge_amounts(charges: Iterable[Charge]) -> dict[str, Decimal]:
    """uuid -> what ``charges`` take (money for monetary balances, units for unit balances)."""
    amounts: dict[str, Decimal] = {}
    for charge in charges:
        if charge.unit_balance:
            amounts[charge.unit_balance] = (
                amounts.get(charge.unit_balance, ZERO) + charge.total_units
            )
        if charge.money_balance:
            amounts[charge.money_balance] = (
                amounts.get(charge.money_balance, ZERO) + charge.total_cost
            )
    return amounts


# ------------------------------------------------------------------------------------ selection
def destination_precision(
    balance: Balance, destination: str, destinations: DestinationIndex
) -> int:
    """How well the balance's DestinationIDs match: 0 = no restriction, n = matched on a prefix
    of length n, NO_PRECISION = not usable for this destination."""
    ids = balance.destination_ids
    if not ids or ids.get(META_ANY):
        return 0
    only_exclusions = not any(ids.values())
    for prefix, dest_ids in destinations.longest_matches(destination):
        found = [ids[dest_id] for dest_id in dest_ids if dest_id in ids]
        if found:
            return len(prefix) if all(found) else NO_PRECISION
        if only_exclusions:
            return len(prefix)
    return 0 if only_exclusions else NO_PRECISION


def balance_usable(
    balance: Balance, event: DebitEvent, timings: TimingLookup, *, need_value: bool
) -> bool:
    if balance.disabled or balance.is_expired(event.start_time):
        return False
    if need_value and balance.value <= ZERO:
        return False
    if not string_map_matches(balance.categories, event.category):
        return False
    if balance.timing_ids:
        wanted = [tid for tid, included in balance.timing_ids.items() if included]
        found = [timings(tid) for tid in wanted]
        if not any(t is not None and timing_covers(t, event.start_time) for t in found):
            return False
    return True


def useful_balances(
    account: Account,
    balance_type: str,
    event: DebitEvent,
    destinations: DestinationIndex,
    timings: TimingLookup,
) -> list[Balance]:
    """Balances of one type that may pay for the event, in debit order."""
    balances = account.balance_map.get(balance_type)
    if not balances:
        return []  # most accounts hold one or two types: the others cost nothing here
    ranked: list[tuple[int, Decimal, int, Balance]] = []
    need_value = balance_type != MONETARY
    for position, balance in enumerate(balances):
        if not balance_usable(balance, event, timings, need_value=need_value):
            continue
        precision = destination_precision(balance, event.destination, destinations)
        if precision == NO_PRECISION:
            continue
        ranked.append((-precision, -balance.weight, position, balance))
    if len(ranked) == 1:
        return [ranked[0][3]]
    ranked.sort(key=lambda item: item[:3])
    return [item[3] for item in ranked]


# ---------------------------------------------------------------------------------------- debit
class _Debit:
    """One debit's working state over an account (mutated in place: pass a clone)."""

    def __init__(
        self,
        account: Account,
        event: DebitEvent,
        rater: Rater,
        timings: TimingLookup,
        allow_negative: bool,
        charge_connect_fee: bool,
        stop_where_unrated: bool = False,
    ) -> None:
        self.account = account
        self.event = event
        self.rater = rater
        self.allow_negative = allow_negative
        self.stop_where_unrated = stop_where_unrated
        self.fee_pending = charge_connect_fee
        self.offset = 0
        self.charges: list[Charge] = []
        self.max_cost_reached = False
        destinations = rater.destinations
        self.money = useful_balances(account, MONETARY, event, destinations, timings)
        self.units: list[tuple[str, Balance]] = []
        if event.tor not in (MONETARY, GENERIC):
            for kind in (event.tor, GENERIC):
                self.units.extend(
                    (kind, b) for b in useful_balances(account, kind, event, destinations, timings)
                )

    @property
    def remaining(self) -> int:
        return self.event.usage - self.offset

    def run(self) -> DebitResult:
        for kind, balance in self.units:
            if self.remaining <= 0 or self.max_cost_reached:
                break
            zero = parse_zero_rating_subject(self.event.tor, balance.rating_subject)
            if zero is not None:
                self._free_units(kind, balance, zero)
            else:
                self._rated(self._rate(balance.rating_subject), kind, balance, negative=False)
            if balance.blocker and self.remaining > 0:
                return self._result()  # a blocker balance ends the debit where it stops
        if self.remaining > 0 and not self.max_cost_reached:
            try:
                rest = self._rate("")
            except RatingError:
                if not self.stop_where_unrated:
                    raise
                return self._result()  # what the unit balances covered (RouteS's pricing)
            self._rated(rest, "", None, negative=self.allow_negative)
        return self._result()

    def _result(self) -> DebitResult:
        covered = max(0, min(self.offset, self.event.usage))
        cost = sum((c.total_cost for c in self.charges if c.money_balance), ZERO)
        return DebitResult(
            self.event, covered, cost, self.charges, self.account, self.max_cost_reached
        )

    def _rate(self, subject: str) -> CallCost:
        """What is left to charge, rated as the continuation of the whole call."""
        rated = self.rater.get_cost(self.event.cost_query(subject), cut_at_max_cost=True)
        rest = rated.after(self.event.elapsed + self.offset)
        if self.fee_pending and self.event.elapsed == 0 and rest is not rated:
            # The call's start went to a unit balance: the connect fee is still owed.
            rest = rest._replace(connect_fee=rated.connect_fee)
        return rest

    def _free_units(self, kind: str, balance: Balance, increment: int) -> None:
        needed = -(-self.remaining // increment)
        count = min(needed, int(balance.value // increment))
        if count <= 0:
            return
        balance.value -= Decimal(increment * count)
        self.charges.append(
            Charge(self.offset, increment, count, balance.uuid, kind, Decimal(increment))
        )
        self.offset += increment * count

    def _pay_fee(self, fee: Decimal, negative: bool) -> bool:
        """Pays the connect fee once; False when nothing can pay it."""
        if not self.fee_pending or fee <= ZERO:
            self.fee_pending = False
            return True
        payer = next((b for b in self.money if b.value >= fee), None)
        if payer is None and negative:
            payer = self.account.default_money_balance()
        if payer is None:
            return False
        payer.value -= fee
        self.charges.append(Charge(self.offset, 0, 1, money_balance=payer.uuid, cost=fee))
        self.fee_pending = False
        return True

    def _pay_money(self, cost: Decimal, count: int) -> list[tuple[Balance, int]]:
        """Up to ``count`` increments of ``cost`` from the monetary balances in order."""
        if cost <= ZERO:
            return [(_FREE, count)]
        paid: list[tuple[Balance, int]] = []
        left = count
        for balance in self.money:
            if left <= 0:
                break
            affordable = min(left, int(balance.value // cost)) if balance.value > ZERO else 0
            if affordable > 0:
                balance.value -= cost * affordable
                paid.append((balance, affordable))
                left -= affordable
            if balance.blocker and left > 0:
                break
        return paid

    def _rated(
        self, call_cost: CallCost, kind: str, unit_balance: Balance | None, negative: bool
    ) -> None:
        """Walks the rated increments: each takes its usage from ``unit_balance`` (if any) and
        its cost from money; ``negative`` puts what money cannot pay on the default balance."""
        if not call_cost.timespans:
            return
        if not self._pay_fee(call_cost.connect_fee, negative):
            return
        for _span, group in call_cost.increments():
            count = group.compress_factor
            if unit_balance is not None and group.usage > 0:
                count = min(count, int(unit_balance.value // group.usage))
            done = 0
            for payer, paid in self._pay_money(group.cost, count):
                self._record(group.usage, paid, kind, unit_balance, payer, group.cost)
                done += paid
            if done < group.compress_factor and negative and unit_balance is None:
                rest = group.compress_factor - done
                payer = self.account.default_money_balance()
                payer.value -= group.cost * rest
                self._record(group.usage, rest, kind, None, payer, group.cost)
                done += rest
            if done < group.compress_factor:
                return
        if call_cost.truncated:
            self.max_cost_reached = True

    def _record(
        self,
        usage: int,
        count: int,
        kind: str,
        unit_balance: Balance | None,
        payer: Balance,
        cost: Decimal,
    ) -> None:
        units = Decimal(usage) if unit_balance is not None else ZERO
        if unit_balance is not None:
            unit_balance.value -= units * count
        money_uuid = "" if payer is _FREE else payer.uuid
        self.charges.append(
            Charge(
                self.offset,
                usage,
                count,
                unit_balance.uuid if unit_balance is not None else "",
                kind if unit_balance is not None else "",
                units,
                money_uuid,
                cost if money_uuid else ZERO,
            )
        )
        self.offset += usage * count


_FREE: Final = Balance(uuid="")  # stands for "no balance": a free increment


def debit_account(
    account: Account,
    event: DebitEvent,
    rater: Rater,
    timings: TimingLookup,
    *,
    allow_negative: bool,
    charge_connect_fee: bool = True,
    stop_where_unrated: bool = False,
) -> DebitResult:
    """Debits ``event`` from ``account`` in place (pass a clone to keep the original).
    ``stop_where_unrated``: what no rating profile rates after the unit balances ends the debit
    instead of raising RatingError (CGRateS's getMaxSessionDuration logs it and goes on)."""
    if event.usage <= 0:
        return DebitResult(event, 0, ZERO, [], account)
    debit = _Debit(
        account, event, rater, timings, allow_negative, charge_connect_fee, stop_where_unrated
    )
    return debit.run()


def max_event_usage(
    account: Account,
    event: DebitEvent,
    rater: Rater,
    timings: TimingLookup,
    *,
    charge_connect_fee: bool = True,
    stop_where_unrated: bool = False,
) -> int:
    """How much of ``event.usage`` the account pays for (a dry-run debit on a copy).

    AllowNegative accounts are not limited by money (GetMaxSessionDuration), only by a
    ``*disconnect`` MaxCost.
    """
    if event.usage <= 0:
        return 0
    if account.allow_negative:
        rated = rater.get_cost(event.cost_query(), cut_at_max_cost=True)
        limit = rated.max_cost_usage
        return event.usage if limit is None else max(0, min(limit - event.elapsed, event.usage))
    result = debit_account(
        account.clone(),
        event,
        rater,
        timings,
        allow_negative=False,
        charge_connect_fee=charge_connect_fee,
        stop_where_unrated=stop_where_unrated,
    )
    return min(result.usage, event.usage)


def timing_lookup(timings: Mapping[str, Timing]) -> TimingLookup:
    return timings.get
