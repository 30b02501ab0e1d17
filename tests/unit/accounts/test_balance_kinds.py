"""Balance types beyond *monetary/*voice, the *generic step of the debit order, balance
Categories and TimingIDs (debits against the tutorial plan)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from core.accounts import DATA, GENERIC, MONETARY, SMS, VOICE, AccountService, Balance, DebitEvent
from core.rating import Rater
from core.storage import DataDB
from core.tariffplan.models import Timing
from core.types import SECOND
from tests.unit.accounts.test_debit import START, T, give, value

MMS = "*mms"
SATURDAY = datetime(2024, 3, 9, 10, 0, tzinfo=UTC)  # START is a Monday
WEEKEND = Timing("WEEKEND", week_days=frozenset({0, 6}))


def event(tor: str, usage: int, category: str = "call", start: datetime = START) -> DebitEvent:
    return DebitEvent(T, "1001", "1002", start, usage, tor, category)


async def test_sms_and_mms_units_then_money(accounts: AccountService) -> None:
    await give(
        accounts,
        (SMS, Balance(id="texts", value=Decimal(2))),
        (MMS, Balance(id="pictures", value=Decimal(1))),
        (MONETARY, Balance(id="money", value=Decimal(1))),
    )
    result = await accounts.debit(event(SMS, 3, "sms"))
    assert result.usage == 3
    assert await value(accounts, SMS, "texts") == 0
    # The third SMS is rated (RT_SMS: 0.01 a unit) and paid with money.
    assert result.cost == Decimal("0.01")
    assert await value(accounts, MONETARY, "money") == Decimal("0.99")
    await accounts.debit(event(MMS, 1, "mms"))
    assert await value(accounts, MMS, "pictures") == 0
    assert await value(accounts, SMS, "texts") == 0  # an MMS never takes an SMS unit


async def test_data_balance(accounts: AccountService) -> None:
    await give(accounts, (DATA, Balance(id="bytes", value=Decimal(1_000_000))))
    result = await accounts.debit(event(DATA, 400_000, "data"))
    assert (result.usage, result.cost) == (400_000, 0)
    assert await value(accounts, DATA, "bytes") == 600_000


async def test_generic_comes_after_the_event_type_and_before_money(
    accounts: AccountService,
) -> None:
    await give(
        accounts,
        (VOICE, Balance(id="minutes", value=Decimal(60 * SECOND), weight=Decimal(10))),
        # Heavier, still second: *generic is a step of its own after the event's type.
        (GENERIC, Balance(id="generic", value=Decimal(60 * SECOND), weight=Decimal(50))),
        (MONETARY, Balance(id="money", value=Decimal(10))),
    )
    result = await accounts.debit(event(VOICE, 150 * SECOND))
    assert result.usage == 150 * SECOND
    assert await value(accounts, VOICE, "minutes") == 0
    assert await value(accounts, GENERIC, "generic") == 0
    # Money pays the last 30 s only: the connect fee and 30 x 1 s of RT_20CNT's second slot.
    assert await value(accounts, MONETARY, "money") == 10 - Decimal("0.4") - 30 * Decimal("0.00167")


async def test_balance_categories(accounts: AccountService) -> None:
    await give(
        accounts,
        (SMS, Balance(id="promo", value=Decimal(5), categories={"sms_promo": True})),
        (SMS, Balance(id="any", value=Decimal(5))),
    )
    await accounts.debit(event(SMS, 1, "sms"))  # not the promo category
    assert (await value(accounts, SMS, "promo"), await value(accounts, SMS, "any")) == (5, 4)
    await accounts.debit(event(SMS, 2, "sms_promo"))
    assert await value(accounts, SMS, "promo") == 3


async def test_balance_timing_ids(datadb: DataDB, rater: Rater) -> None:
    accounts = AccountService(datadb, lambda: rater, lambda: {"WEEKEND": WEEKEND})
    weekend_only = {"WEEKEND": True}
    await give(
        accounts,
        (VOICE, Balance(id="weekend", value=Decimal(600 * SECOND), timing_ids=weekend_only)),
        (MONETARY, Balance(id="money", value=Decimal(10))),
    )
    await accounts.debit(event(VOICE, 60 * SECOND))  # a Monday: money pays
    assert await value(accounts, VOICE, "weekend") == 600 * SECOND
    assert await value(accounts, MONETARY, "money") == Decimal("9.4")
    await accounts.debit(event(VOICE, 60 * SECOND, start=SATURDAY))
    assert await value(accounts, VOICE, "weekend") == 540 * SECOND
    assert await value(accounts, MONETARY, "money") == Decimal("9.4")
