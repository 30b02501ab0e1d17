"""Issue 4 §3 acceptance: Gy/Ro voice, data and SMS through the Diameter agent against a real
engine with the tutorial plan; the client is python-diameter over TCP, CER first."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from diameter.message import constants as C  # type: ignore[import-untyped]

from tests.e2e.diameter.conftest import AgentProcess, start_agent, start_engine, stop_agent
from tests.e2e.diameter.gy_client import GyClient, avp_values
from tests.e2e.test_sessions_acceptance import cdrs, money, set_money
from tests.integration.engine_process import EngineProcess

INITIAL = C.E_CC_REQUEST_TYPE_INITIAL_REQUEST
UPDATE = C.E_CC_REQUEST_TYPE_UPDATE_REQUEST
TERMINATE = C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST
FUNDS = 1000
PER_SECOND_AFTER_FIRST_MINUTE = Decimal("0.00167")  # RT_20CNT: 0.1/60s in 1s increments
FIRST_MINUTE = Decimal("0.6")  # RT_20CNT: connect fee 0.4 + 0.2 for the first 60s
DATA_PER_OCTET = Decimal("0.01")  # RP_SMS bound to the data category
MSCC = C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL
CDR_WAIT = 5.0  # seconds


def voice_cost(seconds: int) -> Decimal:
    return FIRST_MINUTE + max(seconds - 60, 0) * PER_SECOND_AFTER_FIRST_MINUTE


async def balance(engine: EngineProcess) -> Decimal:
    return await asyncio.to_thread(money, engine, "1001")


def result(answer: Any) -> int:
    (code,) = avp_values(answer, C.AVP_RESULT_CODE)
    return int(code)


async def wait_for_cdr(engine: EngineProcess, origin_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + CDR_WAIT
    while True:
        found = await asyncio.to_thread(cdrs, engine, OriginIDs=[origin_id], RunIDs=["*default"])
        if found or asyncio.get_running_loop().time() > deadline:
            (cdr,) = found
            return cdr
        await asyncio.sleep(0.1)


def body(answer: Any) -> bytes:
    """An answer's AVPs as encoded (its header ids differ from one copy to the next)."""
    data: bytes = answer.as_bytes()
    return data[20:]


def granted_time(answer: Any) -> int:
    (value,) = avp_values(answer, MSCC, C.AVP_GRANTED_SERVICE_UNIT, C.AVP_CC_TIME)
    return int(value)


def msccs(answer: Any) -> dict[int, dict[int, Any]]:
    """Rating-Group -> {AVP code: value} of each MSCC in an answer."""
    out: dict[int, dict[int, Any]] = {}
    for group in (item for item in answer.avps if item.code == MSCC):
        fields = {child.code: child.value for child in group.value}
        out[int(fields[C.AVP_RATING_GROUP])] = fields
    return out


def mscc_octets(fields: dict[int, Any]) -> int:
    (inner,) = (x for x in fields[C.AVP_GRANTED_SERVICE_UNIT] if x.code == C.AVP_CC_TOTAL_OCTETS)
    return int(inner.value)


async def test_voice_session_initial_update_terminate(
    engine: EngineProcess, client: GyClient
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    session = "pcef.test.net;voice;1"
    cca = await client.request(client.voice_ccr(session, INITIAL, 0, requested=120))
    assert result(cca) == 2001 and granted_time(cca) == 120
    assert await balance(engine) == FUNDS - voice_cost(120)
    # The agent reports the session it owns (AgentV1.GetActiveSessionIDs): a sync keeps it.
    live = await asyncio.to_thread(engine.call, "SessionSv1.GetActiveSessionsCount", {})
    synced = await asyncio.to_thread(engine.call, "SessionSv1.SyncSessions", {})
    assert synced["result"] == "OK", synced
    after = await asyncio.to_thread(engine.call, "SessionSv1.GetActiveSessionsCount", {})
    assert live["result"] > 0 and after["result"] == live["result"]

    cca = await client.request(client.voice_ccr(session, UPDATE, 1, requested=120, used=120))
    assert result(cca) == 2001 and granted_time(cca) == 120
    assert await balance(engine) == FUNDS - voice_cost(240)

    cca = await client.request(client.voice_ccr(session, TERMINATE, 2, used=30))
    assert result(cca) == 2001
    assert await balance(engine) == FUNDS - voice_cost(150)  # the unused reservation refunded
    (cdr,) = await asyncio.to_thread(cdrs, engine, OriginIDs=[session], RunIDs=["*default"])
    assert cdr["Usage"] == 150 * 10**9 and Decimal(str(cdr["Cost"])) == voice_cost(150)
    assert cdr["Destination"] == "1002" and cdr["Account"] == "1001"


async def test_data_session_over_three_rating_groups(
    engine: EngineProcess, client: GyClient
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    session = "pcef.test.net;data;1"
    groups = (1, 2, 3)
    cca = await client.request(
        client.data_ccr(session, INITIAL, 0, [(rg, 1000 * rg, None) for rg in groups])
    )
    assert result(cca) == 2001
    answered = msccs(cca)
    assert sorted(answered) == list(groups)
    for rg in groups:
        assert int(answered[rg][C.AVP_RESULT_CODE]) == 2001
        assert mscc_octets(answered[rg]) == 1000 * rg
        assert int(answered[rg][C.AVP_VALIDITY_TIME]) > 0
    reserved = sum(1000 * rg for rg in groups)
    assert await balance(engine) == FUNDS - reserved * DATA_PER_OCTET

    cca = await client.request(
        client.data_ccr(session, UPDATE, 1, [(rg, 1000 * rg, 1000 * rg) for rg in groups])
    )
    assert result(cca) == 2001
    assert all(mscc_octets(fields) == 1000 * rg for rg, fields in msccs(cca).items())
    assert await balance(engine) == FUNDS - 2 * reserved * DATA_PER_OCTET

    cca = await client.request(
        client.data_ccr(session, TERMINATE, 2, [(rg, None, 500) for rg in groups])
    )
    assert result(cca) == 2001
    assert sorted(msccs(cca)) == list(groups)
    used = sum(1000 * rg + 500 for rg in groups)
    assert await balance(engine) == FUNDS - used * DATA_PER_OCTET
    for rg in groups:
        (cdr,) = await asyncio.to_thread(
            cdrs, engine, OriginIDs=[f"{session}/{rg}"], RunIDs=["*default"]
        )
        assert cdr["Usage"] == 1000 * rg + 500


async def test_data_terminate_without_mscc_closes_every_rating_group(
    engine: EngineProcess, client: GyClient
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    session = "pcef.test.net;data;bare-t"
    cca = await client.request(
        client.data_ccr(session, INITIAL, 0, [(7, 100, None), (8, 200, None)])
    )
    assert result(cca) == 2001 and sorted(msccs(cca)) == [7, 8]
    cca = await client.request(client.data_ccr(session, UPDATE, 1, [(7, 100, 100), (8, 200, 50)]))
    assert result(cca) == 2001
    cca = await client.request(client.data_ccr(session, TERMINATE, 2, []))
    assert result(cca) == 2001
    assert await balance(engine) == FUNDS - (100 + 50) * DATA_PER_OCTET
    for rating_group, used in ((7, 100), (8, 50)):
        (cdr,) = await asyncio.to_thread(
            cdrs, engine, OriginIDs=[f"{session}/{rating_group}"], RunIDs=["*default"]
        )
        assert cdr["Usage"] == used


async def test_duplicate_update_is_answered_identically_and_charged_once(
    engine: EngineProcess, agent: AgentProcess, client: GyClient, tmp_path: Path
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    session = "pcef.test.net;voice;dup"
    await client.request(client.voice_ccr(session, INITIAL, 0, requested=120))
    update = client.voice_ccr(session, UPDATE, 1, requested=120, used=120)
    first = await client.request(update)
    after_first = await balance(engine)
    assert after_first == FUNDS - voice_cost(240)
    wire = update.as_bytes()
    # RFC 4006 §5.7: the same Session-Id and CC-Request-Number, T flag or not, twice at once.
    again, with_t = await asyncio.gather(
        client.send_bytes(wire), client.send_bytes(wire, retransmit=True)
    )
    for answer in (again, with_t):
        assert body(answer) == body(first)
    assert await balance(engine) == after_first

    # The cache outlives the agent: a new agent process on the same data dir still knows it.
    await client.close()
    await stop_agent(agent)
    await asyncio.sleep(11)  # past the engine's own reply cache (reply_cache_ttl 10s)
    restarted = await start_agent(engine, tmp_path, agent.port)
    fresh = GyClient("127.0.0.1", restarted.port)
    await fresh.connect()
    try:
        replayed = await fresh.send_bytes(wire, retransmit=True)
        assert body(replayed) == body(first)
        assert await balance(engine) == after_first
    finally:
        await fresh.close()
        await stop_agent(restarted)


async def test_unknown_account_is_user_unknown(client: GyClient) -> None:
    cca = await client.request(
        client.voice_ccr("pcef.test.net;voice;who", INITIAL, 0, requested=60, account="9999")
    )
    assert result(cca) == 5030


async def test_missing_subscription_id_is_missing_avp(client: GyClient) -> None:
    cca = await client.request(
        client.voice_ccr("pcef.test.net;voice;anon", INITIAL, 0, requested=60, account=None)
    )
    assert result(cca) == 5005
    (failed,) = avp_values(cca, C.AVP_FAILED_AVP)
    assert [item.code for item in failed] == [C.AVP_SUBSCRIPTION_ID]


async def test_sms_event_charged_once(engine: EngineProcess, client: GyClient) -> None:
    before = await balance(engine)
    sms = client.sms_ccr("smsc.test.net;sms;1", "1002")
    cca = await client.request(sms)
    assert result(cca) == 2001
    (units,) = avp_values(cca, MSCC, C.AVP_GRANTED_SERVICE_UNIT, C.AVP_CC_SERVICE_SPECIFIC_UNITS)
    assert units == 1
    again = await client.send_bytes(sms.as_bytes(), retransmit=True)
    assert result(again) == 2001
    assert await balance(engine) == before - Decimal("0.01")
    found = await asyncio.to_thread(
        cdrs, engine, OriginIDs=["smsc.test.net;sms;1"], RunIDs=["*default"]
    )
    assert len(found) == 1


@pytest.mark.parametrize("disconnect", ["asr", "rar"])
async def test_voice_out_of_credit_is_cut_off(tmp_path: Path, disconnect: str) -> None:
    # The engine debits every second and cuts the call off when the money ends.
    engine = await asyncio.to_thread(start_engine, tmp_path / "engine", {"debit_interval": "1s"})
    try:
        await asyncio.to_thread(set_money, engine, "1001", "0.03")  # 3 s to 1003 at 0.01/s
        agent = await start_agent(engine, tmp_path, disconnect=disconnect)
        client = GyClient("127.0.0.1", agent.port)
        await client.connect()
        try:
            session = "pcef.test.net;voice;broke"
            cca = await client.request(
                client.voice_ccr(session, INITIAL, 0, requested=30, called="sip:1003@ims")
            )
            assert result(cca) == 2001
            cut = await asyncio.wait_for(client.server_requests.get(), 15)
            command = C.CMD_ABORT_SESSION if disconnect == "asr" else C.CMD_RE_AUTH
            assert cut.header.command_code == command and cut.session_id == session
            # The client ends its session: acknowledged, nothing charged a second time.
            cca = await client.request(client.voice_ccr(session, TERMINATE, 1, used=3))
            assert result(cca) == 2001
            # The engine ends the session and writes its CDR once the callback has returned.
            cdr = await wait_for_cdr(engine, session)
            left = await balance(engine)
            assert Decimal(0) <= left < Decimal("0.03")
            assert Decimal(str(cdr["Cost"])) == Decimal("0.03") - left
        finally:
            await client.close()
            await stop_agent(agent)
    finally:
        assert await asyncio.to_thread(engine.stop) == 0


async def test_over_the_concurrency_cap_is_too_busy_and_not_cached(
    engine: EngineProcess, tmp_path: Path
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    agent = await start_agent(engine, tmp_path, max_in_flight=1)
    client = GyClient("127.0.0.1", agent.port)
    await client.connect()
    try:
        requests = [
            client.voice_ccr(f"pcef.test.net;busy;{n}", INITIAL, 0, requested=60) for n in range(20)
        ]
        answers = await asyncio.gather(*(client.request(ccr) for ccr in requests))
        codes = [result(answer) for answer in answers]
        assert set(codes) == {2001, 3004} and codes.count(2001) >= 1
        # DIAMETER_TOO_BUSY is not remembered: the same CCR sent again is charged and answered.
        busy = [ccr for ccr, code in zip(requests, codes, strict=True) if code == 3004]
        retried = await client.send_bytes(busy[0].as_bytes(), retransmit=True)
        assert result(retried) == 2001
    finally:
        await client.close()
        await stop_agent(agent)
