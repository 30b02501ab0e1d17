"""SQLite DataDB group commit: concurrent single writes share transactions, all durable."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.storage.sqlite import SqliteDataDB

WRITERS = 200


async def test_concurrent_sets_share_commits_and_all_persist(tmp_path: Path) -> None:
    db = SqliteDataDB(tmp_path / "datadb.sqlite3")
    commits = 0
    original = db._run

    async def counting_run(work, *, bulk=False):  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += bulk
        return await original(work, bulk=bulk)

    db._run = counting_run  # type: ignore[method-assign]
    await asyncio.gather(*(db.set("accounts", f"t:{n}", {"v": str(n)}) for n in range(WRITERS)))
    assert 1 <= commits < WRITERS / 10  # batched, not one fsync per write
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
