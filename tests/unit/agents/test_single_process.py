"""``run_agent`` with the engine in the same process (``chargeflow up --single-process``): the
agent calls the real engine through ``InProcessClient`` and the engine calls the agent back
(``AgentV1.*``) through its ``InProcessLink``, with no socket between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.base import AGENT_FACTORIES, OK, Agent, AgentContext
from agents.runtime import EXIT_OK, run_agent
from core.config import AgentConfig, Config
from core.engine import Engine
from core.rpc import TRANSPORT_INTERNAL, CallContext, InProcessClient, MethodRegistry
from core.rpc.connection import RpcDisconnectedError
from tests.unit.conftest import started_engine

FAST_PLAN = Path(__file__).parents[1] / "sessions" / "fast_plan"  # 0.01 per 100 ms
TENANT = "cgrates.org"
WAIT_S = 5.0
ADMIN = CallContext(TRANSPORT_INTERNAL, "test", None)


class CallAgent(Agent):
    """Opens prepaid calls on the engine; remembers the cut-offs the engine asks for."""

    instances: list[CallAgent] = []  # noqa: RUF012 - the test's handle on what run_agent built

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        self.started = asyncio.Event()
        self.cut = asyncio.Event()
        self.live: set[str] = set()
        self.disconnects: list[dict[str, Any]] = []
        CallAgent.instances.append(self)

    async def start(self) -> None:
        self.started.set()

    async def stop(self) -> None:
        return None

    async def handle(self, origin_id: str) -> Any:
        event = {"Account": "alice", "Destination": "5551234", "OriginID": origin_id,
                 "RequestType": "*prepaid", "AnswerTime": "2025-01-01T10:00:00Z",
                 "Usage": "1s"}  # fmt: skip
        reply = await self.engine.call(
            "SessionSv1.InitiateSession", {"InitSession": True, "Event": event}
        )
        self.live.add(origin_id)
        return reply

    async def disconnect_session(self, args: Mapping[str, Any]) -> str:
        self.disconnects.append(dict(args))
        self.live.discard(args["EventStart"]["OriginID"])
        self.cut.set()
        return OK

    async def get_active_session_ids(self) -> list[dict[str, str]]:
        return [{"OriginID": call, "OriginHost": ""} for call in sorted(self.live)]


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with started_engine(FAST_PLAN) as started:
        balance = {"Tenant": TENANT, "Account": "alice", "BalanceType": "*monetary", "Value": "10"}
        await started.registry.call("APIerSv1.SetBalance", balance, ADMIN)
        yield started


@pytest.fixture(autouse=True)
def call_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(AGENT_FACTORIES, "calls", CallAgent)
    CallAgent.instances = []


async def running_agent(engine: Engine, stop: asyncio.Event) -> tuple[CallAgent, asyncio.Task[int]]:
    config = Config(agents={"calls": AgentConfig(name="calls", enabled=True)})
    task = asyncio.create_task(run_agent("calls", config, stop=stop, engine=engine.registry))
    async with asyncio.timeout(WAIT_S):
        while not CallAgent.instances:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        await CallAgent.instances[0].started.wait()
    return CallAgent.instances[0], task


async def money(engine: Engine) -> Decimal:
    reply = await engine.registry.call(
        "APIerSv2.GetAccount", {"Tenant": TENANT, "Account": "alice"}, ADMIN
    )
    return sum((Decimal(str(b["Value"])) for b in reply["BalanceMap"]["*monetary"]), Decimal(0))


async def test_the_agent_charges_in_process_and_the_engine_calls_it_back(engine: Engine) -> None:
    stop = asyncio.Event()
    agent, task = await running_agent(engine, stop)
    for origin in ("call-1", "call-2"):
        assert (await agent.handle(origin))["MaxUsage"] == 1_000_000_000
    assert await money(engine) == Decimal("9.8")
    assert engine.sessions.sessions  # the engine knows whose they are ...

    # ... so a forced disconnect becomes the agent's DisconnectSession, without a socket.
    forced = {"Tenant": TENANT, "Filters": ["*string:~*req.OriginID:call-1"]}
    assert await engine.registry.call("SessionSv1.ForceDisconnect", forced, ADMIN) == OK
    async with asyncio.timeout(WAIT_S):
        await agent.cut.wait()
    assert agent.disconnects[0]["EventStart"]["OriginID"] == "call-1"

    # SyncSessions asks the agent (GetActiveSessionIDs) and keeps the call it still has.
    await engine.registry.call("SessionSv1.SyncSessions", {}, ADMIN)
    left = await engine.registry.call("SessionSv1.GetActiveSessions", {}, ADMIN)
    assert [row["OriginID"] for row in left] == ["call-2"]

    stop.set()
    async with asyncio.timeout(WAIT_S):
        assert await task == EXIT_OK


async def test_a_stopped_in_process_agent_looks_gone_to_the_engine(engine: Engine) -> None:
    """Once the agent stopped, its link is closed: the engine does not call into a stopped
    agent (a cut-off then just ends the session), as with a closed TCP connection."""
    stop = asyncio.Event()
    agent, task = await running_agent(engine, stop)
    await agent.handle("call-1")
    (session,) = engine.sessions.sessions.values()
    link = session.connection
    assert link is not None and not link.closed
    stop.set()
    async with asyncio.timeout(WAIT_S):
        assert await task == EXIT_OK
    assert link.closed
    with pytest.raises(RpcDisconnectedError):
        await link.call("AgentV1.GetActiveSessionIDs", "")
    forced = {"Tenant": TENANT, "Filters": ["*string:~*req.OriginID:call-1"]}
    assert await engine.registry.call("SessionSv1.ForceDisconnect", forced, ADMIN) == OK
    assert agent.disconnects == []
    assert not engine.sessions.sessions


async def test_an_in_process_client_without_callbacks_has_no_way_back() -> None:
    registry = MethodRegistry()

    def whoami(params: Any, ctx: CallContext) -> str:
        return f"{ctx.transport} {ctx.peer} {ctx.connection is None}"

    registry.register("Test.WhoAmI", whoami)
    assert await InProcessClient(registry).call("Test.WhoAmI", {}) == "internal internal True"
    handlers = MethodRegistry()
    handlers.register("AgentV1.Echo", lambda params, ctx: params)
    client = InProcessClient(registry, "agent:x", handlers)
    assert await client.call("Test.WhoAmI", {}) == "internal agent:x False"
    assert client.link is not None
    assert await client.link.call("AgentV1.Echo", {"a": 1}) == {"a": 1}
