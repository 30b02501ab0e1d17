"""An engine-like stack for the FilterS/AttributeS/ChargerS tests: the services as loader
listeners on memory storage, their APIs on a MethodRegistry, an in-process client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.api import attributes as attributes_api
from core.api import chargers as chargers_api
from core.api import filters as filters_api
from core.attributes import AttributeService
from core.chargers import ChargerService
from core.config import GeneralConfig
from core.filters import CGREvent, EventView, FilterService, destination_ids_from
from core.rating.service import RatingService
from core.rpc import InProcessClient, MethodRegistry
from core.storage import DataDB, open_storage
from core.tariffplan import read_folder
from core.tariffplan.loader import TariffPlanLoader
from core.tariffplan.models import TariffPlan

TUTORIAL = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)  # CGRateS's tutorial plan, in shared/ beside the checkout
TENANT = "cgrates.org"


@dataclass
class Stack:
    datadb: DataDB
    rating: RatingService
    filters: FilterService
    attributes: AttributeService
    chargers: ChargerService
    loader: TariffPlanLoader
    registry: MethodRegistry
    client: InProcessClient

    async def call(self, method: str, params: Any) -> Any:
        return await self.client.call(method, params)


def services(
    clock: Any = None,
) -> tuple[RatingService, FilterService, AttributeService, ChargerService]:
    rating = RatingService()
    options: dict[str, Any] = {"clock": clock} if clock is not None else {}
    filters = FilterService(destination_ids_from(lambda: rating.rater.destinations), **options)
    attributes = AttributeService(filters, default_tenant=TENANT)
    chargers = ChargerService(filters, attributes, default_tenant=TENANT)
    return rating, filters, attributes, chargers


def serve(
    plan: TariffPlan, clock: Any = None
) -> tuple[FilterService, AttributeService, ChargerService]:
    """The services switched to ``plan`` directly (no storage)."""
    rating, filters, attributes, chargers = services(clock)
    for listener in (rating, filters, attributes, chargers):
        listener.prepare(plan)()
    return filters, attributes, chargers


async def build_stack(load_tutorial: bool = True) -> Stack:
    datadb, _ = await open_storage("memory", None)
    rating, filters, attributes, chargers = services()
    loader = TariffPlanLoader(datadb, [rating, filters, attributes, chargers])
    if load_tutorial:
        await loader.load_folder(TUTORIAL)
    registry = MethodRegistry()
    general = GeneralConfig()
    filters_api.register(registry, filters, loader, general)
    attributes_api.register(registry, attributes, loader, general)
    chargers_api.register(registry, chargers, attributes, loader, general)
    return Stack(
        datadb, rating, filters, attributes, chargers, loader, registry, InProcessClient(registry)
    )


def tutorial() -> TariffPlan:
    return read_folder(TUTORIAL)


def event(
    fields: dict[str, Any],
    *,
    tenant: str = TENANT,
    time: datetime | None = None,
    opts: dict[str, Any] | None = None,
) -> CGREvent:
    return CGREvent(tenant, "ev1", time, dict(fields), dict(opts or {}))


def view(fields: dict[str, Any], opts: dict[str, Any] | None = None) -> EventView:
    return EventView(dict(fields), dict(opts or {}))
