"""SQLite back end: the embedded default (``datadb.sqlite3`` and ``stordb.sqlite3``).

One connection per database, WAL journal (readers never wait for the writer, and a commit
appends to the log instead of rewriting pages). Durability differs on purpose:

* DataDB runs ``synchronous=FULL``: balances live there, so a commit must survive power loss.
* StorDB runs ``synchronous=NORMAL``: in WAL mode that still survives a process crash and never
  corrupts, but a power cut may lose the last commits; CDR throughput matters more there, and
  CDRs can be re-sent by their sources (CGRateS's SQL StorDB makes the same trade).

Calls are made on the event loop thread: single-row work is a few microseconds of local I/O.
Work that may touch many rows (bulk apply, full-kind reads, CDR queries) runs in a worker
thread so the loop keeps serving; an ``asyncio.Lock`` queues calls behind it and a thread lock
guards the connection, so the store must be used from one event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from typing import Any, Final, TypeVar

from core.storage.base import (
    DATADB_SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    STORDB_SCHEMA_VERSION,
    DataDB,
    DropKind,
    DuplicateError,
    Mutation,
    StorageClosedError,
    StorageError,
    StorDB,
    Write,
    check_name,
    check_schema_version,
    check_value,
)
from core.storage.cdr import CDR_COLUMNS, Cdr, CdrFilter, decode_cdr, encode_cdr, time_to_micros
from core.types import dumps, loads

T = TypeVar("T")

DATADB_FILE: Final = "datadb.sqlite3"
STORDB_FILE: Final = "stordb.sqlite3"
SYNCHRONOUS_DATADB: Final = "FULL"
SYNCHRONOUS_STORDB: Final = "NORMAL"
# Another process (a CLI, a backup) may hold the write lock briefly; wait rather than fail.
BUSY_TIMEOUT_MS: Final = 5_000
# Page cache per connection (negative = KiB); bulk loads of ~1M rows stay in cache.
CACHE_SIZE_KIB: Final = 65_536
# Calls touching at least this many rows go to a worker thread (a hop costs ~50-100 µs).
OFFLOAD_ROWS: Final = 2_000
_MAX_CODE_POINT: Final = 0x10FFFF
_SURROGATES: Final = range(0xD800, 0xE000)

_META_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
)


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None: no such bound).

    SQLite compares TEXT as UTF-8 bytes, which orders like Python's code point comparison, so
    ``prefix <= key < _prefix_end(prefix)`` selects the prefix with an index range scan.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code in _SURROGATES:  # not encodable: skip to the first code point after them
            code = _SURROGATES.stop
        if code <= _MAX_CODE_POINT:
            return "".join(chars) + chr(code)
    return None


def _key_range(prefix: str) -> tuple[str, list[Any]]:
    if not prefix:
        return "", []
    end = _prefix_end(prefix)
    if end is None:
        return " AND key >= ?", [prefix]
    return " AND key >= ? AND key < ?", [prefix, end]


def _now_micros() -> int:
    return time.time_ns() // 1_000


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take the write lock up front: no upgrade deadlock) ... COMMIT."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # some errors already rolled back inside SQLite
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class _SqliteStore:
    """One connection, its locks, opening with the schema check, and closing."""

    _what: str

    def __init__(
        self, path: Path | str, *, synchronous: str, schema: Sequence[str], version: int
    ) -> None:
        self.path = Path(path)
        self._what = f"{type(self).__name__}({self.path})"
        self._thread_lock = threading.Lock()
        self._lock = asyncio.Lock()
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"{self._what}: cannot open: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute(f"PRAGMA cache_size = -{CACHE_SIZE_KIB}")
            conn.execute("PRAGMA temp_store = MEMORY")
            with _transaction(conn):
                conn.execute(_META_SQL)
                for statement in schema:
                    conn.execute(statement)
                row = conn.execute(
                    "SELECT value FROM meta WHERE name = ?", (SCHEMA_VERSION_KEY,)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO meta (name, value) VALUES (?, ?)",
                        (SCHEMA_VERSION_KEY, str(version)),
                    )
                else:
                    check_schema_version(self._what, int(row[0]), version)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"{self._what}: cannot open: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._thread_lock:
            if self._conn is None:
                raise StorageClosedError(f"{self._what} is closed")
            try:
                return work(self._conn)
            except sqlite3.Error as exc:
                raise StorageError(f"{self._what}: {exc}") from exc

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, bulk: bool = False) -> T:
        async with self._lock:
            if not bulk:
                return self._call(work)
            task = asyncio.ensure_future(asyncio.to_thread(self._call, work))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                # The worker cannot be stopped: keep later calls queued until it is done.
                task.add_done_callback(_consume_result)
                await asyncio.wait({task})
                raise

    async def close(self) -> None:
        async with self._lock:
            with self._thread_lock:
                if self._conn is not None:
                    conn, self._conn = self._conn, None
                    try:
                        conn.execute("PRAGMA optimize")
                    finally:
                        conn.close()


def _consume_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as lost


def _is_bulk(items: object) -> bool:
    return not isinstance(items, Sized) or len(items) >= OFFLOAD_ROWS


# ----------------------------------------------------------------------------------- DataDB
_DATADB_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS documents ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (kind, key)) WITHOUT ROWID",
)
_UPSERT_DOC: Final = (
    "INSERT INTO documents (kind, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value"
)
_DELETE_DOC: Final = "DELETE FROM documents WHERE kind = ? AND key = ?"
_DELETE_KIND: Final = "DELETE FROM documents WHERE kind = ?"

# Mutation classes, in the order groupby() sees them.
_PUT: Final = 0
_DELETE: Final = 1
_DROP: Final = 2


def _mutation_class(mutation: Mutation) -> int:
    if type(mutation) is Write:
        return _DELETE if mutation.value is None else _PUT
    if type(mutation) is DropKind:
        return _DROP
    raise TypeError(f"not a Write or DropKind: {mutation!r}")


def _encoded_puts(writes: Iterable[Mutation]) -> Iterator[tuple[str, str, bytes]]:
    for write in writes:
        assert isinstance(write, Write)
        yield (
            check_name("kind", write.kind),
            check_name("key", write.key, allow_empty=True),
            dumps(write.value),
        )


def _deletes(writes: Iterable[Mutation]) -> Iterator[tuple[str, str]]:
    for write in writes:
        assert isinstance(write, Write)
        yield check_name("kind", write.kind), check_name("key", write.key, allow_empty=True)


class SqliteDataDB(_SqliteStore, DataDB):
    """DataDB in one SQLite file: table ``documents(kind, key, value JSON blob)``.

    Single-document writes are group-committed: every ``set``/``remove`` issued while the
    previous commit is in flight joins the next transaction, committed (and fsynced, as
    ``synchronous=FULL`` demands) by a worker thread; each caller returns only once its write is
    durable. Under load that is one fsync for many balance updates instead of one each, and the
    event loop never waits on the disk.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            synchronous=SYNCHRONOUS_DATADB,
            schema=_DATADB_SCHEMA,
            version=DATADB_SCHEMA_VERSION,
        )
        # (sql, params, future): a unit of several statements carries its future on the last one
        # only; a unit is queued without an await in between, so one transaction holds it whole.
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[int] | None]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def _group_write(self, sql: str, params: tuple[Any, ...]) -> int:
        """Queues one statement for the next group commit; returns its rowcount once durable."""
        return await self._group_write_unit([(sql, params)])

    async def _group_write_unit(self, statements: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Queues statements that commit together (all or none) in the next group commit;
        returns the last one's rowcount once durable."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        for sql, params in statements[:-1]:
            self._pending.append((sql, params, None))
        last_sql, last_params = statements[-1]
        self._pending.append((last_sql, last_params, future))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return await asyncio.shield(future)  # a cancelled caller's write still commits

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []

                def work(conn: sqlite3.Connection, batch: Any = batch) -> list[int]:
                    with _transaction(conn):
                        return [conn.execute(sql, params).rowcount for sql, params, _ in batch]

                try:
                    counts = await self._run(work, bulk=True)
                except BaseException as exc:
                    for _sql, _params, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved here; the caller re-raises it
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_sql, _params, future), count in zip(batch, counts, strict=True):
                    if future is not None and not future.done():
                        future.set_result(count)
        finally:
            self._flusher = None

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        await super().close()

    async def get(self, kind: str, key: str) -> Any | None:
        params = (check_name("kind", kind), check_name("key", key, allow_empty=True))

        def work(conn: sqlite3.Connection) -> Any | None:
            row = conn.execute(
                "SELECT value FROM documents WHERE kind = ? AND key = ?", params
            ).fetchone()
            return None if row is None else loads(row[0])

        return await self._run(work)

    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Any]:
        check_name("kind", kind)
        wanted = [check_name("key", key, allow_empty=True) for key in keys]
        if not wanted:
            return {}

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            # One JSON array parameter instead of N placeholders: no variable-count limit.
            rows = conn.execute(
                "SELECT key, value FROM documents WHERE kind = ?"
                " AND key IN (SELECT value FROM json_each(?))",
                (kind, dumps(wanted).decode()),
            )
            return {key: loads(value) for key, value in rows}

        return await self._run(work, bulk=len(wanted) >= OFFLOAD_ROWS)

    async def get_all(self, kind: str) -> dict[str, Any]:
        check_name("kind", kind)

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            rows = conn.execute("SELECT key, value FROM documents WHERE kind = ?", (kind,))
            return {key: loads(value) for key, value in rows}

        return await self._run(work, bulk=True)

    async def keys(self, kind: str, prefix: str = "") -> list[str]:
        check_name("kind", kind)
        where, params = _key_range(check_name("prefix", prefix, allow_empty=True))

        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"SELECT key FROM documents WHERE kind = ?{where} ORDER BY key", [kind, *params]
            )
            return [key for (key,) in rows]

        return await self._run(work, bulk=True)

    async def count(self, kind: str, prefix: str = "") -> int:
        check_name("kind", kind)
        where, params = _key_range(check_name("prefix", prefix, allow_empty=True))

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT COUNT(*) FROM documents WHERE kind = ?{where}", [kind, *params]
            ).fetchone()
            return int(row[0])

        return await self._run(work, bulk=True)

    async def set(self, kind: str, key: str, value: Any) -> None:
        params = (
            check_name("kind", kind),
            check_name("key", key, allow_empty=True),
            dumps(check_value(value)),
        )
        await self._group_write(_UPSERT_DOC, params)

    async def remove(self, kind: str, key: str) -> bool:
        params = (check_name("kind", kind), check_name("key", key, allow_empty=True))
        return await self._group_write(_DELETE_DOC, params) > 0

    async def remove_kind(self, kind: str) -> int:
        params = (check_name("kind", kind),)
        return await self._run(lambda conn: conn.execute(_DELETE_KIND, params).rowcount, bulk=True)

    async def apply(self, mutations: Iterable[Mutation]) -> None:
        if (
            isinstance(mutations, list | tuple)
            and 0 < len(mutations) <= GROUP_UNIT_MAX
            and all(type(m) is Write for m in mutations)
        ):
            # A few document writes (a session ending, say): one unit of the group commit.
            statements = [
                (_UPSERT_DOC, put) if put is not None else (_DELETE_DOC, delete)
                for put, delete in (_unit_statement(m) for m in mutations)
            ]
            await self._group_write_unit(statements)  # type: ignore[arg-type]
            return

        def work(conn: sqlite3.Connection) -> None:
            # Runs of the same mutation class go through one executemany each; values are
            # encoded while streaming, and any error (encoding included) rolls everything back.
            with _transaction(conn):
                for mutation_class, group in groupby(mutations, key=_mutation_class):
                    if mutation_class == _PUT:
                        conn.executemany(_UPSERT_DOC, _encoded_puts(group))
                    elif mutation_class == _DELETE:
                        conn.executemany(_DELETE_DOC, _deletes(group))
                    else:
                        for drop in group:
                            conn.execute(_DELETE_KIND, (check_name("kind", drop.kind),))

        await self._run(work, bulk=_is_bulk(mutations))


GROUP_UNIT_MAX: Final = 64  # larger applies run as their own transaction in a worker thread


def _unit_statement(write: Write) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """(upsert params, None) or (None, delete params); values encoded now, so a bad one fails
    its caller before anything is queued."""
    kind = check_name("kind", write.kind)
    key = check_name("key", write.key, allow_empty=True)
    if write.value is None:
        return None, (kind, key)
    return (kind, key, dumps(check_value(write.value))), None


# ----------------------------------------------------------------------------------- StorDB
_CDR_COLUMN_LIST: Final = ", ".join(CDR_COLUMNS)
_CDR_SELECT: Final = f"SELECT order_id, {_CDR_COLUMN_LIST}, created_at, updated_at FROM cdrs"
_CDR_INSERT: Final = (
    f"INSERT INTO cdrs ({_CDR_COLUMN_LIST}, created_at, updated_at)"
    f" VALUES ({', '.join('?' * (len(CDR_COLUMNS) + 2))})"
    " ON CONFLICT (cgrid, run_id) DO "
)
_CDR_INSERT_NEW: Final = _CDR_INSERT + "NOTHING RETURNING order_id"
_CDR_UPDATED_COLUMNS: Final = [
    *(c for c in CDR_COLUMNS if c not in ("cgrid", "run_id")),
    "updated_at",
]
_CDR_UPSERT: Final = (
    _CDR_INSERT
    + "UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _CDR_UPDATED_COLUMNS)
    + " RETURNING order_id"
)
_STORDB_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS tp_items ("
    " tpid TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (tpid, kind, id)) WITHOUT ROWID",
    # AUTOINCREMENT: order ids never go back, even after the newest CDRs are deleted, so
    # exporters can page on them (CGRateS's OrderID).
    "CREATE TABLE IF NOT EXISTS cdrs ("
    " order_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " cgrid TEXT NOT NULL, run_id TEXT NOT NULL, origin_host TEXT NOT NULL,"
    " source TEXT NOT NULL, origin_id TEXT NOT NULL, tor TEXT NOT NULL,"
    " request_type TEXT NOT NULL, tenant TEXT NOT NULL, category TEXT NOT NULL,"
    " account TEXT NOT NULL, subject TEXT NOT NULL, destination TEXT NOT NULL,"
    " setup_time INTEGER, answer_time INTEGER,"  # µs since the epoch, UTC; NULL = unset
    " usage INTEGER NOT NULL,"  # nanoseconds
    " cost TEXT NOT NULL,"  # exact decimal; '-1' = not rated
    " cost_source TEXT NOT NULL, cost_details TEXT, extra_fields TEXT NOT NULL,"
    " extra_info TEXT NOT NULL, pre_rated INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " UNIQUE (cgrid, run_id))",
    # Exports page by time window; sessions look CDRs up by their origin id.
    "CREATE INDEX IF NOT EXISTS cdrs_setup_time ON cdrs (setup_time)",
    "CREATE INDEX IF NOT EXISTS cdrs_origin_id ON cdrs (origin_id)",
)
_TP_UPSERT: Final = (
    "INSERT INTO tp_items (tpid, kind, id, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (tpid, kind, id) DO UPDATE SET value = excluded.value"
)
# List filters: one JSON array parameter each, matched with json_each (no placeholder limit).
_CDR_LIST_FILTERS: Final = (
    ("cgrids", "cgrid IN"),
    ("run_ids", "run_id IN"),
    ("not_run_ids", "run_id NOT IN"),
    ("origin_ids", "origin_id IN"),
    ("origin_hosts", "origin_host IN"),
    ("tenants", "tenant IN"),
    ("categories", "category IN"),
    ("accounts", "account IN"),
    ("subjects", "subject IN"),
    ("request_types", "request_type IN"),
    ("tors", "tor IN"),
)


def _cdr_where(flt: CdrFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") and its parameters; values only ever go in as parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, test in _CDR_LIST_FILTERS:
        values = getattr(flt, name)
        if values:
            clauses.append(f"{test} (SELECT value FROM json_each(?))")
            params.append(dumps(values).decode())
    if flt.destination_prefixes:
        clauses.append(
            "EXISTS (SELECT 1 FROM json_each(?)"
            " WHERE substr(destination, 1, length(value)) = value)"
        )
        params.append(dumps(flt.destination_prefixes).decode())
    ranges = (
        ("setup_time", time_to_micros(flt.setup_time_start), time_to_micros(flt.setup_time_end)),
        ("answer_time", time_to_micros(flt.answer_time_start), time_to_micros(flt.answer_time_end)),
        ("order_id", flt.order_id_start, flt.order_id_end),
        ("usage", flt.min_usage, flt.max_usage),
    )
    for column, low, high in ranges:
        if low is not None:
            clauses.append(f"{column} >= ?")
            params.append(low)
        if high is not None:
            clauses.append(f"{column} < ?")
            params.append(high)
    # SQLite has no decimal type: costs compare as doubles, exact for money below ~15
    # significant digits (PostgreSQL will compare NUMERIC exactly).
    low_cost, high_cost = flt.cost_bounds()
    if low_cost is not None:
        clauses.append("CAST(cost AS REAL) >= ?")
        params.append(float(low_cost))
    if high_cost is not None:
        clauses.append("CAST(cost AS REAL) < ?")
        params.append(float(high_cost))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _cdr_page(flt: CdrFilter) -> tuple[str, list[Any]]:
    order = " ORDER BY order_id DESC" if flt.descending else " ORDER BY order_id"
    if flt.limit is None and not flt.offset:
        return order, []
    # LIMIT -1 is SQLite's "no limit", needed to give an OFFSET alone.
    return order + " LIMIT ? OFFSET ?", [-1 if flt.limit is None else flt.limit, flt.offset]


def _store_rows(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], allow_update: bool
) -> list[int | None]:
    sql = _CDR_UPSERT if allow_update else _CDR_INSERT_NEW
    results: list[int | None] = []
    for row in rows:
        returned = conn.execute(sql, row).fetchall()  # drained: no statement left in progress
        results.append(int(returned[0][0]) if returned else None)
    return results


class SqliteStorDB(_SqliteStore, StorDB):
    """StorDB in one SQLite file: tables ``tp_items`` and ``cdrs``."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            synchronous=SYNCHRONOUS_STORDB,
            schema=_STORDB_SCHEMA,
            version=STORDB_SCHEMA_VERSION,
        )

    # -------------------------------------------------------------------------- TP staging
    async def set_tp(self, tpid: str, kind: str, id: str, value: Any) -> None:
        params = (
            check_name("tpid", tpid),
            check_name("kind", kind),
            check_name("id", id, allow_empty=True),
            dumps(check_value(value)),
        )
        await self._run(lambda conn: conn.execute(_TP_UPSERT, params))

    async def set_tp_many(self, tpid: str, kind: str, items: Mapping[str, Any]) -> None:
        check_name("tpid", tpid)
        check_name("kind", kind)

        def rows() -> Iterator[tuple[str, str, str, bytes]]:
            for item_id, value in items.items():
                yield (
                    tpid,
                    kind,
                    check_name("id", item_id, allow_empty=True),
                    dumps(check_value(value)),
                )

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(_TP_UPSERT, rows())

        await self._run(work, bulk=len(items) >= OFFLOAD_ROWS)

    async def get_tp(self, tpid: str, kind: str, id: str) -> Any | None:
        params = (
            check_name("tpid", tpid),
            check_name("kind", kind),
            check_name("id", id, allow_empty=True),
        )

        def work(conn: sqlite3.Connection) -> Any | None:
            row = conn.execute(
                "SELECT value FROM tp_items WHERE tpid = ? AND kind = ? AND id = ?", params
            ).fetchone()
            return None if row is None else loads(row[0])

        return await self._run(work)

    async def get_tp_ids(self, tpid: str, kind: str) -> list[str]:
        params = (check_name("tpid", tpid), check_name("kind", kind))

        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id FROM tp_items WHERE tpid = ? AND kind = ? ORDER BY id", params
            )
            return [item_id for (item_id,) in rows]

        return await self._run(work, bulk=True)

    async def get_tp_kind(self, tpid: str, kind: str) -> dict[str, Any]:
        params = (check_name("tpid", tpid), check_name("kind", kind))

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            rows = conn.execute(
                "SELECT id, value FROM tp_items WHERE tpid = ? AND kind = ? ORDER BY id", params
            )
            return {item_id: loads(value) for item_id, value in rows}

        return await self._run(work, bulk=True)

    async def get_tp_all(self, tpid: str) -> dict[str, dict[str, Any]]:
        params = (check_name("tpid", tpid),)

        def work(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            result: dict[str, dict[str, Any]] = {}
            rows = conn.execute(
                "SELECT kind, id, value FROM tp_items WHERE tpid = ? ORDER BY kind, id", params
            )
            for kind, item_id, value in rows:
                result.setdefault(kind, {})[item_id] = loads(value)
            return result

        return await self._run(work, bulk=True)

    async def get_tpids(self) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT DISTINCT tpid FROM tp_items ORDER BY tpid")
            return [tpid for (tpid,) in rows]

        return await self._run(work, bulk=True)

    async def remove_tp(self, tpid: str, kind: str | None = None, id: str | None = None) -> int:
        where = "tpid = ?"
        params = [check_name("tpid", tpid)]
        if kind is not None:
            where += " AND kind = ?"
            params.append(check_name("kind", kind))
        if id is not None:
            if kind is None:
                raise ValueError("remove_tp: an id needs its kind")
            where += " AND id = ?"
            params.append(check_name("id", id, allow_empty=True))
        sql = f"DELETE FROM tp_items WHERE {where}"
        return await self._run(lambda conn: conn.execute(sql, params).rowcount, bulk=id is None)

    # -------------------------------------------------------------------------------- CDRs
    async def store_cdr(self, cdr: Cdr, allow_update: bool = False) -> int:
        now = _now_micros()
        row = (*encode_cdr(cdr), now, now)
        # One statement is atomic on its own: no explicit transaction needed.
        (order_id,) = await self._run(lambda conn: _store_rows(conn, [row], allow_update))
        if order_id is None:
            raise DuplicateError(cdr.cgrid, cdr.run_id)
        return order_id

    async def store_cdrs(self, cdrs: Sequence[Cdr], allow_update: bool = False) -> list[int | None]:
        now = _now_micros()
        rows = [(*encode_cdr(cdr), now, now) for cdr in cdrs]  # encode first: errors store nothing
        if not rows:
            return []

        def work(conn: sqlite3.Connection) -> list[int | None]:
            with _transaction(conn):
                return _store_rows(conn, rows, allow_update)

        return await self._run(work, bulk=len(rows) >= OFFLOAD_ROWS)

    async def get_cdrs(self, flt: CdrFilter) -> list[Cdr]:
        where, params = _cdr_where(flt)
        page, page_params = _cdr_page(flt)
        sql = _CDR_SELECT + where + page

        def work(conn: sqlite3.Connection) -> list[Cdr]:
            return [
                decode_cdr(row[1:-2], row[0], row[-2], row[-1])
                for row in conn.execute(sql, [*params, *page_params])
            ]

        return await self._run(work, bulk=flt.limit is None or flt.limit >= OFFLOAD_ROWS)

    async def count_cdrs(self, flt: CdrFilter) -> int:
        where, params = _cdr_where(flt)
        sql = "SELECT COUNT(*) FROM cdrs" + where
        return await self._run(lambda conn: int(conn.execute(sql, params).fetchone()[0]), bulk=True)

    async def remove_cdrs(self, flt: CdrFilter) -> int:
        where, params = _cdr_where(flt)
        page, page_params = _cdr_page(flt)
        if page_params:
            sql = f"DELETE FROM cdrs WHERE order_id IN (SELECT order_id FROM cdrs{where}{page})"
        else:
            sql = "DELETE FROM cdrs" + where
        all_params = [*params, *page_params]
        return await self._run(lambda conn: conn.execute(sql, all_params).rowcount, bulk=True)


__all__ = [
    "DATADB_FILE",
    "STORDB_FILE",
    "SqliteDataDB",
    "SqliteStorDB",
]
