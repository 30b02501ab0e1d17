"""Action triggers on real accounts: each threshold type, Recurrent and MinSleep."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.accounts import MONETARY, AccountService, DebitEvent
from core.actions import ActionService
from core.tariffplan.models import Action, ActionGroup, ActionTrigger, ActionTriggerGroup
from core.types import SECOND

from .conftest import T0, FakeClock, T

MINUTE = 60 * SECOND


def _setup(service: ActionService, *triggers: ActionTrigger) -> None:
    """FUND tops up 10; each trigger's HIT adds 1 to the *sms balance "hits"."""
    service.actions = {
        "FUND": ActionGroup(
            "FUND", (Action("*topup", balance_id="m", balance_type=MONETARY, units="10"),)
        ),
        "HIT": ActionGroup(
            "HIT", (Action("*topup", balance_id="hits", balance_type="*sms", units="1"),)
        ),
    }
    service.trigger_groups = {"TR": ActionTriggerGroup("TR", triggers)}


async def hits(accounts: AccountService) -> Decimal:
    account = await accounts.get(T, "1001")
    assert account is not None
    return account.total("*sms")


async def call(accounts: AccountService, minutes: int = 1) -> Decimal:
    """A call 1001 -> 1002 (tutorial tariff) charged to 1001; its cost."""
    result = await accounts.debit(DebitEvent(T, "1001", "1002", T0, minutes * MINUTE))
    assert result.cost > 0
    return result.cost


async def test_max_balance_fires_once_at_or_above(
    service: ActionService, accounts: AccountService
) -> None:
    _setup(service, ActionTrigger("*max_balance", Decimal(20), "HIT", balance_type=MONETARY))
    await service.set_account(T, "1001", trigger_ids=["TR"])
    await service.execute(T, "1001", "FUND")  # 10
    assert await hits(accounts) == 0
    await service.execute(T, "1001", "FUND")  # 20 >= 20
    assert await hits(accounts) == 1
    await service.execute(T, "1001", "FUND")  # 30: not recurrent, already executed
    assert await hits(accounts) == 1


async def test_balance_expired_fires_when_a_matching_balance_has_expired(
    service: ActionService, accounts: AccountService, clock: FakeClock
) -> None:
    _setup(service, ActionTrigger("*balance_expired", Decimal(0), "HIT", balance_id="promo"))
    service.actions["PROMO"] = ActionGroup(
        "PROMO",
        (
            Action(
                "*topup",
                balance_id="promo",
                balance_type=MONETARY,
                units="5",
                expiry_time="+1h",
            ),
        ),
    )
    await service.set_account(T, "1001", trigger_ids=["TR"])
    await service.execute(T, "1001", "PROMO")
    await service.execute(T, "1001", "FUND")
    assert await hits(accounts) == 0
    clock.now = T0 + timedelta(hours=1, seconds=1)
    await service.execute(T, "1001", "FUND")  # any change checks the triggers
    assert await hits(accounts) == 1


async def test_event_counters_count_what_debits_took(
    service: ActionService, accounts: AccountService
) -> None:
    _setup(
        service,
        ActionTrigger(
            "*max_event_counter", Decimal("0.5"), "HIT", unique_id="max", balance_type=MONETARY
        ),
    )
    await service.execute(T, "1001", "FUND")
    await service.set_account(T, "1001", trigger_ids=["TR"])
    spent = Decimal(0)
    while spent < Decimal("0.5"):
        assert await hits(accounts) == 0
        spent += await call(accounts)
    account = await accounts.get(T, "1001")
    assert account is not None
    (counter,) = account.unit_counters
    assert counter.value == spent  # what the debits took from *monetary balances
    assert await hits(accounts) == 1


async def test_min_event_counter_fires_while_the_counter_is_at_or_below(
    service: ActionService, accounts: AccountService
) -> None:
    _setup(
        service,
        ActionTrigger(
            "*min_event_counter",
            Decimal(0),
            "HIT",
            balance_type=MONETARY,
            recurrent=True,
        ),
    )
    await service.set_account(T, "1001", trigger_ids=["TR"])  # counter 0 <= 0
    assert await hits(accounts) == 1
    await service.execute(T, "1001", "FUND")  # still 0: recurrent, no MinSleep
    assert await hits(accounts) == 2
    await call(accounts)  # the counter goes above 0: no more
    await service.execute(T, "1001", "FUND")
    assert await hits(accounts) == 2


async def test_recurrent_with_min_sleep(
    service: ActionService, accounts: AccountService, clock: FakeClock
) -> None:
    _setup(
        service,
        ActionTrigger(
            "*min_balance",
            Decimal(100),
            "HIT",
            balance_type=MONETARY,
            recurrent=True,
            min_sleep=60 * SECOND,
        ),
    )
    await service.execute(T, "1001", "FUND")
    await service.set_account(T, "1001", trigger_ids=["TR"])  # 10 <= 100: fires
    assert await hits(accounts) == 1
    await call(accounts)
    clock.now = T0 + timedelta(seconds=59)
    await call(accounts)  # within MinSleep: not again
    assert await hits(accounts) == 1
    clock.now = T0 + timedelta(seconds=60)
    await call(accounts)
    assert await hits(accounts) == 2
    clock.now = T0 + timedelta(seconds=121)
    await call(accounts)
    assert await hits(accounts) == 3
    account = await accounts.get(T, "1001")
    assert account is not None
    assert not account.triggers[0].executed  # recurrent: never left executed
    assert account.triggers[0].last_execution == clock.now


async def test_not_recurrent_fires_once_until_reset(
    service: ActionService, accounts: AccountService
) -> None:
    _setup(service, ActionTrigger("*min_balance", Decimal(100), "HIT", balance_type=MONETARY))
    service.actions["RESET"] = ActionGroup("RESET", (Action("*reset_triggers"),))
    await service.execute(T, "1001", "FUND")
    await service.set_account(T, "1001", trigger_ids=["TR"])
    await call(accounts)
    await call(accounts)
    assert await hits(accounts) == 1
    await service.execute(T, "1001", "RESET")  # re-armed, and checked again at once
    assert await hits(accounts) == 2
