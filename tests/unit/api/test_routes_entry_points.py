"""Paging (Limit/Offset/MaxItems) and max cost (a number or ``*event_cost``) on every RouteS entry
point: RouteSv1.GetRoutes/GetRoutesList and SessionSv1 AuthorizeEvent(WithDigest),
ProcessMessage, ProcessEvent. Tutorial plan, ROUTE_ACNT_1002: route1 0.3, route2 0.6 a minute."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError

_ids = itertools.count()
MAX_ITEMS_EXCEEDED = "SERVER_ERROR: maximum number of items exceeded"


@pytest.fixture
def client(tutorial_client: InProcessClient) -> InProcessClient:
    return tutorial_client


def cgr_event(**fields: Any) -> dict[str, Any]:
    event = {"Account": "1002", "Destination": "1001", "SetupTime": "2023-01-07T17:00:00Z",
             "Usage": "1m", **fields}  # fmt: skip
    return {"Tenant": "cgrates.org", "ID": f"ep{next(_ids)}", "Event": event}


def paging(limit: int | None, offset: int | None, max_items: int | None) -> dict[str, int]:
    given = {"Limit": limit, "Offset": offset, "MaxItems": max_items}
    return {name: value for name, value in given.items() if value is not None}


def listed(routes: list[dict[str, Any]] | None) -> list[str]:
    return [route["RouteID"] for reply in routes or [] for route in reply["Routes"]]


# Each entry point: (client, event fields, limit, offset, max items, max cost) -> route IDs.
Ask = Callable[
    [InProcessClient, dict[str, Any], int | None, int | None, int | None, str | None],
    Awaitable[list[str]],
]


async def get_routes(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    args = {**cgr_event(**fields), **paging(limit, offset, items)}
    if cost:
        args["MaxCost"] = cost
    return listed(await c.call("RouteSv1.GetRoutes", args))


async def get_routes_opts(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    """The options as CGRateS v0.11's APIOpts."""
    given = {"*rouLimit": limit, "*rouOffset": offset, "*rouMaxItems": items, "*rouMaxCost": cost}
    opts = {name: value for name, value in given.items() if value is not None}
    return listed(await c.call("RouteSv1.GetRoutes", {**cgr_event(**fields), "APIOpts": opts}))


async def get_routes_list(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    args = {**cgr_event(**fields), "Paginator": paging(limit, offset, items)}
    if cost:
        args["MaxCost"] = cost
    return [item.split(":")[0] for item in await c.call("RouteSv1.GetRoutesList", args)]


async def authorize(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    args = {**cgr_event(**fields), "GetRoutes": True, **paging(limit, offset, items)}
    if cost:
        args["RoutesMaxCost"] = cost
    return listed((await c.call("SessionSv1.AuthorizeEvent", args))["Routes"])


async def authorize_digest(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    args = {**cgr_event(**fields), "GetSuppliers": True, **paging(limit, offset, items)}
    if cost:
        args["SuppliersMaxCost"] = cost
    digest = (await c.call("SessionSv1.AuthorizeEventWithDigest", args))["RoutesDigest"]
    return str(digest).split(",") if digest else []


async def process_message(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    args = {**cgr_event(**fields), "GetRoutes": True, **paging(limit, offset, items)}
    if cost:
        args["RoutesMaxCost"] = cost
    return listed((await c.call("SessionSv1.ProcessMessage", args))["Routes"])


async def process_event(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    flags = ["*routes"]
    if cost == "*event_cost":
        flags = ["*routes:*event_cost"]
    elif cost:
        flags = [f"*routes:*maxcost:{cost}"]
    args = {**cgr_event(**fields), "Flags": flags, **paging(limit, offset, items)}
    return listed((await c.call("SessionSv1.ProcessEvent", args))["RouteProfiles"]["*raw"])


async def process_event_flat(
    c: InProcessClient,
    fields: dict[str, Any],
    limit: int | None,
    offset: int | None,
    items: int | None,
    cost: str | None,
) -> list[str]:
    """The agents' flat flags: *routes_maxcost:<cost> (also *routes_maxcost:*event_cost)."""
    flags = ["*routes", f"*routes_maxcost:{cost}"] if cost else ["*routes"]
    args = {**cgr_event(**fields), "Flags": flags, "Paginator": paging(limit, offset, items)}
    return listed((await c.call("SessionSv1.ProcessEvent", args))["RouteProfiles"]["*raw"])


ENTRY_POINTS: dict[str, Ask] = {
    "GetRoutes": get_routes,
    "GetRoutes APIOpts": get_routes_opts,
    "GetRoutesList": get_routes_list,
    "AuthorizeEvent": authorize,
    "AuthorizeEventWithDigest": authorize_digest,
    "ProcessMessage": process_message,
    "ProcessEvent": process_event,
    "ProcessEvent flat flags": process_event_flat,
}  # fmt: skip
SESSION_ENTRY_POINTS = {name for name in ENTRY_POINTS if not name.startswith("GetRoutes")}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_paging_and_max_cost(client: InProcessClient, entry: str) -> None:
    ask = ENTRY_POINTS[entry]
    assert await ask(client, {}, None, None, None, None) == ["route1", "route2"]
    assert await ask(client, {}, None, 1, None, None) == ["route2"]
    assert await ask(client, {}, 1, None, None, None) == ["route1"]
    assert await ask(client, {}, 1, 0, 1, None) == ["route1"]
    assert await ask(client, {}, None, None, 2, None) == ["route1", "route2"]
    assert await ask(client, {}, None, None, None, "0.5") == ["route1"]
    # *event_cost: the event on its own rating (Subject 1003: RP_1003, 0.3 the minute).
    assert await ask(client, {"Subject": "1003"}, None, None, None, "*event_cost") == ["route1"]
    assert await ask(client, {}, None, None, None, "*event_cost") == ["route1", "route2"]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_max_items_and_errors(client: InProcessClient, entry: str) -> None:
    ask = ENTRY_POINTS[entry]
    prefix = "ROUTES_ERROR:" if entry in SESSION_ENTRY_POINTS else ""
    # The page asked reaches past MaxItems, or the routes answered (plus Offset) do.
    for limit, offset, items in ((1, 1, 1), (None, None, 1), (None, 1, 1)):
        with pytest.raises(RpcError) as caught:
            await ask(client, {}, limit, offset, items, None)
        assert str(caught.value) == prefix + MAX_ITEMS_EXCEEDED
    with pytest.raises(RpcError) as caught:
        await ask(client, {}, None, None, None, "0.1")
    assert str(caught.value) == prefix + "NOT_FOUND"
    with pytest.raises(RpcError) as caught:
        await ask(client, {"Usage": ""}, None, None, None, "*event_cost")
    assert str(caught.value) == prefix + "SERVER_ERROR: MANDATORY_IE_MISSING: [Usage]"


async def test_event_cost_is_an_inclusive_cap_at_the_event_usage(client: InProcessClient) -> None:
    # Three minutes on 1002's own RP_1002 cost 0.8004, exactly route2's price (same plan): a
    # route costing the max cost stays.
    (reply,) = await client.call(
        "RouteSv1.GetRoutes", {**cgr_event(Usage="3m"), "MaxCost": "*event_cost"}
    )
    costs = [(route["RouteID"], route["SortingData"]["Cost"]) for route in reply["Routes"]]
    assert costs == [("route1", Decimal("0.3996")), ("route2", Decimal("0.8004"))]
    cheaper = {**cgr_event(Usage="3m", Subject="1003"), "MaxCost": "*event_cost"}
    assert await client.call("RouteSv1.GetRoutesList", cheaper) == ["route1"]
