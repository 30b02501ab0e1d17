"""Fixtures shared by the unit tests: the tutorial plan, its Rater, an AccountService on memory
storage (folders with their own conftest, e.g. storage/, override what they redefine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.accounts import AccountService
from core.rating import Rater
from core.storage import DataDB, open_storage
from core.tariffplan import read_folder
from core.tariffplan.models import TariffPlan

TUTORIAL = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout


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
