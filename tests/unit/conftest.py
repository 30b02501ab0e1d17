"""Fixtures shared by the unit tests: the tutorial plan, its Rater, an AccountService on memory
storage (folders with their own conftest, e.g. storage/, override what they redefine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from core.accounts import AccountService
from core.api import register_all
from core.config import load_config
from core.engine import Engine
from core.rating import Rater
from core.rpc import InProcessClient
from core.storage import DataDB, open_storage
from core.tariffplan import read_folder
from core.tariffplan.models import TariffPlan

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
TUTORIAL = REPO.parent / "shared/tariffplans/cgrates_tutorial"  # CGRateS's, beside the checkout
DEMO = REPO / "config/tariffplans/demo"  # what scripts/run loads


@pytest.fixture(scope="session")
def tutorial_plan() -> TariffPlan:
    return read_folder(TUTORIAL)


@pytest.fixture(scope="session")
def rater(tutorial_plan: TariffPlan) -> Rater:
    return Rater.from_plan(tutorial_plan)


@pytest.fixture
async def datadb() -> AsyncIterator[DataDB]:
    data, stor = await open_storage("memory", None)
    yield data
    await data.close()
    await stor.close()


@pytest.fixture
def accounts(datadb: DataDB, rater: Rater, tutorial_plan: TariffPlan) -> AccountService:
    return AccountService(datadb, lambda: rater, lambda: tutorial_plan.timings)


@asynccontextmanager
async def started_engine(folder: Path) -> AsyncIterator[Engine]:
    """A whole engine started as ``chargeflow engine`` starts it (sessions, scheduler), on
    memory storage with ``folder`` loaded and no listeners."""
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        engine=replace(config.engine, rpc_json_listen=None, http_listen=None),
        tariffplans=replace(config.tariffplans, load_on_start=(folder,)),
    )
    engine = Engine(config)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


@asynccontextmanager
async def engine_client(folder: Path) -> AsyncIterator[InProcessClient]:
    """A whole engine (default config, memory storage) with ``folder`` loaded, reached through
    the in-process client: every registered API method, no sockets."""
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        tariffplans=replace(config.tariffplans, load_on_start=()),
    )
    engine = Engine(config)
    await engine.open_storage()
    await engine.loader.load_folder(folder)
    register_all(engine.registry, engine)
    try:
        yield InProcessClient(engine.registry)
    finally:
        await engine.stop()


@pytest.fixture
async def tutorial_client() -> AsyncIterator[InProcessClient]:
    async with engine_client(TUTORIAL) as client:
        yield client


@pytest.fixture
async def tutorial_engine() -> AsyncIterator[Engine]:
    """The whole engine with the tutorial plan loaded and its account actions done (1001..1003
    hold 10 units of *monetary in balance ``test``), every API method registered."""
    config = load_config()
    plans = replace(config.tariffplans, load_on_start=(TUTORIAL,))
    engine = Engine(
        replace(config, storage=replace(config.storage, type="memory"), tariffplans=plans)
    )
    await engine.open_storage()
    await engine.loader.load_folder(TUTORIAL)
    await engine.actions.settle()
    register_all(engine.registry, engine)
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
async def settled_tutorial_client(tutorial_engine: Engine) -> InProcessClient:
    return InProcessClient(tutorial_engine.registry)


@pytest.fixture
async def demo_client() -> AsyncIterator[InProcessClient]:
    async with engine_client(DEMO) as client:
        yield client
