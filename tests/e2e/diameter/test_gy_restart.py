"""The Diameter agent's state across restarts (issue 4 audit, gaps 1, 5, 10) and its config
options ``allowed_peers`` and ``tls`` (gap 3).

Money tests run the real engine process and the agent as ``chargeflow agent diameter`` runs it;
the restart tests of the live-session table build the agent directly, with a scripted engine,
because they call the engine's callbacks (``AgentV1.DisconnectSession``) themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from diameter.message import constants as C  # type: ignore[import-untyped]

from agents.base import AgentContext
from agents.diameter import codec
from agents.diameter.agent import DiameterAgent
from agents.diameter.dedup import AnswerCache
from agents.diameter.transport import DiameterConfig, DiameterNode, DiameterTransportError
from core.config import REPO_ROOT, Address, AgentConfig
from core.rpc import RpcError
from tests.e2e.diameter.conftest import start_agent, start_engine, stop_agent
from tests.e2e.diameter.gy_client import GyClient
from tests.e2e.diameter.test_gy_acceptance import (
    DATA_PER_OCTET,
    FUNDS,
    INITIAL,
    TERMINATE,
    UPDATE,
    balance,
    msccs,
    result,
    voice_cost,
    wait_for_cdr,
)
from tests.e2e.test_sessions_acceptance import set_money
from tests.integration.engine_process import EngineProcess
from tests.unit.agents.diameter.test_diameter_transport import self_signed

PEER = "pcef.test.net"


class Gy:
    """The agent (as ``chargeflow agent diameter`` runs it), with its funds set and a client
    connected; ``restart`` swaps both for new ones on the same port and data directory (the
    PCEF reconnecting)."""

    def __init__(self, engine: EngineProcess, workdir: Path) -> None:
        self.engine, self.workdir = engine, workdir

    async def __aenter__(self) -> Gy:
        await asyncio.to_thread(set_money, self.engine, "1001", FUNDS)
        await self._start()
        return self

    async def _start(self, port: int | None = None) -> None:
        self.agent = await start_agent(self.engine, self.workdir, port)
        self.client = GyClient("127.0.0.1", self.agent.port)
        await self.client.connect()

    async def restart(self) -> None:
        await self.__aexit__()
        await self._start(self.agent.port)

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()
        await stop_agent(self.agent)

    async def ask(self, ccr: Any) -> Any:
        """Sends a CCR; its answer must be 2001."""
        answer = await self.client.request(ccr)
        assert result(answer) == 2001
        return answer


# --------------------------------------------------------------------- gap 1: CCR-T after restart
@pytest.mark.parametrize("restart", [False, True])
async def test_voice_terminate_after_a_restart_charges_the_whole_call(
    engine: EngineProcess, tmp_path: Path, restart: bool
) -> None:
    session = f"{PEER};voice;restart-{restart}"
    async with Gy(engine, tmp_path) as gy:
        await gy.ask(gy.client.voice_ccr(session, INITIAL, 0, requested=120))
        await gy.ask(gy.client.voice_ccr(session, UPDATE, 1, requested=120, used=120))
        if restart:
            await gy.restart()
        await gy.ask(gy.client.voice_ccr(session, TERMINATE, 2, used=30))
        assert await balance(engine) == FUNDS - voice_cost(150)
        cdr = await wait_for_cdr(engine, session)
        assert cdr["Usage"] == 150 * 10**9 and Decimal(str(cdr["Cost"])) == voice_cost(150)


async def test_voice_terminate_reporting_nothing_refunds_the_unused_reservation(
    engine: EngineProcess, tmp_path: Path
) -> None:
    session = f"{PEER};voice;no-usu"
    async with Gy(engine, tmp_path) as gy:
        await gy.ask(gy.client.voice_ccr(session, INITIAL, 0, requested=120))
        await gy.ask(gy.client.voice_ccr(session, UPDATE, 1, requested=120, used=90))
        await gy.restart()
        await gy.ask(gy.client.voice_ccr(session, TERMINATE, 2))
        assert await balance(engine) == FUNDS - voice_cost(90)
        assert (await wait_for_cdr(engine, session))["Usage"] == 90 * 10**9


@pytest.mark.parametrize("report", ["mscc", "bare"])
async def test_data_terminate_after_a_restart_charges_every_rating_group(
    engine: EngineProcess, tmp_path: Path, report: str
) -> None:
    """After a restart a CCR-T still adds its own Used-Service-Unit to each Rating-Group;
    one without MSCC still closes every Rating-Group the session has open."""
    session = f"{PEER};data;restart-{report}"
    async with Gy(engine, tmp_path) as gy:
        await gy.ask(gy.client.data_ccr(session, INITIAL, 0, [(7, 100, None), (8, 200, None)]))
        await gy.ask(gy.client.data_ccr(session, UPDATE, 1, [(7, 100, 100), (8, 200, 50)]))
        await gy.restart()
        final = [(7, None, 30), (8, None, 20)] if report == "mscc" else []
        cca = await gy.ask(gy.client.data_ccr(session, TERMINATE, 2, final))
        assert sorted(msccs(cca)) == [7, 8]
        used = {7: 130, 8: 70} if report == "mscc" else {7: 100, 8: 50}
        assert await balance(engine) == FUNDS - sum(used.values()) * DATA_PER_OCTET
        for rating_group, usage in used.items():
            assert (await wait_for_cdr(engine, f"{session}/{rating_group}"))["Usage"] == usage
        live = await asyncio.to_thread(engine.call, "SessionSv1.GetActiveSessionsCount", {})
        assert live["result"] == 0


# ------------------------------------------------------- gap 5: live sessions across a restart
class ScriptedEngine:
    """The engine as the templates see it: grants what is asked, records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, params: Any) -> Any:
        self.calls.append((method, params))
        if method in ("SessionSv1.InitiateSession", "SessionSv1.UpdateSession"):
            return {"MaxUsage": 30 * 10**9}
        if method == "SessionSv1.ProcessMessage":
            return {"MaxUsage": 1}
        return "OK"


def direct_agent(data_dir: Path, engine: ScriptedEngine, **options: Any) -> DiameterAgent:
    config = AgentConfig(
        name="diameter",
        enabled=True,
        listen=Address("127.0.0.1", 0),
        templates=REPO_ROOT / "templates" / "diameter",
        options={"data_dir": str(data_dir), "origin_host": "ocs.localdomain", **options},
    )
    return DiameterAgent(AgentContext(config, engine))


@contextlib.asynccontextmanager
async def serving(
    data_dir: Path, engine: ScriptedEngine, *, batches: bool = True
) -> AsyncIterator[tuple[DiameterAgent, GyClient]]:
    """A started agent and a client connected to it; ``batches`` False: the answer cache
    writes nothing in the background (only what is written at once reaches the file)."""
    agent = direct_agent(data_dir, engine)
    if not batches:
        agent.answers.flush_interval = 3600.0
    await agent.start()
    client = GyClient("127.0.0.1", agent.port)
    await client.connect()
    try:
        yield agent, client
    finally:
        await client.close()
        await agent.stop()


async def active(agent: DiameterAgent) -> list[tuple[str, str]]:
    """What the agent answers AgentV1.GetActiveSessionIDs, sorted."""
    found = await agent.get_active_session_ids()
    return sorted((item["OriginID"], item["OriginHost"]) for item in found)


async def test_a_restarted_agent_still_cuts_off_the_sessions_it_opened(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    voice, data = f"{PEER};voice;kept", f"{PEER};data;kept"
    async with serving(tmp_path, engine) as (_, client):
        cca = await client.request(client.voice_ccr(voice, INITIAL, 0, requested=30))
        assert result(cca) == 2001
        cca = await client.request(client.data_ccr(data, INITIAL, 0, [(1, 10, None)]))
        assert result(cca) == 2001

    async with serving(tmp_path, engine) as (agent, client):
        # A SyncSessions now keeps both sessions.
        assert await active(agent) == [(f"{data}/1", PEER), (voice, PEER)]
        # The engine cuts the voice call off: the reconnected client gets the ASR.
        reply = await agent.disconnect_session({"EventStart": {"OriginID": voice}, "Reason": "x"})
        assert reply == "OK"
        asr = await asyncio.wait_for(client.server_requests.get(), 5)
        assert asr.header.command_code == C.CMD_ABORT_SESSION and asr.session_id == voice
        assert await active(agent) == [(f"{data}/1", PEER)]

    # The cut-off is remembered across another restart: the CCR-U is refused and the CCR-T
    # acknowledged, neither charged (the engine already ended and billed the session).
    async with serving(tmp_path, engine) as (agent, client):
        calls = len(engine.calls)
        cca = await client.request(client.voice_ccr(voice, UPDATE, 1, requested=30, used=30))
        assert result(cca) == 4012
        assert result(await client.request(client.voice_ccr(voice, TERMINATE, 2, used=5))) == 2001
        assert len(engine.calls) == calls
        # The data session is still known, and a session unknown to the agent is NOT_FOUND.
        assert await active(agent) == [(f"{data}/1", PEER)]
        with pytest.raises(RpcError, match="NOT_FOUND"):
            await agent.disconnect_session({"EventStart": {"OriginID": voice}})


async def test_ended_and_idle_sessions_are_forgotten_on_disk_too(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    async with serving(tmp_path, engine) as (_, client):
        for n in (1, 2):
            ccr = client.voice_ccr(f"{PEER};voice;{n}", INITIAL, 0, requested=30)
            assert result(await client.request(ccr)) == 2001
        ccr = client.voice_ccr(f"{PEER};voice;1", TERMINATE, 1, used=10)
        assert result(await client.request(ccr)) == 2001
    async with serving(tmp_path, engine) as (agent, _):
        assert await active(agent) == [(f"{PEER};voice;2", PEER)]
        agent.sweep(now=time.monotonic() + 10**9)  # everything idle
        assert await active(agent) == []
    async with serving(tmp_path, engine) as (agent, _):
        assert await active(agent) == []


# ------------------------------------------------------------- gap 10: CCR-T answers on disk
def on_disk(data_dir: Path, *keys: tuple[str, int]) -> list[bool]:
    """Which of these answers a crash right now would leave in the file."""
    cache = AnswerCache(data_dir)
    cache.open()
    found = [cache.get(key) is not None for key in keys]
    asyncio.get_running_loop().create_task(cache.close())
    return found


async def test_terminate_and_event_answers_are_on_disk_before_they_are_sent(
    tmp_path: Path,
) -> None:
    session, sms = f"{PEER};voice;durable", f"{PEER};sms;durable"
    async with serving(tmp_path, ScriptedEngine(), batches=False) as (_, client):
        await client.request(client.voice_ccr(session, INITIAL, 0, requested=30))
        await client.request(client.voice_ccr(session, UPDATE, 1, requested=30, used=30))
        assert on_disk(tmp_path, (session, 1)) == [False]  # a CCR-U answer waits for its batch
        cca = await client.request(client.voice_ccr(session, TERMINATE, 2, used=5))
        assert result(cca) == 2001
        assert result(await client.request(client.sms_ccr(sms, "1002"))) == 2001
        assert on_disk(tmp_path, (session, 2), (sms, 0)) == [True, True]


# ---------------------------------------------------------------- gap 3: allow-list and TLS
async def test_an_unlisted_peer_gets_3010(engine: EngineProcess, tmp_path: Path) -> None:
    agent = await start_agent(
        engine,
        tmp_path,
        allowed_peers=["pgw.other.net", {"origin_host": PEER, "addresses": ["192.0.2.1"]}],
    )
    try:
        for host in ("intruder.test.net", PEER):  # unknown host; known host, wrong address
            client = GyClient("127.0.0.1", agent.port, origin_host=host)
            cea = await client.connect(check=False)
            assert cea.result_code == C.E_RESULT_CODE_DIAMETER_UNKNOWN_PEER
            await client.close()
        allowed = GyClient("127.0.0.1", agent.port, origin_host="pgw.other.net")
        await allowed.connect()
        await allowed.close()
    finally:
        await stop_agent(agent)


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_peers": "pcef"},
        {"allowed_peers": [{"origin_host": PEER, "port": 1}]},
        {"allowed_peers": [{"addresses": ["127.0.0.1"]}]},
        {"tls": {"key": "x.pem"}},
        {"tls": {"cert": "/nonexistent.pem"}},
        {"tls": {"cert": "c.pem", "cipher": "x"}},
    ],
)
def test_bad_allow_list_or_tls_options_stop_the_agent(tmp_path: Path, options: Any) -> None:
    with pytest.raises(ValueError, match=r"diameter (allowed_peers|tls)"):
        direct_agent(tmp_path, ScriptedEngine(), **options)


@pytest.mark.parametrize("client_cert", [True, False])
async def test_tls_with_client_certificates(tmp_path: Path, client_cert: bool) -> None:
    """``tls`` with a CA: TLS from the first byte, and only peers with a certificate signed by
    that CA get in."""
    ours, our_key = self_signed(tmp_path, "ocs.localdomain")
    theirs, their_key = self_signed(tmp_path, PEER)
    agent = direct_agent(
        tmp_path, ScriptedEngine(), tls={"cert": str(ours), "key": str(our_key), "ca": str(theirs)}
    )
    await agent.start()
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ours))
    if client_cert:
        context.load_cert_chain(theirs, their_key)
    node = DiameterNode(
        DiameterConfig(origin_host=PEER, origin_realm="test.net", tls_client=context)
    )
    try:
        if not client_cert:
            with pytest.raises(DiameterTransportError):
                await node.connect("127.0.0.1", agent.port, server_hostname="ocs.localdomain")
            return
        peer = await node.connect("127.0.0.1", agent.port, server_hostname="ocs.localdomain")
        assert peer.writer.get_extra_info("ssl_object") is not None
        request = codec.DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST)
        fields = {
            "Session-Id": f"{PEER};tls", "Origin-Host": PEER, "Origin-Realm": "test.net",
            "Auth-Application-Id": 4, "CC-Request-Type": 4, "CC-Request-Number": 0,
            "Service-Context-Id": "nothing@matches",
        }  # fmt: skip
        for item in codec.build_avps(fields):
            request.append(item)
        answer = await peer.request(request)  # through TLS to the agent: no processor matches
        assert answer.first(codec.AVP_RESULT_CODE) == codec.DIAMETER_UNABLE_TO_COMPLY
    finally:
        await node.stop()
        await agent.stop()


async def test_the_engine_cuts_off_through_the_restarted_agents_new_connection(
    tmp_path: Path,
) -> None:
    """End to end: the agent restarts mid-call, so the connection the session was opened on
    is gone; when the money ends the engine asks the agent's new connections, and the
    reconnected client receives the ASR."""
    engine = await asyncio.to_thread(start_engine, tmp_path / "engine", {"debit_interval": "1s"})
    try:
        await asyncio.to_thread(set_money, engine, "1001", "0.05")  # 5 s to 1003 at 0.01/s
        agent = await start_agent(engine, tmp_path)
        client = GyClient("127.0.0.1", agent.port)
        await client.connect()
        session = "pcef.test.net;voice;restart-cut"
        cca = await client.request(
            client.voice_ccr(session, INITIAL, 0, requested=30, called="sip:1003@ims")
        )
        assert result(cca) == 2001
        await client.close()
        await stop_agent(agent)

        agent = await start_agent(engine, tmp_path, port=agent.port)
        client = GyClient("127.0.0.1", agent.port)
        await client.connect()
        try:
            cut = await asyncio.wait_for(client.server_requests.get(), 15)
            assert cut.header.command_code == C.CMD_ABORT_SESSION and cut.session_id == session
            cca = await client.request(client.voice_ccr(session, TERMINATE, 1, used=5))
            assert result(cca) == 2001
            cdr = await wait_for_cdr(engine, session)
            left = await balance(engine)
            assert Decimal(0) <= left < Decimal("0.05")
            assert Decimal(str(cdr["Cost"])) == Decimal("0.05") - left
        finally:
            await client.close()
            await stop_agent(agent)
    finally:
        assert await asyncio.to_thread(engine.stop) == 0
