"""A whole engine on memory storage with CGRateS's tutorial plan loaded and its account actions
done (1001..1003 hold 10 units of *monetary), every API method registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from core.api import register_all
from core.config import load_config
from core.engine import Engine
from tests.unit.conftest import TUTORIAL


@pytest.fixture
async def tutorial_engine() -> AsyncIterator[Engine]:
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
