"""Account and action APIs through MethodRegistry + InProcessClient on memory storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.accounts import AccountService
from core.actions import ActionService
from core.api import accounts as accounts_api
from core.api import actions as actions_api
from core.rating.callcost import GO_ZERO_TIME
from core.rpc import InProcessClient, MethodRegistry, RpcError
from core.storage import DataDB
from core.tariffplan.loader import TariffPlanLoader

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


@dataclass
class General:
    default_tenant: str = "cgrates.org"


@pytest.fixture
async def client(accounts: AccountService, datadb: DataDB) -> AsyncIterator[InProcessClient]:
    actions = ActionService(accounts)
    loader = TariffPlanLoader(datadb, [actions])
    registry = MethodRegistry()
    accounts_api.register(registry, accounts, actions, General())
    actions_api.register(registry, actions, loader, General())
    yield InProcessClient(registry)
    await actions.close()


async def test_set_account_balance_and_get(client: InProcessClient) -> None:
    assert (
        await client.call("APIerSv1.SetAccount", {"Tenant": "cgrates.org", "Account": "1001"})
        == "OK"
    )
    assert (
        await client.call(
            "ApierV1.SetBalance",
            {
                "Account": "1001",
                "BalanceType": "*voice",
                "Value": "5m",
                "Balance": {"ID": "mins", "Weight": 25, "DestinationIDs": "DST_1002;!DST_1003"},
            },
        )
        == "OK"
    )
    await client.call(
        "APIerSv1.SetBalance",
        {"Account": "1001", "BalanceType": "*monetary", "Value": 10, "BalanceID": "money"},
    )
    await client.call(
        "APIerSv1.AddBalance",
        {"Account": "1001", "BalanceType": "*monetary", "Value": 2.5, "Balance": {"ID": "money"}},
    )
    account = await client.call("ApierV2.GetAccount", {"Tenant": "cgrates.org", "Account": "1001"})
    assert account["ID"] == "cgrates.org:1001"
    (voice,) = account["BalanceMap"]["*voice"]
    assert voice["Value"] == 300 * 10**9 and voice["ID"] == "mins"
    assert voice["DestinationIDs"] == {"DST_1002": True, "DST_1003": False}
    (money,) = account["BalanceMap"]["*monetary"]
    assert str(money["Value"]) == "12.5"
    assert await client.call("APIerSv1.GetAccountsCount", {"Tenant": "cgrates.org"}) == 1
    await client.call(
        "APIerSv1.RemoveBalances",
        {"Account": "1001", "BalanceType": "*voice", "Balance": {"ID": "mins"}},
    )
    account = await client.call("APIerSv1.GetAccount", {"Account": "1001"})
    assert "*voice" not in (account["BalanceMap"] or {}) or not account["BalanceMap"]["*voice"]
    assert await client.call("APIerSv1.RemoveAccount", {"Account": "1001"}) == "OK"
    with pytest.raises(RpcError, match="NOT_FOUND"):
        await client.call("APIerSv1.GetAccount", {"Account": "1001"})


async def test_actions_plans_and_triggers(client: InProcessClient) -> None:
    await client.call(
        "ApierV1.SetActions",
        {
            "ActionsId": "ACT_BONUS",
            "Actions": [
                {
                    "Identifier": "*topup",
                    "BalanceId": "bonus",
                    "BalanceType": "*monetary",
                    "Units": 99,
                    "ExpiryTime": "*unlimited",
                    "Weight": 10,
                }
            ],
        },
    )
    with pytest.raises(RpcError, match="EXISTS"):
        await client.call(
            "APIerSv1.SetActions", {"ActionsId": "ACT_BONUS", "Actions": [{"Identifier": "*log"}]}
        )
    assert (await client.call("APIerSv1.GetActions", {"ActionsId": "ACT_BONUS"}))[0][
        "Units"
    ] == "99"
    await client.call(
        "APIerSv1.SetActionPlan",
        {
            "Id": "AP_BONUS",
            "ActionPlan": [{"ActionsId": "ACT_BONUS", "Time": "*asap", "Weight": 10}],
        },
    )
    await client.call(
        "APIerSv1.SetActionTrigger",
        {
            "GroupID": "TR",
            "UniqueID": "low",
            "ThresholdType": "*min_balance",
            "ThresholdValue": 5,
            "BalanceType": "*monetary",
            "ActionsID": "ACT_BONUS",
        },
    )
    await client.call(
        "APIerSv1.SetAccount",
        {"Account": "1002", "ActionPlanIDs": ["AP_BONUS"], "ActionTriggerIDs": ["TR"]},
    )
    account = await client.call("APIerSv1.GetAccount", {"Account": "1002"})
    assert str(account["BalanceMap"]["*monetary"][0]["Value"]) == "99"
    assert account["ActionTriggers"][0]["UniqueID"] == "low"
    assert account["ActionTriggers"][0]["Executed"] is False
    await client.call("APIerSv1.ExecuteAction", {"Account": "1002", "ActionsId": "ACT_BONUS"})
    account = await client.call("APIerSv1.GetAccount", {"Account": "1002"})
    assert str(account["BalanceMap"]["*monetary"][0]["Value"]) == "198"
    triggers = await client.call("APIerSv1.GetActionTriggers", {"GroupIDs": ["TR"]})
    assert triggers[0]["ThresholdType"] == "*min_balance"
    plans = await client.call("APIerSv1.GetActionPlan", {"ID": "AP_BONUS"})
    assert plans[0]["ActionTimings"][0]["ActionsID"] == "ACT_BONUS"
    assert await client.call("APIerSv1.ResetAccountActionTriggers", {"Account": "1002"}) == "OK"


async def test_debit_balance_and_extra_options(client: InProcessClient) -> None:
    money = {"Account": "1001", "BalanceType": "*monetary", "Balance": {"ID": "m"}}
    assert await client.call("APIerSv1.SetBalance", {**money, "Value": 10}) == "OK"
    assert await client.call("APIerSv1.DebitBalance", {**money, "Value": "2.5"}) == "OK"
    account = await client.call("APIerSv2.GetAccount", {"Account": "1001"})
    assert account["BalanceMap"]["*monetary"][0]["Value"] == Decimal("7.5")
    for allow_negative, disabled in ((True, True), (False, False)):
        options = {"AllowNegative": allow_negative, "Disabled": disabled}
        reply = await client.call(
            "APIerSv1.SetAccount", {"Account": "1001", "ExtraOptions": options}
        )
        assert reply == "OK"
        account = await client.call("APIerSv2.GetAccount", {"Account": "1001"})
        assert (account["AllowNegative"], account["Disabled"]) == (allow_negative, disabled)
        assert account["BalanceMap"]["*monetary"][0]["Value"] == Decimal("7.5")  # kept


async def test_add_account_action_triggers(client: InProcessClient) -> None:
    reply = await client.call(
        "APIerSv1.SetActions", {"ActionsId": "ACT", "Actions": [{"Identifier": "*log"}]}
    )
    assert reply == "OK"
    for unique_id, threshold in (("low", 5), ("lower", 1)):
        reply = await client.call(
            "APIerSv1.SetActionTrigger",
            {"GroupID": "TR", "UniqueID": unique_id, "ThresholdType": "*min_balance",
             "ThresholdValue": threshold, "BalanceType": "*monetary", "ActionsID": "ACT"},
        )  # fmt: skip
        assert reply == "OK"
    assert await client.call("APIerSv1.SetAccount", {"Account": "1003"}) == "OK"
    reply = await client.call(
        "APIerSv1.AddAccountActionTriggers", {"Account": "1003", "ActionTriggerIDs": ["TR"]}
    )
    assert reply == "OK"
    account = await client.call("APIerSv2.GetAccount", {"Account": "1003"})
    assert sorted(t["UniqueID"] for t in account["ActionTriggers"]) == ["low", "lower"]
    assert {t["ThresholdValue"] for t in account["ActionTriggers"]} == {5, 1}


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("*unlimited", GO_ZERO_TIME),
        ("*daily", datetime(2024, 1, 16, 10, 30, tzinfo=UTC)),
        ("*weekly", datetime(2024, 1, 22, 10, 30, tzinfo=UTC)),
        ("*monthly", datetime(2024, 2, 15, 10, 30, tzinfo=UTC)),
        ("*month_end", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)),
        ("*yearly", datetime(2025, 1, 15, 10, 30, tzinfo=UTC)),
        ("+90m", datetime(2024, 1, 15, 12, 0, tzinfo=UTC)),
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
    ],
)
async def test_expiry_time_values(
    client: InProcessClient, accounts: AccountService, expiry: str, expected: datetime
) -> None:
    accounts.clock = lambda: NOW
    reply = await client.call(
        "APIerSv1.SetBalance",
        {"Account": "1001", "BalanceType": "*sms", "Value": 5,
         "Balance": {"ID": "texts", "ExpiryTime": expiry}},
    )  # fmt: skip
    assert reply == "OK"
    account = await client.call("APIerSv2.GetAccount", {"Account": "1001"})
    (balance,) = account["BalanceMap"]["*sms"]
    assert balance["ExpirationDate"] == expected
