"""Debits, max usage and refunds against the tutorial tariff plan."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.accounts import (
    MONETARY,
    VOICE,
    Account,
    AccountError,
    AccountService,
    Balance,
    DebitEvent,
    string_map,
)
from core.storage import DataDB
from core.types import SECOND

T = "cgrates.org"
START = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def call(destination: str, seconds: int, account: str = "1001") -> DebitEvent:
    return DebitEvent(T, account, destination, START, seconds * SECOND)


async def give(accounts: AccountService, *balances: tuple[str, Balance], **flags: bool) -> None:
    async def change(account: Account) -> None:
        for kind, balance in balances:
            account.balances(kind).append(balance)
        for name, value in flags.items():
            setattr(account, name, value)

    await accounts.update(T, "1001", change, create=True)


async def value(accounts: AccountService, kind: str, balance_id: str) -> Decimal:
    account = await accounts.get(T, "1001")
    assert account is not None
    return next(b.value for b in account.balances(kind) if b.id == balance_id)


async def test_monetary_debit_120s_to_1002(accounts: AccountService, datadb: DataDB) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal(10))))
    result = await accounts.debit(call("1002", 120))
    assert result.usage == 120 * SECOND
    assert result.cost == Decimal("0.7002")
    assert await value(accounts, MONETARY, "money") == Decimal("9.2998")
    stored = await datadb.get("accounts", "cgrates.org:1001")
    assert Decimal(stored["balances"][MONETARY][0]["value"]) == Decimal("9.2998")  # written through


async def test_voice_balance_before_monetary_then_spill(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="money", value=Decimal(10))),
        (VOICE, Balance(id="mins", value=Decimal(300 * SECOND), weight=Decimal(25))),
    )
    result = await accounts.debit(call("1002", 420))
    assert result.usage == 420 * SECOND
    assert await value(accounts, VOICE, "mins") == 0
    # The minutes cover 0-300 s; the rest continues the same call: the connect fee (0.4) is
    # still owed, and 300-420 s is in the second tier: 120 x 0.00167.
    assert result.cost == Decimal("0.6004")
    assert await value(accounts, MONETARY, "money") == Decimal("9.3996")


async def test_destination_bound_balances_first_and_spill(accounts: AccountService) -> None:
    await give(
        accounts,
        (VOICE, Balance(id="general", value=Decimal(3600 * SECOND), weight=Decimal(100))),
        (
            VOICE,
            Balance(
                id="dst_a",
                value=Decimal(2000 * SECOND),
                weight=Decimal(60),
                destination_ids=string_map(["DST_1002"]),
            ),
        ),
        (
            VOICE,
            Balance(
                id="dst_b",
                value=Decimal(1000 * SECOND),
                weight=Decimal(60),
                destination_ids=string_map(["DST_1002"]),
            ),
        ),
    )
    result = await accounts.debit(call("1002", 2450))
    assert result.usage == 2450 * SECOND
    assert result.cost == 0
    assert await value(accounts, VOICE, "dst_a") == 0
    assert await value(accounts, VOICE, "dst_b") == Decimal(550 * SECOND)
    assert await value(accounts, VOICE, "general") == Decimal(3600 * SECOND)
    # Another destination skips the bound balances; "!DST_1002" would exclude it.
    await accounts.debit(call("1003", 10))
    assert await value(accounts, VOICE, "general") == Decimal(3590 * SECOND)


async def test_excluded_destination(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="money", value=Decimal(10))),
        (
            VOICE,
            Balance(
                id="not_1002",
                value=Decimal(600 * SECOND),
                destination_ids=string_map(["!DST_1002"]),
            ),
        ),
    )
    await accounts.debit(call("1002", 60))
    assert await value(accounts, VOICE, "not_1002") == Decimal(600 * SECOND)
    assert await value(accounts, MONETARY, "money") == Decimal("9.4")


async def test_zero60s_rounds_up(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="money", value=Decimal(10))),
        (VOICE, Balance(id="free", value=Decimal(600 * SECOND), rating_subject="*zero60s")),
    )
    result = await accounts.debit(call("1002", 61))
    assert result.cost == 0 and result.usage == 61 * SECOND
    assert await value(accounts, VOICE, "free") == Decimal(480 * SECOND)


async def test_zero1s_free_minutes(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="money", value=Decimal(10))),
        (VOICE, Balance(id="free", value=Decimal(100 * SECOND), rating_subject="*zero1s")),
    )
    result = await accounts.debit(call("1002", 61))
    assert result.cost == 0
    assert await value(accounts, VOICE, "free") == Decimal(39 * SECOND)


async def test_expired_and_disabled_balances_skipped(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="money", value=Decimal(10))),
        (
            VOICE,
            Balance(
                id="expired",
                value=Decimal(600 * SECOND),
                weight=Decimal(30),
                expiry=START - timedelta(seconds=1),
            ),
        ),
        (VOICE, Balance(id="off", value=Decimal(600 * SECOND), weight=Decimal(20), disabled=True)),
        (MONETARY, Balance(id="money_off", value=Decimal(50), weight=Decimal(50), disabled=True)),
    )
    await accounts.debit(call("1002", 60))
    assert await value(accounts, VOICE, "expired") == Decimal(600 * SECOND)
    assert await value(accounts, VOICE, "off") == Decimal(600 * SECOND)
    assert await value(accounts, MONETARY, "money_off") == 50
    assert await value(accounts, MONETARY, "money") == Decimal("9.4")


async def test_money_runs_out_without_allow_negative(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal("0.65"))))
    result = await accounts.debit(call("1002", 120))
    # 0.4 fee + 0.2 first minute, then 0.05 pays 29 one-second increments of 0.00167.
    assert result.usage == 89 * SECOND
    assert await value(accounts, MONETARY, "money") == Decimal("0.65") - Decimal(
        "0.6"
    ) - 29 * Decimal("0.00167")


async def test_allow_negative_goes_below_zero(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal("0.5"))), allow_negative=True)
    result = await accounts.debit(call("1002", 120))
    assert result.usage == 120 * SECOND
    assert result.cost == Decimal("0.7002")
    account = await accounts.get(T, "1001")
    assert account is not None
    assert account.total(MONETARY) == Decimal("-0.2002")
    assert any(b.id == "*default" and b.value < 0 for b in account.balances(MONETARY))


async def test_spill_between_monetary_balances(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="first", value=Decimal("0.61"), weight=Decimal(20))),
        (MONETARY, Balance(id="second", value=Decimal(5), weight=Decimal(10))),
    )
    result = await accounts.debit(call("1002", 120))
    assert result.cost == Decimal("0.7002")
    first, second = (
        await value(accounts, MONETARY, "first"),
        await value(accounts, MONETARY, "second"),
    )
    assert first + second == Decimal("5.61") - Decimal("0.7002")
    assert first < Decimal("0.00167")


async def test_blocker_stops_the_debit(accounts: AccountService) -> None:
    await give(
        accounts,
        (MONETARY, Balance(id="money", value=Decimal(10))),
        (VOICE, Balance(id="block", value=Decimal(30 * SECOND), weight=Decimal(10), blocker=True)),
    )
    result = await accounts.debit(call("1002", 60))
    assert result.usage == 30 * SECOND
    assert await value(accounts, MONETARY, "money") == 10


async def test_200_concurrent_debits_exact(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal(1000))))
    results = await asyncio.gather(*(accounts.debit(call("1002", 120)) for _ in range(200)))
    assert all(r.cost == Decimal("0.7002") for r in results)
    assert await value(accounts, MONETARY, "money") == Decimal(1000) - 200 * Decimal("0.7002")


async def test_missing_and_disabled_accounts(accounts: AccountService) -> None:
    with pytest.raises(AccountError, match="ACCOUNT_NOT_FOUND"):
        await accounts.debit(call("1002", 60, account="nobody"))
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal(10))), disabled=True)
    with pytest.raises(AccountError, match="ACCOUNT_DISABLED"):
        await accounts.debit(call("1002", 60))
    with pytest.raises(AccountError, match="ACCOUNT_DISABLED"):
        await accounts.max_usage(call("1002", 60))


async def test_max_usage(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal(100))))
    assert await accounts.max_usage(call("1002", 3600)) == 3600 * SECOND
    # DR_1003_MAXCOST_DISC: 0.01/s, MaxCost 0.12 *disconnect.
    assert await accounts.max_usage(call("1003", 3600)) == 12 * SECOND
    assert await value(accounts, MONETARY, "money") == 100  # a dry run


async def test_max_usage_limited_by_money_and_units(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal("0.7"))))
    assert await accounts.max_usage(call("1002", 600)) == 119 * SECOND
    await give(accounts, (VOICE, Balance(id="mins", value=Decimal(60 * SECOND))))
    # The minutes take the first (0.2) minute; 0.7 - 0.4 fee buys 179 s of the 0.00167/s tier.
    assert await accounts.max_usage(call("1002", 600)) == 239 * SECOND


async def test_max_usage_no_credit(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal("0.1"))))
    assert await accounts.max_usage(call("1002", 60)) == 0


async def test_refund_unused(accounts: AccountService) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal(10))))
    result = await accounts.debit(call("1002", 120))
    refunded = await accounts.refund(T, "1001", result.unused_charges(30 * SECOND))
    assert refunded == 30 * Decimal("0.00167")
    assert await value(accounts, MONETARY, "money") == Decimal("9.2998") + 30 * Decimal("0.00167")


async def test_persisted_account_reloads(accounts: AccountService, datadb: DataDB) -> None:
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal("10.1"))))
    fresh = AccountService(datadb, lambda: None)  # type: ignore[arg-type,return-value]
    account = await fresh.get(T, "1001")
    assert account is not None and account.balances(MONETARY)[0].value == Decimal("10.1")
    assert await fresh.count(T) == 1


async def test_chunked_debits_continue_one_call(accounts: AccountService) -> None:
    """Session chunks (5m, 5m, 2m) charge exactly what one 12-minute call costs: 1.7022."""
    await give(accounts, (MONETARY, Balance(id="money", value=Decimal(10))))
    whole = call("1002", 720)
    elapsed = 0
    total = Decimal(0)
    for chunk in (300, 300, 120):
        part = replace(whole, usage=chunk * SECOND, elapsed=elapsed)
        result = await accounts.debit(part)
        assert result.usage == chunk * SECOND
        elapsed += result.usage
        total += result.cost
    assert total == Decimal("1.7022")
    assert await value(accounts, MONETARY, "money") == Decimal("8.2978")
