"""CDR charging is exactly once, also when the cost write was lost (a crash) and re-rated."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from core.api import register_all
from core.config import load_config
from core.engine import Engine
from core.rpc import InProcessClient
from core.storage.cdr import COST_NOT_RATED, CdrFilter

TUTORIAL = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout


async def test_rerating_a_cdr_whose_cost_was_lost_charges_nothing_twice() -> None:
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        tariffplans=replace(config.tariffplans, load_on_start=(TUTORIAL,)),
    )
    engine = Engine(config)
    await engine.open_storage()
    for folder in config.tariffplans.load_on_start:
        await engine.loader.load_folder(folder)
    await engine.actions.settle()
    register_all(engine.registry, engine)
    client = InProcessClient(engine.registry)
    try:
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
    finally:
        await engine.stop()
