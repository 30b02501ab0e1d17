"""Issue 5 acceptance: RADIUS auth and accounting through the agent against a real engine with
the tutorial plan; the NAS is FreeRADIUS's radclient."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.radius import codec
from tests.e2e.diameter.test_gy_acceptance import FUNDS, balance, voice_cost, wait_for_cdr
from tests.e2e.radius.conftest import (
    SECRET,
    RadiusAgentProcess,
    radclient_send,
    start_radius_agent,
    stop_radius_agent,
)
from tests.e2e.test_sessions_acceptance import cdrs, set_money
from tests.integration.engine_process import EngineProcess

SESSION = "radius-session-1"


def accounting(status: str, session_time: int | None = None, **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "User-Name": "1001",
        "Called-Station-Id": "1002",
        "Acct-Status-Type": status,
        "Acct-Session-Id": SESSION,
        "NAS-IP-Address": "127.0.0.1",
        "Acct-Interim-Interval": 120,
    }
    if session_time is not None:
        attributes["Acct-Session-Time"] = session_time
    return {**attributes, **extra}


async def test_prepaid_session_start_interim_stop(
    engine: EngineProcess, agent: RadiusAgentProcess, radclient: str
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    reply = await radclient_send(radclient, agent.acct_port, "acct", accounting("Start"))
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == FUNDS - voice_cost(120)  # Acct-Interim-Interval reserved

    reply = await radclient_send(
        radclient, agent.acct_port, "acct", accounting("Interim-Update", 120)
    )
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == FUNDS - voice_cost(240)

    stop = accounting("Stop", 150, **{"Acct-Terminate-Cause": "User-Request"})
    reply = await radclient_send(radclient, agent.acct_port, "acct", stop)
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == FUNDS - voice_cost(150)  # the unused reservation refunded
    cdr = await wait_for_cdr(engine, SESSION)
    assert cdr["Usage"] == 150 * 10**9 and Decimal(str(cdr["Cost"])) == voice_cost(150)
    assert cdr["Account"] == "1001" and cdr["Destination"] == "1002"

    # The NAS did not get our answer and sends the Stop again (new Identifier, Acct-Delay-Time):
    # answered, charged once, one CDR.
    again = {**stop, "Acct-Delay-Time": 3}
    reply = await radclient_send(radclient, agent.acct_port, "acct", again)
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == FUNDS - voice_cost(150)
    found = await asyncio.to_thread(cdrs, engine, OriginIDs=[SESSION], RunIDs=["*default"])
    assert len(found) == 1


async def test_exact_retransmission_gets_the_cached_reply_and_is_charged_once(
    engine: EngineProcess, agent: RadiusAgentProcess
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    start = codec.encode_request(
        codec.ACCOUNTING_REQUEST,
        17,
        codec.attributes_from(accounting("Start").items()),
        SECRET.encode(),
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    try:
        sock.bind(("127.0.0.1", 0))
        replies = []
        for _ in range(2):  # the same datagram from the same port: a retransmission
            await asyncio.to_thread(sock.sendto, start, ("127.0.0.1", agent.acct_port))
            data, _ = await asyncio.to_thread(sock.recvfrom, 4096)
            replies.append(data)
    finally:
        sock.close()
    assert replies[0] == replies[1]
    reply = codec.decode(replies[0])
    assert reply.code == codec.ACCOUNTING_RESPONSE
    assert reply.attributes[0].code == codec.ATTR_MESSAGE_AUTHENTICATOR  # first (BlastRADIUS)
    request = codec.decode(start)
    assert codec.verify_response_authenticator(reply, request.authenticator, SECRET.encode())
    assert codec.verify_message_authenticator(reply, SECRET.encode(), request)
    assert await balance(engine) == FUNDS - voice_cost(120)  # reserved once


async def test_access_request_pap(
    engine: EngineProcess, agent: RadiusAgentProcess, radclient: str
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    request = {
        "User-Name": "1001",
        "User-Password": "CGRateS.org",
        "Called-Station-Id": "1002",
        "Message-Authenticator": "0x00",
    }
    reply = await radclient_send(radclient, agent.auth_port, "auth", request)
    assert reply.code == "Access-Accept", reply.output
    assert int(reply.attributes["Session-Timeout"]) == 3 * 3600

    wrong = {**request, "User-Password": "guess"}
    reply = await radclient_send(radclient, agent.auth_port, "auth", wrong)
    assert reply.code == "Access-Reject", reply.output
    assert "Session-Timeout" not in reply.attributes


async def test_access_request_chap(
    engine: EngineProcess, agent: RadiusAgentProcess, radclient: str
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    request = {
        "User-Name": "1001",
        "CHAP-Password": "CGRateS.org",  # radclient computes the CHAP response
        "Called-Station-Id": "1002",
        "Message-Authenticator": "0x00",
    }
    reply = await radclient_send(radclient, agent.auth_port, "auth", request)
    assert reply.code == "Access-Accept", reply.output


async def test_access_request_without_message_authenticator_is_dropped(
    engine: EngineProcess, agent: RadiusAgentProcess, radclient: str
) -> None:
    request = {"User-Name": "1001", "User-Password": "CGRateS.org", "Called-Station-Id": "1002"}
    reply = await radclient_send(radclient, agent.auth_port, "auth", request, retries=1)
    assert reply.code == "", reply.output  # never answered (BlastRADIUS, CVE-2024-3596)

    bad_secret = {**request, "Message-Authenticator": "0x00"}
    reply = await radclient_send(
        radclient, agent.auth_port, "auth", bad_secret, secret="wrong", retries=1
    )
    assert reply.code == "", reply.output


async def test_accounting_on_ends_the_sessions_of_that_nas(
    engine: EngineProcess, agent: RadiusAgentProcess, radclient: str
) -> None:
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    for request in (accounting("Start"), accounting("Interim-Update", 90)):
        reply = await radclient_send(radclient, agent.acct_port, "acct", request)
        assert reply.code == "Accounting-Response", reply.output
    # The NAS rebooted: its sessions end at what they last reported, with a CDR.
    on = {"Acct-Status-Type": "Accounting-On", "NAS-IP-Address": "127.0.0.1"}
    reply = await radclient_send(radclient, agent.acct_port, "acct", on)
    assert reply.code == "Accounting-Response", reply.output
    cdr = await wait_for_cdr(engine, SESSION)
    assert cdr["Usage"] == 90 * 10**9 and Decimal(str(cdr["Cost"])) == voice_cost(90)
    assert await balance(engine) == FUNDS - voice_cost(90)


async def test_accounting_over_tcp(engine: EngineProcess, tmp_path: Path, radclient: str) -> None:
    """RFC 6613: radclient over TCP, same agent, same charging."""
    await asyncio.to_thread(set_money, engine, "1001", FUNDS)
    agent = await start_radius_agent(engine, tmp_path / "tcp-agent", tcp=True)
    try:
        reply = await radclient_send(
            radclient, agent.acct_port, "acct", accounting("Start"), protocol="tcp"
        )
        assert reply.code == "Accounting-Response", reply.output
        assert await balance(engine) == FUNDS - voice_cost(120)
    finally:
        await stop_radius_agent(agent)


async def test_data_session_is_charged_by_octets(
    engine: EngineProcess, agent: RadiusAgentProcess, radclient: str
) -> None:
    """A NAS that hands out an address (Framed-IP-Address) reports a data session: charged by
    octets in + out (the tutorial prices data at 0.01 per octet), 1 MiB reserved ahead."""
    funds = Decimal(1_000_000)
    await asyncio.to_thread(set_money, engine, "1001", int(funds))
    per_octet = Decimal("0.01")
    data = {"Acct-Session-Id": "radius-data-1", "Framed-IP-Address": "10.64.0.7"}
    reply = await radclient_send(radclient, agent.acct_port, "acct", accounting("Start", **data))
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == funds - per_octet * 1_048_576

    interim = accounting(
        "Interim-Update",
        60,
        **data,
        **{"Acct-Input-Octets": 300_000, "Acct-Output-Octets": 200_000},
    )
    reply = await radclient_send(radclient, agent.acct_port, "acct", interim)
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == funds - per_octet * (500_000 + 1_048_576)

    stop = accounting(
        "Stop", 90, **data, **{"Acct-Input-Octets": 400_000, "Acct-Output-Octets": 300_000}
    )
    reply = await radclient_send(radclient, agent.acct_port, "acct", stop)
    assert reply.code == "Accounting-Response", reply.output
    assert await balance(engine) == funds - per_octet * 700_000
    cdr = await wait_for_cdr(engine, "radius-data-1")
    assert cdr["ToR"] == "*data" and cdr["Usage"] == 700_000
    assert Decimal(str(cdr["Cost"])) == per_octet * 700_000
