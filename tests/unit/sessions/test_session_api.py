"""SessionSv1 against the whole in-process engine (tutorial plan): ProcessEvent's charging flags
in both CGRateS forms, InitiateSessionWithDigest, ProcessMessage with Debit, MaxUsage as the
least over the charger runs, a *postpaid session, and terminate errors as RALS_ERROR."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError

TENANT = "cgrates.org"
ANSWER = "2023-01-07T17:00:10Z"
ONE_MINUTE = Decimal("0.6")  # RT_20CNT: 0.4 connect fee + 0.2 for the first minute
MINUTE_NS = 60_000_000_000


def event(origin_id: str, usage: str | None = "1m", **more: Any) -> dict[str, Any]:
    fields = {"Account": "1001", "Destination": "1002", "OriginID": origin_id,
              "RequestType": "*prepaid", "AnswerTime": ANSWER, **more}  # fmt: skip
    if usage is not None:
        fields["Usage"] = usage
    return fields


async def set_balance(
    client: InProcessClient, value: Any, kind: str = "*monetary", account: str = "1001"
) -> None:
    reply = await client.call(
        "APIerSv1.SetBalance",
        {"Tenant": TENANT, "Account": account, "BalanceType": kind, "Value": value,
         "Balance": {"ID": "test"}},
    )  # fmt: skip
    assert reply == "OK"


async def value(client: InProcessClient, kind: str = "*monetary", account: str = "1001") -> Any:
    reply = await client.call("APIerSv2.GetAccount", {"Tenant": TENANT, "Account": account})
    return sum(Decimal(str(b["Value"])) for b in reply["BalanceMap"].get(kind, []))


async def add_supplier_run(client: InProcessClient) -> None:
    """A second charger run, ``supplier``: *prepaid, charged to 1002 at 1001's rates."""
    reply = await client.call(
        "APIerSv1.SetAttributeProfile",
        {"Tenant": TENANT, "ID": "ATTR_SUPPLIER", "Contexts": ["*chargers"], "FilterIDs": [],
         "Weight": 10, "Attributes": [
             {"Path": "*req.Account", "Type": "*constant", "Value": "1002"},
             {"Path": "*req.RequestType", "Type": "*constant", "Value": "*prepaid"},
             {"Path": "*req.Subject", "Type": "*constant", "Value": "1001"}]},
    )  # fmt: skip
    assert reply == "OK"
    reply = await client.call(
        "APIerSv1.SetChargerProfile",
        {"Tenant": TENANT, "ID": "CH_SUPPLIER", "RunID": "supplier", "FilterIDs": [],
         "AttributeIDs": ["ATTR_SUPPLIER"], "Weight": 5},
    )  # fmt: skip
    assert reply == "OK"


async def process_event(client: InProcessClient, flags: list[str], ev: dict[str, Any]) -> Any:
    return await client.call("SessionSv1.ProcessEvent", {"Flags": flags, "Event": ev})


@pytest.mark.parametrize(
    ("authorize", "initiate", "terminate"),
    [
        (["*rals:*authorize"], ["*rals:*initiate"], ["*rals:*terminate"]),  # v0.10
        (["*accounts", "*authorize"], ["*accounts", "*initiate"], ["*accounts", "*terminate"]),
        (["*accounts:*authorize"], ["*accounts:*initiate"], ["*accounts:*terminate", "*cdrs"]),
    ],
)
async def test_process_event_charging_flags(
    settled_tutorial_client: InProcessClient,
    authorize: list[str],
    initiate: list[str],
    terminate: list[str],
) -> None:
    client = settled_tutorial_client
    await set_balance(client, 10)
    reply = await process_event(client, authorize, event("pe"))
    assert reply["MaxUsage"] == {"*default": MINUTE_NS}
    assert await value(client) == 10  # authorize takes nothing
    reply = await process_event(client, initiate, event("pe"))
    assert reply["MaxUsage"] == {"*default": MINUTE_NS}
    assert await value(client) == 10 - ONE_MINUTE
    reply = await process_event(client, terminate, event("pe", "30s"))
    assert reply["MaxUsage"] is None
    assert await value(client) == 10 - ONE_MINUTE  # the first minute is one increment
    active = await client.call("SessionSv1.GetActiveSessionsCount", {})
    assert active == 0


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["*rals:*initate"], "SERVER_ERROR: unknown flag *rals:*initate"),
        (["*accounts:*debit"], "SERVER_ERROR: unknown flag *accounts:*debit"),
        (["*accounts"], "MANDATORY_IE_MISSING: [*authorize|*initiate|*message|*terminate|*update]"),
        (["*rals", "*cdrs"], "MANDATORY_IE_MISSING"),
    ],
)
async def test_process_event_refuses_a_charging_flag_that_charges_nothing(
    settled_tutorial_client: InProcessClient, flags: list[str], error: str
) -> None:
    await set_balance(settled_tutorial_client, 10)
    with pytest.raises(RpcError) as raised:
        await process_event(settled_tutorial_client, flags, event("bad"))
    assert str(raised.value).startswith(error)
    assert await value(settled_tutorial_client) == 10
    assert await settled_tutorial_client.call("SessionSv1.GetActiveSessionsCount", {}) == 0


async def test_process_event_accepts_the_rals_options_it_does_not_act_on(
    settled_tutorial_client: InProcessClient,
) -> None:
    await set_balance(settled_tutorial_client, 10)
    reply = await process_event(
        settled_tutorial_client, ["*rals:*authorize", "*rals:*fd", "*event"], event("fd")
    )
    assert reply["MaxUsage"] == {"*default": MINUTE_NS}


async def test_initiate_with_digest(settled_tutorial_client: InProcessClient) -> None:
    await set_balance(settled_tutorial_client, 10)
    reply = await settled_tutorial_client.call(
        "SessionSv1.InitiateSessionWithDigest", {"InitSession": True, "Event": event("dg", "90s")}
    )
    assert reply["MaxUsage"] == Decimal(90)  # seconds, as CGRateS's digest replies
    assert reply["AttributesDigest"] == ""
    # 0.4 + 0.2 for the first minute and 30 increments of 1 s at 0.1/min, *up to 4 decimals
    assert await value(settled_tutorial_client) == 10 - Decimal("0.6501")


async def test_process_message_debits_an_sms(settled_tutorial_client: InProcessClient) -> None:
    client = settled_tutorial_client
    await set_balance(client, 10)
    await set_balance(client, 5, "*sms")
    sms = event("sms-1", None, ToR="*sms", Usage=1)
    reply = await client.call("SessionSv1.ProcessMessage", {"Debit": True, "Event": sms})
    assert reply["MaxUsage"] == 1
    assert await value(client, "*sms") == 4
    assert await value(client) == 10  # the *sms balance paid, not the money
    assert await client.call("SessionSv1.ProcessCDR", {"Event": sms}) == "OK"
    (cdr,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["sms-1"], "RunIDs": ["*default"]})
    assert cdr["CostSource"] == "*sessions"
    assert await value(client, "*sms") == 4  # the CDR takes the session's cost


async def test_max_usage_is_the_least_over_the_runs(
    settled_tutorial_client: InProcessClient,
) -> None:
    client = settled_tutorial_client
    await set_balance(client, 10)
    await set_balance(client, Decimal("0.7"), account="1002")
    # A second, *prepaid run charged to 1002 at 1001's rates: 0.6 for the first minute, then
    # 0.1/min by the second: 0.7 pays 120 s, less the last increment's rounding -> 119 s.
    await add_supplier_run(client)
    reply = await client.call(
        "SessionSv1.AuthorizeEvent", {"GetMaxUsage": True, "Event": event("two", "10m")}
    )
    assert reply["MaxUsage"] == 119_000_000_000
    reply = await client.call(
        "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("two", "10m")}
    )
    assert reply["MaxUsage"] == 119_000_000_000


async def test_postpaid_session_is_charged_by_its_cdr(
    settled_tutorial_client: InProcessClient,
) -> None:
    client = settled_tutorial_client
    await set_balance(client, 10)
    post = event("post", "10h", RequestType="*postpaid")
    reply = await client.call("SessionSv1.AuthorizeEvent", {"GetMaxUsage": True, "Event": post})
    assert reply["MaxUsage"] == 10 * 60 * MINUTE_NS  # *postpaid is not balance-checked
    reply = await client.call("SessionSv1.InitiateSession", {"InitSession": True, "Event": post})
    assert reply["MaxUsage"] == 10 * 60 * MINUTE_NS  # nothing reserved: all of it
    ended = {**post, "Usage": "2m"}
    reply = await client.call(
        "SessionSv1.TerminateSession", {"TerminateSession": True, "Event": ended}
    )
    assert reply == "OK"
    assert await value(client) == 10  # nothing taken by the session
    assert await client.call("SessionSv1.ProcessCDR", {"Event": ended}) == "OK"
    (cdr,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["post"], "RunIDs": ["*default"]})
    two_minutes = ONE_MINUTE + 60 * Decimal("0.00167")  # then 0.1/min as 1 s increments
    assert (cdr["Cost"], cdr["CostSource"]) == (two_minutes, "*cdrs")
    assert await value(client) == 10 - two_minutes


async def test_terminate_that_cannot_be_rated_is_a_rals_error(
    settled_tutorial_client: InProcessClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = settled_tutorial_client
    await set_balance(client, 10)
    unrated = event("nowhere", "2m", Destination="99999")
    with pytest.raises(RpcError) as authorizing:
        await client.call("SessionSv1.AuthorizeEvent", {"GetMaxUsage": True, "Event": unrated})
    caplog.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(RpcError) as terminating:
        await client.call(
            "SessionSv1.TerminateSession", {"TerminateSession": True, "Event": unrated}
        )
    assert str(terminating.value) == str(authorizing.value)
    assert str(terminating.value).startswith("RALS_ERROR:")
    assert not [record for record in caplog.records if record.exc_info]  # no traceback
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0
    assert await value(client) == 10


async def test_a_terminate_that_cannot_be_rated_after_debits_keeps_the_session(
    settled_tutorial_client: InProcessClient,
) -> None:
    """1001's rating profile is removed mid-call, so the terminate cannot rate the call:
    RALS_ERROR, and the session (which already took the first minute) stays open. Once the
    profile is back the retried terminate charges only the rest: the call is paid once."""
    client = settled_tutorial_client
    await set_balance(client, 10)
    call = event("retry-1", "1m")
    reply = await client.call("SessionSv1.InitiateSession", {"InitSession": True, "Event": call})
    assert reply["MaxUsage"] == MINUTE_NS
    assert await value(client) == 10 - ONE_MINUTE
    live = await client.call("SessionSv1.GetActiveSessionsCount", {})
    assert live > 0

    profile = {"Tenant": TENANT, "Category": "call", "Subject": "1001"}
    assert await client.call("APIerSv1.RemoveRatingProfile", profile) == "OK"
    ended = {"TerminateSession": True, "Event": {**call, "Usage": "2m"}}
    with pytest.raises(RpcError, match=r"^RALS_ERROR:"):
        await client.call("SessionSv1.TerminateSession", ended)
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == live
    assert await value(client) == 10 - ONE_MINUTE

    activations = [  # the tutorial's RatingProfiles.csv rows for 1001
        {"ActivationTime": "2014-01-14T00:00:00Z", "RatingPlanId": "RP_1001"},
        {"ActivationTime": "2010-01-14T00:00:00Z", "RatingPlanId": "RP_1002"},
    ]
    restored = {**profile, "RatingPlanActivations": activations, "Overwrite": True}
    assert await client.call("APIerSv1.SetRatingProfile", restored) == "OK"
    retried = {**ended, "Event": {**ended["Event"], "ID": "retry-1-again"}}  # past the reply cache
    assert await client.call("SessionSv1.TerminateSession", retried) == "OK"
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0
    two_minutes = ONE_MINUTE + 60 * Decimal("0.00167")
    assert await value(client) == 10 - two_minutes
