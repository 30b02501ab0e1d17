"""The session backup commits in the same transaction as the debit it records (SQLite engine,
in-process): one commit per update, and a debit whose commit fails leaves neither balances nor
backup changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.accounts.models import MONETARY, Account
from core.cdrs.service import KIND_SESSION_COSTS
from core.charging import cgrid
from core.config import load_config
from core.engine import Engine
from core.rpc import CallContext, RpcError
from core.sessions.backup import (
    DEBITS_PER_CHUNK,
    KIND_SESSION_DEBITS,
    KIND_SESSIONS,
    chunk_key,
    session_doc,
    session_from_doc,
)
from core.storage import SqliteDataDB, StorageError, Write
from core.types import dumps

FAST_PLAN = Path(__file__).parent / "fast_plan"  # 0.01 per 100 ms, in 100 ms increments
TENANT = "cgrates.org"
ORIGIN = "backup-1"
SECOND_NS = 1_000_000_000
CONTEXT = CallContext("test", "inproc")


async def start_engine(plan: Path, data_dir: Path) -> Engine:
    """An engine on SQLite with ``plan`` loaded and alice holding 10 of money."""
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="sqlite", data_dir=data_dir),
        engine=replace(config.engine, rpc_json_listen=None, http_listen=None),
        tariffplans=replace(config.tariffplans, load_on_start=(plan,)),
    )
    started = Engine(config)
    await started.start()
    await call(started, "APIerSv1.SetBalance", {
        "Tenant": TENANT, "Account": "alice", "BalanceType": "*monetary", "Value": "10",
        "Balance": {"ID": "money"}})  # fmt: skip
    return started


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    started = await start_engine(FAST_PLAN, tmp_path)
    yield started
    await started.stop()


async def call(engine: Engine, method: str, params: dict[str, Any]) -> Any:
    return await engine.registry.call(method, params, CONTEXT)


def event(usage: str, **extra: str) -> dict[str, Any]:
    return {"Account": "alice", "Destination": "5551234", "OriginID": ORIGIN,
            "OriginHost": "agent-1", "RequestType": "*prepaid",
            "AnswerTime": "2025-01-01T10:00:00Z", "Usage": usage, **extra}  # fmt: skip


async def stored_money(engine: Engine) -> Decimal:
    doc = await engine.datadb.get("accounts", f"{TENANT}:alice")
    assert doc is not None
    return sum((b.value for b in Account.from_doc(doc).balance_map[MONETARY]), Decimal(0))


async def backup_of(engine: Engine) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await engine.datadb.get(KIND_SESSIONS, cgrid(ORIGIN, "agent-1"))
    return doc


async def test_each_debit_commits_once_with_its_backup(engine: Engine) -> None:
    datadb = engine.datadb
    assert isinstance(datadb, SqliteDataDB)
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("10s")})
    backup = await backup_of(engine)
    assert backup is not None and backup["Runs"][0]["Charged"] == 10 * SECOND_NS
    assert await stored_money(engine) == Decimal("9")

    commits = datadb.commits
    await call(engine, "SessionSv1.UpdateSession",
               {"UpdateSession": True, "Event": event("10s", LastUsed="10s")})  # fmt: skip
    assert datadb.commits == commits + 1  # balances and backup in one transaction
    backup = await backup_of(engine)
    assert backup is not None
    run = backup["Runs"][0]
    assert (run["Charged"], run["Used"], Decimal(run["Money"])) == (
        20 * SECOND_NS, 10 * SECOND_NS, Decimal("2"))  # fmt: skip
    assert [debit["Usage"] for debit in run["Debits"]] == [10 * SECOND_NS] * 2
    assert await stored_money(engine) == Decimal("8")


async def test_a_failed_debit_commit_changes_neither_balance_nor_backup(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("10s")})
    before = await backup_of(engine)

    async def failing_apply(mutations: Any) -> None:
        raise StorageError("disk gone")

    monkeypatch.setattr(engine.datadb, "apply", failing_apply)
    with pytest.raises((RpcError, StorageError)):
        await call(engine, "SessionSv1.UpdateSession",
                   {"UpdateSession": True, "Event": event("10s", LastUsed="10s")})  # fmt: skip
    monkeypatch.undo()
    assert await backup_of(engine) == before
    assert await stored_money(engine) == Decimal("9")
    reply = await call(engine, "APIerSv2.GetAccount", {"Tenant": TENANT, "Account": "alice"})
    live = sum(Decimal(str(b["Value"])) for b in reply["BalanceMap"]["*monetary"])
    assert live == Decimal("9")  # the cached account did not move either


async def test_terminate_commits_refund_costs_and_backup_removal_at_once(engine: Engine) -> None:
    datadb = engine.datadb
    assert isinstance(datadb, SqliteDataDB)
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("10s")})
    commits = datadb.commits
    await call(engine, "SessionSv1.TerminateSession",
               {"TerminateSession": True, "Event": event("2450ms")})  # fmt: skip
    assert datadb.commits == commits + 1  # the refund, the session's cost, the backup's removal
    assert await backup_of(engine) is None
    cost = await datadb.get(KIND_SESSION_COSTS, f"{cgrid(ORIGIN, 'agent-1')}:*default")
    assert cost is not None and Decimal(cost["Cost"]) == Decimal("0.25")  # 25 x 100 ms
    assert await stored_money(engine) == Decimal("9.75")


async def test_terminate_charging_past_the_reservation_commits_once(engine: Engine) -> None:
    datadb = engine.datadb
    assert isinstance(datadb, SqliteDataDB)
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("1s")})
    commits = datadb.commits
    await call(engine, "SessionSv1.TerminateSession",
               {"TerminateSession": True, "Event": event("3s")})  # fmt: skip
    assert datadb.commits == commits + 1
    assert await backup_of(engine) is None
    cost = await datadb.get(KIND_SESSION_COSTS, f"{cgrid(ORIGIN, 'agent-1')}:*default")
    assert cost is not None and Decimal(cost["Cost"]) == Decimal("0.3")
    assert await stored_money(engine) == Decimal("9.7")


async def test_the_backup_after_several_debits_round_trips(engine: Engine) -> None:
    """The parts of the backup built once (event, fields, recorded debits) stay exact: the
    stored document, read back into a session, writes the same document again."""
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("10s")})
    for _ in range(2):
        await call(engine, "SessionSv1.UpdateSession",
                   {"UpdateSession": True, "Event": event("10s", LastUsed="10s")})  # fmt: skip
    stored = await backup_of(engine)
    assert stored is not None
    (run,) = stored["Runs"]
    assert [debit["Usage"] for debit in run["Debits"]] == [10 * SECOND_NS] * 3
    assert (run["Charged"], run["Used"], run["Money"]) == (30 * SECOND_NS, 20 * SECOND_NS, "3")
    sessions = engine.sessions
    restored = session_from_doc(
        cgrid(ORIGIN, "agent-1"), stored, sessions._run_event, UTC, datetime.now(UTC)
    )
    assert orjson.loads(dumps(session_doc(restored))) == stored


async def test_debit_docs_reused_from_their_pending_write_match_a_fresh_encoding(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each debit is encoded once, as the pending debit of its commit, and that doc is reused
    once the debit is recorded (never the doc of a debit whose commit failed): the live
    session's document equals one built from scratch."""
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("10s")})

    async def failing_apply(mutations: Any) -> None:
        raise StorageError("disk gone")

    monkeypatch.setattr(engine.datadb, "apply", failing_apply)
    with pytest.raises((RpcError, StorageError)):  # a pending debit that is never recorded
        await call(engine, "SessionSv1.UpdateSession",
                   {"UpdateSession": True, "Event": event("50s", LastUsed="10s")})  # fmt: skip
    monkeypatch.undo()
    for usage in ("20s", "30s"):
        await call(engine, "SessionSv1.UpdateSession",
                   {"UpdateSession": True, "Event": event(usage, LastUsed="10s")})  # fmt: skip
    session = engine.sessions.sessions[cgrid(ORIGIN, "agent-1")]
    (run,) = session.runs
    reused = orjson.loads(dumps(session_doc(session)))
    assert [debit["Usage"] for debit in reused["Runs"][0]["Debits"]] == [
        10 * SECOND_NS, 30 * SECOND_NS, 20 * SECOND_NS  # each update reserves up to used + Usage
    ]  # fmt: skip
    run.backup_debits.clear()
    run.backup_pending = None
    run.backup_fields = None
    session.backup_head = None
    assert reused == orjson.loads(dumps(session_doc(session)))
    assert reused == await backup_of(engine)


async def update_times(engine: Engine, count: int) -> None:
    """``count`` updates of 100 ms each (one increment, 0.01 of money), each one debit."""
    for _ in range(count):
        await call(engine, "SessionSv1.UpdateSession",
                   {"UpdateSession": True, "Event": event("100ms", LastUsed="100ms")})  # fmt: skip


async def test_a_long_session_writes_bounded_documents_in_sealed_chunks(engine: Engine) -> None:
    """Each debit rewrites only the head (fewer than DEBITS_PER_CHUNK debits) and, when it fills
    the head's list, that chunk once: the cost of an update does not grow with the session."""
    await call(engine, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("100ms")})
    debits = 2 * DEBITS_PER_CHUNK + 10
    await update_times(engine, debits - 1)
    head = await backup_of(engine)
    assert head is not None
    (run,) = head["Runs"]
    assert run["Chunks"] == 2 and len(run["Debits"]) == 10
    assert run["Charged"] == debits * SECOND_NS // 10
    key = cgrid(ORIGIN, "agent-1")
    chunks = await engine.datadb.get_all(KIND_SESSION_DEBITS)
    assert sorted(chunks) == [chunk_key(key, 0, 0), chunk_key(key, 0, 1)]
    assert all(len(chunk) == DEBITS_PER_CHUNK for chunk in chunks.values())

    # Read back, the chunks and the head give the live session's debits, in order.
    restored = session_from_doc(
        key, head, engine.sessions._run_event, UTC, datetime.now(UTC), chunks
    )
    live = engine.sessions.sessions[key]
    assert [(d.usage, d.cost) for d in restored.runs[0].debits] == [
        (d.usage, d.cost) for d in live.runs[0].debits
    ]
    assert len(restored.runs[0].debits) == debits
    assert orjson.loads(dumps(session_doc(restored))) == head

    # The end forgets the head and every chunk in the commit that stores the cost.
    await call(engine, "SessionSv1.TerminateSession",
               {"TerminateSession": True, "Event": event(f"{debits * 100}ms")})  # fmt: skip
    assert await backup_of(engine) is None
    assert await engine.datadb.get_all(KIND_SESSION_DEBITS) == {}
    assert await stored_money(engine) == Decimal(10) - Decimal("0.01") * debits


async def test_a_long_session_survives_a_restart_and_refunds_across_chunks(
    tmp_path: Path,
) -> None:
    """Restored from head and chunks, the session refunds what the network did not use, newest
    debit first and past the head's own debits, exactly once."""
    first = await start_engine(FAST_PLAN, tmp_path)
    await call(first, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("100ms")})
    await update_times(first, DEBITS_PER_CHUNK + 4)  # 69 debits: one chunk sealed, 5 in the head
    await first.stop()
    second = Engine(first.config)
    await second.start()
    try:
        assert await stored_money(second) == Decimal("9.31")
        key = cgrid(ORIGIN, "agent-1")
        assert len(second.sessions.sessions[key].runs[0].debits) == DEBITS_PER_CHUNK + 5
        # Used 5.9 s of the 6.9 s charged: ten increments back, five of them from the chunk.
        await call(second, "SessionSv1.TerminateSession",
                   {"TerminateSession": True, "Event": event("5900ms")})  # fmt: skip
        assert await stored_money(second) == Decimal("9.41")
        assert await second.datadb.get_all(KIND_SESSION_DEBITS) == {}
        assert await second.datadb.get(KIND_SESSIONS, key) is None
    finally:
        await second.stop()


async def test_a_backup_written_before_chunks_restores_and_is_rewritten_in_chunks(
    tmp_path: Path,
) -> None:
    """A head holding all its debits inline (the format before chunks) restores whole; it is
    written again as head plus sealed chunks, so later debits keep it readable."""
    first = await start_engine(FAST_PLAN, tmp_path)
    await call(first, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("100ms")})
    await update_times(first, DEBITS_PER_CHUNK + 9)  # 74 debits
    key = cgrid(ORIGIN, "agent-1")
    live = first.sessions.sessions[key]
    old = session_doc(live)
    chunk = await first.datadb.get(KIND_SESSION_DEBITS, chunk_key(key, 0, 0))
    del old["Runs"][0]["Chunks"]
    old["Runs"][0]["Debits"] = [*chunk, *old["Runs"][0]["Debits"]]  # all 74 inline
    await first.datadb.apply(
        [Write(KIND_SESSIONS, key, old), Write(KIND_SESSION_DEBITS, chunk_key(key, 0, 0), None)]
    )
    await first.stop()

    second = Engine(first.config)
    await second.start()
    try:
        assert len(second.sessions.sessions[key].runs[0].debits) == DEBITS_PER_CHUNK + 10
        head = await second.datadb.get(KIND_SESSIONS, key)
        assert head is not None and head["Runs"][0]["Chunks"] == 1
        assert len(head["Runs"][0]["Debits"]) == 10
        assert len(await second.datadb.get(KIND_SESSION_DEBITS, chunk_key(key, 0, 0))) == 64
        await update_times(second, 1)
        await call(second, "SessionSv1.TerminateSession",
                   {"TerminateSession": True, "Event": event("7500ms")})  # fmt: skip
        assert await stored_money(second) == Decimal("9.25")  # 75 increments, none twice
        assert await second.datadb.get_all(KIND_SESSION_DEBITS) == {}
    finally:
        await second.stop()


async def test_a_missing_chunk_leaves_the_backup_unread_not_shorter(tmp_path: Path) -> None:
    first = await start_engine(FAST_PLAN, tmp_path)
    await call(first, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("100ms")})
    await update_times(first, DEBITS_PER_CHUNK)
    key = cgrid(ORIGIN, "agent-1")
    await first.datadb.remove(KIND_SESSION_DEBITS, chunk_key(key, 0, 0))
    await first.stop()
    second = Engine(first.config)
    await second.start()
    try:
        assert key not in second.sessions.sessions
        assert await second.datadb.get(KIND_SESSIONS, key) is not None  # left for an operator
    finally:
        await second.stop()


async def test_a_restored_session_records_what_it_took_so_its_cdr_can_be_rerated(
    tmp_path: Path,
) -> None:
    """The balances a session took before a restart (restored debits), less its refund, are
    recorded in its cost; its CDR (stored in SQLite: Units come back from JSON) is re-rated by
    giving exactly that back."""
    first = await start_engine(FAST_PLAN, tmp_path)
    await call(first, "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("100ms")})
    await update_times(first, 3)  # 400 ms charged, 300 ms used
    await first.stop()
    second = Engine(first.config)
    await second.start()
    try:
        # 250 ms used: the last whole increment (300-400 ms) given back.
        await call(second, "SessionSv1.TerminateSession",
                   {"TerminateSession": True, "Event": event("250ms")})  # fmt: skip
        assert await call(second, "SessionSv1.ProcessCDR", {"Event": event("250ms")}) == "OK"
        flt = {"OriginIDs": [ORIGIN], "RunIDs": ["*default"]}
        (cdr,) = await call(second, "CDRsV1.GetCDRs", flt)
        assert (cdr["Cost"], cdr["CostSource"]) == (Decimal("0.03"), "*sessions")
        assert await stored_money(second) == Decimal("9.97")
        (charge,) = cdr["CostDetails"]["Accounting"].values()
        assert Decimal(str(charge["Units"])) == Decimal("0.03")

        doubled = tmp_path / "doubled"
        doubled.mkdir()
        (doubled / "Rates.csv").write_text(
            "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
            "RT_FAST,0,0.02,100ms,100ms,0s\n"
        )
        reply = await call(second, "APIerSv1.LoadTariffPlanFromFolder",
                           {"FolderPath": str(doubled)})  # fmt: skip
        assert reply == "OK"
        for _ in range(2):
            assert await call(second, "CDRsV1.RateCDRs", flt) == "OK"
            (cdr,) = await call(second, "CDRsV1.GetCDRs", flt)
            assert (cdr["Cost"], cdr["CostSource"]) == (Decimal("0.06"), "*cdrs")
            assert await stored_money(second) == Decimal("9.94")  # 0.03 back, 0.06 taken
    finally:
        await second.stop()
