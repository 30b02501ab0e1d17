"""CDRsV1 through the API on the whole engine (tutorial plan): ProcessEvent, ProcessExternalCDR
and the GetCDRs/GetCDRsCount filters by their wire names."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.rpc import InProcessClient, RpcError

TENANT = "cgrates.org"
OLD_130S = Decimal("0.7169")  # 1001 -> 1002, 130 s (RT_20CNT, *up to 4 decimals)


async def money(client: InProcessClient, account: str = "1001") -> Decimal:
    reply = await client.call("APIerSv2.GetAccount", {"Tenant": TENANT, "Account": account})
    return sum((Decimal(str(b["Value"])) for b in reply["BalanceMap"]["*monetary"]), Decimal(0))


def fields(origin_id: str, answer: str = "2023-01-07T17:00:10Z", **more: Any) -> dict[str, Any]:
    return {"OriginID": origin_id, "OriginHost": "10.0.0.1", "RequestType": "*postpaid",
            "Account": "1001", "Destination": "1002", "AnswerTime": answer, "SetupTime": answer,
            "Usage": "130s", **more}  # fmt: skip


async def test_v1_process_event_charges_one_cdr_per_run(
    settled_tutorial_client: InProcessClient,
) -> None:
    client = settled_tutorial_client
    args = {"Flags": ["*attributes:false"], "Tenant": TENANT, "ID": "e1", "Event": fields("pe-1")}
    assert await client.call("CDRsV1.ProcessEvent", args) == "OK"
    found = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["pe-1"]})
    by_run = {cdr["RunID"]: cdr for cdr in found}
    assert set(by_run) == {"*default", "*raw"}  # the tutorial's chargers
    assert by_run["*default"]["Cost"] == OLD_130S
    assert await money(client) == 10 - OLD_130S
    with pytest.raises(RpcError, match="EXISTS"):
        await client.call("CDRsV1.ProcessEvent", args)
    assert await money(client) == 10 - OLD_130S  # a repeat is never charged
    no_chargers = {**args, "Flags": ["*chargers:false"], "Event": fields("pe-2", RunID="only")}
    assert await client.call("CDRsV1.ProcessEvent", no_chargers) == "OK"
    (single,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["pe-2"]})
    assert single["RunID"] == "only"


async def test_v1_process_external_cdr(settled_tutorial_client: InProcessClient) -> None:
    client = settled_tutorial_client
    event = {**fields("ext-1"), "Tenant": TENANT, "ExtraFields": {"Note": "x"}}
    assert await client.call("CDRsV1.ProcessExternalCDR", event) == "OK"
    cdr = (await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["ext-1"], "RunIDs": ["*default"]}))[0]
    assert (cdr["Cost"], cdr["ExtraFields"]["Note"]) == (OLD_130S, "x")
    prerated = {**fields("ext-2"), "Tenant": TENANT, "Cost": "1.5", "CostSource": "switch"}
    assert await client.call("CDRsV1.ProcessExternalCDR", prerated) == "OK"
    (stored,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["ext-2"]})
    assert (stored["Cost"], stored["PreRated"], stored["CostSource"]) == (
        Decimal("1.5"),
        True,
        "switch",
    )
    assert await money(client) == 10 - OLD_130S  # the pre-rated one is not charged


async def test_get_cdrs_filters_by_wire_name(settled_tutorial_client: InProcessClient) -> None:
    client = settled_tutorial_client
    for hour in range(10, 15):
        event = fields(f"t{hour}", f"2023-01-07T{hour}:00:00Z", RequestType="*rated")
        assert await client.call("CDRsV1.ProcessExternalCDR", event) == "OK"
    default = {"RunIDs": ["*default"]}

    async def origins(**flt: Any) -> list[str]:
        found = await client.call("CDRsV1.GetCDRs", {**default, **flt})
        return [cdr["OriginID"] for cdr in found]

    window = {"AnswerTimeStart": "2023-01-07T11:00:00Z", "AnswerTimeEnd": "2023-01-07T13:00:00Z"}
    assert sorted(await origins(**window)) == ["t11", "t12"]  # the end is excluded
    setup = {"SetupTimeStart": "2023-01-07T13:00:00Z"}
    assert sorted(await origins(**setup)) == ["t13", "t14"]
    count = await client.call("CDRsV1.GetCDRsCount", {**default, **window})
    assert count == 2

    every = await client.call("CDRsV1.GetCDRs", default)
    order_ids = sorted(cdr["OrderID"] for cdr in every)
    assert len(order_ids) == 5
    by_order = {cdr["OrderID"]: cdr["OriginID"] for cdr in every}
    middle = {"OrderIDStart": order_ids[1], "OrderIDEnd": order_ids[3]}
    assert sorted(await origins(**middle)) == sorted(by_order[o] for o in order_ids[1:3])

    first_two = await origins(Limit=2)
    next_two = await origins(Limit=2, Offset=2)
    assert len(first_two) == len(next_two) == 2
    assert not set(first_two) & set(next_two)
    assert set(first_two + next_two + await origins(Limit=2, Offset=4)) == set(by_order.values())
    with pytest.raises(RpcError, match="NOT_FOUND"):
        await client.call("CDRsV1.GetCDRs", {**default, "AnswerTimeStart": "2024-01-01T00:00:00Z"})
    with pytest.raises(RpcError, match="SERVER_ERROR"):
        await client.call("CDRsV1.GetCDRs", {"OrderIDStart": "soon"})
