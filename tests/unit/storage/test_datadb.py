"""DataDB behaviour, run against every back end (see conftest.BACKENDS)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.storage import (
    DataDB,
    DropKind,
    Mutation,
    SchemaVersionError,
    StorageClosedError,
    Write,
    open_storage,
)
from core.storage.sqlite import DATADB_FILE, OFFLOAD_ROWS

from .conftest import Backend


class Unencodable:
    """orjson cannot encode this: a stand-in for a bad value in the middle of a batch."""


# ---------------------------------------------------------------------------- single documents
async def test_get_missing_is_none(datadb: DataDB) -> None:
    assert await datadb.get("rates", "RT_1") is None


async def test_set_get_round_trip(datadb: DataDB) -> None:
    doc = {"id": "RT_1", "rates": [{"rate": "0.01", "unit": 60}], "active": True, "n": None}
    await datadb.set("rates", "RT_1", doc)
    assert await datadb.get("rates", "RT_1") == doc


async def test_decimal_reads_back_as_float_and_tuples_as_lists(datadb: DataDB) -> None:
    await datadb.set("k", "a", {"money": Decimal("0.1"), "pair": (1, 2)})
    assert await datadb.get("k", "a") == {"money": 0.1, "pair": [1, 2]}


async def test_reads_are_copies(datadb: DataDB) -> None:
    await datadb.set("k", "a", {"list": [1]})
    first = await datadb.get("k", "a")
    assert first == {"list": [1]}
    first["list"].append(2)
    assert await datadb.get("k", "a") == {"list": [1]}


async def test_set_overwrites_and_kinds_are_separate(datadb: DataDB) -> None:
    await datadb.set("a", "x", 1)
    await datadb.set("b", "x", 2)
    await datadb.set("a", "x", 3)
    assert (await datadb.get("a", "x"), await datadb.get("b", "x")) == (3, 2)


async def test_empty_key_is_a_key(datadb: DataDB) -> None:
    await datadb.set("k", "", "empty")
    assert await datadb.get("k", "") == "empty"
    assert await datadb.keys("k") == [""]


async def test_set_none_is_refused(datadb: DataDB) -> None:
    with pytest.raises(ValueError, match="None cannot be stored"):
        await datadb.set("k", "a", None)
    assert await datadb.count("k") == 0


@pytest.mark.parametrize(
    ("kind", "key", "error"),
    [("", "a", ValueError), (1, "a", TypeError), ("k", 1, TypeError), ("k", None, TypeError)],
)
async def test_bad_names_are_refused(
    datadb: DataDB, kind: Any, key: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await datadb.set(kind, key, 1)
    with pytest.raises(error):
        await datadb.get(kind, key)


@pytest.mark.parametrize(
    ("kind", "key", "error", "message"),
    [
        ("", "a", ValueError, "kind must not be empty"),
        (1, "a", TypeError, "kind must be str"),
        ("k", 1, TypeError, "key must be str"),
        ("k", None, TypeError, "key must be str"),
        (None, None, TypeError, "kind must be str"),  # the kind is named first
    ],
)
@pytest.mark.parametrize("value", [1, None])
async def test_a_bad_name_in_an_apply_refuses_the_whole_apply(
    datadb: DataDB, kind: Any, key: Any, error: type[Exception], message: str, value: Any
) -> None:
    """A few writes (one group-commit unit) with one bad name: nothing is stored."""
    with pytest.raises(error, match=message):
        await datadb.apply([Write("k", "good", 1), Write(kind, key, value)])
    assert await datadb.get("k", "good") is None


async def test_unencodable_value_is_refused(datadb: DataDB) -> None:
    with pytest.raises(TypeError):
        await datadb.set("k", "a", Unencodable())
    assert await datadb.get("k", "a") is None


async def test_remove(datadb: DataDB) -> None:
    await datadb.set("k", "a", 1)
    assert await datadb.remove("k", "a") is True
    assert await datadb.remove("k", "a") is False
    assert await datadb.get("k", "a") is None


# ---------------------------------------------------------------------------------- many at once
async def test_get_many_returns_found_only(datadb: DataDB) -> None:
    await datadb.apply([Write("k", key, i) for i, key in enumerate(["a", "b", "c"])])
    await datadb.set("other", "d", 9)
    assert await datadb.get_many("k", ["c", "a", "zz", "d"]) == {"a": 0, "c": 2}
    assert await datadb.get_many("k", []) == {}
    assert await datadb.get_many("k", iter(["b"])) == {"b": 1}


async def test_get_many_large(datadb: DataDB) -> None:
    count = OFFLOAD_ROWS + 10  # past the worker-thread threshold of the SQLite back end
    await datadb.apply(Write("k", f"{i:06d}", i) for i in range(count))
    wanted = [f"{i:06d}" for i in range(0, count + 100, 2)]
    found = await datadb.get_many("k", wanted)
    assert found == {f"{i:06d}": i for i in range(0, count, 2)}


async def test_get_all_is_one_kind(datadb: DataDB) -> None:
    await datadb.apply([Write("a", "1", {"x": 1}), Write("a", "2", {"x": 2}), Write("b", "1", 0)])
    assert await datadb.get_all("a") == {"1": {"x": 1}, "2": {"x": 2}}
    assert await datadb.get_all("missing") == {}


async def test_keys_sorted_with_prefix_and_count(datadb: DataDB) -> None:
    keys = ["cgrates.org:1002", "cgrates.org:1001", "itsyscom.com:1001", "cgrates.orgx", "c"]
    await datadb.apply([Write("accounts", key, {}) for key in keys])
    await datadb.set("other", "cgrates.org:1003", {})
    assert await datadb.keys("accounts") == sorted(keys)
    assert await datadb.keys("accounts", "cgrates.org:") == [
        "cgrates.org:1001",
        "cgrates.org:1002",
    ]
    assert await datadb.count("accounts") == len(keys)
    assert await datadb.count("accounts", "cgrates.org") == 3
    assert await datadb.count("accounts", "nope") == 0
    assert await datadb.keys("missing") == []


@pytest.mark.parametrize(
    ("keys", "prefix", "expected"),
    [
        # The last code point cannot be incremented: the range must carry to the one before.
        (
            ["a\U0010ffff", "a\U0010ffffz", "ab", "b"],
            "a\U0010ffff",
            ["a\U0010ffff", "a\U0010ffffz"],
        ),
        # Incrementing U+D7FF lands on surrogates, which must be skipped.
        (["\ud7ff1", "\ue000", "\ud7fe"], "\ud7ff", ["\ud7ff1"]),
        (
            ["\U0010ffff", "\U0010ffff\U0010ffff"],
            "\U0010ffff",
            ["\U0010ffff", "\U0010ffff\U0010ffff"],
        ),
        (["é1", "é2", "f", "e"], "é", ["é1", "é2"]),
    ],
)
async def test_prefix_edges(
    datadb: DataDB, keys: list[str], prefix: str, expected: list[str]
) -> None:
    await datadb.apply([Write("k", key, 1) for key in keys])
    assert await datadb.keys("k", prefix) == expected
    assert await datadb.count("k", prefix) == len(expected)


async def test_remove_kind(datadb: DataDB) -> None:
    await datadb.apply([Write("a", "1", 1), Write("a", "2", 2), Write("b", "1", 3)])
    assert await datadb.remove_kind("a") == 2
    assert await datadb.remove_kind("a") == 0
    assert await datadb.get_all("a") == {}
    assert await datadb.get_all("b") == {"1": 3}


# ------------------------------------------------------------------------------------- apply
async def test_apply_puts_deletes_and_drops_in_order(datadb: DataDB) -> None:
    await datadb.apply([Write("r", "old1", 1), Write("r", "old2", 2), Write("s", "keep", 0)])
    await datadb.apply(
        [
            DropKind("r"),
            Write("r", "new1", 10),
            Write("r", "new2", 20),
            Write("r", "new2", None),  # delete after put, same batch
            Write("s", "keep", 1),
            Write("t", "gone", 1),
            DropKind("t"),  # drop after put, same batch
            Write("s", "absent", None),  # deleting a missing document is not an error
        ]
    )
    assert await datadb.get_all("r") == {"new1": 10}
    assert await datadb.get_all("s") == {"keep": 1}
    assert await datadb.get_all("t") == {}


async def test_apply_empty_is_a_no_op(datadb: DataDB) -> None:
    await datadb.set("k", "a", 1)
    await datadb.apply([])
    assert await datadb.get_all("k") == {"a": 1}


def _failing_batch(bad: Any) -> list[Mutation]:
    return [
        DropKind("rates"),
        *(Write("rates", f"RT_{i}", {"i": i}) for i in range(50)),
        Write("accounts", "1001", None),
        bad,
        *(Write("rates", f"RT_{i}", {"i": i}) for i in range(50, 100)),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        Write("rates", "RT_bad", Unencodable()),  # value that cannot be encoded
        Write("rates", 7, 1),  # type: ignore[arg-type]  # key that is not a string
        Write("", "x", 1),  # empty kind
        "not a mutation",
    ],
)
async def test_failing_apply_leaves_nothing(datadb: DataDB, bad: Any) -> None:
    before = {"RT_old": {"i": -1}}
    await datadb.apply([Write("rates", "RT_old", {"i": -1}), Write("accounts", "1001", {"b": "5"})])
    with pytest.raises((TypeError, ValueError)):
        await datadb.apply(_failing_batch(bad))
    assert await datadb.get_all("rates") == before
    assert await datadb.get("accounts", "1001") == {"b": "5"}
    # and the store still works afterwards
    await datadb.apply(_failing_batch(Write("rates", "RT_ok", 1)))
    assert await datadb.count("rates") == 101


async def test_failing_large_apply_from_a_generator_leaves_nothing(datadb: DataDB) -> None:
    await datadb.set("rates", "RT_old", 1)

    def mutations() -> Iterator[Mutation]:
        yield DropKind("rates")
        for i in range(OFFLOAD_ROWS * 2):
            yield Write("rates", f"RT_{i}", i)
        yield Write("rates", "RT_bad", Unencodable())

    with pytest.raises(TypeError):
        await datadb.apply(mutations())
    assert await datadb.get_all("rates") == {"RT_old": 1}


async def test_large_apply_from_a_generator(datadb: DataDB) -> None:
    count = OFFLOAD_ROWS * 3
    await datadb.apply(Write("rates", f"RT_{i}", {"i": i}) for i in range(count))
    everything = await datadb.get_all("rates")
    assert len(everything) == count
    assert everything["RT_123"] == {"i": 123}


async def test_concurrent_readers_see_all_or_nothing(datadb: DataDB) -> None:
    old = OFFLOAD_ROWS
    new = OFFLOAD_ROWS * 5
    await datadb.apply([Write("rates", f"old{i}", i) for i in range(old)])
    replace: list[Mutation] = [
        DropKind("rates"),
        *(Write("rates", f"new{i}", i) for i in range(new)),
    ]
    writer = asyncio.create_task(datadb.apply(replace))
    seen = []
    while not writer.done():
        seen.append(await datadb.count("rates"))
        await asyncio.sleep(0)
    await writer
    seen.append(await datadb.count("rates"))
    assert set(seen) <= {old, new}
    assert seen[-1] == new


async def test_cancelled_apply_is_all_or_nothing(datadb: DataDB) -> None:
    count = OFFLOAD_ROWS * 5
    task = asyncio.create_task(datadb.apply([Write("rates", f"{i}", i) for i in range(count)]))
    await asyncio.sleep(0.001)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await datadb.count("rates") in (0, count)
    await datadb.set("rates", "after", 1)  # the store is still usable
    assert await datadb.get("rates", "after") == 1


async def test_sqlite_bulk_apply_does_not_block_the_loop(tmp_path: Path) -> None:
    datadb, stordb = await open_storage("sqlite", tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)
        before = ticks
        await datadb.apply([Write("rates", f"{i}", i) for i in range(OFFLOAD_ROWS * 20)])
        assert ticks > before + 1  # other coroutines ran while the worker thread wrote
    finally:
        ticking.cancel()
        await datadb.close()
        await stordb.close()


# --------------------------------------------------------------------------------- lifecycle
async def test_closed_store_refuses_calls(datadb: DataDB) -> None:
    await datadb.close()
    await datadb.close()  # idempotent
    with pytest.raises(StorageClosedError):
        await datadb.get("k", "a")
    with pytest.raises(StorageClosedError):
        await datadb.apply([Write("k", "a", 1)])


async def test_async_with_closes(backend: Backend) -> None:
    datadb, _ = await backend.open()
    async with datadb as store:
        await store.set("k", "a", 1)
    with pytest.raises(StorageClosedError):
        await datadb.get("k", "a")


async def test_data_survives_reopen(persistent_backend: Backend) -> None:
    datadb, stordb = await persistent_backend.open()
    await datadb.apply([Write("rates", "RT_1", {"r": "0.1"}), Write("rates", "RT_2", {})])
    await datadb.set("accounts", "1001", {"balance": "10.5"})
    await datadb.remove("rates", "RT_2")
    await datadb.close()
    await stordb.close()
    reopened, _ = await persistent_backend.open()
    assert await reopened.get_all("rates") == {"RT_1": {"r": "0.1"}}
    assert await reopened.get("accounts", "1001") == {"balance": "10.5"}


async def test_sqlite_refuses_another_schema_version(tmp_path: Path) -> None:
    datadb, stordb = await open_storage("sqlite", tmp_path)
    await datadb.close()
    await stordb.close()
    with sqlite3.connect(tmp_path / DATADB_FILE) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE name = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="999"):
        await open_storage("sqlite", tmp_path)


async def test_sqlite_uses_wal_and_full_sync_for_datadb(tmp_path: Path) -> None:
    datadb, stordb = await open_storage("sqlite", tmp_path)
    try:
        with sqlite3.connect(tmp_path / DATADB_FILE) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await datadb.close()
        await stordb.close()


@pytest.mark.parametrize(
    ("kind", "data_dir", "options", "message"),
    [
        ("redis", None, {}, "planned but not implemented"),
        ("postgres", None, {}, "planned but not implemented"),
        ("mongo", None, {}, "unknown storage back end 'mongo'"),
        ("sqlite", None, {}, "needs a data directory"),
        ("memory", None, {"url": "x"}, "takes no options"),
    ],
)
async def test_open_storage_errors(
    kind: str, data_dir: Path | None, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await open_storage(kind, data_dir, **options)


async def test_open_storage_creates_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    datadb, stordb = await open_storage("sqlite", data_dir)
    await datadb.close()
    await stordb.close()
    assert sorted(p.name for p in data_dir.glob("*.sqlite3")) == [
        "datadb.sqlite3",
        "stordb.sqlite3",
    ]


# ------------------------------------------------------------------------------ model check
_KINDS = ["a", "b"]
_KEYS = ["", "x", "x1", "x2", "y"]
_mutations = st.lists(
    st.one_of(
        st.builds(
            Write,
            st.sampled_from(_KINDS),
            st.sampled_from(_KEYS),
            st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=3)),
        ),
        st.builds(DropKind, st.sampled_from(_KINDS)),
    ),
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(_mutations, max_size=4))
async def test_apply_matches_a_dict_model(datadb: DataDB, batches: list[list[Mutation]]) -> None:
    await datadb.apply([DropKind(kind) for kind in _KINDS])  # examples share the store
    model: dict[str, dict[str, Any]] = {kind: {} for kind in _KINDS}
    for batch in batches:
        await datadb.apply(batch)
        for mutation in batch:
            if isinstance(mutation, DropKind):
                model[mutation.kind].clear()
            elif mutation.value is None:
                model[mutation.kind].pop(mutation.key, None)
            else:
                model[mutation.kind][mutation.key] = mutation.value
    for kind in _KINDS:
        assert await datadb.get_all(kind) == model[kind]
        assert await datadb.keys(kind, "x") == sorted(k for k in model[kind] if k.startswith("x"))
