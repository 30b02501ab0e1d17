"""CoreSv1 (status) and the ``*.Ping`` of every service."""

from __future__ import annotations

import os
import platform
import time
from typing import TYPE_CHECKING, Any

from core.rpc import CallContext, MethodRegistry
from core.tariffplan.kinds import ALL_KINDS
from core.tariffplan.loader import items_of
from core.types import SECOND

if TYPE_CHECKING:
    from core.engine import Engine

PONG = "Pong"
# Services whose Ping answers now; the subsystems behind some arrive in later issues, but clients
# probe them at start-up and CGRateS answers every Ping of a registered service.
PING_SERVICES = (
    "CoreSv1", "APIerSv1", "APIerSv2", "SessionSv1", "CDRsV1", "CDRsV2", "AttributeSv1",
    "ChargerSv1", "RouteSv1", "ResourceSv1", "StatSv1", "ThresholdSv1", "RALsV1", "CacheSv1",
)  # fmt: skip


def register(registry: MethodRegistry, engine: Engine) -> None:
    def ping(params: Any, ctx: CallContext) -> str:
        return PONG

    def status(params: Any, ctx: CallContext) -> dict[str, Any]:
        from core.engine import VERSION

        now = time.time()
        plan = engine.loader.current
        return {
            "NodeID": platform.node(),
            "Version": f"chargeflow@{VERSION}",
            "PythonVersion": platform.python_version(),
            "PID": os.getpid(),
            "RunningSince": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(engine.started_at)),
            "Uptime": int((now - engine.started_at) * SECOND),
            "Storage": engine.config.storage.type,
            "Counters": engine.server.status(),
            "TariffPlan": {
                kind: len(items_of(plan, kind)) for kind in ALL_KINDS if items_of(plan, kind)
            },
        }

    for service in PING_SERVICES:
        registry.register(f"{service}.Ping", ping)
    registry.register("CoreSv1.Status", status)
