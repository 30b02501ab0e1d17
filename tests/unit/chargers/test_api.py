"""ChargerSv1 and the APIerSv1 charger profile methods through a registry, on a real loader over
memory storage with the tutorial plan loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from filters.stack import TENANT, Stack, build_stack

from core.rpc import RpcError
from core.tariffplan import KIND_CHARGERS


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = await build_stack()
    yield built
    await built.datadb.close()


async def test_process_event_forks_the_tutorial_event(stack: Stack) -> None:
    runs = await stack.call(
        "ChargerSv1.ProcessEvent",
        {"Tenant": TENANT, "ID": "e1", "Event": {"Account": "1001", "RequestType": "*prepaid"}},
    )
    assert [(r["ChargerSProfile"], r["CGREvent"]["Event"]["RunID"]) for r in runs] == [
        ("DEFAULT", "*default"),
        ("Raw", "*raw"),
    ]
    assert runs[1]["CGREvent"]["Event"]["RequestType"] == "*none"
    assert runs[0]["CGREvent"]["Event"]["RequestType"] == "*prepaid"


async def test_get_chargers_for_event(stack: Stack) -> None:
    profiles = await stack.call("ChargerSv1.GetChargersForEvent", {"Event": {"Account": "1001"}})
    assert profiles == [
        {
            "Tenant": TENANT,
            "ID": "DEFAULT",
            "FilterIDs": [],
            "ActivationInterval": None,
            "RunID": "*default",
            "AttributeIDs": ["*none"],
            "Weight": Decimal(0),
        },
        {
            "Tenant": TENANT,
            "ID": "Raw",
            "FilterIDs": [],
            "ActivationInterval": None,
            "RunID": "*raw",
            "AttributeIDs": ["*constant:*req.RequestType:*none"],
            "Weight": Decimal(0),
        },
    ]


async def test_errors(stack: Stack) -> None:
    with pytest.raises(RpcError, match=r"^MANDATORY_IE_MISSING: \[Event\]$"):
        await stack.call("ChargerSv1.ProcessEvent", {"Tenant": TENANT})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("ChargerSv1.ProcessEvent", {"Tenant": "nowhere.org", "Event": {}})


CHARGER: dict[str, Any] = {
    "Tenant": TENANT,
    "ID": "CH_PRIVATE",
    "FilterIDs": ["*string:~*req.Category:private"],
    "ActivationInterval": {
        "ActivationTime": "2014-07-29T15:00:00Z",
        "ExpiryTime": "0001-01-01T00:00:00Z",
    },
    "RunID": "private",
    "AttributeIDs": ["*constant:*req.RequestType:*postpaid"],
    "Weight": Decimal(20),
}


async def test_set_get_ids_remove(stack: Stack) -> None:
    assert await stack.call("APIerSv1.SetChargerProfile", CHARGER) == "OK"
    assert await stack.call("APIerSv1.GetChargerProfile", {"ID": "CH_PRIVATE"}) == CHARGER
    assert "cgrates.org:CH_PRIVATE" in await stack.datadb.get_all(KIND_CHARGERS)
    assert await stack.call("APIerSv1.GetChargerProfileIDs", {}) == ["CH_PRIVATE", "DEFAULT", "Raw"]

    runs = await stack.call(
        "ChargerSv1.ProcessEvent",
        {"Time": "2015-01-01T00:00:00Z", "Event": {"Category": "private"}},
    )
    assert [r["ChargerSProfile"] for r in runs] == ["CH_PRIVATE", "DEFAULT", "Raw"]
    assert runs[0]["CGREvent"]["Event"] == {
        "Category": "private", "RunID": "private", "RequestType": "*postpaid",
    }  # fmt: skip
    before = await stack.call(
        "ChargerSv1.ProcessEvent",
        {"Time": "2014-01-01T00:00:00Z", "Event": {"Category": "private"}},
    )
    assert [r["ChargerSProfile"] for r in before] == ["DEFAULT", "Raw"]  # not active yet

    assert await stack.call("APIerSv1.RemoveChargerProfile", {"ID": "CH_PRIVATE"}) == "OK"
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.GetChargerProfile", {"ID": "CH_PRIVATE"})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.RemoveChargerProfile", {"ID": "CH_PRIVATE"})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"ID": ""}, "MANDATORY_IE_MISSING: [ID]"),
        ({"FilterIDs": ["*string:~*req.A"]}, "SERVER_ERROR: inline parse error"),
        ({"AttributeIDs": ["*constant:"]}, "SERVER_ERROR: inline parse error"),
        ({"AttributeIDs": ["ATTR_UNKNOWN"]}, "SERVER_ERROR:"),  # the loader checks references
    ],
)
async def test_set_refuses_bad_profiles(stack: Stack, change: dict[str, Any], error: str) -> None:
    with pytest.raises(RpcError) as raised:
        await stack.call("APIerSv1.SetChargerProfile", {**CHARGER, **change})
    assert raised.value.message.startswith(error)
