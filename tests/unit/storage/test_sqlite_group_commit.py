"""SQLite group commit (writer thread): concurrent writes share transactions, are answered in
order with the results each would have had alone, and are all durable."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.storage import DuplicateError, StorageClosedError, Write
from core.storage.cdr import Cdr, CdrFilter
from core.storage.sqlite import SqliteDataDB, SqliteStorDB
from core.storage.sqlite_writer import ROWS_PER_STATEMENT, _Solo

WRITERS = 200
BATCHED = WRITERS // 10  # far fewer transactions than writes


async def test_concurrent_sets_share_commits_and_all_persist(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    await asyncio.gather(*(db.set("accounts", f"t:{n}", {"v": str(n)}) for n in range(WRITERS)))
    assert 1 <= db.commits < BATCHED  # batched, not one fsync per write
    assert await db.remove("accounts", "t:0") is True
    assert await db.remove("accounts", "t:0") is False
    await db.close()

    reopened = SqliteDataDB(tmp_path / "datadb.sqlite3")
    try:
        assert await reopened.count("accounts") == WRITERS - 1
        assert await reopened.get("accounts", "t:199") == {"v": "199"}
    finally:
        await reopened.close()


async def test_a_bad_value_fails_only_its_own_caller(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    try:
        results = await asyncio.gather(
            db.set("k", "good", {"v": 1}),
            db.set("k", "bad", {"v": object()}),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], Exception)
        assert await db.get("k", "good") == {"v": 1}
        assert await db.get("k", "bad") is None
    finally:
        await db.close()


async def test_one_batch_replays_sets_and_removes_in_order(tmp_path: Path) -> None:
    """Writes to the same keys in one transaction: the last one wins, and every remove answers
    as it would have alone (existed before the batch, or was set earlier in it)."""
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    try:
        await db.set("k", "old", {"v": 0})
        await db.set("k", "kept", {"v": 0})
        commits = db.commits
        results = await asyncio.gather(
            db.remove("k", "old"),  # existed before the batch
            db.remove("k", "old"),  # already gone
            db.set("k", "old", {"v": 1}),  # set again after its removal: wins
            db.remove("k", "never"),  # never existed
            db.set("k", "new", {"v": 2}),
            db.remove("k", "new"),  # set earlier in the batch
            db.set("k", "kept", {"v": 3}),
            db.apply([Write("k", "unit-a", {"v": 4}), Write("k", "kept", None)]),
        )
        assert results == [True, False, None, False, None, True, None, None]
        assert db.commits == commits + 1  # one transaction for all of them
        assert await db.get_all("k") == {"old": {"v": 1}, "unit-a": {"v": 4}}
    finally:
        await db.close()


def _deferring_db(path: Path, delay: float) -> SqliteDataDB:
    """A DataDB whose deferrable writes wait ``delay`` seconds at most."""
    db = SqliteDataDB(path / "datadb.sqlite3")
    db._writer.deferred_delay_s = delay
    return db


async def _queued_cleanup(db: SqliteDataDB, key: str) -> asyncio.Future[None]:
    """A deferrable removal of ``key``, queued and not awaited."""
    cleanup = asyncio.ensure_future(db.apply([Write("k", key, None)], deferrable=True))
    await asyncio.sleep(0)  # queued
    return cleanup


async def test_a_deferrable_write_joins_the_next_commit(tmp_path: Path) -> None:
    db = _deferring_db(tmp_path, 60.0)  # never by the timer
    try:
        await db.set("k", "old", {"v": 0})
        commits = db.commits
        cleanup = await _queued_cleanup(db, "old")
        await asyncio.sleep(0.05)
        assert not cleanup.done() and db.commits == commits  # no commit of its own
        await db.set("k", "new", {"v": 1})  # due: takes the deferred one along
        await asyncio.wait_for(cleanup, 10)
        assert db.commits == commits + 1
        assert await db.get_all("k") == {"new": {"v": 1}}
    finally:
        await db.close()


async def test_a_read_does_not_wait_for_a_deferred_write(tmp_path: Path) -> None:
    db = _deferring_db(tmp_path, 60.0)
    try:
        await db.set("k", "a", {"v": 0})
        cleanup = await _queued_cleanup(db, "a")
        assert await asyncio.wait_for(db.get("k", "a"), 10) is None  # sees it, committed
        assert cleanup.done()
    finally:
        await db.close()


async def _stored(path: Path) -> object:
    reopened = SqliteDataDB(path / "datadb.sqlite3")
    try:
        return await reopened.get("k", "a")
    finally:
        await reopened.close()


async def test_a_deferrable_write_alone_commits_after_the_delay(tmp_path: Path) -> None:
    db = _deferring_db(tmp_path, 0.01)
    try:
        await asyncio.wait_for(db.apply([Write("k", "a", {"v": 1})], deferrable=True), 10)
    finally:
        await db.close()
    assert await _stored(tmp_path) == {"v": 1}


async def test_close_commits_a_deferred_write(tmp_path: Path) -> None:
    db = _deferring_db(tmp_path, 60.0)
    await db.set("k", "a", {"v": 1})
    cleanup = await _queued_cleanup(db, "a")
    await asyncio.wait_for(db.close(), 10)
    await asyncio.wait_for(cleanup, 10)
    assert await _stored(tmp_path) is None


async def test_while_writes_keep_arriving_a_due_one_waits_for_the_next(tmp_path: Path) -> None:
    """Gather window: a write that would start a commit while others keep arriving waits up to
    the window, so the one arriving meanwhile shares its commit (one fsync for both)."""
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    writer = db._writer
    writer.gather_s = 60.0  # ended by nothing but the read below
    writer.gather_below_gap_s = 3600.0  # every write counts as arriving close together
    try:
        first = asyncio.ensure_future(db.set("k", "a", {"v": 1}))
        await asyncio.sleep(0.05)
        assert not first.done() and db.commits == 0  # waiting in the window
        second = asyncio.ensure_future(db.set("k", "b", {"v": 2}))
        await asyncio.sleep(0.05)
        assert not second.done()  # joined the open window: no window of its own
        assert await asyncio.wait_for(db.get("k", "b"), 10) == {"v": 2}  # a read does not wait
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert db.commits == 1
    finally:
        await db.close()


async def test_a_busy_writer_ends_a_gather_window_without_the_loop(tmp_path: Path) -> None:
    """A window that ends while the writer commits is over when the commit is done, even if the
    loop is too busy to run its timer."""
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    writer = db._writer
    writer.gather_s = 0.05
    writer.gather_below_gap_s = 3600.0
    try:
        slow = writer.submit(_Solo(lambda conn: time.sleep(0.2)))  # a long commit, due at once
        await asyncio.sleep(0.05)  # the writer is in it
        write = asyncio.ensure_future(db.set("k", "a", {"v": 1}))
        await asyncio.sleep(0)  # queued: its window opens
        time.sleep(0.6)  # the loop is busy: its timer cannot run
        assert writer.commits == 2  # the writer ended the window itself
        await asyncio.wait_for(asyncio.gather(slow, write), 10)
    finally:
        await db.close()


async def test_a_write_after_a_quiet_spell_never_waits(tmp_path: Path) -> None:
    """A burst opens gather windows; one quiet gap later, a write commits at once."""
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    writer = db._writer
    writer.gather_s = 0.05
    try:
        burst = [db.set("k", f"b{n}", {"v": n}) for n in range(40)]
        await asyncio.wait_for(asyncio.gather(*burst), 10)
        assert db.commits < 10
        assert writer._gap < writer.gather_below_gap_s  # the next write would gather
        await asyncio.sleep(0.1)  # quiet
        writer.gather_s = 60.0  # a window the write below would never outwait
        await asyncio.wait_for(db.set("k", "after", {"v": 1}), 30)
        assert await db.get("k", "after") == {"v": 1}
    finally:
        await db.close()


async def test_the_first_write_of_a_store_never_waits(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    db._writer.gather_s = 60.0
    try:
        await asyncio.wait_for(db.set("k", "a", {"v": 1}), 30)
        assert db.commits == 1
    finally:
        await db.close()


async def test_close_commits_a_write_waiting_in_a_gather_window(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    db._writer.gather_s = 60.0
    db._writer.gather_below_gap_s = 3600.0
    write = asyncio.ensure_future(db.set("k", "a", {"v": 1}))
    await asyncio.sleep(0.02)
    assert not write.done()
    await asyncio.wait_for(db.close(), 10)
    await asyncio.wait_for(write, 10)
    assert await _stored(tmp_path) == {"v": 1}


async def test_the_writer_checkpoints_the_log_when_idle(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    db._writer.idle_checkpoint_interval_s = 0.0
    try:
        await db.set("k", "a", {"v": 1})
        for _ in range(100):  # the checkpoint follows the answer, in the writer thread
            if db._writer.idle_checkpoints:
                break
            await asyncio.sleep(0.01)
        assert db._writer.idle_checkpoints == 1
        await db.get("k", "a")  # a read commits nothing: no checkpoint for it
        await asyncio.sleep(0.05)
        assert db._writer.idle_checkpoints == 1
    finally:
        await db.close()


async def test_more_rows_than_one_statement_holds(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    count = ROWS_PER_STATEMENT * 2 + 3
    try:
        await asyncio.gather(*(db.set("k", f"{n:04}", {"v": n}) for n in range(count)))
        removed = await asyncio.gather(*(db.remove("k", f"{n:04}") for n in range(0, count, 2)))
        assert all(removed)
        assert await db.count("k") == count // 2
        assert await db.get("k", f"{count - 2:04}") == {"v": count - 2}
    finally:
        await db.close()


async def test_a_cancelled_caller_still_commits(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    try:
        task = asyncio.ensure_future(db.set("k", "a", {"v": 1}))
        await asyncio.sleep(0)  # queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await db.set("k", "b", {"v": 2})  # after the cancelled one, in order
        assert await db.get("k", "a") == {"v": 1}
    finally:
        await db.close()


async def test_a_bulk_apply_runs_in_order_with_group_writes(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    try:
        big = [Write("k", f"{n:05}", {"v": n}) for n in range(ROWS_PER_STATEMENT * 3)]
        await asyncio.gather(
            db.set("k", "00000", {"v": "before"}),  # overwritten by the apply queued after it
            db.apply(big),
            db.set("k", "00001", {"v": "after"}),
        )
        assert await db.get("k", "00000") == {"v": 0}
        assert await db.get("k", "00001") == {"v": "after"}
        assert await db.remove_kind("k") == len(big)
    finally:
        await db.close()


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    await db.set("k", "a", {"v": 1})
    await db.close()
    with pytest.raises(StorageClosedError):
        await db.set("k", "b", {"v": 2})


def _cdr(origin: str, run_id: str = "*default") -> Cdr:
    return Cdr(
        cgrid=f"cg-{origin}",
        run_id=run_id,
        origin_id=origin,
        tenant="cgrates.org",
        account="1001",
        destination="1002",
        setup_time=datetime(2024, 1, 1, tzinfo=UTC),
        usage=60_000_000_000,
    )


async def test_concurrent_cdrs_share_commits_and_duplicates_are_refused(tmp_path: Path) -> None:
    db = SqliteStorDB(tmp_path / "stordb.sqlite3")
    try:
        first = await asyncio.gather(*(db.store_cdr(_cdr(str(n))) for n in range(WRITERS)))
        assert sorted(first) == list(range(1, WRITERS + 1))
        assert 1 <= db.commits < BATCHED
        again = await asyncio.gather(
            db.store_cdr(_cdr("0")),  # stored before: a duplicate
            db.store_cdr(_cdr("new")),
            db.store_cdr(_cdr("new")),  # a duplicate of the one just before, same batch
            db.store_cdr(_cdr("new", "other-run")),
            return_exceptions=True,
        )
        # Order ids only go up (a refused duplicate may leave a gap, as in any AUTOINCREMENT).
        assert isinstance(again[0], DuplicateError)
        assert isinstance(again[1], int) and again[1] > WRITERS
        assert isinstance(again[2], DuplicateError)
        assert isinstance(again[3], int) and again[3] > again[1]
        updated = _cdr("new")
        updated.extra_info = "re-rated"
        results = await asyncio.gather(
            db.store_cdr(updated, allow_update=True),
            db.store_cdr(_cdr("after")),
        )
        assert results[0] == again[1]  # an update keeps its order id
        assert results[1] > again[3]
    finally:
        await db.close()
    reopened = SqliteStorDB(tmp_path / "stordb.sqlite3")
    try:
        assert await reopened.count_cdrs(CdrFilter()) == WRITERS + 3
        (stored,) = await reopened.get_cdrs(CdrFilter(origin_ids=["new"], run_ids=["*default"]))
        assert stored.extra_info == "re-rated"
    finally:
        await reopened.close()


async def test_deletes_of_several_kinds_share_one_statement(tmp_path: Path) -> None:
    """A session ending (its backup, its costs) and other removals in one batch: every remove
    answers as alone, and the deletes of all kinds go to SQLite as one statement."""
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    statements: list[str] = []
    try:
        await db.apply([Write("sessions", "s1", {"v": 1}), Write("costs", "c1", {"v": 1}),
                        Write("costs", "c2", {"v": 2})])  # fmt: skip
        db._writer._conn.set_trace_callback(statements.append)  # the writer thread's own
        commits = db.commits
        results = await asyncio.gather(
            db.apply([Write("sessions", "s1", None), Write("costs", "c1", None)]),
            db.remove("costs", "c2"),
            db.remove("sessions", "never"),
            db.remove("costs", "c1"),  # removed earlier in the batch
            db.set("costs", "c3", {"v": 3}),
        )
        db._writer._conn.set_trace_callback(None)
        assert results == [None, True, False, False, None]
        assert db.commits == commits + 1
        assert sum(sql.startswith("DELETE") for sql in statements) == 1
        assert await db.get_all("costs") == {"c3": {"v": 3}}
        assert await db.get_all("sessions") == {}
    finally:
        await db.close()
