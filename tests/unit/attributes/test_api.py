"""AttributeSv1 and the APIerSv1 attribute profile methods through a registry, on a real loader
over memory storage with the tutorial plan loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from filters.stack import TENANT, Stack, build_stack

from core.rpc import RpcError
from core.tariffplan import KIND_ATTRIBUTES


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = await build_stack()
    yield built
    await built.datadb.close()


E164_PROFILE: dict[str, Any] = {
    "Tenant": TENANT,
    "ID": "ATTR_E164",
    "Contexts": ["*sessions", "*cdrs"],
    "FilterIDs": ["*prefix:~*req.Destination:00"],
    "ActivationInterval": None,
    "Attributes": [
        {
            "FilterIDs": [],
            "Path": "*req.Destination",
            "Type": "*variable",
            "Value": [{"Rules": r"~*req.Destination:s/^00(\d+)/${1}/"}],
        }
    ],
    "Blocker": False,
    "Weight": Decimal(20),
}


async def test_process_event_wire_shape(stack: Stack) -> None:
    reply = await stack.call(
        "AttributeSv1.ProcessEvent",
        {
            "Tenant": TENANT,
            "ID": "e1",
            "Time": "2014-07-29T15:00:00Z",
            "Context": "simpleauth",
            "Event": {"Account": "1001"},
        },
    )
    assert reply == {
        "MatchedProfiles": ["ATTR_1001_SIMPLEAUTH"],
        "AlteredFields": ["*req.Password"],
        "CGREvent": {
            "Tenant": TENANT,
            "ID": "e1",
            "Time": "2014-07-29T15:00:00Z",
            "Event": {"Account": "1001", "Password": "CGRateS.org"},
            "APIOpts": {},
        },
    }


async def test_context_and_runs_from_api_opts(stack: Stack) -> None:
    reply = await stack.call(
        "AttributeSv1.ProcessEvent",
        {
            "Event": {"SubscriberId": "1006"},
            "APIOpts": {"*context": "*sessions", "*processRuns": 2},
        },
    )
    assert reply["MatchedProfiles"] == ["ATTR_ACC_ALIAS", "ATTR_1001_SESSIONAUTH"]
    assert reply["CGREvent"]["Tenant"] == TENANT  # default tenant
    reply = await stack.call(
        "AttributeSv1.ProcessEvent",
        {"Event": {"SubscriberId": "1006"}, "Context": "*sessions", "ProcessRuns": 1},
    )
    assert reply["MatchedProfiles"] == ["ATTR_ACC_ALIAS"]


async def test_process_event_errors(stack: Stack) -> None:
    with pytest.raises(RpcError, match=r"^MANDATORY_IE_MISSING: \[Event\]$"):
        await stack.call("AttributeSv1.ProcessEvent", {"Tenant": TENANT})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("AttributeSv1.ProcessEvent", {"Event": {"Account": "nobody"}})


async def test_get_attribute_for_event(stack: Stack) -> None:
    profile = await stack.call(
        "AttributeSv1.GetAttributeForEvent", {"Context": "simpleauth", "Event": {"Account": "1003"}}
    )
    assert profile == {
        "Tenant": TENANT,
        "ID": "ATTR_1003_SIMPLEAUTH",
        "Contexts": ["simpleauth"],
        "FilterIDs": ["*string:~*req.Account:1003"],
        "ActivationInterval": None,
        "Attributes": [
            {
                "FilterIDs": [],
                "Path": "*req.Password",
                "Type": "*constant",
                "Value": [{"Rules": "CGRateS.org"}],
            }
        ],
        "Blocker": False,
        "Weight": Decimal(20),
    }


async def test_set_get_process_remove(stack: Stack) -> None:
    assert await stack.call("APIerSv1.SetAttributeProfile", E164_PROFILE) == "OK"
    assert await stack.call("APIerSv1.GetAttributeProfile", {"ID": "ATTR_E164"}) == E164_PROFILE
    assert "cgrates.org:ATTR_E164" in await stack.datadb.get_all(KIND_ATTRIBUTES)
    reply = await stack.call(
        "AttributeSv1.ProcessEvent",
        {"Context": "*cdrs", "Event": {"Destination": "00498765"}},
    )
    assert reply["CGREvent"]["Event"]["Destination"] == "498765"

    ids = await stack.call("APIerSv1.GetAttributeProfileIDs", {"Tenant": TENANT})
    assert "ATTR_E164" in ids and "ATTR_ACC_ALIAS" in ids
    assert await stack.call("APIerSv1.GetAttributeProfileIDs", {"Tenant": "cgrates.com"}) == [
        "ATTR_ACC_EMULATE_TERMINATE", "ATTR_TNT_1001", "ATTR_TNT_ALIAS", "ATTR_TNT_DISC",
    ]  # fmt: skip
    assert await stack.call("APIerSv1.GetAttributeProfileIDsCount", {}) == len(ids)

    assert await stack.call("APIerSv1.RemoveAttributeProfile", {"ID": "ATTR_E164"}) == "OK"
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.GetAttributeProfile", {"ID": "ATTR_E164"})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.RemoveAttributeProfile", {"ID": "ATTR_E164"})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call(
            "AttributeSv1.ProcessEvent", {"Context": "*cdrs", "Event": {"Destination": "0049"}}
        )


async def test_set_accepts_value_as_a_string(stack: Stack) -> None:
    # The string form of later APIs and the CSV files: ";" separates rules.
    did = {
        "ID": "ATTR_DID",
        "Contexts": ["*cdrs"],
        "FilterIDs": ["*string:~*req.Destination:12340003"],
        "Attributes": [
            {"Path": "*req.Account", "Type": "*constant", "Value": "Nick_Test_123"},
            {"Path": "*req.Origin", "Type": "*variable", "Value": "did:;~*req.Destination"},
        ],
        "Weight": 30,
    }
    assert await stack.call("APIerSv2.SetAttributeProfile", did) == "OK"
    stored = await stack.call("APIerSv1.GetAttributeProfile", {"ID": "ATTR_DID"})
    assert stored["Attributes"][1]["Value"] == [{"Rules": "did:"}, {"Rules": "~*req.Destination"}]
    reply = await stack.call(
        "AttributeSv1.ProcessEvent",
        {"Context": "*cdrs", "Event": {"Account": "x", "Destination": "12340003"}},
    )
    assert reply["CGREvent"]["Event"] == {
        "Account": "Nick_Test_123",
        "Destination": "12340003",
        "Origin": "did:12340003",
    }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"ID": ""}, "MANDATORY_IE_MISSING: [ID]"),
        ({"Attributes": []}, "MANDATORY_IE_MISSING: [Attributes]"),
        ({"Attributes": [{"Type": "*constant", "Value": "1"}]}, "MANDATORY_IE_MISSING: [Path]"),
        (
            {"Attributes": [{"Path": "*req.A", "Value": [{"Rules": ""}]}]},
            "MANDATORY_IE_MISSING: [Rules]",
        ),
        (
            {"Attributes": [{"Path": "*req.A", "Type": "*nope", "Value": "1"}]},
            "SERVER_ERROR: Attributes[0]: unsupported type: <*nope>",
        ),
        (
            {"Attributes": [{"Path": "*req.A", "Value": "~*req.B:s/(/x/"}]},
            "SERVER_ERROR: Attributes[0]: error parsing regexp",
        ),
        ({"FilterIDs": ["*string:~*req.A"]}, "SERVER_ERROR: inline parse error"),
        ({"FilterIDs": ["FLTR_UNKNOWN"]}, "SERVER_ERROR:"),  # the loader checks references
    ],
)
async def test_set_refuses_bad_profiles(stack: Stack, change: dict[str, Any], error: str) -> None:
    with pytest.raises(RpcError) as raised:
        await stack.call("APIerSv1.SetAttributeProfile", {**E164_PROFILE, **change})
    assert raised.value.message.startswith(error)
    assert "cgrates.org:ATTR_E164" not in await stack.datadb.get_all(KIND_ATTRIBUTES)
