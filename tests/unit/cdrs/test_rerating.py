"""CDRsV1/V2.RateCDRs re-rates CDRs that already have a cost (CGRateS's *rerate): a run charged
to an account gets back what its stored cost took and pays the new cost, in one change of the
account; a *rated run just gets the new cost; running it again charges nothing twice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from core.engine import Engine
from core.rpc import InProcessClient
from core.storage.cdr import CdrFilter

TENANT = "cgrates.org"
ANSWER = "2023-01-07T17:00:10Z"
# RT_20CNT doubled: 0.4 connect fee, 0.4 for the first minute, then 0.2/min per second.
DOUBLED = (
    "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
    "RT_20CNT,0.4,0.4,60s,60s,0s\n"
    "RT_20CNT,0,0.2,60s,1s,60s\n"
)
OLD_130S = Decimal("0.7169")  # 0.4 + 0.2 + 70 x 0.00167, *up to 4 decimals
NEW_130S = Decimal("1.0331")  # 0.4 + 0.4 + 70 x 0.00333, *up to 4 decimals


def cdr(origin_id: str, request_type: str, usage: str = "130s", **more: str) -> dict[str, str]:
    return {"OriginID": origin_id, "OriginHost": "10.0.0.1", "RequestType": request_type,
            "Tenant": TENANT, "Account": "1001", "Destination": "1002", "AnswerTime": ANSWER,
            "Usage": usage, **more}  # fmt: skip


async def balances(client: InProcessClient, account: str = "1001") -> dict[str, Decimal]:
    reply = await client.call("APIerSv2.GetAccount", {"Tenant": TENANT, "Account": account})
    return {
        f"{kind}/{b['ID']}": Decimal(str(b["Value"]))
        for kind, items in reply["BalanceMap"].items()
        for b in items
    }


async def default_run(client: InProcessClient, origin_id: str) -> dict[str, Any]:
    (found,) = await client.call(
        "CDRsV1.GetCDRs", {"OriginIDs": [origin_id], "RunIDs": ["*default"]}
    )
    assert isinstance(found, dict)
    return found


async def double_the_rate(client: InProcessClient, folder: Path) -> None:
    (folder / "Rates.csv").write_text(DOUBLED)
    assert await client.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(folder)})


async def test_rerating_refunds_the_old_cost_and_debits_the_new_once(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    assert await client.call("CDRsV1.ProcessExternalCDR", cdr("post-1", "*postpaid")) == "OK"
    assert await client.call("CDRsV1.ProcessExternalCDR", cdr("rated-1", "*rated")) == "OK"
    assert (await default_run(client, "post-1"))["Cost"] == OLD_130S
    assert await balances(client) == {"*monetary/test": 10 - OLD_130S}

    await double_the_rate(client, tmp_path)
    cost = await client.call(
        "APIerSv1.GetCost",
        {"Tenant": TENANT, "Category": "call", "Subject": "1001", "Destination": "1002",
         "AnswerTime": ANSWER, "Usage": "130s"},
    )  # fmt: skip
    assert cost["Cost"].quantize(Decimal("0.0001"), "ROUND_UP") == NEW_130S

    for _ in range(2):  # the second time gives back what the first took, and takes it again
        assert await client.call("CDRsV2.RateCDRs", {"OriginIDs": ["post-1", "rated-1"]}) == "OK"
        postpaid = await default_run(client, "post-1")
        assert postpaid["Cost"] == NEW_130S
        assert postpaid["CostSource"] == "*cdrs"
        (charge,) = postpaid["CostDetails"]["Accounting"].values()
        assert Decimal(str(charge["Units"])) == NEW_130S
        assert charge["AccountID"] == f"{TENANT}:1001"
        assert (await default_run(client, "rated-1"))["Cost"] == NEW_130S
        assert await balances(client) == {"*monetary/test": 10 - NEW_130S}


async def test_rerating_gives_back_units_and_leaves_other_cdrs_alone(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    reply = await client.call(
        "APIerSv1.SetBalance",
        {"Tenant": TENANT, "Account": "1001", "BalanceType": "*voice", "Value": "5m",
         "Balance": {"ID": "minutes", "Weight": 25}},
    )  # fmt: skip
    assert reply == "OK"
    event = cdr("voice-1", "*pseudoprepaid", "150s", ToR="*voice")
    assert await client.call("CDRsV1.ProcessExternalCDR", event) == "OK"
    other = cdr("other", "*postpaid", Account="1002", Destination="1001")
    assert await client.call("CDRsV1.ProcessExternalCDR", other) == "OK"
    left = {"*monetary/test": Decimal(10), "*voice/minutes": Decimal(150_000_000_000)}
    assert await balances(client) == left
    await double_the_rate(client, tmp_path)
    for _ in range(3):
        assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["voice-1"]}) == "OK"
        assert await balances(client) == left  # 150 s given back, 150 s taken: never 300 s
    assert (await default_run(client, "voice-1"))["Cost"] == 0
    assert (await default_run(client, "other"))["Cost"] == OLD_130S  # not selected
    assert await balances(client, "1002") == {"*monetary/test": 10 - OLD_130S}


async def test_a_rerating_that_fails_changes_nothing(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    assert await client.call("CDRsV1.ProcessExternalCDR", cdr("post-2", "*postpaid")) == "OK"
    before = await default_run(client, "post-2")
    await double_the_rate(client, tmp_path)
    reply = await client.call(
        "APIerSv1.SetAccount", {"Tenant": TENANT, "Account": "1001", "Disabled": True}
    )
    assert reply == "OK"
    assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["post-2"]}) == "OK"
    assert await default_run(client, "post-2") == before
    assert await balances(client) == {"*monetary/test": 10 - OLD_130S}


async def test_a_charged_cdr_without_recorded_balances_is_not_charged_again(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    assert await client.call("CDRsV1.ProcessExternalCDR", cdr("old-1", "*postpaid")) == "OK"
    # As stored before balances were recorded (or a CDR whose cost came from its session).
    flt = CdrFilter(origin_ids=["old-1"], run_ids=["*default"])
    (stored,) = await tutorial_engine.stordb.get_cdrs(flt)
    stored.cost_details = {**stored.cost_details, "Accounting": {}, "AccountSummary": None}
    await tutorial_engine.stordb.store_cdr(stored, allow_update=True)
    await double_the_rate(client, tmp_path)
    assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["old-1"]}) == "OK"
    assert (await default_run(client, "old-1"))["Cost"] == OLD_130S
    assert await balances(client) == {"*monetary/test": 10 - OLD_130S}
