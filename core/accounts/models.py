"""Accounts and balances, as CGRateS v0.10 keeps them (engine/account.go, balances.go).

Values are Decimal: money for ``*monetary``, nanoseconds for ``*voice``, units for ``*data``,
``*sms`` and ``*generic``. Expiry ``None`` means never (Go's zero time on the wire). Documents for
storage keep Decimals as strings; ``to_wire`` gives the CGRateS JSON of APIerSv1.GetAccount.
"""

from __future__ import annotations

import calendar
import copy
import uuid as uuid_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from core.rating.callcost import GO_ZERO_TIME
from core.types import ZERO, InvalidValue, format_time, money_str, parse_duration, parse_time

KIND_ACCOUNTS: Final = "accounts"
MAX_CHARGE_KEYS: Final = 256  # recent debits remembered per account for idempotency

MONETARY: Final = "*monetary"
VOICE: Final = "*voice"
DATA: Final = "*data"
SMS: Final = "*sms"
MMS: Final = "*mms"
GENERIC: Final = "*generic"
BALANCE_TYPES: Final = frozenset({MONETARY, VOICE, DATA, SMS, MMS, GENERIC})

META_ANY: Final = "*any"
META_DEFAULT: Final = "*default"  # id of the monetary balance debits go negative on
NEGATION: Final = "!"  # "!DST_1002" in a ;-list excludes it (stored as False in a StringMap)
ZERO_RATING_PREFIX: Final = "*zero"
# rals.balance_rating_subject defaults: a unit balance without RatingSubject is free, in these
# increments (CGRateS v0.10 ParseZeroRatingSubject).
DEFAULT_BALANCE_RATING_SUBJECT: Final[Mapping[str, str]] = {
    META_ANY: "*zero1ns",
    VOICE: "*zero1s",
}

# Expiry time metas (utils.ParseTimeDetectLayout, resolved when the balance is set).
EXPIRY_UNLIMITED: Final = "*unlimited"
EXPIRY_DAILY: Final = "*daily"
EXPIRY_WEEKLY: Final = "*weekly"
EXPIRY_MONTHLY: Final = "*monthly"
EXPIRY_MONTH_END: Final = "*month_end"
EXPIRY_YEARLY: Final = "*yearly"

# ActionTrigger threshold types.
TRIGGER_MIN_BALANCE: Final = "*min_balance"
TRIGGER_MAX_BALANCE: Final = "*max_balance"
TRIGGER_BALANCE_EXPIRED: Final = "*balance_expired"
TRIGGER_MIN_EVENT_COUNTER: Final = "*min_event_counter"
TRIGGER_MAX_EVENT_COUNTER: Final = "*max_event_counter"
COUNTER_EVENT: Final = "*event"


def new_uuid() -> str:
    return str(uuid_module.uuid4())


# ------------------------------------------------------------------------------------ string maps
def string_map(items: Iterable[str]) -> dict[str, bool]:
    """CGRateS StringMap from a list: ``["D1", "!D2"]`` -> ``{"D1": True, "D2": False}``."""
    result: dict[str, bool] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item.startswith(NEGATION):
            result[item[1:]] = False
        else:
            result[item] = True
    return result


def split_list(value: Any) -> list[str]:
    """A ``;``-list, a JSON list or a StringMap dict as a list of items (negations kept)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in value.split(";") if part]
    if isinstance(value, Mapping):
        return [key if included else NEGATION + key for key, included in value.items()]
    if isinstance(value, list | tuple | set | frozenset):
        return [str(item) for item in value if str(item)]
    raise InvalidValue(f"not a list: {value!r}")


def string_map_matches(items: Mapping[str, bool], value: str) -> bool:
    """StringMap filter on one value: empty or ``*any`` passes; otherwise included, not excluded."""
    if not items or items.get(META_ANY):
        return True
    included = items.get(value)
    if included is not None:
        return included
    return all(not flag for flag in items.values())  # only exclusions: anything else passes


# ----------------------------------------------------------------------------------------- expiry
def add_months(moment: datetime, months: int) -> datetime:
    """Go's AddDate(0, months, 0) without its day overflow (clamped to the month's last day)."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def resolve_expiry(expression: str, now: datetime) -> datetime | None:
    """An expiry expression as CGRateS reads it when the action runs; ``None`` = never.

    ``*unlimited``/empty, ``*daily``, ``*weekly``, ``*monthly``, ``*month_end`` (last day of this
    month, 23:59:59), ``*yearly``, ``+<duration>``, RFC 3339 and the other time layouts.
    """
    text = expression.strip()
    if text in ("", EXPIRY_UNLIMITED):
        return None
    if text == EXPIRY_DAILY:
        return now + timedelta(days=1)
    if text == EXPIRY_WEEKLY:
        return now + timedelta(weeks=1)
    if text == EXPIRY_MONTHLY:
        return add_months(now, 1)
    if text == EXPIRY_YEARLY:
        return add_months(now, 12)
    if text == EXPIRY_MONTH_END:
        last_day = calendar.monthrange(now.year, now.month)[1]
        return now.replace(day=last_day, hour=23, minute=59, second=59, microsecond=0)
    moment = parse_time(text, now=now)
    return None if moment <= GO_ZERO_TIME else moment


def parse_zero_rating_subject(tor: str, rating_subject: str) -> int | None:
    """The free-unit increment (ns/units) of a ``*zero<dur>`` rating subject; an empty subject
    takes rals.balance_rating_subject's default. ``None``: a real subject, rated for money."""
    subject = rating_subject.strip()
    if subject in ("", META_ANY):
        subject = DEFAULT_BALANCE_RATING_SUBJECT.get(tor, DEFAULT_BALANCE_RATING_SUBJECT[META_ANY])
    if not subject.startswith(ZERO_RATING_PREFIX):
        return None
    increment = parse_duration(subject[len(ZERO_RATING_PREFIX) :])
    return increment if increment > 0 else None


# --------------------------------------------------------------------------------------- balances
@dataclass(slots=True)
class Balance:
    uuid: str = field(default_factory=new_uuid)
    id: str = ""
    value: Decimal = ZERO
    expiry: datetime | None = None
    weight: Decimal = ZERO
    destination_ids: dict[str, bool] = field(default_factory=dict)
    rating_subject: str = ""
    categories: dict[str, bool] = field(default_factory=dict)
    shared_groups: dict[str, bool] = field(default_factory=dict)
    timing_ids: dict[str, bool] = field(default_factory=dict)
    blocker: bool = False
    disabled: bool = False

    def __init__(
        self,
        uuid: str | None = None,
        id: str = "",
        value: Decimal = ZERO,
        expiry: datetime | None = None,
        weight: Decimal = ZERO,
        destination_ids: dict[str, bool] | None = None,
        rating_subject: str = "",
        categories: dict[str, bool] | None = None,
        shared_groups: dict[str, bool] | None = None,
        timing_ids: dict[str, bool] | None = None,
        blocker: bool = False,
        disabled: bool = False,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.uuid = new_uuid() if uuid is None else uuid
        self.id = id
        self.value = value
        self.expiry = expiry
        self.weight = weight
        self.destination_ids = {} if destination_ids is None else destination_ids
        self.rating_subject = rating_subject
        self.categories = {} if categories is None else categories
        self.shared_groups = {} if shared_groups is None else shared_groups
        self.timing_ids = {} if timing_ids is None else timing_ids
        self.blocker = blocker
        self.disabled = disabled

    def is_expired(self, moment: datetime) -> bool:
        return self.expiry is not None and moment >= self.expiry

    def clone(self) -> Balance:
        return Balance(
            self.uuid,
            self.id,
            self.value,
            self.expiry,
            self.weight,
            dict(self.destination_ids),
            self.rating_subject,
            dict(self.categories),
            dict(self.shared_groups),
            dict(self.timing_ids),
            self.blocker,
            self.disabled,
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "id": self.id,
            "value": str(self.value),
            "expiry": format_time(self.expiry) if self.expiry else "",
            "weight": str(self.weight),
            "destination_ids": self.destination_ids,
            "rating_subject": self.rating_subject,
            "categories": self.categories,
            "shared_groups": self.shared_groups,
            "timing_ids": self.timing_ids,
            "blocker": self.blocker,
            "disabled": self.disabled,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Balance:
        return cls(
            uuid=doc["uuid"],
            id=doc.get("id", ""),
            value=Decimal(doc["value"]),
            expiry=parse_time(doc["expiry"]) if doc.get("expiry") else None,
            weight=Decimal(doc.get("weight", "0")),
            destination_ids=dict(doc.get("destination_ids") or {}),
            rating_subject=doc.get("rating_subject", ""),
            categories=dict(doc.get("categories") or {}),
            shared_groups=dict(doc.get("shared_groups") or {}),
            timing_ids=dict(doc.get("timing_ids") or {}),
            blocker=bool(doc.get("blocker")),
            disabled=bool(doc.get("disabled")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "Uuid": self.uuid,
            "ID": self.id,
            "Value": self.value,
            "ExpirationDate": self.expiry or GO_ZERO_TIME,
            "Weight": self.weight,
            "DestinationIDs": dict(self.destination_ids),
            "RatingSubject": self.rating_subject,
            "Categories": dict(self.categories),
            "SharedGroups": dict(self.shared_groups),
            "Timings": None,
            "TimingIDs": dict(self.timing_ids),
            "Disabled": self.disabled,
            "Factor": None,
            "Blocker": self.blocker,
        }


# ----------------------------------------------------------------------------------- balance filter
@dataclass(slots=True)
class BalanceFilter:
    """CGRateS BalanceFilter: ``None`` fields are not set (they match anything, change nothing)."""

    uuid: str | None = None
    id: str | None = None
    type: str | None = None
    value: Decimal | None = None
    expiry: datetime | None = None
    expiry_set: bool = False  # expiry None with expiry_set = "*unlimited"
    weight: Decimal | None = None
    destination_ids: dict[str, bool] | None = None
    rating_subject: str | None = None
    categories: dict[str, bool] | None = None
    shared_groups: dict[str, bool] | None = None
    timing_ids: dict[str, bool] | None = None
    blocker: bool | None = None
    disabled: bool | None = None

    def matches(self, balance: Balance) -> bool:
        """The balance an action addresses: by Uuid, else by ID, else by the set attributes
        (CGRateS Balance.MatchFilter with skipIds=false)."""
        if self.uuid:
            return balance.uuid == self.uuid
        if self.id:
            return balance.id == self.id
        return (
            (self.destination_ids is None or self.destination_ids == balance.destination_ids)
            and (self.categories is None or self.categories == balance.categories)
            and (self.rating_subject is None or self.rating_subject == balance.rating_subject)
            and (self.shared_groups is None or self.shared_groups == balance.shared_groups)
            and (self.timing_ids is None or self.timing_ids == balance.timing_ids)
            and (self.weight is None or self.weight == balance.weight)
            and (not self.expiry_set or self.expiry == balance.expiry)
        )

    def apply_to(self, balance: Balance) -> None:
        """Sets the filter's attributes on ``balance`` (the value is the caller's business)."""
        if self.uuid:
            balance.uuid = self.uuid
        if self.id is not None:
            balance.id = self.id
        if self.expiry_set:
            balance.expiry = self.expiry
        if self.weight is not None:
            balance.weight = self.weight
        if self.destination_ids is not None:
            balance.destination_ids = dict(self.destination_ids)
        if self.rating_subject is not None:
            balance.rating_subject = self.rating_subject
        if self.categories is not None:
            balance.categories = dict(self.categories)
        if self.shared_groups is not None:
            balance.shared_groups = dict(self.shared_groups)
        if self.timing_ids is not None:
            balance.timing_ids = dict(self.timing_ids)
        if self.blocker is not None:
            balance.blocker = self.blocker
        if self.disabled is not None:
            balance.disabled = self.disabled

    def to_doc(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "id": self.id,
            "type": self.type,
            "value": None if self.value is None else str(self.value),
            "expiry": format_time(self.expiry) if self.expiry else None,
            "expiry_set": self.expiry_set,
            "weight": None if self.weight is None else str(self.weight),
            "destination_ids": self.destination_ids,
            "rating_subject": self.rating_subject,
            "categories": self.categories,
            "shared_groups": self.shared_groups,
            "timing_ids": self.timing_ids,
            "blocker": self.blocker,
            "disabled": self.disabled,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> BalanceFilter:
        return cls(
            uuid=doc.get("uuid"),
            id=doc.get("id"),
            type=doc.get("type"),
            value=None if doc.get("value") is None else Decimal(doc["value"]),
            expiry=parse_time(doc["expiry"]) if doc.get("expiry") else None,
            expiry_set=bool(doc.get("expiry_set")),
            weight=None if doc.get("weight") is None else Decimal(doc["weight"]),
            destination_ids=doc.get("destination_ids"),
            rating_subject=doc.get("rating_subject"),
            categories=doc.get("categories"),
            shared_groups=doc.get("shared_groups"),
            timing_ids=doc.get("timing_ids"),
            blocker=doc.get("blocker"),
            disabled=doc.get("disabled"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "Uuid": self.uuid,
            "ID": self.id,
            "Type": self.type,
            "Value": None if self.value is None else {"Static": self.value},
            "ExpirationDate": self.expiry,
            "Weight": self.weight,
            "DestinationIDs": self.destination_ids,
            "RatingSubject": self.rating_subject,
            "Categories": self.categories,
            "SharedGroups": self.shared_groups,
            "TimingIDs": self.timing_ids,
            "Timings": None,
            "Disabled": self.disabled,
            "Factor": None,
            "Blocker": self.blocker,
        }


# ---------------------------------------------------------------------------------------- triggers
@dataclass(slots=True)
class AccountTrigger:
    """An ActionTrigger as attached to one account, with its run state."""

    id: str  # ActionTriggers group id (CSV tag)
    unique_id: str
    threshold_type: str
    threshold_value: Decimal
    actions_id: str
    balance: BalanceFilter = field(default_factory=BalanceFilter)
    recurrent: bool = False
    min_sleep: int = 0  # ns
    expiry: datetime | None = None
    activation: datetime | None = None
    weight: Decimal = ZERO
    executed: bool = False
    last_execution: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        if self.expiry is not None and now > self.expiry:
            return False
        return self.activation is None or now > self.activation

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "unique_id": self.unique_id,
            "threshold_type": self.threshold_type,
            "threshold_value": str(self.threshold_value),
            "actions_id": self.actions_id,
            "balance": self.balance.to_doc(),
            "recurrent": self.recurrent,
            "min_sleep": self.min_sleep,
            "expiry": format_time(self.expiry) if self.expiry else "",
            "activation": format_time(self.activation) if self.activation else "",
            "weight": str(self.weight),
            "executed": self.executed,
            "last_execution": format_time(self.last_execution) if self.last_execution else "",
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AccountTrigger:
        def when(name: str) -> datetime | None:
            return parse_time(doc[name]) if doc.get(name) else None

        return cls(
            id=doc["id"],
            unique_id=doc["unique_id"],
            threshold_type=doc["threshold_type"],
            threshold_value=Decimal(doc["threshold_value"]),
            actions_id=doc["actions_id"],
            balance=BalanceFilter.from_doc(doc.get("balance") or {}),
            recurrent=bool(doc.get("recurrent")),
            min_sleep=int(doc.get("min_sleep", 0)),
            expiry=when("expiry"),
            activation=when("activation"),
            weight=Decimal(doc.get("weight", "0")),
            executed=bool(doc.get("executed")),
            last_execution=when("last_execution"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "UniqueID": self.unique_id,
            "ThresholdType": self.threshold_type,
            "ThresholdValue": self.threshold_value,
            "Recurrent": self.recurrent,
            "MinSleep": self.min_sleep,
            "ExpirationDate": self.expiry or GO_ZERO_TIME,
            "ActivationDate": self.activation or GO_ZERO_TIME,
            "Balance": self.balance.to_wire(),
            "Weight": self.weight,
            "ActionsID": self.actions_id,
            "MinQueuedItems": 0,
            "Executed": self.executed,
            "LastExecutionTime": self.last_execution or GO_ZERO_TIME,
        }


@dataclass(slots=True)
class UnitCounter:
    """Counts what was debited from balances of ``balance_type`` matching the filter."""

    balance_type: str
    filter: BalanceFilter
    value: Decimal = ZERO
    counter_type: str = COUNTER_EVENT

    def to_doc(self) -> dict[str, Any]:
        return {
            "balance_type": self.balance_type,
            "filter": self.filter.to_doc(),
            "value": str(self.value),
            "counter_type": self.counter_type,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> UnitCounter:
        return cls(
            doc["balance_type"],
            BalanceFilter.from_doc(doc["filter"]),
            Decimal(doc["value"]),
            doc.get("counter_type", COUNTER_EVENT),
        )


# ----------------------------------------------------------------------------------------- account
@dataclass(slots=True)
class Account:
    tenant: str
    id: str
    balance_map: dict[str, list[Balance]] = field(default_factory=dict)
    triggers: list[AccountTrigger] = field(default_factory=list)
    unit_counters: list[UnitCounter] = field(default_factory=list)
    allow_negative: bool = False
    disabled: bool = False
    update_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    action_plan_ids: list[str] = field(default_factory=list)  # CGRateS's AccountActionPlans
    removed: bool = False  # set by *remove_account: the service deletes it on write
    # Idempotency keys of recent debits -> money they took, written with the balances they
    # changed, so a debit repeated after a crash (e.g. re-rating a CDR whose cost was not yet
    # written) takes nothing twice. Oldest first, bounded by MAX_CHARGE_KEYS.
    charge_keys: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        tenant: str,
        id: str,
        balance_map: dict[str, list[Balance]] | None = None,
        triggers: list[AccountTrigger] | None = None,
        unit_counters: list[UnitCounter] | None = None,
        allow_negative: bool = False,
        disabled: bool = False,
        update_time: datetime | None = None,
        action_plan_ids: list[str] | None = None,
        removed: bool = False,
        charge_keys: dict[str, str] | None = None,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.tenant = tenant
        self.id = id
        self.balance_map = {} if balance_map is None else balance_map
        self.triggers = [] if triggers is None else triggers
        self.unit_counters = [] if unit_counters is None else unit_counters
        self.allow_negative = allow_negative
        self.disabled = disabled
        self.update_time = datetime.now(UTC) if update_time is None else update_time
        self.action_plan_ids = [] if action_plan_ids is None else action_plan_ids
        self.removed = removed
        self.charge_keys = {} if charge_keys is None else charge_keys

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.id}"

    def clone(self) -> Account:
        """A copy whose balances, triggers and counters change without touching this one. Field
        by field: ``deepcopy`` was a third of a session's CPU. Balance filters are never
        changed in place, so triggers and counters share them."""
        return Account(
            self.tenant,
            self.id,
            {kind: [b.clone() for b in balances] for kind, balances in self.balance_map.items()},
            [copy.copy(trigger) for trigger in self.triggers],
            [copy.copy(counter) for counter in self.unit_counters],
            self.allow_negative,
            self.disabled,
            self.update_time,
            list(self.action_plan_ids),
            self.removed,
            dict(self.charge_keys),
        )

    def balances(self, balance_type: str) -> list[Balance]:
        return self.balance_map.setdefault(balance_type, [])

    def find_balance(self, balance_type: str | None, flt: BalanceFilter) -> Balance | None:
        types = [balance_type] if balance_type else list(self.balance_map)
        for kind in types:
            for balance in self.balance_map.get(kind, []):
                if flt.matches(balance):
                    return balance
        return None

    def total(self, balance_type: str) -> Decimal:
        return sum((b.value for b in self.balance_map.get(balance_type, [])), ZERO)

    def default_money_balance(self) -> Balance:
        """The ``*default`` monetary balance, created when missing (GetDefaultMoneyBalance)."""
        for balance in self.balance_map.get(MONETARY, []):
            if balance.id == META_DEFAULT:
                return balance
        balance = Balance(id=META_DEFAULT)
        self.balances(MONETARY).append(balance)
        return balance

    def to_doc(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "id": self.id,
            "balances": {
                kind: [b.to_doc() for b in balances]
                for kind, balances in self.balance_map.items()
                if balances
            },
            "triggers": [t.to_doc() for t in self.triggers],
            "unit_counters": [c.to_doc() for c in self.unit_counters],
            "allow_negative": self.allow_negative,
            "disabled": self.disabled,
            "update_time": format_time(self.update_time),
            "action_plan_ids": list(self.action_plan_ids),
            "charge_keys": dict(self.charge_keys),
        }

    def remember_charge(self, key: str, money: Decimal) -> None:
        self.charge_keys[key] = money_text(money)
        while len(self.charge_keys) > MAX_CHARGE_KEYS:
            del self.charge_keys[next(iter(self.charge_keys))]

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Account:
        return cls(
            tenant=doc["tenant"],
            id=doc["id"],
            balance_map={
                kind: [Balance.from_doc(b) for b in balances]
                for kind, balances in (doc.get("balances") or {}).items()
            },
            triggers=[AccountTrigger.from_doc(t) for t in doc.get("triggers") or []],
            unit_counters=[UnitCounter.from_doc(c) for c in doc.get("unit_counters") or []],
            allow_negative=bool(doc.get("allow_negative")),
            disabled=bool(doc.get("disabled")),
            update_time=parse_time(doc["update_time"]),
            action_plan_ids=list(doc.get("action_plan_ids") or []),
            charge_keys=dict(doc.get("charge_keys") or {}),
        )

    def to_wire(self) -> dict[str, Any]:
        """The CGRateS v0.10 Account JSON (GetAccount)."""
        counters: dict[str, list[dict[str, Any]]] = {}
        for counter in self.unit_counters:
            entries = counters.setdefault(counter.balance_type, [])
            if not entries:
                entries.append({"CounterType": counter.counter_type, "Counters": []})
            entries[0]["Counters"].append(
                {"Value": counter.value, "Filter": counter.filter.to_wire()}
            )
        return {
            "ID": self.key,
            "BalanceMap": {
                kind: [b.to_wire() for b in balances]
                for kind, balances in self.balance_map.items()
                if balances
            }
            or None,
            "UnitCounters": counters or None,
            "ActionTriggers": [t.to_wire() for t in self.triggers] or None,
            "AllowNegative": self.allow_negative,
            "Disabled": self.disabled,
            "UpdateTime": self.update_time,
        }


def money_text(value: Decimal) -> str:
    """Logs and CDR fields: plain notation."""
    return money_str(value)
