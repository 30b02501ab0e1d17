"""agents.runtime and agents.base: a tiny echo agent run by ``run_agent`` against an engine in
miniature (RpcServer + MethodRegistry on 127.0.0.1), plus the ``agents:`` config section."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agents import runtime
from agents.base import (
    AGENT_FACTORIES,
    OK,
    Agent,
    AgentContext,
    UnknownAgentError,
    resolve_factory,
)
from agents.runtime import EXIT_OK, EXIT_USAGE, run_agent
from core.config import REPO_ROOT, Address, AgentConfig, Config, ConfigError, load_config
from core.rpc import CallContext, MethodRegistry, RpcConnection, RpcError, RpcServer

WAIT_S = 5.0


class EchoAgent(Agent):
    """Forwards each request to the engine (``SessionSv1.InitiateSession``), keeps the calls."""

    instances: list[EchoAgent] = []  # noqa: RUF012 - the test's handle on what run_agent built

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        if "bad" in context.options:
            raise ValueError("option 'bad' is not allowed")
        self.started = asyncio.Event()
        self.stopped = False
        self.stop_delay = 0.0
        self.disconnected: list[dict[str, Any]] = []
        self.altered: list[dict[str, Any]] = []
        self.calls: set[str] = set()
        EchoAgent.instances.append(self)

    async def start(self) -> None:
        self.started.set()

    async def stop(self) -> None:
        await asyncio.sleep(self.stop_delay)
        self.stopped = True

    async def handle(self, request: dict[str, Any]) -> Any:
        self.calls.add(request["ID"])
        return await self.engine.call("SessionSv1.InitiateSession", request)

    async def disconnect_session(self, args: Mapping[str, Any]) -> str:
        self.disconnected.append(dict(args))
        self.calls.discard(args["EventStart"]["OriginID"])
        return OK

    async def get_active_session_ids(self) -> list[dict[str, str]]:
        return [{"OriginID": call, "OriginHost": self.name} for call in sorted(self.calls)]

    async def alter_session(self, args: Mapping[str, Any]) -> str:
        self.altered.append(dict(args))
        return OK


class MiniEngine:
    """Remembers which connection opened each session, as the engine does."""

    def __init__(self) -> None:
        self.owners: dict[str, RpcConnection] = {}
        registry = MethodRegistry()
        registry.register("SessionSv1.InitiateSession", self.initiate)
        self.server = RpcServer(registry)
        self.port = 0

    async def start(self, port: int = 0) -> MiniEngine:
        _, self.port = await self.server.start_tcp("127.0.0.1", port)
        return self

    async def initiate(self, params: Any, ctx: CallContext) -> dict[str, Any]:
        assert ctx.connection is not None
        self.owners[params["ID"]] = ctx.connection
        await asyncio.sleep(params.get("Sleep", 0))
        return {"MaxUsage": 60_000_000_000}


def agent_config(port: int, **changes: Any) -> Config:
    echo = AgentConfig(name="echo", enabled=True, engines=(Address("127.0.0.1", port),))
    return Config(agents={"echo": replace(echo, **changes)})


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def echo_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(AGENT_FACTORIES, "echo", EchoAgent)
    EchoAgent.instances = []


@pytest.fixture
async def engine() -> AsyncIterator[MiniEngine]:
    mini = await MiniEngine().start()
    yield mini
    await mini.server.close(grace=0)


async def started_agent(task: asyncio.Task[int]) -> EchoAgent:
    await eventually(lambda: bool(EchoAgent.instances) or task.done())
    agent = EchoAgent.instances[0]
    async with asyncio.timeout(WAIT_S):
        await agent.started.wait()
    return agent


async def test_requests_reach_the_engine_and_callbacks_reach_the_agent(
    engine: MiniEngine,
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent("echo", agent_config(engine.port), stop=stop))
    agent = await started_agent(task)
    assert len(engine.server.connections) == 2  # connections per engine: 2 by default
    for n in range(4):
        reply = await agent.handle({"ID": f"call-{n}", "Event": {"OriginID": f"call-{n}"}})
        assert reply == {"MaxUsage": 60_000_000_000}
    # The engine calls back on the connection each session was opened on.
    owners = {id(connection) for connection in engine.owners.values()}
    assert len(owners) >= 1
    owner = engine.owners["call-2"]
    event = {"EventStart": {"OriginID": "call-2"}, "Reason": "FORCED_DISCONNECT"}
    assert await owner.call("AgentV1.DisconnectSession", event) == OK
    assert agent.disconnected == [event]
    active = await owner.call("AgentV1.GetActiveSessionIDs", "")
    assert [item["OriginID"] for item in active] == ["call-0", "call-1", "call-3"]
    with pytest.raises(RpcError, match=r"^NOT_IMPLEMENTED$"):  # the base's default
        await owner.call("AgentV1.WarnDisconnect", {"EventStart": {}})
    change = {"EventStart": {"OriginID": "call-1"}, "SessionTimeout": 30}
    other = next(c for c in engine.server.connections if c is not owner)  # any connection
    assert await other.call("AgentV1.AlterSession", change) == OK
    assert agent.altered == [change]
    with pytest.raises(RpcError, match="invalid params"):
        await owner.call("AgentV1.DisconnectSession", "not an object")
    stop.set()
    assert await task == EXIT_OK
    assert agent.stopped
    await eventually(lambda: not engine.server.connections)


async def test_sigterm_stops_the_agent_cleanly(engine: MiniEngine) -> None:
    task = asyncio.create_task(run_agent("echo", agent_config(engine.port)))
    agent = await started_agent(task)  # the signal handlers are installed by now
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(WAIT_S):
        assert await task == EXIT_OK
    assert agent.stopped


async def test_engine_calls_in_flight_are_drained_before_closing(engine: MiniEngine) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent("echo", agent_config(engine.port), stop=stop))
    agent = await started_agent(task)
    pending = asyncio.create_task(agent.handle({"ID": "slow", "Sleep": 0.2}))
    await eventually(lambda: "slow" in engine.owners)
    stop.set()
    assert await task == EXIT_OK
    assert await pending == {"MaxUsage": 60_000_000_000}  # answered, not cut off


async def test_a_stuck_stop_is_bounded(engine: MiniEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "AGENT_STOP_TIMEOUT", 0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent("echo", agent_config(engine.port), stop=stop))
    agent = await started_agent(task)
    agent.stop_delay = 60
    stop.set()
    async with asyncio.timeout(WAIT_S):
        assert await task == EXIT_OK


async def test_the_agent_starts_before_the_engine_and_connects_later() -> None:
    engine = await MiniEngine().start()
    port = engine.port
    await engine.server.close(grace=0)
    stop = asyncio.Event()
    config = agent_config(port, connect_timeout=0.2)
    task = asyncio.create_task(run_agent("echo", config, stop=stop))
    agent = await started_agent(task)
    engine = await MiniEngine().start(port)
    try:
        await eventually(lambda: len(engine.server.connections) == 2)
        assert await agent.handle({"ID": "late"}) == {"MaxUsage": 60_000_000_000}
        stop.set()
        assert await task == EXIT_OK
    finally:
        await engine.server.close(grace=0)


async def test_unknown_disabled_and_misconfigured_agents_exit_2(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    assert await run_agent("nosuch", Config()) == EXIT_USAGE
    assert "unknown agent 'nosuch'" in caplog.text
    assert await run_agent("echo", agent_config(1, enabled=False)) == EXIT_USAGE
    assert "agent 'echo' is disabled" in caplog.text
    assert await run_agent("echo", agent_config(1, options={"bad": 1})) == EXIT_USAGE
    assert "option 'bad' is not allowed" in caplog.text
    no_factory = Config(agents={"other": AgentConfig(name="other", enabled=True)})
    assert await run_agent("other", no_factory) == EXIT_USAGE


async def test_a_broken_template_folder_stops_the_agent_naming_file_processor_and_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO_ROOT / "templates" / "diameter", templates)
    voice = templates / "voice.yaml"
    good = '{tag: Destination, path: "*cgreq.Destination", type: "*variable"'
    assert good in voice.read_text()
    voice.write_text(voice.read_text().replace(good, good.replace("*variable", "*variabel")))
    config = write(tmp_path / "chargeflow.yaml", f"""
agents:
  diameter:
    enabled: true
    listen: 127.0.0.1:{free_port()}
    templates: {templates}
    data_dir: {tmp_path / "data"}
""")  # fmt: skip
    caplog.set_level(logging.ERROR)
    async with asyncio.timeout(WAIT_S):
        assert await run_agent("diameter", load_config(config)) == EXIT_USAGE
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = record.getMessage()
    assert str(voice) in message
    assert "processor 'template cf_voice_event'" in message
    assert "field 'Destination'" in message and "'*variabel'" in message


def test_a_factory_path_loads_an_agent_outside_the_table() -> None:
    path = AgentConfig(name="x", factory=f"{__name__}:EchoAgent")
    assert resolve_factory(path) is EchoAgent
    assert resolve_factory(AgentConfig(name="echo")) is EchoAgent  # from AGENT_FACTORIES
    with pytest.raises(UnknownAgentError, match="cannot load factory"):
        resolve_factory(AgentConfig(name="x", factory="no.such.module:Agent"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ------------------------------------------------------------------------ agents: config
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_default_config_enables_the_agents_that_are_ready() -> None:
    """The README's main command (``chargeflow up``) runs the engine plus these agents."""
    agents = load_config().agents
    assert sorted(name for name, agent in agents.items() if agent.enabled) == [
        "diameter",
        "dns",
        "radius",
        "sip",
    ]
    assert str(agents["diameter"].listen) == "127.0.0.1:3868"


def test_agent_block_common_keys_are_typed_and_the_rest_is_the_agents(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path / "c.yaml",
            "engine: {rpc_json_listen: 127.0.0.1:3012}\n"
            "agents:\n"
            "  echo:\n"
            "    enabled: true\n"
            "    strategy: round_robin\n"
            "    connections: 3\n"
            "    reply_timeout: 500ms\n"
            "    listen: 127.0.0.1:3868\n"
            "    templates: tpl/echo\n"
            "    origin_host: agent.example\n"
            "  pinned:\n"
            "    engines: [10.0.0.1:2012, 10.0.0.2:2012]\n",
        )
    )
    echo = config.agents["echo"]
    assert echo.enabled and echo.strategy == "round_robin" and echo.connections == 3
    assert echo.engines == (Address("127.0.0.1", 3012),)  # the engine's own listener
    assert echo.reply_timeout == 0.5 and echo.connect_timeout == 1.0
    assert echo.listen == Address("127.0.0.1", 3868)
    assert echo.templates == (tmp_path / "tpl" / "echo").resolve()
    assert echo.options == {"origin_host": "agent.example"}
    pinned = config.agents["pinned"]
    assert not pinned.enabled
    assert pinned.engines == (Address("10.0.0.1", 2012), Address("10.0.0.2", 2012))


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{strategy: random}", "strategy"),
        ("{connections: 0}", "connections"),
        ("{enabled: 'yes'}", "enabled"),
        ("{reply_timeout: 2}", "duration"),
        ("{engines: [nohost]}", "HOST:PORT"),
        ("{factory: justamodule}", "module:attribute"),
        ("[1, 2]", "mapping"),
    ],
)
def test_bad_agent_blocks_are_named(tmp_path: Path, block: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        load_config(write(tmp_path / "c.yaml", f"agents:\n  echo: {block}\n"))
    assert "agents.echo" in str(error.value)


def test_an_agent_process_settles_the_garbage_collector() -> None:
    import gc

    from agents.runtime import GC_GEN0_THRESHOLD, settle_garbage_collector

    threshold = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0  # what was loaded is out of the collections' way
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
