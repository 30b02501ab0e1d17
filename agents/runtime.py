"""Runs one agent: its engine pool, the agent itself, signals and a bounded clean stop.

``chargeflow agent NAME`` calls ``run_agent`` in a process of its own; ``chargeflow up`` starts
one such process per enabled agent, or (``--single-process``) runs each agent in its own process
beside the engine, calling it in-process (no sockets between them, callbacks included).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from typing import Final

from agents.base import (
    AGENT_FACTORIES,
    Agent,
    AgentContext,
    UnknownAgentError,
    resolve_factory,
)
from core.config import AgentConfig, Config
from core.rpc import EngineClient, EnginePool, InProcessClient, MethodRegistry

log = logging.getLogger("chargeflow.agent")

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1  # the agent could not start
EXIT_USAGE: Final = 2  # unknown or disabled agent, or a bad agent config
AGENT_STOP_TIMEOUT: Final = 10.0
"""Seconds ``Agent.stop()`` gets to finish the requests in progress."""
DRAIN_TIMEOUT: Final = 5.0
"""Seconds engine calls still in flight after the agent stopped get to finish; the total stays
under ``chargeflow up``'s wait before it kills an agent."""
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
SUPERVISOR_PID_ENV: Final = "CHARGEFLOW_SUPERVISOR_PID"
"""Set by ``chargeflow up`` for its agents: an agent whose parent is no longer that process
(``up`` was killed with SIGKILL) stops itself instead of lingering."""
SUPERVISOR_CHECK_INTERVAL: Final = 1.0
GC_GEN0_THRESHOLD: Final = 10_000
"""Allocations between young-generation collections in an agent process (CPython: 700). A
request allocates a few hundred objects (AVPs, trees, the CGREvent), so the default collects
every few requests; the engine process does the same (core/cli.py)."""


class AgentSetupError(Exception):
    """The agent cannot be run as configured (exit code 2)."""


def agent_config(name: str, config: Config) -> AgentConfig:
    """The enabled config block of agent ``name``; raises ``AgentSetupError``."""
    block = config.agents.get(name)
    if block is None:
        if name not in AGENT_FACTORIES:
            known = ", ".join(sorted(set(AGENT_FACTORIES) | set(config.agents))) or "none"
            raise AgentSetupError(f"unknown agent {name!r} (known: {known})")
        raise AgentSetupError(f"agent {name!r} is disabled: {config.source} has no agents.{name}")
    if not block.enabled:
        raise AgentSetupError(
            f"agent {name!r} is disabled: set agents.{name}.enabled: true in {config.source}"
        )
    return block


def build_pool(config: AgentConfig, handlers: MethodRegistry) -> EnginePool:
    return EnginePool(
        [(address.host, address.port) for address in config.engines],
        handlers,
        strategy=config.strategy,
        connections=config.connections,
        reply_timeout=config.reply_timeout,
        connect_timeout=config.connect_timeout,
    )


async def run_agent(
    name: str,
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    engine: MethodRegistry | None = None,
) -> int:
    """Runs agent ``name`` until ``stop`` is set -- or, without ``stop``, until SIGINT/SIGTERM --
    then stops it cleanly. Returns the process exit code (0 after a clean stop). With
    ``engine`` (the registry of an engine in this process) the agent calls it in-process and
    the engine calls the agent back the same way; else it reaches its engines over TCP."""
    try:
        settings = agent_config(name, config)
        factory = resolve_factory(settings)
    except (AgentSetupError, UnknownAgentError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    handlers = MethodRegistry()
    pool: EnginePool | None = None
    inproc: InProcessClient | None = None
    client: EngineClient
    if engine is None:
        client = pool = build_pool(settings, handlers)
    else:
        client = inproc = InProcessClient(engine, f"agent:{name}", handlers)
    try:
        agent = factory(AgentContext(settings, client, settings.templates))
    except (TypeError, ValueError) as exc:  # the agent rejected its own config keys
        log.error("agent %r: invalid config: %s", name, exc)
        return EXIT_USAGE
    agent.register_callbacks(handlers)

    loop = asyncio.get_running_loop()
    own_signals = stop is None
    if stop is None:
        stop = asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
    watcher = _watch_supervisor(stop)
    try:
        if pool is not None:
            await pool.start()  # engines that are down are retried in the background
        try:
            await agent.start()
        except Exception:
            log.exception("agent %r failed to start", name)
            await _stop_agent(agent)
            return EXIT_FAILURE
        if own_signals:  # a process of its own (``chargeflow agent``), not a test's loop
            settle_garbage_collector()
        if pool is None:
            log.info("agent %s ready (the engine in this process)", name)
        else:
            log.info(
                "agent %s ready (engines %s, %s)",
                name,
                ", ".join(str(address) for address in settings.engines),
                settings.strategy,
            )
        await stop.wait()
        log.info("agent %s stopping", name)
        await _stop_agent(agent)
        if pool is not None:
            await pool.drain(DRAIN_TIMEOUT)
        return EXIT_OK
    finally:
        if watcher is not None:
            watcher.cancel()
        if pool is not None:
            await pool.close()
        if inproc is not None:
            inproc.close()
        if own_signals:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)


def settle_garbage_collector() -> None:
    """After start-up: freeze what was loaded (templates, the Diameter dictionary, compiled
    closures) so collections never walk it again, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def _stop_agent(agent: Agent) -> None:
    try:
        async with asyncio.timeout(AGENT_STOP_TIMEOUT):
            await agent.stop()
    except TimeoutError:
        log.warning("agent %s did not stop within %.0fs", agent.name, AGENT_STOP_TIMEOUT)
    except Exception:
        log.exception("agent %s failed while stopping", agent.name)


def _watch_supervisor(stop: asyncio.Event) -> asyncio.Task[None] | None:
    """Under ``chargeflow up``: sets ``stop`` once ``up`` is gone (see SUPERVISOR_PID_ENV)."""
    value = os.environ.get(SUPERVISOR_PID_ENV, "")
    if not value.isdigit():
        return None
    supervisor = int(value)

    async def watch() -> None:
        while not stop.is_set():
            if os.getppid() != supervisor:
                log.warning("chargeflow up (pid %d) is gone: stopping", supervisor)
                stop.set()
                return
            await asyncio.sleep(SUPERVISOR_CHECK_INTERVAL)

    return asyncio.get_running_loop().create_task(watch(), name="supervisor-watch")
