"""RouteSv1, the route profile methods and SessionS's GetRoutes, through InProcessClient."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError


@pytest.fixture
def client(tutorial_client: InProcessClient) -> InProcessClient:
    return tutorial_client


def event(account: str, destination: str, **args: Any) -> dict[str, Any]:
    fields = {"Account": account, "Destination": destination, "AnswerTime": "2023-01-07T17:00:10Z"}
    return {"Tenant": "cgrates.org", "ID": "ev1", "Event": fields, **args}


async def test_get_routes_answers_the_sorted_routes_list(client: InProcessClient) -> None:
    reply = await client.call("RouteSv1.GetRoutes", event("1002", "1001"))
    assert reply == [
        {
            "ProfileID": "ROUTE_ACNT_1002",
            "Sorting": "*lc",
            "Routes": [
                {
                    "RouteID": "route1",
                    "RouteParameters": "",
                    "SortingData": {"Cost": Decimal("0.3"), "RatingPlanID": "RP_1002_LOW",
                                    "Weight": Decimal(10)},
                },
                {
                    "RouteID": "route2",
                    "RouteParameters": "",
                    "SortingData": {"Cost": Decimal("0.6"), "RatingPlanID": "RP_1002",
                                    "Weight": Decimal(20)},
                },
            ],
        }
    ]  # fmt: skip
    assert await client.call("RouteSv1.GetRoutesList", event("1001", "1002")) == [
        "route2",
        "route1",
    ]


async def test_get_routes_options_beside_the_event_or_in_api_opts(client: InProcessClient) -> None:
    async def route_ids(**args: Any) -> list[str]:
        result: list[str] = await client.call(
            "RouteSv1.GetRoutesList", event("1002", "1001", **args)
        )
        return result

    assert await route_ids(MaxCost="0.5") == ["route1"]
    assert await route_ids(APIOpts={"*routesMaxCost": 0.5}) == ["route1"]
    assert await route_ids(Limit=1, Offset=1) == ["route2"]
    assert await route_ids(Paginator={"Limit": 1}) == ["route1"]
    assert await route_ids(APIOpts={"*routesOffset": 1}) == ["route2"]
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await route_ids(MaxCost=0.1)
    with pytest.raises(RpcError, match=r"^MANDATORY_IE_MISSING: \[Event\]$"):
        await client.call("RouteSv1.GetRoutes", {"Tenant": "cgrates.org"})


async def test_route_profile_crud(client: InProcessClient) -> None:
    profile = {
        "Tenant": "cgrates.org",
        "ID": "ROUTE_HC",
        "FilterIDs": ["*string:~*req.Account:1002"],
        "ActivationInterval": None,
        "Sorting": "*hc",
        "SortingParameters": [],
        "Routes": [
            {"ID": "low", "FilterIDs": [], "AccountIDs": [], "RatingPlanIDs": ["RP_1002_LOW"],
             "ResourceIDs": [], "StatIDs": [], "Weight": Decimal(0), "Blocker": False,
             "RouteParameters": "sip:low@example.net"},
            {"ID": "high", "FilterIDs": [], "AccountIDs": [], "RatingPlanIDs": ["RP_1002"],
             "ResourceIDs": [], "StatIDs": [], "Weight": Decimal(0), "Blocker": False,
             "RouteParameters": ""},
        ],
        "Weight": Decimal(30),
    }  # fmt: skip
    assert await client.call("APIerSv1.SetRouteProfile", profile) == "OK"
    got = await client.call("APIerSv1.GetRouteProfile", {"Tenant": "cgrates.org", "ID": "ROUTE_HC"})
    assert got == profile
    assert await client.call("APIerSv1.GetRouteProfileIDs", {"Tenant": "cgrates.org"}) == [
        "ROUTE_ACNT_1001",
        "ROUTE_ACNT_1002",
        "ROUTE_ACNT_1003",
        "ROUTE_HC",
    ]
    (reply,) = await client.call("RouteSv1.GetRoutes", event("1002", "1001"))
    assert [(r["RouteID"], r["RouteParameters"]) for r in reply["Routes"]] == [
        ("high", ""),
        ("low", "sip:low@example.net"),
    ]
    assert await client.call("RouteSv1.GetRoutesList", event("1002", "1001")) == [
        "high",
        "low:sip:low@example.net",
    ]
    matching = await client.call("RouteSv1.GetRouteProfilesForEvent", event("1002", "1001"))
    assert [p["ID"] for p in matching] == ["ROUTE_HC", "ROUTE_ACNT_1002"]
    bad_filter = {**profile, "FilterIDs": ["*string:~*req.Account"]}
    with pytest.raises(RpcError, match=r"^SERVER_ERROR: "):
        await client.call("APIerSv1.SetRouteProfile", bad_filter)
    # A sorting RouteS does not know loads, and fails the queries reaching it.
    assert await client.call("APIerSv1.SetRouteProfile", {**profile, "Sorting": "*best"}) == "OK"
    with pytest.raises(RpcError, match=r"^SERVER_ERROR: unsupported sorting strategy: \*best$"):
        await client.call("RouteSv1.GetRoutes", event("1002", "1001"))
    # *load ratios must be routeID:integer, as CGRateS compiles them when the profile is set.
    bad_ratio = {**profile, "Sorting": "*load", "SortingParameters": ["high:half"]}
    with pytest.raises(RpcError, match=r"^SERVER_ERROR: .*routeID:ratio"):
        await client.call("APIerSv1.SetRouteProfile", bad_ratio)
    ok = await client.call(
        "APIerSv1.RemoveRouteProfile", {"Tenant": "cgrates.org", "ID": "ROUTE_HC"}
    )
    assert ok == "OK"
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await client.call("APIerSv1.GetRouteProfile", {"Tenant": "cgrates.org", "ID": "ROUTE_HC"})


async def test_authorize_event_fills_routes(client: InProcessClient) -> None:
    for flag in ("GetRoutes", "GetSuppliers"):
        reply = await client.call(
            "SessionSv1.AuthorizeEvent", event("1002", "1001", **{flag: True})
        )
        (routes,) = reply["Routes"]
        assert routes["ProfileID"] == "ROUTE_ACNT_1002"
        assert [r["RouteID"] for r in routes["Routes"]] == ["route1", "route2"]
    args = event("1002", "1001", ID="ev2", GetRoutes=True, RoutesMaxCost="0.5")
    reply = await client.call("SessionSv1.AuthorizeEvent", args)
    assert [r["RouteID"] for r in reply["Routes"][0]["Routes"]] == ["route1"]
    args = event("1002", "1001", ID="ev3", GetSuppliers=True, SuppliersMaxCost="0.1")
    with pytest.raises(RpcError, match=r"^ROUTES_ERROR:NOT_FOUND$"):
        await client.call("SessionSv1.AuthorizeEvent", args)
    reply = await client.call(
        "SessionSv1.ProcessMessage", event("1001", "1002", ID="m1", GetRoutes=True)
    )
    assert [r["RouteID"] for r in reply["Routes"][0]["Routes"]] == ["route2", "route1"]


async def test_authorize_with_digest_answers_the_routes_digest(client: InProcessClient) -> None:
    args = event("1001", "1002", ID="d1", GetRoutes=True)
    reply = await client.call("SessionSv1.AuthorizeEventWithDigest", args)
    assert reply["RoutesDigest"] == "route2,route1"
