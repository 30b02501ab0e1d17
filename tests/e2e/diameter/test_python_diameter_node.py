"""python-diameter's own peer stack (``diameter.node.Node`` with a ``SimpleThreadingApplication``)
as the PCEF: an implementation independent of ours does the CER/CEA, routing by realm,
hop-by-hop matching and DPR, and charges a voice call through the agent against the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from diameter.message import constants as C  # type: ignore[import-untyped]
from diameter.node import Node  # type: ignore[import-untyped]
from diameter.node.application import (  # type: ignore[import-untyped]
    SimpleThreadingApplication,
)

from tests.e2e.diameter.conftest import AgentProcess
from tests.e2e.diameter.gy_client import GyClient
from tests.e2e.diameter.test_gy_acceptance import (
    FUNDS,
    INITIAL,
    TERMINATE,
    UPDATE,
    balance,
    granted_time,
    result,
    voice_cost,
    wait_for_cdr,
)
from tests.e2e.test_sessions_acceptance import set_money
from tests.integration.engine_process import EngineProcess

READY_TIMEOUT_S = 10
ANSWER_TIMEOUT_S = 10
STOP_TIMEOUT_S = 5
PCEF_HOST = "pcef-node.test.net"


class NodeClient:
    """The PCEF as python-diameter runs one: its own threads and sockets."""

    def __init__(self, port: int) -> None:
        self.node = Node(PCEF_HOST, "test.net", vendor_ids=[C.VENDOR_TGPP])
        peer = self.node.add_peer(
            f"aaa://ocs.localdomain:{port};transport=tcp",
            "localdomain",
            ip_addresses=["127.0.0.1"],
            is_persistent=True,
        )
        self.app = SimpleThreadingApplication(
            C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION,
            is_auth_application=True,
            request_handler=lambda app, message: None,  # the OCS sends us nothing here
        )
        self.node.add_application(self.app, [peer])
        # Its messages: GyClient builds the CCRs with python-diameter's classes only.
        self.messages = GyClient("127.0.0.1", port, origin_host=PCEF_HOST)

    def request(self, ccr: Any) -> Any:
        return self.app.send_request(ccr, timeout=ANSWER_TIMEOUT_S)


@pytest.fixture
async def pcef(agent: AgentProcess) -> AsyncIterator[NodeClient]:
    # The agent runs in this test's event loop: every blocking Node call goes to a thread.
    client = NodeClient(agent.port)
    await asyncio.to_thread(client.node.start)
    try:
        await asyncio.to_thread(client.app.wait_for_ready, READY_TIMEOUT_S)
        yield client
    finally:
        await asyncio.to_thread(client.node.stop, STOP_TIMEOUT_S)


async def test_a_voice_call_charged_through_python_diameters_node(
    engine: EngineProcess, pcef: NodeClient
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    session = f"{PCEF_HOST};voice;node-1"
    make = pcef.messages.voice_ccr

    cca = await asyncio.to_thread(pcef.request, make(session, INITIAL, 0, requested=120))
    assert result(cca) == 2001 and granted_time(cca) == 120
    assert cca.session_id == session
    assert await balance(engine) == FUNDS - voice_cost(120)

    ccr = make(session, UPDATE, 1, requested=120, used=120)
    cca = await asyncio.to_thread(pcef.request, ccr)
    assert result(cca) == 2001 and granted_time(cca) == 120
    assert await balance(engine) == FUNDS - voice_cost(240)

    cca = await asyncio.to_thread(pcef.request, make(session, TERMINATE, 2, used=30))
    assert result(cca) == 2001
    assert await balance(engine) == FUNDS - voice_cost(150)
    cdr = await wait_for_cdr(engine, session)
    assert cdr["Usage"] == 150 * 10**9 and cdr["Destination"] == "1002"
