"""CDRsV1/V2.RateCDRs re-rates CDRs that already have a cost (CGRateS's *rerate): a run charged
to an account gets back what its stored cost took and pays the new cost, in one change of the
account (a *prepaid CDR costed by its session too); a *rated run just gets the new cost;
running it again charges nothing twice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from core.engine import Engine
from core.rpc import InProcessClient
from core.storage.cdr import CdrFilter
from tests.unit.sessions.test_session_api import add_supplier_run

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


async def default_run(
    client: InProcessClient, origin_id: str, run_id: str = "*default"
) -> dict[str, Any]:
    (found,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": [origin_id], "RunIDs": [run_id]})
    assert isinstance(found, dict)
    return found


async def set_minutes(client: InProcessClient, value: str) -> None:
    """1001's *voice balance ``minutes`` (used before its money: weight 25)."""
    reply = await client.call(
        "APIerSv1.SetBalance",
        {"Tenant": TENANT, "Account": "1001", "BalanceType": "*voice", "Value": value,
         "Balance": {"ID": "minutes", "Weight": 25}},
    )  # fmt: skip
    assert reply == "OK"


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
    await set_minutes(client, "5m")
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


# ------------------------------------------------------------------- *prepaid CDRs of sessions
async def cost_of(client: InProcessClient, usage: str) -> Decimal:
    """What the plan as it is now charges for ``usage``, rounded as the call's total is."""
    reply = await client.call(
        "APIerSv1.GetCost",
        {"Tenant": TENANT, "Category": "call", "Subject": "1001", "Destination": "1002",
         "AnswerTime": ANSWER, "Usage": usage},
    )  # fmt: skip
    cost: Decimal = reply["Cost"].quantize(Decimal("0.0001"), "ROUND_UP")
    return cost


async def prepaid_call(client: InProcessClient, origin_id: str, **more: str) -> None:
    """A *prepaid session of 131 s: 90 s reserved at initiate, 80 s used and 60 s more reserved
    at the update, 51 s used at terminate (9 s of unused increments given back); then its CDR."""
    base = {"OriginID": origin_id, "OriginHost": "10.0.0.1", "RequestType": "*prepaid",
            "Tenant": TENANT, "Account": "1001", "Destination": "1002", "AnswerTime": ANSWER,
            **more}  # fmt: skip
    reply = await client.call(
        "SessionSv1.InitiateSession", {"InitSession": True, "Event": {**base, "Usage": "90s"}}
    )
    assert reply["MaxUsage"] == 90_000_000_000
    updated = {**base, "LastUsed": "80s", "Usage": "60s"}
    reply = await client.call("SessionSv1.UpdateSession", {"UpdateSession": True, "Event": updated})
    assert reply["MaxUsage"] == 60_000_000_000
    ended = {**base, "LastUsed": "51s"}
    reply = await client.call(
        "SessionSv1.TerminateSession", {"TerminateSession": True, "Event": ended}
    )
    assert reply == "OK"
    assert await client.call("SessionSv1.ProcessCDR", {"Event": {**base, "Usage": "131s"}}) == "OK"


def accounted(found: dict[str, Any], account: str = "1001") -> dict[str, Decimal]:
    """The CDR's Accounting: balance uuid -> Units taken."""
    taken: dict[str, Decimal] = {}
    for charge in found["CostDetails"]["Accounting"].values():
        assert charge["AccountID"] == f"{TENANT}:{account}"
        uuid = charge["BalanceUUID"]
        taken[uuid] = taken.get(uuid, Decimal(0)) + Decimal(str(charge["Units"]))
    return taken


async def uuids(client: InProcessClient, account: str = "1001") -> dict[str, str]:
    reply = await client.call("APIerSv2.GetAccount", {"Tenant": TENANT, "Account": account})
    return {
        b["Uuid"]: f"{kind}/{b['ID']}" for kind, items in reply["BalanceMap"].items() for b in items
    }


async def test_a_prepaid_session_cdr_is_rerated_by_the_difference_once(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    old = await cost_of(client, "131s")
    await prepaid_call(client, "pre-1")
    found = await default_run(client, "pre-1")
    assert (found["Cost"], found["CostSource"], found["Usage"]) == (old, "*sessions", 131 * 10**9)
    names = await uuids(client)
    # What the session took in the end: its debits, less the refund, plus the rounding.
    assert {names[uuid]: units for uuid, units in accounted(found).items()} == {
        "*monetary/test": old
    }
    assert await balances(client) == {"*monetary/test": 10 - old}

    await double_the_rate(client, tmp_path)
    new = await cost_of(client, "131s")
    assert new > old
    for _ in range(2):  # the second time gives back what the first took, and takes it again
        assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["pre-1"]}) == "OK"
        found = await default_run(client, "pre-1")
        assert (found["Cost"], found["CostSource"]) == (new, "*cdrs")
        assert {names[uuid]: units for uuid, units in accounted(found).items()} == {
            "*monetary/test": new
        }
        assert await balances(client) == {"*monetary/test": 10 - new}


async def test_a_prepaid_session_cdr_paid_with_voice_units_is_rerated_once(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    await set_minutes(client, "100s")
    # 100 s from the minutes, the rest (in the update's reservation, part of it given back at
    # terminate) from the money.
    await prepaid_call(client, "pre-voice", ToR="*voice")
    found = await default_run(client, "pre-voice")
    assert found["CostSource"] == "*sessions"
    spent = await balances(client)
    assert spent["*voice/minutes"] == 0
    old_money = 10 - spent["*monetary/test"]
    assert found["Cost"] == old_money > 0
    names = await uuids(client)
    assert {names[uuid]: units for uuid, units in accounted(found).items()} == {
        "*voice/minutes": Decimal(100 * 10**9),
        "*monetary/test": old_money,
    }

    await double_the_rate(client, tmp_path)
    for _ in range(3):
        assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["pre-voice"]}) == "OK"
        found = await default_run(client, "pre-voice")
        new_money = found["Cost"]
        assert found["CostSource"] == "*cdrs"
        assert new_money > old_money  # the 31 s past the minutes cost twice as much now
        # The minutes given back and taken again (never 200 s); the money moved by the
        # difference of the costs, once.
        assert await balances(client) == {
            "*voice/minutes": Decimal(0), "*monetary/test": 10 - new_money
        }  # fmt: skip
        assert {names[uuid]: units for uuid, units in accounted(found).items()} == {
            "*voice/minutes": Decimal(100 * 10**9),
            "*monetary/test": new_money,
        }


async def test_a_failing_rerating_of_a_prepaid_session_cdr_changes_nothing(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    client = InProcessClient(tutorial_engine.registry)
    await prepaid_call(client, "pre-2")
    before = await default_run(client, "pre-2")
    left = await balances(client)
    await double_the_rate(client, tmp_path)
    reply = await client.call(
        "APIerSv1.SetAccount", {"Tenant": TENANT, "Account": "1001", "Disabled": True}
    )
    assert reply == "OK"
    assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["pre-2"]}) == "OK"
    assert await default_run(client, "pre-2") == before
    assert await balances(client) == left
    reply = await client.call(
        "APIerSv1.SetAccount", {"Tenant": TENANT, "Account": "1001", "Disabled": False}
    )
    assert reply == "OK"
    assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["pre-2"]}) == "OK"
    after = await default_run(client, "pre-2")
    assert after["Cost"] > before["Cost"]
    assert await balances(client) == {"*monetary/test": left["*monetary/test"] - after["Cost"]
                                      + before["Cost"]}  # fmt: skip


async def test_each_prepaid_run_of_a_session_records_its_own_balances(
    tutorial_engine: Engine, tmp_path: Path
) -> None:
    """A second *prepaid run charged to 1002 settles before the *default one: its cost is
    written with the last run's change, and records what it took (rounding included) too."""
    client = InProcessClient(tutorial_engine.registry)
    await add_supplier_run(client)
    old = await cost_of(client, "131s")
    await prepaid_call(client, "pre-two")
    for run_id, account in (("*default", "1001"), ("supplier", "1002")):
        found = await default_run(client, "pre-two", run_id)
        assert (found["Cost"], found["CostSource"]) == (old, "*sessions")
        names = await uuids(client, account)
        assert {names[u]: units for u, units in accounted(found, account).items()} == {
            "*monetary/test": old
        }
        assert await balances(client, account) == {"*monetary/test": 10 - old}

    await double_the_rate(client, tmp_path)
    new = await cost_of(client, "131s")
    for _ in range(2):
        assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["pre-two"]}) == "OK"
        for run_id, account in (("*default", "1001"), ("supplier", "1002")):
            found = await default_run(client, "pre-two", run_id)
            assert (found["Cost"], found["CostSource"]) == (new, "*cdrs")
            assert await balances(client, account) == {"*monetary/test": 10 - new}
