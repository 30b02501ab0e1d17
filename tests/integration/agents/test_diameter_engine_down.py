"""The real Diameter agent (``run_agent`` with ``templates/diameter``) while its engine is down:
every CCR is answered DIAMETER_UNABLE_TO_COMPLY (5012), never dropped, and the agent charges
again once the engine is up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from diameter.message import constants as C  # type: ignore[import-untyped]

from tests.e2e.diameter.conftest import DATA_RATING_PROFILE, start_agent, stop_agent
from tests.e2e.diameter.gy_client import GyClient, avp_values
from tests.e2e.test_sessions_acceptance import set_money
from tests.integration.engine_process import TUTORIAL, EngineProcess

INITIAL = C.E_CC_REQUEST_TYPE_INITIAL_REQUEST
UNABLE_TO_COMPLY = 5012
SUCCESS = 2001
ANSWER_WITHIN_S = 5.0
RECOVERY_S = 15.0


def result(answer: object) -> int:
    (code,) = avp_values(answer, C.AVP_RESULT_CODE)
    return int(code)


def start_engine(engine: EngineProcess) -> None:
    engine.start()
    reply = engine.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})
    assert reply["result"] == "OK", reply
    assert engine.call("APIerSv1.SetRatingProfile", DATA_RATING_PROFILE)["result"] == "OK"
    set_money(engine, "1001", 10)


async def test_engine_down_is_unable_to_comply_then_recovers(tmp_path: Path) -> None:
    (tmp_path / "engine").mkdir()
    engine = EngineProcess(tmp_path / "engine")  # its port is chosen; nothing listens yet
    agent = await start_agent(engine, tmp_path)
    client = GyClient("127.0.0.1", agent.port)
    try:
        await client.connect()
        for number, session in enumerate(["down;1", "down;2"]):
            ccr = client.voice_ccr(f"pcef.test.net;{session}", INITIAL, number, requested=60)
            answer = await asyncio.wait_for(client.request(ccr), ANSWER_WITHIN_S)
            assert result(answer) == UNABLE_TO_COMPLY
            assert not avp_values(answer, C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL,
                                  C.AVP_GRANTED_SERVICE_UNIT)  # fmt: skip
        await asyncio.to_thread(start_engine, engine)
        # The agent's pool reconnects on its own (backoff up to 5 s): a new call is charged.
        deadline = asyncio.get_running_loop().time() + RECOVERY_S
        attempt = 0
        while True:
            attempt += 1
            ccr = client.voice_ccr(f"pcef.test.net;up;{attempt}", INITIAL, 0, requested=60)
            code = result(await asyncio.wait_for(client.request(ccr), ANSWER_WITHIN_S))
            if code == SUCCESS or asyncio.get_running_loop().time() > deadline:
                break
            assert code == UNABLE_TO_COMPLY
            await asyncio.sleep(0.2)
        assert code == SUCCESS
    finally:
        await client.close()
        await stop_agent(agent)
        assert engine.stop() in (0, None), engine.log_text()
