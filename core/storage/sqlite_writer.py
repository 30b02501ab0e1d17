"""The SQLite back end's write path: one writer thread per file committing the jobs the event
loop queues as group commits (:class:`_GroupWriter`), and the committers that turn a batch of
document or CDR jobs into a few multi-row statements.

Kept apart from the stores (``core.storage.sqlite``) so that it alone is compiled by mypyc
(``scripts/native/storage.txt``): it handles only data the stores have already checked and
encoded, so the run-time type checks of compiled code never stand in for the stores' own
validation and error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypeVar

from core.storage.base import StorageClosedError, StorageError
from core.storage.cdr import CDR_COLUMNS
from core.types import loads

T = TypeVar("T")

# Another process (a CLI, a backup) may hold the write lock briefly; wait rather than fail.
BUSY_TIMEOUT_MS: Final = 5_000
# Page cache per connection (negative = KiB); bulk loads of ~1M rows stay in cache.
CACHE_SIZE_KIB: Final = 65_536
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
        # below which it opens, and that gap with the last job's time (time.monotonic).
        self.gather_s = GATHER_S
        self.gather_below_gap_s = GATHER_BELOW_GAP_S
        self._gap_cap_s = GATHER_GAP_CAP * GATHER_BELOW_GAP_S
        # When the open gather window ends (time.monotonic), 0.0 when none is open; cleared
        # when the writer takes the batch.
        self._gather_until = 0.0
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
        self._serving = threading.Thread(
            target=self._serve, name=f"sqlite writer {path.name}", daemon=True
        )
        self._serving.start()

    def submit(self, job: Any, *, deferrable: bool = False) -> asyncio.Future[Any]:
        """Queues ``job``; the future is answered (on this loop) once it is durable. A
        ``deferrable`` job waits for the next commit, at most ``deferred_delay_s``; any other
        job makes the queue due at once, or, while jobs keep arriving, at the end of a gather
        window (see GATHER_S); a job queued while a window is open joins it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        until = 0.0  # the end of the gather window this job opens, if it opens one
        with self._wake:
            if self._closing:
                raise StorageClosedError(f"{self._what} is closed")
            self._loop = loop
            self._queue.append((job, future))
            # The gap since the previous job, capped: one quiet spell ends gathering at once.
            now = time.monotonic()
            gap = min(now - self._submitted_at, self._gap_cap_s)
            self._gap += (gap - self._gap) * GAP_SMOOTHING
            self._submitted_at = now
            if not deferrable and not self._due and not self._gather_until:
                if self._gap < self.gather_below_gap_s and self.gather_s > 0.0:
                    until = self._gather_until = now + self.gather_s
                else:
                    self._due = True
                    self._wake.notify()
        if until:
            # The loop ends the window if the writer is idle; a busy writer sees it ended
            # itself when its commit is done (a busy loop may run this timer late).
            loop.call_later(self.gather_s, self._gathered, until)
        if deferrable and self._deferred_timer is None:
            self._deferred_timer = loop.call_later(self.deferred_delay_s, self._deferred_due)
        self._submitted += 1
        return future

    def _gathered(self, until: float) -> None:
        with self._wake:
            if self._gather_until == until and not self._due:  # still that window's jobs
                self._due = True
                self._wake.notify()

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
        await asyncio.to_thread(self._serving.join)

    def _serve(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._due and not self._closing:
                        if not self._gather_until:
                            self._wake.wait()
                            continue
                        left = self._gather_until - time.monotonic()
                        if left <= 0.0:
                            break  # the window is over: no need to wait for the loop's timer
                        self._wake.wait(left)
                    if not self._queue:
                        return
                    batch, self._queue = self._queue, []
                    self._due = False
                    self._gather_until = 0.0
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


# -------------------------------------------------------------------------------- documents
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


# ------------------------------------------------------------------------------------ CDRs
_CDR_COLUMN_LIST: Final = ", ".join(CDR_COLUMNS)
_CDR_UPDATED_COLUMNS: Final = [
    *(c for c in CDR_COLUMNS if c not in ("cgrid", "run_id")),
    "updated_at",
]


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


def _commit_cdrs(
    conn: sqlite3.Connection, jobs: list[_CdrJob], aggregate_from: int = AGGREGATE_FROM_ROWS
) -> list[list[int | None]]:
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
    if insert_only and len(flat) >= aggregate_from + len(statements) + 2:
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
