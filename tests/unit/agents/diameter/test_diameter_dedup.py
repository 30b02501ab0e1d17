"""The answer cache's batched persistence: BLOB format, replay order, expiry, the old format."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.diameter.dedup import DB_NAME, AnswerCache, decode_batch, encode_batch

Entry = tuple[str, int, float, bytes]
entries = st.lists(
    st.tuples(
        st.text(max_size=40),
        st.integers(min_value=0, max_value=2**32 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.binary(max_size=300),
    ),
    max_size=20,
)


@given(entries)
def test_a_batch_round_trips(batch: list[Entry]) -> None:
    assert decode_batch(encode_batch(batch)) == batch


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_decoding_garbage_never_raises(blob: bytes) -> None:
    for session_id, number, expires, answer in decode_batch(blob):
        assert isinstance(session_id, str) and isinstance(answer, bytes)
        assert isinstance(number, int) and isinstance(expires, float)


def test_a_damaged_tail_keeps_the_records_before_it() -> None:
    blob = encode_batch([("s;1", 1, 1.0, b"one"), ("s;1", 2, 2.0, b"two")])
    assert decode_batch(blob[:-1]) == [("s;1", 1, 1.0, b"one")]


async def test_one_row_per_flush_and_a_later_answer_wins(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.open()
    cache.put(("s;1", 1), b"first")
    cache.put(("s;1", 2), b"other")
    cache.flush()
    cache.put(("s;1", 1), b"again")
    cache.flush()
    cache.flush()  # nothing pending: no empty batch
    assert cache._db is not None
    rows = cache._db.execute("SELECT COUNT(*) FROM answer_batches").fetchone()
    assert rows == (2,)
    await cache.close()

    reopened = AnswerCache(tmp_path)
    reopened.open()
    assert reopened.get(("s;1", 1)) == b"again" and reopened.get(("s;1", 2)) == b"other"
    assert len(reopened) == 2
    await reopened.close()


async def test_expired_batches_are_deleted_at_flush(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path, ttl=0.05)
    cache.open()
    cache.put(("s", 1), b"a")
    cache.flush()
    time.sleep(0.1)
    cache.put(("s", 2), b"b")
    cache.flush()
    assert cache._db is not None
    expiries = cache._db.execute("SELECT expires FROM answer_batches").fetchall()
    assert len(expiries) == 1 and expiries[0][0] > time.time()
    await cache.close()


async def test_the_bound_applies_when_loading(tmp_path: Path) -> None:
    writer = AnswerCache(tmp_path)
    writer.open()
    for number in range(5):
        writer.put(("s", number), bytes([number]))
    writer.flush()
    assert writer._db is not None
    await writer.close()
    reader = AnswerCache(tmp_path, max_entries=2)
    reader.open()
    assert len(reader) == 2
    assert reader.get(("s", 3)) == b"\x03" and reader.get(("s", 4)) == b"\x04"
    assert reader.get(("s", 0)) is None
    await reader.close()


async def test_a_file_of_the_old_format_is_read_and_converted(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(
        "CREATE TABLE answers (session_id TEXT NOT NULL, number INTEGER NOT NULL, "
        "expires REAL NOT NULL, answer BLOB NOT NULL, PRIMARY KEY (session_id, number))"
    )
    now = time.time()
    db.executemany(
        "INSERT INTO answers VALUES (?, ?, ?, ?)",
        [("s;1", 0, now + 60, b"kept"), ("s;1", 1, now - 1, b"expired")],
    )
    db.commit()
    db.close()

    cache = AnswerCache(tmp_path)
    cache.open()
    assert cache.get(("s;1", 0)) == b"kept" and cache.get(("s;1", 1)) is None
    cache.flush()  # written again as a batch
    assert cache._db is not None
    tables = {name for (name,) in cache._db.execute("SELECT name FROM sqlite_master")}
    assert "answers" not in tables
    await cache.close()

    again = AnswerCache(tmp_path)
    again.open()
    assert again.get(("s;1", 0)) == b"kept"
    await again.close()


def test_agent_state_rows_are_written_with_the_batch_and_read_at_open(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.open()
    cache.keep("session", "s;1", '{"a":1}')
    cache.keep("session", "s;2", '{"a":2}')
    cache.keep("aborted", "s;3", "123.5")
    reader = AnswerCache(tmp_path)
    reader.open()
    assert reader.kept("session") == {}  # not written before the batch
    reader.flush()
    cache.flush()
    cache.forget("session", "s;1")
    cache.keep("session", "s;2", '{"a":3}')  # replaces
    cache.flush()
    again = AnswerCache(tmp_path)
    again.open()
    assert again.kept("session") == {"s;2": '{"a":3}'}
    assert again.kept("aborted") == {"s;3": "123.5"}
    assert again.kept("other") == {}
    for opened in (cache, reader, again):
        asyncio.run(opened.close())


def test_a_durable_answer_is_written_at_once_with_everything_pending(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.open()
    cache.put(("s;1", 1), b"update")
    cache.keep("session", "s;1", "{}")

    def on_disk() -> AnswerCache:
        found = AnswerCache(tmp_path)
        found.open()
        return found

    assert on_disk().get(("s;1", 1)) is None
    cache.put(("s;1", 2), b"terminate", durable=True)
    found = on_disk()
    assert found.get(("s;1", 1)) == b"update" and found.get(("s;1", 2)) == b"terminate"
    assert found.kept("session") == {"s;1": "{}"}
