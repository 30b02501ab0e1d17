"""The shape every agent has, and the table of agents by name.

An agent package (``agents/<proto>/``) holds ``codec.py`` (bytes <-> messages, pure),
``transport.py`` (sockets, peers, retransmissions) and ``agent.py`` with one ``Agent`` subclass.
The subclass:

* is built by ``AgentFactory(context)`` -- usually the class itself -- and validates its own
  config keys there (``context.config.options``), raising ``ValueError`` for a bad one;
* ``start()``: opens its listeners; ``stop()``: stops taking new network requests and finishes
  the ones in progress (the runtime bounds how long it waits);
* turns each network request into engine calls through ``context.engine`` in its own
  ``handle(request) -> reply`` (its shape is the protocol's, so it is not declared here);
* answers the engine's callbacks (docs/agents.md) by overriding ``disconnect_session``,
  ``warn_disconnect``, ``get_active_session_ids`` and ``alter_session``. An agent that owns
  sessions must override the first and third; the defaults answer ``NOT_IMPLEMENTED``, as a
  CGRateS agent without that feature does.

Adding an agent is one entry in ``AGENT_FACTORIES``::

    "diameter": lazy_factory("agents.diameter.agent", "DiameterAgent"),

``lazy_factory`` imports the module only when that agent is built, so this module never imports
an agent package (no import cycle) and each process loads only its own agent's dependencies.
An agent outside this table is named in its config block: ``factory: "package.module:Class"``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from core.config import REPO_ROOT, AgentConfig
from core.rpc import CallContext, EngineClient, MethodRegistry, RpcError

AGENT_DISCONNECT_SESSION: Final = "AgentV1.DisconnectSession"
AGENT_WARN_DISCONNECT: Final = "AgentV1.WarnDisconnect"
AGENT_GET_ACTIVE_SESSION_IDS: Final = "AgentV1.GetActiveSessionIDs"
AGENT_ALTER_SESSION: Final = "AgentV1.AlterSession"
OK: Final = "OK"
ERR_NOT_IMPLEMENTED: Final = "NOT_IMPLEMENTED"


class UnknownAgentError(LookupError):
    """No factory for an agent name (or its ``factory`` path cannot be imported)."""


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an agent is built from: its config block, the engine client, its templates."""

    config: AgentConfig
    engine: EngineClient
    templates: Path | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def options(self) -> dict[str, Any]:
        """The agent's own config keys (everything but the common ones)."""
        return self.config.options

    def positive(self, key: str, default: float) -> float:
        """One of the agent's numeric options, which must be > 0."""
        value = self.options.get(key, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} {key} must be a number, not {value!r}") from None
        if number <= 0:
            raise ValueError(f"{self.name} {key} must be > 0")
        return number

    def templates_folder(self, package: str) -> Path:
        """The templates the config names, else the package's defaults (``templates/<package>``)."""
        return self.templates or REPO_ROOT / "templates" / package


class Agent(ABC):
    """Base of every agent: lifecycle and the engine's ``AgentV1.*`` callbacks."""

    def __init__(self, context: AgentContext) -> None:
        self.context = context
        self.engine = context.engine
        # Sees every template run (its matched processor, calls, trees): the dry-run tool's tap.
        self.observe_processing: Callable[[Any], None] | None = None

    @property
    def name(self) -> str:
        return self.context.name

    @abstractmethod
    async def start(self) -> None:
        """Opens the agent's listeners; raises if it cannot serve."""

    @abstractmethod
    async def stop(self) -> None:
        """Stops taking requests and finishes those in progress."""

    # ------------------------------------------------------------------ engine callbacks
    async def disconnect_session(self, args: Mapping[str, Any]) -> str:
        """``{"EventStart": {...}, "Reason": ...}``: cut the call off in the network."""
        raise RpcError(ERR_NOT_IMPLEMENTED)

    async def warn_disconnect(self, args: Mapping[str, Any]) -> str:
        """``{"EventStart": {...}}``: credit ends within this debit interval (optional)."""
        raise RpcError(ERR_NOT_IMPLEMENTED)

    async def get_active_session_ids(self) -> list[dict[str, str]]:
        """The calls the agent still has: ``[{"OriginID": ..., "OriginHost": ...}, ...]``."""
        raise RpcError(ERR_NOT_IMPLEMENTED)

    async def alter_session(self, args: Mapping[str, Any]) -> str:
        """``{"EventStart": {...}, ...changes}``: change the call in the network (CoA, RAR)."""
        raise RpcError(ERR_NOT_IMPLEMENTED)

    def register_callbacks(self, registry: MethodRegistry) -> None:
        """Binds the ``AgentV1.*`` names to this agent's handlers in ``registry`` (the one every
        engine connection serves, so a callback arrives whichever connection opened the call)."""

        async def disconnect(params: Any, ctx: CallContext) -> str:
            return await self.disconnect_session(_mapping(params))

        async def warn(params: Any, ctx: CallContext) -> str:
            return await self.warn_disconnect(_mapping(params))

        async def active(params: Any, ctx: CallContext) -> list[dict[str, str]]:
            return await self.get_active_session_ids()  # the engine sends "" as argument

        async def alter(params: Any, ctx: CallContext) -> str:
            return await self.alter_session(_mapping(params))

        registry.register(AGENT_DISCONNECT_SESSION, disconnect)
        registry.register(AGENT_WARN_DISCONNECT, warn)
        registry.register(AGENT_GET_ACTIVE_SESSION_IDS, active)
        registry.register(AGENT_ALTER_SESSION, alter)


def _mapping(params: Any) -> Mapping[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"expected an object, got {type(params).__name__}")
    return params


AgentFactory = Callable[[AgentContext], Agent]


def lazy_factory(module: str, attribute: str) -> AgentFactory:
    """A factory that imports ``module`` and calls ``module.attribute(context)`` when used."""

    def build(context: AgentContext) -> Agent:
        factory: AgentFactory = getattr(importlib.import_module(module), attribute)
        return factory(context)

    return build


AGENT_FACTORIES: dict[str, AgentFactory] = {
    "diameter": lazy_factory("agents.diameter.agent", "DiameterAgent"),
    "radius": lazy_factory("agents.radius.agent", "RadiusAgent"),
    "dns": lazy_factory("agents.dns.agent", "DnsAgent"),
    "sip": lazy_factory("agents.sip.agent", "SipAgent"),
}


def resolve_factory(config: AgentConfig) -> AgentFactory:
    """The factory for ``config``: its ``factory`` path, else ``AGENT_FACTORIES[config.name]``."""
    if config.factory:
        module, _, attribute = config.factory.partition(":")
        try:
            found: AgentFactory = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise UnknownAgentError(
                f"agent {config.name!r}: cannot load factory {config.factory!r}: {exc}"
            ) from None
        return found
    factory = AGENT_FACTORIES.get(config.name)
    if factory is None:
        known = ", ".join(sorted(AGENT_FACTORIES)) or "none yet"
        raise UnknownAgentError(f"unknown agent {config.name!r} (known: {known})")
    return factory
