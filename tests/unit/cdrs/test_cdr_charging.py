"""CDR charging is exactly once, also when the cost write was lost (a crash) and re-rated."""

from __future__ import annotations

from decimal import Decimal

from core.engine import Engine
from core.rpc import InProcessClient
from core.storage.cdr import COST_NOT_RATED, CdrFilter


async def test_rerating_a_cdr_whose_cost_was_lost_charges_nothing_twice(
    tutorial_engine: Engine,
) -> None:
    engine = tutorial_engine
    client = InProcessClient(engine.registry)
    cdr = {"OriginID": "crash-1", "OriginHost": "10.0.0.1", "RequestType": "*postpaid",
           "Tenant": "cgrates.org", "Account": "1001", "Destination": "1002",
           "AnswerTime": "2023-01-07T17:00:10Z", "Usage": "130s"}  # fmt: skip
    assert await client.call("CDRsV1.ProcessExternalCDR", cdr) == "OK"
    account = await engine.accounts.get("cgrates.org", "1001")
    assert account is not None
    after_first = account.total("*monetary")
    assert after_first == Decimal(10) - Decimal("0.7169")
    # Simulate a crash after the debit but before the CDR's cost was written.
    flt = CdrFilter(origin_ids=["crash-1"], run_ids=["*default"])
    (stored,) = await engine.stordb.get_cdrs(flt)
    stored.cost = COST_NOT_RATED
    await engine.stordb.store_cdr(stored, allow_update=True)
    assert await client.call("CDRsV1.RateCDRs", {"OriginIDs": ["crash-1"]}) == "OK"
    (rerated,) = await engine.stordb.get_cdrs(flt)
    assert rerated.cost == Decimal("0.7169")
    account = await engine.accounts.get("cgrates.org", "1001")
    assert account is not None
    assert account.total("*monetary") == after_first  # not charged a second time
