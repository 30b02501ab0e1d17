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
connection (:class:`_GroupWriter`): everything queued while it commits joins its next
transaction, each caller is answered once that transaction is durable, and the whole batch is
answered with one wake-up of the loop. A batch is a handful of multi-row statements, whatever
its size: the thread gives the GIL back to the loop at every statement, and taking it again
costs up to a switch interval (5 ms) while the loop is busy, so statements per batch, not rows,
set the commit latency under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
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
SYNCHRONOUS_STORDB: Final = "FULL"  # CDRs are money too: an acknowledged one survives power loss
# Another process (a CLI, a backup) may hold the write lock briefly; wait rather than fail.
BUSY_TIMEOUT_MS: Final = 5_000
# Page cache per connection (negative = KiB); bulk loads of ~1M rows stay in cache.
CACHE_SIZE_KIB: Final = 65_536
# Calls touching at least this many rows go to a worker thread (a hop costs ~50-100 µs).
OFFLOAD_ROWS: Final = 2_000
# Rows per multi-row statement of a group commit (bound parameters stay far below SQLite's
# 32,766); each distinct row count is one cached prepared statement.
ROWS_PER_STATEMENT: Final = 128
# Prepared statements kept per writer connection: one per row count and statement kind.
WRITER_STATEMENT_CACHE: Final = 1_024
# The longest a deferrable write (a clean-up nobody waits for) waits to join another commit.
DEFERRED_COMMIT_DELAY_S: Final = 0.05
# Gather window (as PostgreSQL's commit_delay): while jobs arrive less than
# GATHER_BELOW_GAP_S apart on average, the job that makes the queue due waits GATHER_S for the
# ones about to follow, so one fsync answers them all; an idle store never waits. Each gap
# counts at most GATHER_GAP_CAP times that bound in the average (weight GAP_SMOOTHING).
GATHER_S: Final = 0.001
GATHER_BELOW_GAP_S: Final = 0.002
GATHER_GAP_CAP: Final = 5.0
GAP_SMOOTHING: Final = 0.25
# WAL checkpoints: the writer thread copies the log into the database when it has nothing to
# commit, at most this often; SQLite's own checkpoint, which runs inside the commit that
# crosses its limit (its callers wait for it), stays only as the bound under constant load.
IDLE_CHECKPOINT_INTERVAL_S: Final = 1.0
WAL_AUTOCHECKPOINT_PAGES: Final = 4_000  # SQLite's default: 1,000
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


# One statement of a group commit: (SQL, parameters).
_Statement = tuple[str, Sequence[Any]]


def _atomically(
    conn: sqlite3.Connection, statements: Sequence[_Statement]
) -> list[tuple[list[Any], int]]:
    """Runs ``statements`` as one transaction, each drained; returns each one's rows and
    rowcount.

    A single statement runs alone in autocommit mode: SQLite makes it its own transaction (all
    or nothing, durable under ``synchronous=FULL`` when it completes, the write lock taken up
    front with the busy handler, as BEGIN IMMEDIATE does). The writer thread then takes the GIL
    back once for the commit instead of three times (BEGIN, statement, COMMIT), and each take
    may wait a switch interval while the event loop is busy.
    """
    if len(statements) == 1:
        return [_drained(conn.execute(*statements[0]))]
    with _transaction(conn):
        return [_drained(conn.execute(sql, params)) for sql, params in statements]


def _drained(cursor: sqlite3.Cursor) -> tuple[list[Any], int]:
    rows = cursor.fetchall()  # no statement left in progress
    return rows, cursor.rowcount


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


def _connect(
    path: Path,
    synchronous: str,
    what: str,
    cached_statements: int = 128,
    autocheckpoint_pages: int | None = None,
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, ``synchronous``;
    ``autocheckpoint_pages``: SQLite's checkpoint limit when not its default."""
    try:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=cached_statements,
        )
    except sqlite3.Error as exc:
        raise StorageError(f"{what}: cannot open: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA cache_size = -{CACHE_SIZE_KIB}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if autocheckpoint_pages is not None:
            conn.execute(f"PRAGMA wal_autocheckpoint = {autocheckpoint_pages}")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{what}: cannot open: {exc}") from exc
    return conn


# A group commit: (connection, the jobs of one batch) -> one result per job, in order. It runs
# in the writer thread, the connection in autocommit mode, and commits the batch as one
# transaction itself (see ``_atomically``).
Committer = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class _Solo:
    """A job that runs alone, in its own transaction (a bulk apply, a batch of CDRs)."""

    __slots__ = ("work",)

    def __init__(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        self.work = work


_Queued = tuple[Any, asyncio.Future[Any]]
_Answer = tuple[asyncio.Future[Any], Any, BaseException | None]  # (caller, result, error)


class _GroupWriter:
    """One thread and its own connection committing, in order, the jobs the event loop queues.

    Every job queued while a transaction is in flight joins the next one (group commit: one
    fsync for all of them). While jobs keep arriving close together (other requests in
    flight), the job that makes the queue due first waits a gather window for them (see
    GATHER_S). A deferrable job (a clean-up nobody waits for) does not start a commit: it
    joins the next one, or commits after ``deferred_delay_s``. ``committer``
    turns a batch of jobs into a few multi-row statements; a :class:`_Solo` job runs alone.
    When the transaction is durable, the whole batch is answered with one
    ``call_soon_threadsafe``; if it fails, every job of the batch gets the error and nothing of
    it is stored. A cancelled caller's job still commits.
    """

    def __init__(self, path: Path, synchronous: str, what: str, committer: Committer) -> None:
        self._what = what
        self._committer = committer
        self._conn = _connect(
            path, synchronous, what, WRITER_STATEMENT_CACHE, WAL_AUTOCHECKPOINT_PAGES
        )
        self._wake = threading.Condition(threading.Lock())  # no re-entry: the cheaper lock
        self._queue: list[_Queued] = []
        # Set when the queue holds a job that must not wait (the thread commits only then or
        # at close, so deferrable jobs ride along with the next one); cleared when it takes a
        # batch.
        self._due = False
        self._deferred_timer: asyncio.TimerHandle | None = None
        self.deferred_delay_s = DEFERRED_COMMIT_DELAY_S
        # The gather window (see GATHER_S): its length, the smoothed gap between jobs
        # below which it opens, and that gap (loop clock) with the last job's time.
        self.gather_s = GATHER_S
        self.gather_below_gap_s = GATHER_BELOW_GAP_S
        self._gap_cap_s = GATHER_GAP_CAP * GATHER_BELOW_GAP_S
        self._gather_timer: asyncio.TimerHandle | None = None
        self._gap = self._gap_cap_s  # idle at start
        self._submitted_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.commits = 0  # transactions committed (tests check that writes share them)
        self.idle_checkpoints = 0  # WAL checkpoints run with nothing queued
        self.idle_checkpoint_interval_s = IDLE_CHECKPOINT_INTERVAL_S
        self._checkpointed_at = time.monotonic()
        self._checkpointed_commits = 0  # self.commits at the last idle checkpoint
        # Jobs queued / answered so far, and reads waiting for the jobs queued before them.
        self._submitted = 0
        self._answered = 0
        self._barriers: list[tuple[int, asyncio.Future[None]]] = []
        self._thread = threading.Thread(
            target=self._serve, name=f"sqlite writer {path.name}", daemon=True
        )
        self._thread.start()

    def submit(self, job: Any, *, deferrable: bool = False) -> asyncio.Future[Any]:
        """Queues ``job``; the future is answered (on this loop) once it is durable. A
        ``deferrable`` job waits for the next commit, at most ``deferred_delay_s``; any other
        job makes the queue due at once, or, while jobs keep arriving, at the end of a gather
        window (see GATHER_S); a job queued while a window is open joins it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        gather = False
        with self._wake:
            if self._closing:
                raise StorageClosedError(f"{self._what} is closed")
            self._loop = loop
            self._queue.append((job, future))
            # The gap since the previous job, capped: one quiet spell ends gathering at once.
            now = loop.time()
            gap = min(now - self._submitted_at, self._gap_cap_s)
            self._gap += (gap - self._gap) * GAP_SMOOTHING
            self._submitted_at = now
            if not deferrable and not self._due and self._gather_timer is None:
                if self._gap < self.gather_below_gap_s and self.gather_s > 0.0:
                    gather = True
                else:
                    self._due = True
                    self._wake.notify()
        if gather:
            self._gather_timer = loop.call_at(now + self.gather_s, self._gathered)
        if deferrable and self._deferred_timer is None:
            self._deferred_timer = loop.call_later(self.deferred_delay_s, self._deferred_due)
        self._submitted += 1
        return future

    def _gathered(self) -> None:
        self._gather_timer = None
        self._commit_now()

    def _deferred_due(self) -> None:
        self._deferred_timer = None
        self._commit_now()

    def _commit_now(self) -> None:
        """Makes whatever is queued due, deferred jobs too."""
        with self._wake:
            if self._queue and not self._due:
                self._due = True
                self._wake.notify()

    async def barrier(self) -> None:
        """Returns once every job queued so far is answered: a read after it sees them all
        (as if the writes it was issued after had been awaited)."""
        if self._answered == self._submitted:
            return
        self._commit_now()  # a read does not wait for a deferred write's delay
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers.append((self._submitted, waiter))
        await waiter

    def _answer(self, answers: list[_Answer]) -> None:
        """On the loop: answers one batch's callers, then the reads waiting for them."""
        for future, result, error in answers:
            if future.done():  # its caller was cancelled; the write is stored all the same
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
        self._answered += len(answers)
        if self._barriers:
            waiting = []
            for target, waiter in self._barriers:
                if target > self._answered:
                    waiting.append((target, waiter))
                elif not waiter.done():
                    waiter.set_result(None)
            self._barriers = waiting

    async def close(self) -> None:
        """Commits what is queued, then stops the thread and closes its connection."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        await asyncio.to_thread(self._thread.join)

    def _serve(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._due and not self._closing:
                        self._wake.wait()
                    if not self._queue:
                        return
                    batch, self._queue = self._queue, []
                    self._due = False
                    loop = self._loop
                assert loop is not None
                answers = self._commit_batch(batch)
                # A closed loop has nobody waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._answer, answers)
                self._checkpoint_if_idle()
        finally:
            self._conn.close()

    def _checkpoint_if_idle(self) -> None:
        """A PASSIVE checkpoint (it waits for no reader), once the batch is answered and only
        when nothing is due: a job queued meanwhile waits for the rest of it at worst."""
        now = time.monotonic()
        if (
            self.commits == self._checkpointed_commits
            or now - self._checkpointed_at < self.idle_checkpoint_interval_s
        ):
            return
        with self._wake:
            if self._due or self._closing:
                return
        self._checkpointed_at, self._checkpointed_commits = now, self.commits
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            return  # SQLite's own checkpoint, or the next idle one, copies the log later
        self.idle_checkpoints += 1

    def _commit_batch(self, batch: list[_Queued]) -> list[_Answer]:
        """Runs of grouped jobs commit together; a solo job alone. Never raises."""
        answers: list[_Answer] = []
        start = 0
        while start < len(batch):
            end = start + 1
            if not isinstance(batch[start][0], _Solo):
                while end < len(batch) and not isinstance(batch[end][0], _Solo):
                    end += 1
            run = batch[start:end]
            try:
                first = run[0][0]
                if isinstance(first, _Solo):
                    with _transaction(self._conn):
                        results = [first.work(self._conn)]
                else:
                    results = self._committer(self._conn, [job for job, _ in run])
                self.commits += 1
                answers.extend(
                    (future, result, None) for (_, future), result in zip(run, results, strict=True)
                )
            except BaseException as exc:  # every caller of the batch hears of it
                error: BaseException = exc
                if isinstance(exc, sqlite3.Error):
                    error = StorageError(f"{self._what}: {exc}")
                answers.extend((future, None, error) for _, future in run)
            start = end
        return answers


def _placeholders(rows: int, columns: int) -> str:
    row = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([row] * rows)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), ROWS_PER_STATEMENT):
        yield items[start : start + ROWS_PER_STATEMENT]


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


# One document operation of a group commit: (kind, key, encoded value, or None to delete).
_DocOp = tuple[str, str, bytes | None]


# The SQL of a multi-row statement depends on its row count alone: built once per count (the
# writer thread builds one or two per commit).
@lru_cache(maxsize=ROWS_PER_STATEMENT)
def _upsert_docs_sql(rows: int) -> str:
    return (
        f"INSERT INTO documents (kind, key, value) VALUES {_placeholders(rows, 3)}"
        " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value"
    )


# A statement's every result row costs the writer thread one GIL round trip (sqlite3 releases
# the GIL around each step), up to a switch interval each while the loop is busy. So the writer
# reads no RETURNING rows where it can help it: which deleted documents existed comes from the
# DELETE's rowcount (one key) or a SELECT answering one JSON array (more), and the order ids of
# insert-only CDR batches of at least this many rows (plus statements and 2) from such a SELECT.
AGGREGATE_FROM_ROWS: Final = 2


@lru_cache(maxsize=WRITER_STATEMENT_CACHE)
def _delete_docs_sql(keys_per_kind: tuple[int, ...], aggregate: bool) -> tuple[str, ...]:
    """The statements deleting the keys (one WHERE, parameters in kind, *keys order per kind):
    the DELETE alone (one key: its rowcount says whether it existed), or with ``aggregate`` a
    SELECT of the existing ones as one JSON array first."""
    # "kind = ? AND key IN (...)" per kind, OR-ed: SQLite searches the primary key for each
    # (MULTI-INDEX OR); a row-value IN over (kind, key) would scan the table. One statement
    # for every kind a batch deletes from: the writer thread gives the GIL back at each one.
    where = " OR ".join(
        f"(kind = ? AND key IN ({', '.join('?' * keys)}))" for keys in keys_per_kind
    )
    if not aggregate:
        return (f"DELETE FROM documents WHERE {where}",)
    return (
        f"SELECT json_group_array(json_array(kind, key)) FROM documents WHERE {where}",
        f"DELETE FROM documents WHERE {where}",
    )


def _delete_statements(
    deleted: list[tuple[str, str]],
) -> Iterator[tuple[bool, tuple[_Statement, ...]]]:
    """The deletes of a batch, at most ROWS_PER_STATEMENT keys at a time: per chunk, whether
    they are aggregated, and the statements of ``_delete_docs_sql`` with their parameters."""
    for chunk in _chunks(deleted):
        by_kind: dict[str, list[str]] = {}
        for kind, key in chunk:
            by_kind.setdefault(kind, []).append(key)
        params = [item for kind, keys in by_kind.items() for item in (kind, *keys)]
        shape = tuple([len(keys) for keys in by_kind.values()])
        aggregate = len(chunk) > 1
        yield aggregate, tuple((sql, params) for sql in _delete_docs_sql(shape, aggregate))


def _existing(
    chunk: Sequence[tuple[str, str]], answer: tuple[list[Any], int], aggregated: bool
) -> Iterator[tuple[str, str]]:
    """Which keys of a delete's ``chunk`` existed, from its first statement's ``answer``."""
    rows, rowcount = answer
    if not aggregated:  # one key
        if rowcount:
            yield from chunk
        return
    ((pairs,),) = rows  # one JSON array of [kind, key] (lists: made tuples, to be hashed)
    yield from map(tuple, loads(pairs))


def _commit_documents(conn: sqlite3.Connection, jobs: list[tuple[_DocOp, ...]]) -> list[int]:
    """Applies the jobs' operations in order, as a few multi-row statements; per job, the
    rowcount its last operation would have had run alone (upsert 1, delete 1 if it existed)."""
    final: dict[tuple[str, str], bytes | None] = {}
    deleted: dict[tuple[str, str], None] = {}  # (kind, key) some job deletes (ordered set)
    for ops in jobs:
        for kind, key, value in ops:
            if value is None:
                deleted[(kind, key)] = None
            final[(kind, key)] = value
    # Keys deleted anywhere in the batch go first (the deletes say which existed before it);
    # the final values are written after, so a later set of a deleted key still wins.
    statements: list[_Statement] = []
    keys = list(deleted)
    # Per chunk of deleted keys, the statement saying which existed, and how.
    answering: list[tuple[int, bool]] = []
    for aggregated, deleting in _delete_statements(keys):
        answering.append((len(statements), aggregated))
        statements.extend(deleting)
    puts = [(kind, key, value) for (kind, key), value in final.items() if value is not None]
    statements.extend(
        (_upsert_docs_sql(len(chunk)), [item for row in chunk for item in row])
        for chunk in _chunks(puts)
    )
    returned = _atomically(conn, statements)
    existed: set[tuple[str, str]] = set()
    for deleted_keys, (index, aggregated) in zip(_chunks(keys), answering, strict=True):
        existed.update(_existing(deleted_keys, returned[index], aggregated))
    # Each job's answer, replaying the batch in order from what existed before it.
    present = existed
    counts: list[int] = []
    for ops in jobs:
        count = 0
        for kind, key, value in ops:
            if value is None:
                count = int((kind, key) in present)
                present.discard((kind, key))
            else:
                count = 1
                present.add((kind, key))
        counts.append(count)
    return counts


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


@lru_cache(maxsize=3 * ROWS_PER_STATEMENT)
def _cdr_write_sql(rows: int, allow_update: bool, returning: bool = True) -> str:
    if allow_update:
        head = _CDR_UPSERT_HEAD
    else:
        head = _CDR_INSERT_HEAD if returning else _CDR_INSERT_ONLY_HEAD
    return head.format(values=_placeholders(rows, len(CDR_COLUMNS) + 2))


_CDR_WRITE_HEAD: Final = (
    f"INSERT INTO cdrs ({_CDR_COLUMN_LIST}, created_at, updated_at) VALUES {{values}}"
    " ON CONFLICT (cgrid, run_id) DO "
)
_CDR_INSERT_HEAD: Final = _CDR_WRITE_HEAD + "NOTHING RETURNING cgrid, run_id, order_id"
_CDR_INSERT_ONLY_HEAD: Final = _CDR_WRITE_HEAD + "NOTHING"
# Insert-only batches of many rows: AUTOINCREMENT order ids only grow, and the writer holds the
# write lock, so the rows this transaction inserted are those above the largest id before it.
_CDR_LAST_ORDER_ID: Final = "SELECT coalesce(max(order_id), 0) FROM cdrs"
_CDR_INSERTED_SINCE: Final = (
    "SELECT json_group_array(json_array(cgrid, run_id, order_id)) FROM cdrs WHERE order_id > ?"
)
_CDR_UPSERT_HEAD: Final = (
    _CDR_WRITE_HEAD
    + "UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _CDR_UPDATED_COLUMNS)
    + " RETURNING cgrid, run_id, order_id"
)
_CGRID: Final = CDR_COLUMNS.index("cgrid")
_RUN_ID: Final = CDR_COLUMNS.index("run_id")

# One unit of a CDR group commit: (encoded rows, each with its two timestamps, allow_update).
# A unit is one store_cdr (one row) or a small store_cdrs (several, all or none with the batch).
_CdrJob = tuple[tuple[tuple[Any, ...], ...], bool]


def _commit_cdrs(conn: sqlite3.Connection, jobs: list[_CdrJob]) -> list[list[int | None]]:
    """Stores the batch's CDRs in order as few multi-row statements; per job, per row its order
    id, or None for a duplicate (insert-only jobs). A statement holds consecutive rows of one
    mode with distinct (cgrid, run_id), so each row's RETURNING answer is its own."""
    flat = [(row, mode) for rows, mode in jobs for row in rows]
    statements: list[_Statement] = []
    rows_of: list[list[tuple[Any, ...]]] = []  # each statement's rows
    start = 0
    while start < len(flat):
        allow_update = flat[start][1]
        keys: set[tuple[str, str]] = set()
        end = start
        while end < len(flat) and end - start < ROWS_PER_STATEMENT:
            row, mode = flat[end]
            key = (row[_CGRID], row[_RUN_ID])
            if mode is not allow_update or key in keys:
                break
            keys.add(key)
            end += 1
        statement = [row for row, _ in flat[start:end]]
        statements.append(
            (_cdr_write_sql(len(statement), allow_update), [v for row in statement for v in row])
        )
        rows_of.append(statement)
        start = end
    insert_only = not any(mode for _, mode in flat)
    # RETURNING steps once per row; the aggregate costs the statements and 4 more steps.
    if insert_only and len(flat) >= AGGREGATE_FROM_ROWS + len(statements) + 2:
        order_ids = _insert_cdrs_aggregated(conn, rows_of)
    else:
        order_ids = []
        for statement, (returned, _) in zip(rows_of, _atomically(conn, statements), strict=True):
            stored = {(cgrid, run_id): int(order_id) for cgrid, run_id, order_id in returned}
            order_ids.extend(stored.get((row[_CGRID], row[_RUN_ID])) for row in statement)
    answers: list[list[int | None]] = []
    taken = 0
    for unit, _mode in jobs:
        answers.append(order_ids[taken : taken + len(unit)])
        taken += len(unit)
    return answers


def _insert_cdrs_aggregated(
    conn: sqlite3.Connection, rows_of: list[list[tuple[Any, ...]]]
) -> list[int | None]:
    """Insert-only statements without RETURNING (a GIL round trip per row): the order ids of
    the rows inserted are read back as one JSON array. A row whose key was already stored, or
    came earlier in the batch, gets None, as RETURNING would have said."""
    statements: list[_Statement] = [(_CDR_LAST_ORDER_ID, ())]
    statements.extend(
        (_cdr_write_sql(len(rows), False, False), [v for row in rows for v in row])
        for rows in rows_of
    )
    with _transaction(conn):
        ((last,),) = conn.execute(*statements[0]).fetchall()
        for sql, params in statements[1:]:
            conn.execute(sql, params)
        ((inserted,),) = conn.execute(_CDR_INSERTED_SINCE, (last,)).fetchall()
    ids = {(cgrid, run_id): int(order_id) for cgrid, run_id, order_id in loads(inserted)}
    return [ids.pop((row[_CGRID], row[_RUN_ID]), None) for rows in rows_of for row in rows]


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
