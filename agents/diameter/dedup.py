"""The answers already sent, by (Session-Id, CC-Request-Number): RFC 4006 §5.7/§6.5 duplicates.

A CCR repeated with the same Session-Id and CC-Request-Number (T flag or not) gets the answer
sent the first time, and the engine is not called again. Entries live ``ttl`` seconds, at most
``max_entries`` of them (oldest dropped first). They are kept in memory and written to a small
SQLite file in batches (every ``FLUSH_INTERVAL``), so they survive an agent restart; a crash loses
at most the last batch, a window the engine's own reply cache (same event ID) still covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import OrderedDict
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

DEFAULT_TTL: Final = 600.0  # seconds: well beyond any PCEF's Tx retransmission window
DEFAULT_MAX_ENTRIES: Final = 200_000
FLUSH_INTERVAL: Final = 0.2  # seconds between batched writes to SQLite
DB_NAME: Final = "answers.sqlite"

Key = tuple[str, int]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS answers (
    session_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    expires REAL NOT NULL,
    answer BLOB NOT NULL,
    PRIMARY KEY (session_id, number)
)
"""


class AnswerCache:
    """Bounded TTL cache of encoded answers, persisted to ``data_dir/answers.sqlite``."""

    def __init__(
        self,
        data_dir: Path | None,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._path = data_dir / DB_NAME if data_dir is not None else None
        self._entries: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        self._unsaved: list[tuple[str, int, float, bytes]] = []
        self._db: sqlite3.Connection | None = None
        self._flusher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Opens the file (if any) and loads the entries still valid."""
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        now = time.time()
        self._db.execute("DELETE FROM answers WHERE expires <= ?", (now,))
        rows = self._db.execute(
            "SELECT session_id, number, expires, answer FROM answers ORDER BY expires"
        ).fetchall()
        for session_id, number, expires, answer in rows[-self.max_entries :]:
            self._entries[(session_id, number)] = (expires, bytes(answer))
        log.info("%d cached Diameter answers loaded from %s", len(self._entries), self._path)

    def start(self) -> None:
        if self._db is not None and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    # ---------------------------------------------------------------------------------- use
    def get(self, key: Key) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires <= time.time():
            del self._entries[key]
            return None
        return answer

    def put(self, key: Key, answer: bytes) -> None:
        expires = time.time() + self.ttl
        self._entries[key] = (expires, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if self._db is not None:
            self._unsaved.append((key[0], key[1], expires, answer))

    def flush(self) -> None:
        """Writes the pending entries and drops the expired ones from the file."""
        if self._db is None or not self._unsaved:
            return
        batch, self._unsaved = self._unsaved, []
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", batch)
            self._db.execute("DELETE FROM answers WHERE expires <= ?", (time.time(),))
            self._db.execute("COMMIT")
        except sqlite3.Error:
            log.exception("cannot persist %d Diameter answers", len(batch))
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()
