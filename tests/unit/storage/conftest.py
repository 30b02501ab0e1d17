"""Storage back ends under test: every test taking ``backend`` (or ``datadb``/``stordb``) runs
once per back end. Redis and PostgreSQL join by adding their names here (and to PERSISTENT)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.storage import DataDB, StorDB, open_storage

BACKENDS = ["sqlite", "memory"]
PERSISTENT = ["sqlite"]  # back ends whose data survives close() and reopen


@dataclass
class Backend:
    """Opens (and reopens) one back end's stores in one data directory."""

    name: str
    data_dir: Path
    opened: list[DataDB | StorDB] = field(default_factory=list)

    async def open(self) -> tuple[DataDB, StorDB]:
        datadb, stordb = await open_storage(self.name, self.data_dir)
        self.opened += [datadb, stordb]
        return datadb, stordb

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened = Backend(request.param, tmp_path)
    yield opened
    await opened.close_all()


@pytest.fixture(params=PERSISTENT)
async def persistent_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    opened = Backend(request.param, tmp_path)
    yield opened
    await opened.close_all()


@pytest.fixture
async def datadb(backend: Backend) -> DataDB:
    return (await backend.open())[0]


@pytest.fixture
async def stordb(backend: Backend) -> StorDB:
    return (await backend.open())[1]
