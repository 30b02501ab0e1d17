"""Each action type on real accounts (ActionService.execute), *transfer_balance across accounts,
*http_post retries, and actions the engine refuses rather than half-applies."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from core.accounts import MONETARY, VOICE, AccountError, AccountService
from core.actions import ActionService
from core.storage import DataDB
from core.tariffplan.models import Action, ActionGroup, ActionTrigger, ActionTriggerGroup
from core.types import InvalidValue

from .conftest import T, hook_server, money


def group(actions_id: str, *actions: Action) -> ActionGroup:
    return ActionGroup(actions_id, actions)


def topup(balance_id: str, units: str, **extra: Any) -> Action:
    return Action("*topup", balance_id=balance_id, balance_type=MONETARY, units=units, **extra)


def transfer(balance_id: str, units: str, params: str) -> Action:
    return Action(
        "*transfer_balance",
        balance_id=balance_id,
        balance_type=MONETARY,
        units=units,
        extra_parameters=params,
    )


def to(balance_id: str = "", account: str = "", **extra: Any) -> str:
    """*transfer_balance ExtraParameters."""
    params: dict[str, Any] = dict(extra)
    if account:
        params["DestinationAccountID"] = account
    if balance_id:
        params["DestinationBalanceID"] = balance_id
    return json.dumps(params)


async def values(accounts: AccountService, account: str) -> dict[str, Decimal]:
    acc = await accounts.get(T, account)
    assert acc is not None
    return {b.id: b.value for b in acc.balances(MONETARY)}


async def test_debit_reset_sets_the_balance_to_minus_units(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "UP": group("UP", topup("m", "10")),
        "DR": group("DR", Action("*debit_reset", balance_id="m", balance_type=MONETARY, units="3")),
    }
    await service.execute(T, "1001", "UP")
    await service.execute(T, "1001", "DR")
    assert await values(accounts, "1001") == {"m": Decimal(-3)}


async def test_reset_account_empties_balances_and_rearms_triggers(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "UP": group(
            "UP",
            topup("a", "10"),
            topup("b", "5"),
            Action("*topup", balance_type=VOICE, units="60s", balance_id="mins"),
        ),
        "RESET": group("RESET", Action("*reset_account")),
        "NOTE": group("NOTE", Action("*topup", balance_id="fired", balance_type="*sms", units="1")),
    }
    service.trigger_groups = {
        "TR": ActionTriggerGroup(
            "TR", (ActionTrigger("*max_balance", Decimal(8), "NOTE", balance_type=MONETARY),)
        )
    }
    await service.set_account(T, "1001", trigger_ids=["TR"])
    await service.execute(T, "1001", "UP")  # a = 10 >= 8: fires once
    account = await accounts.get(T, "1001")
    assert account is not None and account.total("*sms") == 1 and account.triggers[0].executed
    await service.execute(T, "1001", "RESET")
    account = await accounts.get(T, "1001")
    assert account is not None
    # CGRateS genericReset: one empty balance per type, triggers armed again.
    assert [(b.id, b.value) for b in account.balances(MONETARY)] == [("", 0)]
    assert [(b.id, b.value) for b in account.balances(VOICE)] == [("", 0)]
    assert [(b.id, b.value) for b in account.balances("*sms")] == [("", 0)]
    assert not account.triggers[0].executed
    await service.execute(T, "1001", "UP")
    account = await accounts.get(T, "1001")
    assert account is not None and account.total("*sms") == 1  # fired again after the reset


async def test_disable_enable_and_remove_account(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "OFF": group("OFF", Action("*disable_account")),
        "ON": group("ON", Action("*enable_account")),
        "GONE": group("GONE", topup("m", "1"), Action("*remove_account", weight=Decimal(-1))),
    }
    await service.execute(T, "1001", "OFF")
    account = await accounts.get(T, "1001")
    assert account is not None and account.disabled
    await service.execute(T, "1001", "ON")
    account = await accounts.get(T, "1001")
    assert account is not None and not account.disabled
    await service.execute(T, "1001", "GONE")
    assert await accounts.get(T, "1001") is None
    assert await accounts.count(T) == 0


async def test_log_writes_the_account(
    service: ActionService, accounts: AccountService, caplog: pytest.LogCaptureFixture
) -> None:
    service.actions = {"LOG": group("LOG", topup("m", "7", weight=Decimal(10)), Action("*log"))}
    with caplog.at_level(logging.INFO, logger="chargeflow.actions"):
        await service.execute(T, "1001", "LOG")
    (record,) = [r for r in caplog.records if r.getMessage().startswith("*log ")]
    assert '"ID":"cgrates.org:1001"' in record.getMessage()
    assert '"Value":7' in record.getMessage()  # the topup (heavier) ran first
    assert await money(accounts) == 7


async def test_reset_triggers_by_type_group_and_unique_id(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "NOTE": group("NOTE", Action("*log")),
        "ZERO": group(
            "ZERO", topup("m", "0"), Action("*topup", balance_type=VOICE, units="0", balance_id="v")
        ),
        "ALL": group("ALL", Action("*reset_triggers")),
        "VOICE": group("VOICE", Action("*reset_triggers", balance_type=VOICE)),
        "BY_GROUP": group(
            "BY_GROUP", Action("*reset_triggers", extra_parameters='{"GroupID":"B"}')
        ),
        "BY_ID": group("BY_ID", Action("*reset_triggers", extra_parameters='{"UniqueID":"a2"}')),
    }
    low = Decimal(1000)  # the balances (0) are below: every trigger fires at attach
    service.trigger_groups = {
        "A": ActionTriggerGroup(
            "A",
            (
                ActionTrigger("*min_balance", low, "NOTE", unique_id="a1", balance_type=MONETARY),
                ActionTrigger("*min_balance", low, "NOTE", unique_id="a2", balance_type=MONETARY),
            ),
        ),
        "B": ActionTriggerGroup(
            "B", (ActionTrigger("*min_balance", low, "NOTE", unique_id="b1", balance_type=VOICE),)
        ),
    }

    await service.execute(T, "1001", "ZERO")

    async def rearmed(actions_id: str) -> set[str]:
        await service.set_account(T, "1001", trigger_ids=["A", "B"], triggers_overwrite=True)
        account = await accounts.get(T, "1001")
        assert account is not None and all(t.executed for t in account.triggers)
        accounts.trigger_executor = None  # observe the reset itself, not a new firing
        try:
            await service.execute(T, "1001", actions_id)
        finally:
            accounts.trigger_executor = service._run_trigger
        account = await accounts.get(T, "1001")
        assert account is not None
        return {t.unique_id for t in account.triggers if not t.executed}

    assert await rearmed("ALL") == {"a1", "a2", "b1"}
    assert await rearmed("VOICE") == {"b1"}
    assert await rearmed("BY_GROUP") == {"b1"}
    assert await rearmed("BY_ID") == {"a2"}


# ------------------------------------------------------------------------ *transfer_balance
async def test_transfer_balance_to_another_account(
    service: ActionService, accounts: AccountService, datadb: DataDB
) -> None:
    service.actions = {
        "FUND": group("FUND", topup("src", "10")),
        "XFER": group(
            "XFER",
            transfer(
                "src",
                "3",
                to("dst", "cgrates.org:1002"),
            ),
        ),
    }
    await service.execute(T, "1001", "FUND")
    await service.execute(T, "1002", "FUND")
    writes: list[list[str]] = []
    apply = datadb.apply

    async def recording(mutations, *, deferrable=False):  # type: ignore[no-untyped-def]
        mutations = list(mutations)
        writes.append([m.key for m in mutations])
        await apply(mutations, deferrable=deferrable)

    datadb.apply = recording  # type: ignore[method-assign]
    await service.execute(T, "1001", "XFER")
    assert await values(accounts, "1001") == {"src": 7}
    assert await values(accounts, "1002") == {"src": 10, "dst": 3}
    assert writes == [["cgrates.org:1001", "cgrates.org:1002"]]  # one transaction


async def test_transfer_within_the_account_and_to_a_reference_value(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "FUND": group("FUND", topup("src", "10"), topup("dst", "1")),
        "XFER": group("XFER", transfer("src", "4", to("dst"))),
        "REF": group(
            "REF",
            transfer("src", "", to("dst", DestinationReferenceValue=2)),
        ),
    }
    await service.execute(T, "1001", "FUND")
    await service.execute(T, "1001", "XFER")
    assert await values(accounts, "1001") == {"src": 6, "dst": 5}
    await service.execute(T, "1001", "REF")  # dst back to 2: 3 return to src
    assert await values(accounts, "1001") == {"src": 9, "dst": 2}


async def test_transfer_errors_change_nothing(
    service: ActionService, accounts: AccountService
) -> None:
    to_1002 = to("dst", "1002")
    service.actions = {
        "FUND": group("FUND", topup("src", "10")),
        "TOO_MUCH": group("TOO_MUCH", topup("src", "1"), transfer("src", "30", to_1002)),
        "NO_SOURCE": group("NO_SOURCE", transfer("nope", "1", to_1002)),
        "NO_TARGET": group("NO_TARGET", transfer("src", "1", to(account="1002"))),
        "NO_ACCOUNT": group(
            "NO_ACCOUNT",
            transfer("src", "1", to("d", "1009")),
        ),
    }
    await service.execute(T, "1001", "FUND")
    await service.execute(T, "1002", "FUND")
    with pytest.raises(InvalidValue, match="insufficient credit"):
        await service.execute(T, "1001", "TOO_MUCH")
    with pytest.raises(InvalidValue, match="source balance nope not found"):
        await service.execute(T, "1001", "NO_SOURCE")
    with pytest.raises(InvalidValue, match="DestinationBalanceID"):
        await service.execute(T, "1001", "NO_TARGET")
    with pytest.raises(AccountError, match="ACCOUNT_NOT_FOUND"):
        await service.execute(T, "1001", "NO_ACCOUNT")
    assert await values(accounts, "1001") == {"src": 10}  # the topup before the error too
    assert await values(accounts, "1002") == {"src": 10}


async def test_opposite_transfers_lock_in_key_order_and_keep_the_total(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "FUND": group("FUND", topup("m", "100")),
        "TO_1002": group(
            "TO_1002",
            transfer("m", "1", to("m", "1002")),
        ),
        "TO_1001": group(
            "TO_1001",
            transfer("m", "2", to("m", "1001")),
        ),
    }
    await service.execute(T, "1001", "FUND")
    await service.execute(T, "1002", "FUND")
    work = [service.execute(T, "1001", "TO_1002") for _ in range(30)]
    work += [service.execute(T, "1002", "TO_1001") for _ in range(30)]
    async with asyncio.timeout(10):  # a lock-order deadlock would hang here
        await asyncio.gather(*work)
    assert await money(accounts, "1001") == 100 - 30 + 60
    assert await money(accounts, "1002") == 100 + 30 - 60


async def test_transfer_to_another_account_from_a_trigger_is_refused(
    service: ActionService, accounts: AccountService, caplog: pytest.LogCaptureFixture
) -> None:
    service.actions = {
        "FUND": group("FUND", topup("m", "10")),
        "XFER": group("XFER", transfer("m", "5", to("m", "1002"))),
    }
    service.trigger_groups = {
        "TR": ActionTriggerGroup(
            "TR", (ActionTrigger("*max_balance", Decimal(5), "XFER", balance_type=MONETARY),)
        )
    }
    await service.execute(T, "1002", "FUND")
    await service.set_account(T, "1001", trigger_ids=["TR"])
    with caplog.at_level(logging.ERROR, logger="chargeflow.accounts"):
        await service.execute(T, "1001", "FUND")
    assert "across accounts only from ExecuteAction" in caplog.text
    assert await money(accounts, "1001") == 10
    assert await money(accounts, "1002") == 10


async def test_an_action_filter_is_refused_not_applied_to_every_balance(
    service: ActionService, accounts: AccountService
) -> None:
    service.actions = {
        "FUND": group("FUND", topup("m", "10")),
        "F": group("F", topup("m", "5", filters=("*gte:~*req.BalanceMap.*monetary[0].Value:100",))),
    }
    await service.execute(T, "1001", "FUND")
    with pytest.raises(InvalidValue, match="Filter is not supported"):
        await service.execute(T, "1001", "F")
    assert await money(accounts) == 10


# ------------------------------------------------------------------------------ *http_post
async def test_http_post_retries_bounded(service: ActionService) -> None:
    statuses = [500, 503, 200]
    seen: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(await request.text())
        return web.Response(status=statuses[len(seen) - 1])

    pauses: list[float] = []

    async def no_wait(seconds: float) -> None:
        pauses.append(seconds)

    service.sleep = no_wait
    service.http_backoff = 0.5
    async with hook_server(hook) as url:
        await service._http_post(url, '{"a":1}')
        assert seen == ['{"a":1}'] * 3  # 500, 503, then 200: three tries
        assert pauses == [0.5, 1.0]  # the backoff doubles
        seen.clear()
        pauses.clear()
        statuses[:] = [500] * 10
        await service._http_post(url, "{}")  # never raises
        assert len(seen) == service.http_attempts == 3  # bounded
        assert pauses == [0.5, 1.0]
    pauses.clear()
    await service._http_post("http://127.0.0.1:9/nothing", "{}")  # refused: logged, not raised
    assert pauses == [0.5, 1.0]
