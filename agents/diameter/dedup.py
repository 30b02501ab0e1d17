"""The answers already sent, by (Session-Id, CC-Request-Number): RFC 4006 §5.7/§6.5 duplicates.

A CCR repeated with the same Session-Id and CC-Request-Number (T flag or not) gets the answer
sent the first time, and the engine is not called again. Entries live ``ttl`` seconds, at most
``max_entries`` of them (oldest dropped first). They are kept in memory and written to a small
SQLite file in batches (every ``FLUSH_INTERVAL``), so they survive an agent restart; a crash loses
at most the last batch, a window the engine's own reply cache (same event ID) still covers.

Write-behind, one row per batch: everything put during one ``FLUSH_INTERVAL`` is serialised into
one BLOB (records of expiry, Session-Id, number, answer) and inserted as one row of
``answer_batches``, keyed by the batch's last expiry. A row per answer with a (Session-Id,
number) key cost ~9 µs of the agent's CPU per CCR on the 2-core development machine, plus a
scan of the whole table for expired rows at every flush (no index on the expiry), which grows
with the traffic; a batch costs ~1 µs per answer to serialise and the expiry scan reads one row
per batch. A batch is dropped once its last answer expires (its older answers may be kept up
to ``FLUSH_INTERVAL`` longer: reading skips them). Loading replays the batches in order, so a
later answer for a key replaces an earlier one, as ``INSERT OR REPLACE`` did.

``put(..., durable=True)`` writes at once, before the answer is sent: the agent uses it for the
answers whose repetition would charge again after the engine's reply cache forgot the request
(CCR-T, CCR-E). With WAL and ``synchronous=NORMAL`` a commit does not fsync, so it costs tens
of µs, once per call; it survives the agent's crash (not the host's).

The agent's own small state (its live sessions, the sessions the engine cut off) is kept in
the same file, table ``agent_state``: ``keep``/``forget`` queue a row (kind, key, text), written
with the next batch, and ``kept(kind)`` reads what the file held when it was opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import struct
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
CREATE TABLE IF NOT EXISTS answer_batches (
    expires REAL NOT NULL,
    records BLOB NOT NULL
)
"""
_STATE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS agent_state (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
)
"""
_LEGACY_TABLE: Final = "answers"  # one row per answer (before the batches): read once, dropped
# One record in a batch: expiry, Session-Id length, CC-Request-Number, answer length; then the
# Session-Id (UTF-8) and the answer bytes.
_RECORD: Final = struct.Struct(">dIQI")


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
        self.flush_interval = FLUSH_INTERVAL  # seconds between batches (tests lengthen it)
        self._path = data_dir / DB_NAME if data_dir is not None else None
        self._entries: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        self._unsaved: list[tuple[str, int, float, bytes]] = []
        self._state: dict[str, dict[str, str]] = {}  # kind -> key -> value, as loaded
        self._unsaved_state: dict[tuple[str, str], str | None] = {}  # None: delete the row
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
        self._db.execute(_STATE_SCHEMA)
        now = time.time()
        self._db.execute("DELETE FROM answer_batches WHERE expires <= ?", (now,))
        loaded: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        for session_id, number, expires, answer in self._legacy_rows(now):
            loaded[(session_id, number)] = (expires, answer)
        for (blob,) in self._db.execute("SELECT records FROM answer_batches ORDER BY rowid"):
            for session_id, number, expires, answer in decode_batch(bytes(blob)):
                if expires > now:
                    key = (session_id, number)
                    loaded[key] = (expires, answer)
                    loaded.move_to_end(key)
        while len(loaded) > self.max_entries:
            loaded.popitem(last=False)
        self._entries = loaded
        state: dict[str, dict[str, str]] = {}
        for kind, key, value in self._db.execute("SELECT kind, key, value FROM agent_state"):
            state.setdefault(str(kind), {})[str(key)] = str(value)
        self._state = state
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

    def put(self, key: Key, answer: bytes, *, durable: bool = False) -> None:
        """Caches ``answer``; ``durable``: written to the file now (with everything pending),
        not with the next batch."""
        expires = time.time() + self.ttl
        self._entries[key] = (expires, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if self._db is not None:
            self._unsaved.append((key[0], key[1], expires, answer))
            if durable:
                self.flush()

    # --------------------------------------------------------------------- the agent's state
    def keep(self, kind: str, key: str, value: str) -> None:
        """Saves one row of the agent's state with the next batch (replacing the old one)."""
        if self._db is not None:
            self._unsaved_state[(kind, key)] = value

    def forget(self, kind: str, key: str) -> None:
        """Deletes one row of the agent's state with the next batch."""
        if self._db is not None:
            self._unsaved_state[(kind, key)] = None

    def kept(self, kind: str) -> dict[str, str]:
        """The rows of ``kind`` the file held when it was opened, by key."""
        return dict(self._state.get(kind, {}))

    def flush(self) -> None:
        """Writes the pending entries as one batch, and the pending state rows, in one
        transaction; drops the expired batches."""
        if self._db is None or not (self._unsaved or self._unsaved_state):
            return
        batch, self._unsaved = self._unsaved, []
        state, self._unsaved_state = self._unsaved_state, {}
        try:
            self._db.execute("BEGIN")
            if batch:
                last_expiry = max(entry[2] for entry in batch)
                self._db.execute(
                    "INSERT INTO answer_batches VALUES (?, ?)", (last_expiry, encode_batch(batch))
                )
                self._db.execute("DELETE FROM answer_batches WHERE expires <= ?", (time.time(),))
            if state:
                rows = [(kind, key, value) for (kind, key), value in state.items() if value]
                self._db.executemany("INSERT OR REPLACE INTO agent_state VALUES (?, ?, ?)", rows)
                self._db.executemany(
                    "DELETE FROM agent_state WHERE kind = ? AND key = ?",
                    [(kind, key) for (kind, key), value in state.items() if not value],
                )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            log.exception(
                "cannot persist %d Diameter answers and %d state rows", len(batch), len(state)
            )
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _legacy_rows(self, now: float) -> list[tuple[str, int, float, bytes]]:
        """The valid rows of a file written before the batches; they are saved again as a
        batch and the old table is dropped."""
        assert self._db is not None
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_LEGACY_TABLE,)
        ).fetchone()
        if found is None:
            return []
        rows = [
            (str(session_id), int(number), float(expires), bytes(answer))
            for session_id, number, expires, answer in self._db.execute(
                f"SELECT session_id, number, expires, answer FROM {_LEGACY_TABLE} "
                "WHERE expires > ? ORDER BY expires",
                (now,),
            )
        ]
        self._unsaved.extend(rows)
        self._db.execute(f"DROP TABLE {_LEGACY_TABLE}")
        return rows

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()


def encode_batch(entries: list[tuple[str, int, float, bytes]]) -> bytes:
    """One BLOB for a batch of (Session-Id, number, expiry, answer) entries."""
    pack = _RECORD.pack
    parts: list[bytes] = []
    for session_id, number, expires, answer in entries:
        sid = session_id.encode("utf-8")
        parts.append(pack(expires, len(sid), number, len(answer)))
        parts.append(sid)
        parts.append(answer)
    return b"".join(parts)


def decode_batch(blob: bytes) -> list[tuple[str, int, float, bytes]]:
    """The entries of ``encode_batch``'s BLOB as (Session-Id, number, expiry, answer); a
    truncated or damaged tail is dropped (logged), the entries before it are kept."""
    entries: list[tuple[str, int, float, bytes]] = []
    position, size = 0, len(blob)
    unpack = _RECORD.unpack_from
    while position < size:
        try:
            expires, sid_length, number, answer_length = unpack(blob, position)
            start = position + _RECORD.size
            middle = start + sid_length
            end = middle + answer_length
            if end > size:
                raise ValueError("record beyond the end of the batch")
            session_id = blob[start:middle].decode("utf-8")
        except (struct.error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            log.warning("damaged Diameter answer batch (%s): %d entries kept", exc, len(entries))
            break
        entries.append((session_id, number, expires, blob[middle:end]))
        position = end
    return entries
