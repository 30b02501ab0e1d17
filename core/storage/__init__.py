"""Storage: one interface (``DataDB``, ``StorDB``), several back ends, one factory.

>>> datadb, stordb = await open_storage("sqlite", Path("/var/lib/chargeflow"))

Back ends: ``"sqlite"`` (embedded default; files ``datadb.sqlite3`` and ``stordb.sqlite3`` in
the data directory) and ``"memory"`` (tests; nothing persists). ``"redis"`` and ``"postgres"``
are planned and will plug in here behind the same interface and test suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from core.storage.base import (
    DATADB_SCHEMA_VERSION,
    STORDB_SCHEMA_VERSION,
    DataDB,
    DropKind,
    DuplicateError,
    Mutation,
    SchemaVersionError,
    StorageClosedError,
    StorageError,
    StorDB,
    Write,
)
from core.storage.cdr import COST_NOT_RATED, Cdr, CdrFilter
from core.storage.memory import MemoryDataDB, MemoryStorDB
from core.storage.sqlite import DATADB_FILE, STORDB_FILE, SqliteDataDB, SqliteStorDB

BACKENDS: Final = ("sqlite", "memory")
PLANNED_BACKENDS: Final = ("redis", "postgres")


async def open_storage(kind: str, data_dir: Path | None, **options: Any) -> tuple[DataDB, StorDB]:
    """Opens the DataDB and StorDB of back end ``kind``.

    Async because network back ends connect (and check their schema version) when opened.
    ``data_dir`` is required by ``"sqlite"`` (created if missing) and ignored by ``"memory"``.
    Neither takes options yet; unknown options are refused rather than silently ignored.
    Raises ValueError for an unknown back end or bad arguments, and StorageError (or its
    SchemaVersionError) when a store cannot be opened.
    """
    if options:
        raise ValueError(f"storage back end {kind!r} takes no options: {sorted(options)}")
    if kind == "memory":
        return MemoryDataDB(), MemoryStorDB()
    if kind == "sqlite":
        if data_dir is None:
            raise ValueError("the sqlite storage back end needs a data directory")
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        datadb = SqliteDataDB(directory / DATADB_FILE)
        try:
            stordb = SqliteStorDB(directory / STORDB_FILE)
        except BaseException:
            await datadb.close()
            raise
        return datadb, stordb
    if kind in PLANNED_BACKENDS:
        raise ValueError(
            f"storage back end {kind!r} is planned but not implemented yet; "
            f"available: {', '.join(BACKENDS)}"
        )
    raise ValueError(f"unknown storage back end {kind!r}; available: {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "COST_NOT_RATED",
    "DATADB_SCHEMA_VERSION",
    "PLANNED_BACKENDS",
    "STORDB_SCHEMA_VERSION",
    "Cdr",
    "CdrFilter",
    "DataDB",
    "DropKind",
    "DuplicateError",
    "MemoryDataDB",
    "MemoryStorDB",
    "Mutation",
    "SchemaVersionError",
    "SqliteDataDB",
    "SqliteStorDB",
    "StorDB",
    "StorageClosedError",
    "StorageError",
    "Write",
    "open_storage",
]
