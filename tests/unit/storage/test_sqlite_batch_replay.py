"""Property: one group commit of many document jobs (``_commit_documents``) leaves the table and
answers each job exactly as running the jobs one by one would; the committer commits the batch
itself, all or nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.storage.cdr import CDR_COLUMNS
from core.storage.sqlite import _DATADB_SCHEMA, _STORDB_SCHEMA
from core.storage.sqlite_writer import ROWS_PER_STATEMENT, _commit_cdrs, _commit_documents

Op = tuple[str, str, bytes | None]

KINDS = st.sampled_from(["accounts", "sessions"])
KEYS = st.sampled_from([f"k{n}" for n in range(6)])  # few keys: many collisions in a batch
VALUES = st.one_of(st.none(), st.binary(min_size=1, max_size=8))
OPS = st.tuples(KINDS, KEYS, VALUES)
JOBS = st.lists(st.lists(OPS, min_size=1, max_size=3).map(tuple), min_size=1, max_size=40)
PRESENT = st.dictionaries(st.tuples(KINDS, KEYS), st.binary(min_size=1, max_size=8))


def _table(conn: sqlite3.Connection) -> dict[tuple[str, str], bytes]:
    return {(kind, key): value for kind, key, value in conn.execute("SELECT * FROM documents")}


def _sequential(
    before: dict[tuple[str, str], bytes], jobs: list[tuple[Op, ...]]
) -> tuple[dict[tuple[str, str], bytes], list[int]]:
    """The reference: each operation alone, in order (what one statement per write did)."""
    table = dict(before)
    counts = []
    for ops in jobs:
        count = 0
        for kind, key, value in ops:
            if value is None:
                count = int(table.pop((kind, key), None) is not None)
            else:
                table[(kind, key)] = value
                count = 1
        counts.append(count)
    return table, counts


@settings(max_examples=300, deadline=None)
@given(before=PRESENT, jobs=JOBS)
def test_a_batch_equals_its_jobs_run_one_by_one(
    before: dict[tuple[str, str], bytes], jobs: list[tuple[Op, ...]]
) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for statement in _DATADB_SCHEMA:
            conn.execute(statement)
        rows = [(*key, value) for key, value in before.items()]
        conn.executemany("INSERT INTO documents VALUES (?, ?, ?)", rows)
        counts = _commit_documents(conn, jobs)
        expected_table, expected_counts = _sequential(before, jobs)
        assert counts == expected_counts
        assert _table(conn) == expected_table
    finally:
        conn.close()


def test_a_batch_larger_than_one_statement() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for statement in _DATADB_SCHEMA:
            conn.execute(statement)
        keys = [f"k{n}" for n in range(ROWS_PER_STATEMENT * 2 + 1)]
        jobs: list[tuple[Op, ...]] = [(("kind", key, key.encode()),) for key in keys]
        assert _commit_documents(conn, jobs) == [1] * len(keys)
        removals: list[tuple[Op, ...]] = [(("kind", key, None),) for key in [*keys, "missing"]]
        assert _commit_documents(conn, removals) == [1] * len(keys) + [0]
        assert _table(conn) == {}
    finally:
        conn.close()


def _file_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in _DATADB_SCHEMA:
        conn.execute(statement)
    return conn


@pytest.mark.parametrize(
    "jobs",
    [
        [(("kind", "a", b"1"),)],  # one statement: committed in autocommit mode
        [(("kind", "gone", None),), (("kind", "a", b"1"),)],  # a delete and a put: BEGIN..COMMIT
    ],
)
def test_the_committer_commits_the_batch(tmp_path: Path, jobs: list[tuple[Op, ...]]) -> None:
    conn, other = _file_db(tmp_path / "d.sqlite3"), None
    try:
        _commit_documents(conn, jobs)
        assert not conn.in_transaction
        other = sqlite3.connect(tmp_path / "d.sqlite3")  # another connection sees it committed
        assert other.execute("SELECT value FROM documents WHERE key = 'a'").fetchall() == [(b"1",)]
    finally:
        conn.close()
        if other is not None:
            other.close()


@pytest.mark.parametrize("first_deletes", [False, True])
def test_a_failing_batch_stores_nothing(tmp_path: Path, first_deletes: bool) -> None:
    conn = _file_db(tmp_path / "d.sqlite3")
    try:
        conn.execute("INSERT INTO documents VALUES ('kind', 'a', x'01')")
        # SQLite refuses key 'b' inside the batch's transaction, after the other writes ran.
        conn.execute(
            "CREATE TRIGGER refuse_b BEFORE INSERT ON documents WHEN NEW.key = 'b'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        jobs: list[tuple[Op, ...]] = [(("kind", "a", b"2"),), (("kind", "b", b"3"),)]
        if first_deletes:
            jobs.insert(0, (("kind", "a", None),))
        with pytest.raises(sqlite3.Error):
            _commit_documents(conn, jobs)
        assert not conn.in_transaction
        assert _table(conn) == {("kind", "a"): b"\x01"}
    finally:
        conn.close()


# ---------------------------------------------------------------------------------- CDRs
CDR_KEYS = st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["*default", "*raw"]))
CDR_JOBS = st.lists(
    st.tuples(st.lists(CDR_KEYS, min_size=1, max_size=3), st.booleans()), min_size=1, max_size=12
)


def _cdr_row(cgrid: str, run_id: str, tag: int) -> tuple[object, ...]:
    values: dict[str, object] = {column: "" for column in CDR_COLUMNS}
    values.update(cgrid=cgrid, run_id=run_id, usage=tag, cost="-1", pre_rated=0)
    values.update(setup_time=None, answer_time=None, cost_details=None)
    return (*(values[column] for column in CDR_COLUMNS), tag, tag)


def _cdr_db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for statement in _STORDB_SCHEMA:
        conn.execute(statement)
    return conn


@settings(max_examples=300, deadline=None)
@given(before=st.lists(CDR_KEYS, unique=True), jobs=CDR_JOBS, insert_only=st.booleans())
def test_a_cdr_batch_answers_as_with_returning(
    before: list[tuple[str, str]],
    jobs: list[tuple[list[tuple[str, str]], bool]],
    insert_only: bool,
) -> None:
    """Order ids read back as one JSON array (insert-only batches of many rows) answer, and
    store, exactly as RETURNING on every row does (ids a refused duplicate used up included)."""
    if insert_only:  # the batches that take the aggregate path
        jobs = [(keys, False) for keys, _ in jobs]
    returning, aggregated = _cdr_db(), _cdr_db()
    try:
        batch = [
            (tuple(_cdr_row(*key, n) for n, key in enumerate(keys)), allow_update)
            for keys, allow_update in jobs
        ]
        first = [(tuple(_cdr_row(*key, 0) for key in before), False)]
        answers = []
        for conn, aggregate_from in ((returning, 10**6), (aggregated, 2)):
            if before:
                _commit_cdrs(conn, first, aggregate_from)
            answers.append(_commit_cdrs(conn, batch, aggregate_from))
            assert not conn.in_transaction
        assert answers[0] == answers[1]
        table = "SELECT order_id, cgrid, run_id, usage FROM cdrs ORDER BY order_id"
        assert returning.execute(table).fetchall() == aggregated.execute(table).fetchall()
    finally:
        returning.close()
        aggregated.close()
