"""SessionS inside one engine: debit loop cut-off with the agent callback, TTL, sync, refunds.

The engine runs in-process with memory storage and a TCP listener; the "agent" is an RpcClient
whose own registry answers the engine's AgentV1 callbacks over the same connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.config import Address, load_config
from core.engine import Engine
from core.rpc import CallContext, MethodRegistry, RpcClient

FAST_PLAN = Path(__file__).parent / "fast_plan"  # 0.01 per 100 ms, in 100 ms increments
TENANT = "cgrates.org"


async def start_engine(**sessions: str) -> Engine:
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        engine=replace(config.engine, rpc_json_listen=Address("127.0.0.1", 0), http_listen=None),
        tariffplans=replace(config.tariffplans, load_on_start=(FAST_PLAN,)),
        sessions=replace(config.sessions, **sessions),
    )
    engine = Engine(config)
    await engine.start()
    return engine


def engine_port(engine: Engine) -> int:
    return int(engine.listening()[0].rsplit(":", 1)[1])


class Agent:
    """A minimal agent: records disconnect requests, reports its live sessions."""

    def __init__(self) -> None:
        self.disconnects: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.disconnected = asyncio.Event()
        self.live: list[dict[str, str]] = []
        self.registry = MethodRegistry()
        self.registry.register("AgentV1.DisconnectSession", self._disconnect)
        self.registry.register("AgentV1.GetActiveSessionIDs", self._active)
        self.registry.register("AgentV1.WarnDisconnect", self._warn)

    def _warn(self, params: Any, ctx: CallContext) -> str:
        self.calls.append("WarnDisconnect")
        return "OK"

    def _disconnect(self, params: Any, ctx: CallContext) -> str:
        self.disconnects.append(params)
        self.calls.append("DisconnectSession")
        self.disconnected.set()
        return "OK"

    def _active(self, params: Any, ctx: CallContext) -> list[dict[str, str]]:
        return self.live


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Engine, RpcClient]] = []

    async def make(**sessions: str) -> tuple[RpcClient, Agent]:
        engine = await start_engine(**sessions)
        agent = Agent()
        client = await RpcClient.connect("127.0.0.1", engine_port(engine), agent.registry)
        started.append((engine, client))
        return client, agent

    yield make
    for engine, client in started:
        await client.close()
        await engine.stop()


async def fund(client: RpcClient, account: str, value: str) -> None:
    await client.call(
        "APIerSv1.SetBalance",
        {"Tenant": TENANT, "Account": account, "BalanceType": "*monetary", "Value": value,
         "Balance": {"ID": "money"}},
    )  # fmt: skip


async def money(client: RpcClient, account: str) -> Decimal:
    reply = await client.call("APIerSv2.GetAccount", {"Tenant": TENANT, "Account": account})
    return sum((Decimal(str(b["Value"])) for b in reply["BalanceMap"]["*monetary"]), Decimal(0))


def event(origin: str, usage: str = "", **extra: str) -> dict[str, Any]:
    fields = {"Account": "alice", "Destination": "5551234", "OriginID": origin,
              "OriginHost": "agent-1", "RequestType": "*prepaid",
              "AnswerTime": "2025-01-01T10:00:00Z", **extra}  # fmt: skip
    if usage:
        fields["Usage"] = usage
    return fields


async def test_debit_loop_cuts_the_call_off_through_the_agent(running: Any) -> None:
    client, agent = await running(debit_interval="200ms")
    await fund(client, "alice", "0.05")  # 500 ms of talk
    reply = await client.call(
        "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("loop-1")}
    )
    assert reply["MaxUsage"] == 200_000_000  # one interval reserved ahead
    await asyncio.wait_for(agent.disconnected.wait(), timeout=5)
    assert agent.calls == ["WarnDisconnect", "DisconnectSession"]
    assert agent.disconnects[0]["Reason"] == "INSUFFICIENT_CREDIT"
    assert agent.disconnects[0]["EventStart"]["OriginID"] == "loop-1"
    assert await money(client, "alice") == 0
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0
    # The cut-off call was billed: a CDR of the 500 ms it could pay for.
    (cdr,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["loop-1"]})
    assert cdr["Usage"] == 500_000_000
    assert Decimal(str(cdr["Cost"])) == Decimal("0.05")


async def test_session_ttl_ends_and_bills_a_session_without_terminate(running: Any) -> None:
    client, _agent = await running(session_ttl="300ms")
    await fund(client, "alice", "10")
    await client.call(
        "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("ttl-1", "1s")}
    )
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 1
    for _ in range(50):
        await asyncio.sleep(0.05)
        if await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0:
            break
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0
    (cdr,) = await client.call("CDRsV1.GetCDRs", {"OriginIDs": ["ttl-1"]})
    assert cdr["Usage"] == 1_000_000_000
    assert await money(client, "alice") == Decimal("9.9")


async def test_sync_sessions_ends_what_the_agent_no_longer_has(running: Any) -> None:
    client, agent = await running()
    await fund(client, "alice", "10")
    for origin in ("keep", "gone"):
        await client.call(
            "SessionSv1.InitiateSession", {"InitSession": True, "Event": event(origin, "1s")}
        )
    agent.live = [{"OriginID": "keep", "OriginHost": "agent-1"}]
    assert await client.call("SessionSv1.SyncSessions", {}) == "OK"
    active = await client.call("SessionSv1.GetActiveSessions", {})
    assert [row["OriginID"] for row in active] == ["keep"]


async def test_terminate_refunds_unused_increments(running: Any) -> None:
    client, _agent = await running()
    await fund(client, "alice", "10")
    await client.call(
        "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("refund", "10s")}
    )
    assert await money(client, "alice") == Decimal("9.0")  # 10 s reserved at 0.1/s
    await client.call(
        "SessionSv1.TerminateSession",
        {"TerminateSession": True, "Event": event("refund", "2450ms")},
    )
    # 2450 ms is charged as 25 increments of 100 ms.
    assert await money(client, "alice") == Decimal("9.75")


async def test_initiate_without_credit_is_refused_and_keeps_nothing(running: Any) -> None:
    client, _agent = await running()
    await fund(client, "alice", "0")
    with pytest.raises(Exception, match="INSUFFICIENT_CREDIT"):
        await client.call(
            "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("broke", "1s")}
        )
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0


async def test_force_disconnect_calls_the_agent(running: Any) -> None:
    client, agent = await running()
    await fund(client, "alice", "10")
    await client.call(
        "SessionSv1.InitiateSession", {"InitSession": True, "Event": event("force", "1s")}
    )
    assert await client.call("SessionSv1.ForceDisconnect", {}) == "OK"
    assert agent.disconnects[0]["Reason"] == "FORCED_DISCONNECT"
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 0


async def test_concurrent_retransmissions_run_once(running: Any) -> None:
    client, _agent = await running()
    await fund(client, "alice", "10")
    args = {"InitSession": True, "ID": "same-id", "Event": event("retx", "1s")}
    replies = await asyncio.gather(
        *(client.call("SessionSv1.InitiateSession", args) for _ in range(5))
    )
    assert all(reply == replies[0] for reply in replies)
    assert await money(client, "alice") == Decimal("9.9")


async def test_active_sessions_by_filter(running: Any) -> None:
    client, _agent = await running()
    await fund(client, "alice", "10")
    await fund(client, "bob", "10")
    for origin, account in (("a-1", "alice"), ("b-1", "bob"), ("b-2", "bob")):
        await client.call(
            "SessionSv1.InitiateSession",
            {"InitSession": True, "Event": event(origin, "1s", Account=account)},
        )
    rows = await client.call(
        "SessionSv1.GetActiveSessions", {"Filters": ["*string:~*req.Account:bob"]}
    )
    assert sorted(row["OriginID"] for row in rows) == ["b-1", "b-2"]
    assert await client.call("SessionSv1.GetActiveSessionsCount", {"Limit": 1}) == 1
    assert (
        await client.call(
            "SessionSv1.ForceDisconnect", {"Filters": ["*string:~*req.Account:alice"]}
        )
        == "OK"
    )
    assert await client.call("SessionSv1.GetActiveSessionsCount", {}) == 2
