"""Actions, action plans on the scheduler's clock, triggers and the tutorial's AccountActions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from core.accounts import MONETARY, AccountService, DebitEvent
from core.actions import ActionService
from core.storage import DataDB
from core.tariffplan.loader import TariffPlanLoader
from core.tariffplan.models import (
    AccountAction,
    Action,
    ActionGroup,
    ActionPlan,
    ActionTiming,
    ActionTrigger,
    ActionTriggerGroup,
    TariffPlan,
)
from core.types import SECOND

from .conftest import T0, FakeClock, T, hook_server, money


async def test_tutorial_account_actions(
    service: ActionService, accounts: AccountService, datadb: DataDB, tutorial_plan: TariffPlan
) -> None:
    loader = TariffPlanLoader(datadb, [service])
    await loader.load_plan(tutorial_plan)
    await service.settle()
    assert await accounts.count(T) == 3
    account = await accounts.get(T, "1002")
    assert account is not None
    assert account.total(MONETARY) == 10  # ACT_TOPUP_RST_10 via AP_PACKAGE_10 *asap
    assert account.action_plan_ids == ["AP_PACKAGE_10"]
    assert [t.threshold_value for t in account.triggers] == [20, 100]
    # Loading the same rows again does not top up again.
    await loader.load_plan(tutorial_plan)
    await service.settle()
    assert await money(accounts, "1002") == 10


def _plan(*, asap_bonus: bool, http_url: str = "") -> TariffPlan:
    actions = {
        "ACT_BONUS": ActionGroup(
            "ACT_BONUS",
            (Action("*topup", balance_id="bonus", balance_type=MONETARY, units="99"),),
        ),
        "ACT_FEE": ActionGroup(
            "ACT_FEE", (Action("*debit", balance_id="bonus", balance_type=MONETARY, units="6"),)
        ),
        "ACT_NOTIFY": ActionGroup("ACT_NOTIFY", (Action("*http_post", extra_parameters=http_url),)),
    }
    timings = [ActionTiming("ACT_FEE", "*every_minute", Decimal(10))]
    if asap_bonus:
        timings.insert(0, ActionTiming("ACT_BONUS", "*asap", Decimal(20)))
    return TariffPlan(
        others={
            "actions": actions,
            "action_plans": {"AP_1": ActionPlan("AP_1", tuple(timings))},
            "action_triggers": {
                "TR_LOW": ActionTriggerGroup(
                    "TR_LOW",
                    (
                        ActionTrigger(
                            "*min_balance", Decimal(95), "ACT_NOTIFY", balance_type=MONETARY
                        ),
                    ),
                )
            },
            "account_actions": {
                "cgrates.org:1001": AccountAction(T, "1001", "AP_1", "TR_LOW"),
            },
        }
    )


async def test_asap_bonus_every_minute_fee_and_trigger_posts_once(
    service: ActionService, accounts: AccountService, datadb: DataDB, clock: FakeClock
) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="OK")

    async with hook_server(hook) as url:
        loader = TariffPlanLoader(datadb, [service])
        await loader.load_plan(_plan(asap_bonus=True, http_url=url))
        await service.settle()
        assert await money(accounts) == 99  # *asap ran at load
        # CGRateS: every minute at the second the plan was attached (T0 = 10:00:30).
        assert service.next_due() == datetime(2024, 3, 4, 10, 1, 30, tzinfo=UTC)
        assert await service.run_due() == 0  # nothing due yet
        for minute in range(1, 4):
            clock.now = T0 + timedelta(minutes=minute)
            assert await service.run_due() == 1
        assert await money(accounts) == 99 - 3 * 6
        await service.settle()
        assert len(received) == 1  # *min_balance 95 fired once (not recurrent)
        assert received[0]["Account"]["ID"] == "cgrates.org:1001"
        account = await accounts.get(T, "1001")
        assert account is not None and account.triggers[0].executed
        assert account.triggers[0].last_execution == T0 + timedelta(minutes=1)


async def test_trigger_from_debit(
    service: ActionService, accounts: AccountService, datadb: DataDB
) -> None:
    plan = _plan(asap_bonus=True)
    plan.others["actions"]["ACT_NOTIFY"] = ActionGroup("ACT_NOTIFY", (Action("*disable_account"),))
    await TariffPlanLoader(datadb, [service]).load_plan(plan)
    await service.settle()
    event = DebitEvent(T, "1001", "1002", T0, 3600 * SECOND)
    await accounts.debit(event)  # 99 -> below 95: the trigger disables the account
    account = await accounts.get(T, "1001")
    assert account is not None and account.disabled


async def test_execute_topup_reset_and_debit(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "A": ActionGroup(
            "A",
            (
                Action("*topup_reset", balance_id="m", balance_type=MONETARY, units="10"),
                Action(
                    "*topup",
                    balance_type="*voice",
                    units="5m",
                    balance_weight="25",
                    rating_subject="*zero1s",
                ),
            ),
        )
    }
    await service.execute(T, "1005", "A")
    await service.execute(T, "1005", "A")
    account = await accounts.get(T, "1005")
    assert account is not None
    assert account.total(MONETARY) == 10
    (voice,) = account.balances("*voice")
    assert voice.value == 600 * SECOND and voice.weight == 25
