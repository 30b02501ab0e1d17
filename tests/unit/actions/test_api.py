"""APIerSv1 action methods on the whole in-process engine (tutorial plan)."""

from __future__ import annotations

from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError


def _blocker_action(blocker: Any, disabled: Any) -> dict[str, Any]:
    return {
        "Identifier": "*topup",
        "BalanceId": "b",
        "BalanceType": "*monetary",
        "Units": 5,
        "BalanceBlocker": blocker,
        "BalanceDisabled": disabled,
        "Weight": 10,
    }


async def _balance(client: InProcessClient, account: str, balance_id: str) -> dict[str, Any]:
    reply = await client.call("APIerSv2.GetAccount", {"Tenant": "cgrates.org", "Account": account})
    (found,) = [b for b in reply["BalanceMap"]["*monetary"] if b["ID"] == balance_id]
    return found  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("blocker", "disabled", "expected"),
    [("true", "false", (True, False)), (True, "TRUE", (True, True)), ("", None, (False, False))],
)
async def test_set_actions_balance_blocker_and_disabled(
    tutorial_client: InProcessClient, blocker: Any, disabled: Any, expected: tuple[bool, bool]
) -> None:
    action = _blocker_action(blocker, disabled)
    await tutorial_client.call("APIerSv1.SetActions", {"ActionsId": "A", "Actions": [action]})
    await tutorial_client.call("APIerSv1.ExecuteAction", {"Account": "1001", "ActionsId": "A"})
    balance = await _balance(tutorial_client, "1001", "b")
    assert (balance["Blocker"], balance["Disabled"]) == expected


@pytest.mark.parametrize("bad", ["yes", 1, "maybe"])
async def test_set_actions_refuses_other_bool_values(
    tutorial_client: InProcessClient, bad: Any
) -> None:
    with pytest.raises(RpcError, match=r"BalanceBlocker: .* is not true or false"):
        await tutorial_client.call(
            "APIerSv1.SetActions", {"ActionsId": "A", "Actions": [_blocker_action(bad, "")]}
        )


async def test_get_actions_round_trips_through_set_actions(
    tutorial_client: InProcessClient,
) -> None:
    action = _blocker_action("true", "false") | {
        "DestinationIds": "DST_1002",
        "ExpiryTime": "*unlimited",
        "BalanceWeight": "20",
        "RatingSubject": "*zero1s",
        "Categories": "call",
    }
    await tutorial_client.call("APIerSv1.SetActions", {"ActionsId": "A", "Actions": [action]})
    first = await tutorial_client.call("APIerSv1.GetActions", "A")
    assert first[0]["BalanceBlocker"] == "true" and first[0]["BalanceDisabled"] == "false"
    await tutorial_client.call("APIerSv1.SetActions", {"ActionsId": "B", "Actions": first})
    assert await tutorial_client.call("APIerSv1.GetActions", "B") == first


async def test_set_actions_refuses_an_action_filter(tutorial_client: InProcessClient) -> None:
    action = _blocker_action("", "") | {"Filter": "*gte:~*req.Balance:1"}
    with pytest.raises(RpcError, match="action Filter is not supported"):
        await tutorial_client.call("APIerSv1.SetActions", {"ActionsId": "A", "Actions": [action]})
    with pytest.raises(RpcError, match="NOT_FOUND"):
        await tutorial_client.call("APIerSv1.GetActions", "A")


async def test_execute_action_transfers_to_another_account(
    tutorial_client: InProcessClient,
) -> None:
    fund = _blocker_action("", "") | {"BalanceId": "src", "Units": 10}
    xfer = {
        "Identifier": "*transfer_balance",
        "BalanceId": "src",
        "BalanceType": "*monetary",
        "Units": 3,
        "ExtraParameters": '{"DestinationAccountID":"cgrates.org:1002",'
        '"DestinationBalanceID":"dst"}',
    }
    call = tutorial_client.call
    await call("APIerSv1.SetActions", {"ActionsId": "FUND", "Actions": [fund]})
    await call("APIerSv1.SetActions", {"ActionsId": "XFER", "Actions": [xfer]})
    await call("APIerSv1.ExecuteAction", {"Account": "1001", "ActionsId": "FUND"})
    assert await call("APIerSv1.ExecuteAction", {"Account": "1001", "ActionsId": "XFER"}) == "OK"
    assert (await _balance(tutorial_client, "1001", "src"))["Value"] == 7
    assert (await _balance(tutorial_client, "1002", "dst"))["Value"] == 3
    with pytest.raises(RpcError, match=r"SERVER_ERROR: .*insufficient credit"):
        for _ in range(3):
            await call("APIerSv1.ExecuteAction", {"Account": "1001", "ActionsId": "XFER"})
    assert (await _balance(tutorial_client, "1001", "src"))["Value"] == 1
    assert (await _balance(tutorial_client, "1002", "dst"))["Value"] == 9
