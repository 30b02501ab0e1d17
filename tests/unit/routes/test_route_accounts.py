"""Routes priced by accounts (CGRateS's costForEvent with AccountIDs): what the route's first
answering account covers costs 0, the rest is rated on the route's RatingPlanIDs. Over the real
registry and the tutorial plan (RP_1002: 0.4 + 0.2 the first minute; RP_1002_LOW: 0.2 + 0.1)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError
from core.types import SECOND

BUNDLE = "carrier_bundle"  # a carrier account holding free minutes
_ids = itertools.count()


@pytest.fixture
async def client(tutorial_client: InProcessClient) -> InProcessClient:
    client = tutorial_client
    # Two free minutes (priced per second at zero) on the carrier's account.
    await client.call("APIerSv1.SetAccount", {"Tenant": "cgrates.org", "Account": BUNDLE})
    balance = {"ID": "minutes", "Weight": 10, "RatingSubject": "*zero1s"}
    await client.call(
        "APIerSv1.SetBalance",
        {"Tenant": "cgrates.org", "Account": BUNDLE, "BalanceType": "*voice",
         "Value": "2m", "Balance": balance},
    )  # fmt: skip
    # A carrier account with money only: category *routes has no rating profile to spend it.
    await client.call("APIerSv1.SetAccount", {"Tenant": "cgrates.org", "Account": "money_only"})
    await client.call(
        "APIerSv1.SetBalance",
        {"Tenant": "cgrates.org", "Account": "money_only", "BalanceType": "*monetary",
         "Value": 100, "Balance": {"ID": "cash"}},
    )  # fmt: skip
    return client


async def set_routes(
    client: InProcessClient, *routes: dict[str, Any], sorting: str = "*lc"
) -> None:
    profile = {
        "Tenant": "cgrates.org",
        "ID": "ROUTE_ACCOUNTS",
        "FilterIDs": ["*string:~*req.Account:1002"],
        "Sorting": sorting,
        "Routes": list(routes),
        "Weight": 50,  # over the tutorial's ROUTE_ACNT_1002
    }
    assert await client.call("APIerSv1.SetRouteProfile", profile) == "OK"


async def get_routes(client: InProcessClient, usage: str, **args: Any) -> list[dict[str, Any]]:
    event = {"Account": "1002", "Destination": "1001", "SetupTime": "2023-01-07T17:00:00Z",
             "Usage": usage}  # fmt: skip
    reply = await client.call(
        "RouteSv1.GetRoutes",
        {"Tenant": "cgrates.org", "ID": f"acc{next(_ids)}", "Event": event, **args},
    )
    (routes,) = reply
    result: list[dict[str, Any]] = routes["Routes"]
    return result


def data(routes: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(route["RouteID"], route["SortingData"]) for route in routes]


async def test_an_account_covering_the_call_prices_it_at_zero(client: InProcessClient) -> None:
    await set_routes(
        client,
        {"ID": "bundle", "AccountIDs": [BUNDLE], "RatingPlanIDs": ["RP_1002"], "Weight": 10},
        {"ID": "low", "RatingPlanIDs": ["RP_1002_LOW"], "Weight": 20},
    )
    assert data(await get_routes(client, "1m")) == [
        ("bundle", {"Weight": Decimal(10), "Account": BUNDLE, "Cost": Decimal(0),
                    "MaxUsage": 60 * SECOND}),
        ("low", {"Weight": Decimal(20), "Cost": Decimal("0.3"), "RatingPlanID": "RP_1002_LOW"}),
    ]  # fmt: skip
    # *hc turns it round.
    await set_routes(
        client,
        {"ID": "bundle", "AccountIDs": [BUNDLE], "RatingPlanIDs": ["RP_1002"], "Weight": 10},
        {"ID": "low", "RatingPlanIDs": ["RP_1002_LOW"], "Weight": 20},
        sorting="*hc",
    )
    assert [route["RouteID"] for route in await get_routes(client, "1m")] == ["low", "bundle"]


async def test_what_the_account_does_not_cover_is_rated_on_the_plans(
    client: InProcessClient,
) -> None:
    await set_routes(
        client,
        {"ID": "bundle", "AccountIDs": [BUNDLE], "RatingPlanIDs": ["RP_1002"], "Weight": 10},
        {"ID": "low", "RatingPlanIDs": ["RP_1002_LOW"], "Weight": 20},
    )
    # Three minutes: the bundle's two are free, the third is RP_1002's first minute (0.6);
    # RP_1002_LOW's three minutes cost 0.3 + 120 increments of 0.05/60 kept to 5 decimals.
    assert data(await get_routes(client, "3m")) == [
        ("low", {"Weight": Decimal(20), "Cost": Decimal("0.3996"),
                 "RatingPlanID": "RP_1002_LOW"}),
        ("bundle", {"Weight": Decimal(10), "Account": BUNDLE, "Cost": Decimal("0.6"),
                    "MaxUsage": 120 * SECOND, "RatingPlanID": "RP_1002"}),
    ]  # fmt: skip
    # A max cost under the remainder's price drops the bundle route.
    capped = await get_routes(client, "3m", MaxCost="0.5")
    assert [route["RouteID"] for route in capped] == ["low"]


async def test_an_account_without_plans_for_the_rest_is_a_route_error(
    client: InProcessClient,
) -> None:
    await set_routes(
        client,
        {"ID": "bundle_only", "AccountIDs": [BUNDLE], "Weight": 10},
        {"ID": "low", "RatingPlanIDs": ["RP_1002_LOW"], "Weight": 20},
    )
    assert [r["RouteID"] for r in await get_routes(client, "90s")] == ["bundle_only", "low"]
    with pytest.raises(
        RpcError, match=r"^SERVER_ERROR: no rating plans defined for remaining usage$"
    ):
        await get_routes(client, "3m")
    assert [r["RouteID"] for r in await get_routes(client, "3m", IgnoreErrors=True)] == ["low"]


async def test_accounts_that_cannot_answer_are_passed_over(client: InProcessClient) -> None:
    await set_routes(
        client,
        # No such account: the next one answers.
        {"ID": "second_answers", "AccountIDs": ["ghost", BUNDLE], "Weight": 10},
        # An account with money only answers too, covering nothing (its money has no *routes
        # rating): the plans price the whole call.
        {"ID": "money", "AccountIDs": ["ghost", "money_only"], "RatingPlanIDs": ["RP_1002_LOW"],
         "Weight": 20},
        # No account answers: the plans price the whole call, no Account in the data.
        {"ID": "plans", "AccountIDs": ["ghost"], "RatingPlanIDs": ["RP_1002"], "Weight": 40},
        # No account answers and no plan: no cost at all, the route is left out.
        {"ID": "nothing", "AccountIDs": ["ghost"], "Weight": 30},
    )  # fmt: skip
    assert data(await get_routes(client, "1m")) == [
        ("second_answers", {"Weight": Decimal(10), "Account": BUNDLE, "Cost": Decimal(0),
                            "MaxUsage": 60 * SECOND}),
        ("money", {"Weight": Decimal(20), "Account": "money_only", "Cost": Decimal("0.3"),
                   "MaxUsage": 0, "RatingPlanID": "RP_1002_LOW"}),
        ("plans", {"Weight": Decimal(40), "Cost": Decimal("0.6"), "RatingPlanID": "RP_1002"}),
    ]  # fmt: skip


async def test_pricing_leaves_the_account_untouched(client: InProcessClient) -> None:
    await set_routes(client, {"ID": "bundle", "AccountIDs": [BUNDLE], "Weight": 10})
    for _ in range(3):
        await get_routes(client, "1m")
    account = await client.call("APIerSv1.GetAccount", {"Tenant": "cgrates.org", "Account": BUNDLE})
    (minutes,) = account["BalanceMap"]["*voice"]
    assert Decimal(minutes["Value"]) == 120 * SECOND
