"""Every method the engine answers is documented in docs/api.md."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.api import register_all
from core.config import load_config
from core.engine import Engine

API_DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


async def test_every_registered_method_is_in_the_api_reference() -> None:
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        tariffplans=replace(config.tariffplans, load_on_start=()),
    )
    engine = Engine(config)
    await engine.open_storage()
    try:
        register_all(engine.registry, engine)
        # Case-insensitive: the id listers answer as both ...Ids and ...IDs, documented once.
        documented = API_DOC.read_text().lower()
        missing = sorted(
            name
            for name in engine.registry.names()
            if name.split(".", 1)[1].lower() not in documented
        )
        assert not missing, f"undocumented methods: {missing}"
    finally:
        await engine.stop()
