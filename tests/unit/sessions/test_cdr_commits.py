"""ProcessCDR on SQLite: the runs that move no money (a *prepaid run its session already
charged, a *none run) are stored in one commit, in run order, each still refused as a
duplicate on its own; the session costs the CDRs took are removed together afterwards."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.cdrs.service import KIND_SESSION_COSTS, SessionCosts
from core.engine import Engine
from core.rpc import RpcError
from core.storage import SqliteDataDB, SqliteStorDB
from core.storage.cdr import CdrFilter

from .test_session_backup_commit import FAST_PLAN, call, start_engine

RAW_CHARGER = "cgrates.org,RAW,,,*raw,*constant:*req.RequestType:*none,0\n"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    plan = tmp_path / "plan"
    shutil.copytree(FAST_PLAN, plan)
    with (plan / "Chargers.csv").open("a") as chargers:
        chargers.write(RAW_CHARGER)  # a second run per event, one no account pays
    started = await start_engine(plan, tmp_path / "data")
    yield started
    await started.stop()


def event(origin: str, usage: str) -> dict[str, Any]:
    return {"Account": "alice", "Destination": "5551234", "OriginID": origin,
            "OriginHost": "agent-1", "RequestType": "*prepaid",
            "AnswerTime": "2025-01-01T10:00:00Z", "Usage": usage}  # fmt: skip


async def open_and_end(engine: Engine, origin: str, usage: str) -> None:
    await call(engine, "SessionSv1.InitiateSession",
               {"InitSession": True, "Event": event(origin, "10s")})  # fmt: skip
    await call(engine, "SessionSv1.TerminateSession",
               {"TerminateSession": True, "Event": event(origin, usage)})  # fmt: skip


async def test_runs_that_move_no_money_commit_once_in_run_order(engine: Engine) -> None:
    stordb = engine.stordb
    assert isinstance(stordb, SqliteStorDB)
    await open_and_end(engine, "c1", "2s")
    commits = stordb.commits
    reply = await call(engine, "SessionSv1.ProcessCDR", {"ID": "cdr-1", "Event": event("c1", "2s")})
    assert reply == "OK"
    assert stordb.commits == commits + 1  # both runs' CDRs in one transaction
    cdrs = await stordb.get_cdrs(CdrFilter(origin_ids=["c1"]))
    assert [cdr.run_id for cdr in cdrs] == ["*default", "*raw"]  # order ids in run order
    default, raw = cdrs
    assert default.cost == Decimal("0.2") and default.cost_source == "*sessions"
    assert raw.request_type == "*none"


async def test_a_repeated_cdr_is_refused_whole(engine: Engine) -> None:
    await open_and_end(engine, "c2", "1s")
    await call(engine, "SessionSv1.ProcessCDR", {"ID": "cdr-a", "Event": event("c2", "1s")})
    with pytest.raises(RpcError, match="EXISTS"):
        await call(engine, "SessionSv1.ProcessCDR", {"ID": "cdr-b", "Event": event("c2", "1s")})
    assert len(await engine.stordb.get_cdrs(CdrFilter(origin_ids=["c2"]))) == 2


async def test_session_costs_forgotten_together_are_removed_in_one_write(tmp_path: Path) -> None:
    datadb = SqliteDataDB(tmp_path / "datadb.sqlite3")
    costs = SessionCosts(datadb)
    try:
        await costs.apply([costs.write(f"call-{n}", "*default", Decimal("0.1"), 1, None)
                           for n in range(3)])  # fmt: skip
        await costs.put("kept", "*default", Decimal("0.2"), 1, None)
        commits = datadb.commits
        for n in range(3):  # as three CDRs answered in one turn of the loop
            costs.forget_later(f"call-{n}", "*default")
        await costs.drain()
        assert datadb.commits == commits + 1
        assert await datadb.keys(KIND_SESSION_COSTS) == ["kept:*default"]
        assert await costs.get("call-0", "*default") is None
        assert await costs.get("kept", "*default") == (Decimal("0.2"), 1, None)
        costs.forget_later("kept", "*default")  # a later one: its own flush
        await costs.drain()
        assert await datadb.count(KIND_SESSION_COSTS) == 0
    finally:
        await datadb.close()
