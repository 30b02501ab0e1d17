"""SessionSv1.ProcessEvent's ``*routes`` flag (and ``*event_cost`` on every SessionS entry point)
over the real registry and CGRateS's tutorial plan (ROUTE_ACNT_1002: *lc, route1 on RP_1002_LOW,
route2 on RP_1002)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.api.routes import route_query_of
from core.api.sessions import flag_params, routes_args
from core.rpc import InProcessClient, RpcError

_ids = itertools.count()


@pytest.fixture
def client(tutorial_client: InProcessClient) -> InProcessClient:
    return tutorial_client


def call_event(flags: list[str], **fields: Any) -> dict[str, Any]:
    """A 1002 -> 1001 call event; a fresh ID each time so the reply cache answers nothing."""
    event = {
        "Account": "1002",
        "Destination": "1001",
        "SetupTime": "2023-01-07T17:00:00Z",
        "AnswerTime": "2023-01-07T17:00:10Z",
        **fields,
    }
    return {"Tenant": "cgrates.org", "ID": f"pe{next(_ids)}", "Flags": flags, "Event": event}


async def process(client: InProcessClient, args: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = await client.call("SessionSv1.ProcessEvent", args)
    return reply


def route_ids(reply: dict[str, Any]) -> list[str]:
    return [
        route["RouteID"] for routes in reply["RouteProfiles"]["*raw"] for route in routes["Routes"]
    ]


async def test_routes_flag_answers_route_profiles_by_run(client: InProcessClient) -> None:
    reply = await process(client, call_event(["*routes"]))
    assert reply["RouteProfiles"] == {
        "*raw": [
            {
                "ProfileID": "ROUTE_ACNT_1002",
                "Sorting": "*lc",
                "Routes": [
                    {"RouteID": "route1", "RouteParameters": "",
                     "SortingData": {"Cost": Decimal("0.3"), "RatingPlanID": "RP_1002_LOW",
                                     "Weight": Decimal(10)}},
                    {"RouteID": "route2", "RouteParameters": "",
                     "SortingData": {"Cost": Decimal("0.6"), "RatingPlanID": "RP_1002",
                                     "Weight": Decimal(20)}},
                ],
            }
        ]
    }  # fmt: skip
    assert reply["MaxUsage"] is None
    without = await process(client, call_event([]))
    assert without["RouteProfiles"] is None


async def test_routes_max_cost_as_sub_flag_or_flat_flag(client: InProcessClient) -> None:
    for flags in (["*routes:*maxcost:0.5"], ["*routes", "*routes_maxcost:0.5"]):
        assert route_ids(await process(client, call_event(flags))) == ["route1"]
    # A max cost below every route: RouteS finds nothing, the whole call fails.
    with pytest.raises(RpcError, match=r"^ROUTES_ERROR:NOT_FOUND$"):
        await process(client, call_event(["*routes:*maxcost:0.1"]))
    # *routes_maxcost alone does not ask for routes.
    assert (await process(client, call_event(["*routes_maxcost:0.5"])))["RouteProfiles"] is None


async def test_routes_event_cost_caps_at_what_the_event_costs(client: InProcessClient) -> None:
    # Subject 1003 rates the event on RP_1003 (0.3 for the minute): route2 (0.6) is dearer.
    for flags in (["*routes:*event_cost"], ["*routes", "*routes_event_cost"]):
        reply = await process(client, call_event(flags, Subject="1003", Usage="1m"))
        assert route_ids(reply) == ["route1"]
    # Rated on 1002's own RP_1002 (0.6): both routes fit.
    reply = await process(client, call_event(["*routes:*event_cost"], Usage="60s"))
    assert route_ids(reply) == ["route1", "route2"]
    with pytest.raises(
        RpcError, match=r"^ROUTES_ERROR:SERVER_ERROR: MANDATORY_IE_MISSING: \[Usage\]$"
    ):
        await process(client, call_event(["*routes:*event_cost"]))


async def test_event_cost_on_authorize_event(client: InProcessClient) -> None:
    args = call_event([], Subject="1003", Usage="1m")
    del args["Flags"]
    reply = await client.call(
        "SessionSv1.AuthorizeEvent", {**args, "GetRoutes": True, "RoutesMaxCost": "*event_cost"}
    )
    assert [r["RouteID"] for r in reply["Routes"][0]["Routes"]] == ["route1"]


async def test_routes_ignore_errors_drops_routes_that_cannot_be_rated(
    client: InProcessClient,
) -> None:
    profile = {
        "Tenant": "cgrates.org",
        "ID": "ROUTE_UNRATED",
        "FilterIDs": ["*string:~*req.Account:1002"],
        "Sorting": "*lc",
        "Routes": [
            {"ID": "no_plan_for_1001", "RatingPlanIDs": ["RP_1001"], "Weight": 0},
            {"ID": "low", "RatingPlanIDs": ["RP_1002_LOW"], "Weight": 0},
        ],
        "Weight": 50,
    }
    assert await client.call("APIerSv1.SetRouteProfile", profile) == "OK"
    with pytest.raises(RpcError, match=r"^ROUTES_ERROR:SERVER_ERROR: "):
        await process(client, call_event(["*routes"]))
    for flags in (["*routes:*ignore_errors"], ["*routes", "*routes_ignore_errors"]):
        reply = await process(client, call_event(flags))
        (routes,) = reply["RouteProfiles"]["*raw"]
        assert routes["ProfileID"] == "ROUTE_UNRATED"
        assert [r["RouteID"] for r in routes["Routes"]] == ["low"]


async def test_routes_paging_and_acd(client: InProcessClient) -> None:
    args = call_event(["*routes"])
    assert route_ids(await process(client, {**args, "Paginator": {"Offset": 1}})) == ["route2"]
    args = call_event(["*routes"])
    assert route_ids(await process(client, {**args, "Limit": 1})) == ["route1"]
    # ACD stands for the Usage: two minutes, rated as APIerSv1.GetCost rates them (the second
    # minute in 1s increments of 0.05/60 and 0.1/60 kept to 4 decimals).
    reply = await process(client, call_event(["*routes"], Usage="10s", ACD="2m"))
    costs = [r["SortingData"]["Cost"] for r in reply["RouteProfiles"]["*raw"][0]["Routes"]]
    assert costs == [Decimal("0.3498"), Decimal("0.7002")]


async def test_routes_run_before_charging(client: InProcessClient) -> None:
    flags = ["*accounts", "*message", "*cdrs"]
    # A routing error stops the call before the message is charged: no CDR is stored.
    failing = call_event(["*routes:*maxcost:0.01", *flags], Usage="1m", OriginID="sms-fail")
    with pytest.raises(RpcError, match=r"^ROUTES_ERROR:NOT_FOUND$"):
        await process(client, failing)
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["sms-fail"]})
    # The same call with routes it can have is charged and stored, routes in its reply.
    passing = call_event(["*routes", *flags], Usage="1m", OriginID="sms-ok")
    reply = await process(client, passing)
    assert route_ids(reply) == ["route1", "route2"]
    assert reply["MaxUsage"] == {"*default": 60_000_000_000}
    stored = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["sms-ok"]})
    assert stored and {cdr["Account"] for cdr in stored} == {"1002"}


def test_flag_params_follow_cgrates_flags_with_params() -> None:
    assert flag_params(["*routes:*maxcost:1&2", "*routes:*ignore_errors", "*cdrs"]) == {
        "*routes": {"*maxcost": ["1", "2"], "*ignore_errors": []},
        "*cdrs": {},
    }
    flags = flag_params(["*routes:*maxcost:&0.4", "*routes_ignore_errors"])
    assert routes_args(flags, {"Paginator": {"Limit": 2}}) == {
        "RoutesIgnoreErrors": True,
        "RoutesMaxCost": "0.4",
        "Paginator": {"Limit": 2},
    }


_flag_text = st.text(
    alphabet=st.sampled_from(list("*routes_maxcost:&.-0123456789ab ")), max_size=40
)
_opt_value = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8), st.decimals(allow_nan=True)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_flag_text, st.integers(), st.none()), max_size=6))
def test_flag_parsing_takes_any_flags(raw_flags: list[Any]) -> None:
    """Any Flags list parses; the routes options are strings, a bool, a paginator."""
    options = routes_args(flag_params(raw_flags), {})
    assert isinstance(options["RoutesMaxCost"], str)
    assert options.get("RoutesIgnoreErrors", True) is True
    assert "Paginator" not in options


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["MaxCost", "Limit", "Offset", "MaxItems", "IgnoreErrors"]), _opt_value
    ),
    st.dictionaries(
        st.sampled_from(["*routesMaxCost", "*rouLimit", "*routesOffset", "*rouProfileCount"]),
        _opt_value,
    ),
)
def test_route_options_raise_only_rpc_errors(beside: dict[str, Any], opts: dict[str, Any]) -> None:
    """Whatever the options, GetRoutes's reader answers a RouteQuery or CGRateS's error."""
    try:
        query = route_query_of({**beside, "APIOpts": opts})
    except RpcError as exc:
        assert str(exc).startswith("SERVER_ERROR: ")
        return
    assert query.max_cost is None or isinstance(query.max_cost, Decimal)
    assert isinstance(query.offset, int)
