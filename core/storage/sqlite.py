"""SQLite back end: the embedded default (``datadb.sqlite3`` and ``stordb.sqlite3``).

WAL journal (readers never wait for the writer, and a commit appends to the log instead of
rewriting pages), ``synchronous=FULL`` on both files: balances live in DataDB and CDRs in
StorDB, and a commit reported to a caller must survive power loss.

Reads, and the rare writes that are not group-committed (tariff-plan staging, CDR removal), use
the store's first connection: on the event loop thread when single-row (a few microseconds of
local I/O), in a worker thread when they may touch many rows, so the loop keeps serving. An
``asyncio.Lock`` queues them and a thread lock guards that connection, so the store must be used
from one event loop. Each waits first for the writes queued before it (see ``barrier``).

The hot writes (DataDB documents, CDRs) go to one writer thread per file with its own
connection (``sqlite_writer._GroupWriter``, the compiled part of this back end): everything
queued while it commits joins its next transaction, and while writes keep arriving close
together the first one waits a short gather window for the next ones; each caller is answered
once that transaction is durable, and the whole batch is answered with one wake-up of the
loop. A batch is a handful of multi-row statements, whatever
its size: the thread gives the GIL back to the loop at every statement, and taking it again
costs up to a switch interval (5 ms) while the loop is busy, so statements per batch, not rows,
set the commit latency under load.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
from core.storage.sqlite_writer import (
    _CDR_COLUMN_LIST,
    _CDR_UPDATED_COLUMNS,
    Committer,
    _CdrJob,
    _commit_cdrs,
    _commit_documents,
    _connect,
    _DocOp,
    _GroupWriter,
    _Solo,
    _transaction,
)
from core.types import dumps, loads

T = TypeVar("T")

DATADB_FILE: Final = "datadb.sqlite3"
STORDB_FILE: Final = "stordb.sqlite3"
SYNCHRONOUS_DATADB: Final = "FULL"
SYNCHRONOUS_STORDB: Final = "FULL"  # CDRs are money too: an acknowledged one survives power loss
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


class _SqliteStore:
    """One connection, its locks, opening with the schema check, and closing."""

    _what: str

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str,
        schema: Sequence[str],
        version: int,
        committer: Committer,
    ) -> None:
        self.path = Path(path)
        self._what = f"{type(self).__name__}({self.path})"
        self._thread_lock = threading.Lock()
        self._lock = asyncio.Lock()
        conn = _connect(self.path, synchronous, self._what)
        try:
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
        try:  # the group-commit writer thread, with its own connection
            self._writer = _GroupWriter(self.path, synchronous, self._what, committer)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    @property
    def commits(self) -> int:
        """Transactions the writer thread has committed (for tests and benchmarks)."""
        return self._writer.commits

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._thread_lock:
            if self._conn is None:
                raise StorageClosedError(f"{self._what} is closed")
            try:
                return work(self._conn)
            except sqlite3.Error as exc:
                raise StorageError(f"{self._what}: {exc}") from exc

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, bulk: bool = False) -> T:
        await self._writer.barrier()  # sees every write issued before it, committed
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
        await self._writer.close()
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

    Document writes (``set``, ``remove``, small ``apply``) are group-committed by the writer
    thread (see the module docstring); each caller returns only once its write is durable. Under
    load that is one fsync for many balance updates instead of one each, and the event loop
    never waits on the disk.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            synchronous=SYNCHRONOUS_DATADB,
            schema=_DATADB_SCHEMA,
            version=DATADB_SCHEMA_VERSION,
            committer=_commit_documents,
        )

    async def _group_write(self, ops: tuple[_DocOp, ...], deferrable: bool = False) -> int:
        """Queues operations that commit together (all or none) in the next group commit;
        returns the last one's rowcount once durable."""
        return int(await self._writer.submit(ops, deferrable=deferrable))

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
        op = (
            check_name("kind", kind),
            check_name("key", key, allow_empty=True),
            dumps(check_value(value)),
        )
        await self._writer.submit((op,))  # as apply does

    async def remove(self, kind: str, key: str) -> bool:
        op = (check_name("kind", kind), check_name("key", key, allow_empty=True), None)
        return await self._group_write((op,)) > 0

    async def remove_kind(self, kind: str) -> int:
        params = (check_name("kind", kind),)
        return int(
            await self._writer.submit(
                _Solo(lambda conn: conn.execute(_DELETE_KIND, params).rowcount)
            )
        )

    async def apply(self, mutations: Iterable[Mutation], *, deferrable: bool = False) -> None:
        if (
            isinstance(mutations, list | tuple)
            and 0 < len(mutations) <= GROUP_UNIT_MAX
            and set(map(type, mutations)) == _ONLY_WRITES
        ):
            # A few document writes (a session ending, say): one unit of the group commit,
            # encoded here so a bad value fails its caller before anything is queued.
            # The writer directly, not through _group_write: one coroutine layer less on
            # every account write (each layer is resumed again when the commit answers).
            ops = tuple([_doc_op(m) for m in mutations])
            await self._writer.submit(ops, deferrable=deferrable)
            return

        def work(conn: sqlite3.Connection) -> None:
            # Runs of the same mutation class go through one executemany each; values are
            # encoded while streaming, and any error (encoding included) rolls everything back.
            for mutation_class, group in groupby(mutations, key=_mutation_class):
                if mutation_class == _PUT:
                    conn.executemany(_UPSERT_DOC, _encoded_puts(group))
                elif mutation_class == _DELETE:
                    conn.executemany(_DELETE_DOC, _deletes(group))
                else:
                    for drop in group:
                        conn.execute(_DELETE_KIND, (check_name("kind", drop.kind),))

        # Its own transaction in the writer thread, in order with the group commits.
        await self._writer.submit(_Solo(work))


GROUP_UNIT_MAX: Final = 64  # larger applies run alone, as one transaction of the writer thread
_ONLY_WRITES: Final = {Write}  # the mutation types of an apply that can join a group commit


def _doc_op(write: Write) -> _DocOp:
    kind, key, value = write.kind, write.key, write.value
    if type(kind) is not str or not kind or type(key) is not str:
        # check_name's errors, in its order; a valid name (every account and session write)
        # costs no call. A None value is a removal, so check_value has nothing to refuse.
        check_name("kind", kind)
        check_name("key", key, allow_empty=True)
    return kind, key, None if value is None else dumps(value)


# ----------------------------------------------------------------------------------- StorDB
_CDR_SELECT: Final = f"SELECT order_id, {_CDR_COLUMN_LIST}, created_at, updated_at FROM cdrs"
_CDR_INSERT: Final = (
    f"INSERT INTO cdrs ({_CDR_COLUMN_LIST}, created_at, updated_at)"
    f" VALUES ({', '.join('?' * (len(CDR_COLUMNS) + 2))})"
    " ON CONFLICT (cgrid, run_id) DO "
)
_CDR_INSERT_NEW: Final = _CDR_INSERT + "NOTHING RETURNING order_id"
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
    """StorDB in one SQLite file: tables ``tp_items`` and ``cdrs``. CDR writes are
    group-committed by the writer thread (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            synchronous=SYNCHRONOUS_STORDB,
            schema=_STORDB_SCHEMA,
            version=STORDB_SCHEMA_VERSION,
            committer=_commit_cdrs,
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
        job: _CdrJob = (((*encode_cdr(cdr), now, now),), allow_update)
        (order_id,) = await self._writer.submit(job)
        if order_id is None:
            raise DuplicateError(cdr.cgrid, cdr.run_id)
        return int(order_id)

    async def store_cdrs(self, cdrs: Sequence[Cdr], allow_update: bool = False) -> list[int | None]:
        now = _now_micros()
        rows = [(*encode_cdr(cdr), now, now) for cdr in cdrs]  # encode first: errors store nothing
        if not rows:
            return []
        if len(rows) <= GROUP_UNIT_MAX:
            # A few CDRs (the runs of one event): one unit of the next group commit.
            unit: _CdrJob = (tuple(rows), allow_update)
            grouped: list[int | None] = await self._writer.submit(unit)
            return grouped

        def work(conn: sqlite3.Connection) -> list[int | None]:
            return _store_rows(conn, rows, allow_update)

        stored: list[int | None] = await self._writer.submit(_Solo(work))
        return stored

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
