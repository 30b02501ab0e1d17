"""Thin façades: CGRateS method names and wire shapes ⇄ engine subsystems."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.api import accounts as accounts_api
from core.api import actions as actions_api
from core.api import apier, core_service
from core.api import attributes as attributes_api
from core.api import cdrs as cdrs_api
from core.api import chargers as chargers_api
from core.api import filters as filters_api
from core.api import routes as routes_api
from core.api import sessions as sessions_api
from core.rpc import MethodRegistry

if TYPE_CHECKING:
    from core.engine import Engine


def register_all(registry: MethodRegistry, engine: Engine) -> None:
    core_service.register(registry, engine)
    apier.register(registry, engine)
    accounts_api.register(registry, engine.accounts, engine.actions, engine.config.general)
    actions_api.register(registry, engine.actions, engine.loader, engine.config.general)
    general = engine.config.general
    filters_api.register(registry, engine.filters, engine.loader, general)
    attributes_api.register(registry, engine.attributes, engine.loader, general)
    chargers_api.register(registry, engine.chargers, engine.attributes, engine.loader, general)
    routes_api.register(registry, engine.routes, engine.loader, general)
    sessions_api.register(
        registry,
        engine.sessions,
        engine.cdrs,
        engine.attributes_of,
        engine.event_passes,
        default_tenant=general.default_tenant,
        timezone=general.default_timezone,
        routes_of=routes_api.session_routes(engine.routes),
    )
    cdrs_api.register(
        registry,
        engine.cdrs,
        default_tenant=general.default_tenant,
        timezone=general.default_timezone,
    )
