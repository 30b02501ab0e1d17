"""The demo plan's least-cost routes (config/tariffplans/demo: ROUTE_LCR over three carriers),
through RouteSv1 and SessionSv1 on the real registry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError


@pytest.fixture
def client(demo_client: InProcessClient) -> InProcessClient:
    return demo_client


def call(destination: str, **fields: Any) -> dict[str, Any]:
    event = {"Account": "1001", "Destination": destination,
             "SetupTime": "2025-03-05T10:00:00Z", **fields}  # fmt: skip
    return {"Tenant": "cgrates.org", "ID": f"lcr-{destination}", "Event": event}


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        # German fixed: A 0.008 < B 0.010 < C 0.012 a minute.
        ("4930123456", ["carrier_a:sip.carrier-a.example", "carrier_b:sip.carrier-b.example",
                        "carrier_c:sip.carrier-c.example"]),
        # German mobile: B 0.035 < C 0.045 < A 0.05.
        ("4915112345", ["carrier_b:sip.carrier-b.example", "carrier_c:sip.carrier-c.example",
                        "carrier_a:sip.carrier-a.example"]),
        # US: C 0.004 < A 0.006 < B 0.009.
        ("12125550100", ["carrier_c:sip.carrier-c.example", "carrier_a:sip.carrier-a.example",
                         "carrier_b:sip.carrier-b.example"]),
        # Anywhere else, each carrier's international rate: B 0.12 < A 0.15 < C 0.20.
        ("442071234567", ["carrier_b:sip.carrier-b.example", "carrier_a:sip.carrier-a.example",
                          "carrier_c:sip.carrier-c.example"]),
    ],
)  # fmt: skip
async def test_demo_lcr_orders_carriers_by_price_per_destination(
    client: InProcessClient, destination: str, expected: list[str]
) -> None:
    assert await client.call("RouteSv1.GetRoutesList", call(destination)) == expected


async def test_demo_lcr_sorting_data_and_limits(client: InProcessClient) -> None:
    (reply,) = await client.call("RouteSv1.GetRoutes", call("4915112345", Usage="1m"))
    assert reply["ProfileID"] == "ROUTE_LCR"
    assert reply["Sorting"] == "*lc"
    assert [(r["RouteParameters"], r["SortingData"]) for r in reply["Routes"]] == [
        ("sip.carrier-b.example",
         {"Cost": Decimal("0.035"), "RatingPlanID": "RP_CARRIER_B", "Weight": Decimal(20)}),
        ("sip.carrier-c.example",
         {"Cost": Decimal("0.045"), "RatingPlanID": "RP_CARRIER_C", "Weight": Decimal(10)}),
        ("sip.carrier-a.example",
         {"Cost": Decimal("0.05"), "RatingPlanID": "RP_CARRIER_A", "Weight": Decimal(10)}),
    ]  # fmt: skip
    capped = await client.call("RouteSv1.GetRoutesList", {**call("4915112345"), "MaxCost": "0.04"})
    assert capped == ["carrier_b:sip.carrier-b.example"]
    first = await client.call("RouteSv1.GetRoutesList", {**call("12125550100"), "Limit": 1})
    assert first == ["carrier_c:sip.carrier-c.example"]
    # An event without a Destination is no call: the profile does not match.
    no_call = call("")
    del no_call["Event"]["Destination"]
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await client.call("RouteSv1.GetRoutes", no_call)


async def test_demo_lcr_through_session_process_event(client: InProcessClient) -> None:
    # The retail price of a peak German mobile minute (0.1 + 0.09) caps the carriers' prices:
    # all three fit; a cap of *routes:*maxcost:0.04 keeps carrier B only.
    args = {**call("4916012345", Usage="1m"), "Flags": ["*routes:*event_cost"]}
    reply = await client.call("SessionSv1.ProcessEvent", args)
    (routes,) = reply["RouteProfiles"]["*raw"]
    assert [r["RouteID"] for r in routes["Routes"]] == ["carrier_b", "carrier_c", "carrier_a"]
    args = {**call("4916012345"), "ID": "lcr-capped", "Flags": ["*routes:*maxcost:0.04"]}
    reply = await client.call("SessionSv1.ProcessEvent", args)
    assert [r["RouteID"] for r in reply["RouteProfiles"]["*raw"][0]["Routes"]] == ["carrier_b"]
