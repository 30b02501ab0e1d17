"""SIPp against the SIP agent and a real engine: redirect with the routes as Contacts (UDP and
TCP), 402/403/480 rejects, the 302 retransmitted until the ACK, a resent INVITE answered the
same, OPTIONS 200, an unknown method 405, malformed datagrams, the engine down (503) and the
shipped demo plan's least-cost carriers."""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.config import REPO_ROOT
from tests.e2e.sip.conftest import (
    SCENARIOS,
    SipAgentProcess,
    SippRun,
    run_sipp,
    start_sip_agent,
    stop_sip_agent,
)
from tests.integration.engine_process import EngineProcess, free_port

_TRACE = re.compile(
    r"-{20,} (\S+ \S+)\n(?:UDP|TCP) message (sent|received) [^\n]*\n\s*(.*?)(?=\n-{20,}|\Z)",
    re.DOTALL,
)


def trace(run: SippRun) -> list[tuple[datetime, str, str]]:
    """SIPp's message trace: (time, "sent" | "received", message), in order."""
    return [
        (datetime.fromisoformat(m.group(1)), m.group(2), m.group(3))
        for m in _TRACE.finditer(run.messages)
    ]


def received(run: SippRun) -> list[str]:
    """The messages SIPp received, in order."""
    return [message for _, way, message in trace(run) if way == "received"]


def header_values(message: str, name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [
        line.split(":", 1)[1].strip()
        for line in message.splitlines()
        if line.lower().startswith(prefix)
    ]


def final(messages: list[str]) -> list[str]:
    return [m for m in messages if not m.startswith("SIP/2.0 100")]


def passed(run: SippRun) -> None:
    assert run.returncode == 0, run.output


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_redirect_contacts_follow_the_routes(
    sipp: str, agent: SipAgentProcess, tmp_path: Path, transport: str
) -> None:
    run = run_sipp(sipp, "redirect.xml", agent.port, tmp_path, transport=transport)
    passed(run)
    answer = final(received(run))[0]
    assert answer.startswith("SIP/2.0 302 Moved Temporarily")
    # ROUTE_SIP_1001 (*weight): gw-b (20) before gw-a (10); 1001 -> 1002 on the tutorial plan is
    # authorized the 3 h asked for (the account's money covers it)
    contacts = header_values(answer, "Contact")
    assert len(contacts) == 2, answer
    assert re.fullmatch(r"<sip:1002@10\.0\.0\.2:5080;transport=tcp>;q=1\.0;maxusage=\d+",
                        contacts[0]), contacts  # fmt: skip
    assert re.fullmatch(r"<sip:1002@10\.0\.0\.1:5060>;q=0\.9;maxusage=\d+", contacts[1])
    usages = {c.rsplit("=", 1)[1] for c in contacts}
    assert len(usages) == 1 and int(usages.pop()) > 0
    assert header_values(answer, "To")[0].count(";tag=") == 1
    # RFC 3581: SIPp asked for rport; the agent fills it with the source port, adds received
    assert re.search(r";received=127\.0\.0\.1;rport=\d+$", header_values(answer, "Via")[0])


def test_redirect_least_cost_carries_the_cost(
    sipp: str, agent: SipAgentProcess, tmp_path: Path
) -> None:
    run = run_sipp(sipp, "redirect.xml", agent.port, tmp_path, caller="1002", callee="1001")
    passed(run)
    contacts = header_values(final(received(run))[0], "Contact")
    # the tutorial's ROUTE_ACNT_1002 (*lc): route1 (RP_1002_LOW) is cheaper than route2
    assert [c.split(">")[0] for c in contacts] == ["<sip:1001@route1", "<sip:1001@route2"]
    costs = [re.search(r";cost=([0-9.]+)", c) for c in contacts]
    assert all(costs), contacts
    first, second = (float(m.group(1)) for m in costs if m)  # order only: floats are fine here
    assert first <= second


@pytest.mark.parametrize(
    ("caller", "code"),
    [
        ("1004", "402"),  # an account without money
        ("9999", "403"),  # no such account
        ("1005", "480"),  # no route profile for it
    ],
)
def test_reject(sipp: str, agent: SipAgentProcess, tmp_path: Path, caller: str, code: str) -> None:
    tmp_path.mkdir(exist_ok=True)
    scenario = tmp_path / f"reject_{code}.xml"
    scenario.write_text((SCENARIOS / "reject.xml").read_text().replace("RESPONSE_CODE", code))
    run = run_sipp(sipp, str(scenario), agent.port, tmp_path, caller=caller)
    passed(run)
    answer = final(received(run))[0]
    assert answer.startswith(f"SIP/2.0 {code} "), answer
    assert not header_values(answer, "Contact")


def test_final_answer_retransmitted_until_ack(
    sipp: str, agent: SipAgentProcess, tmp_path: Path
) -> None:
    run = run_sipp(sipp, "no_ack.xml", agent.port, tmp_path)
    passed(run)
    events = trace(run)
    ack_at = next(when for when, way, msg in events if way == "sent" and msg.startswith("ACK"))
    answers = [(when, msg) for when, way, msg in events if msg.startswith("SIP/2.0 302")]
    before = [msg for when, msg in answers if when < ack_at]
    # T1 = 0.1 s: the 302 at 0, then timer G at 0.1, 0.3 and 0.7 s, within the 1 s before the ACK
    assert len(before) == 4, [when for when, _ in answers]
    assert len(set(before)) == 1  # byte-identical retransmissions (same To tag)
    # after the ACK (timer G at 1.5 and 3.1 s would have fired within the 1 s that follows
    # for the first, and is stopped): nothing more
    assert all(when < ack_at + timedelta(milliseconds=50) for when, _ in answers)


def test_resent_invite_gets_the_same_answer(
    sipp: str, agent: SipAgentProcess, tmp_path: Path
) -> None:
    run = run_sipp(sipp, "resend_invite.xml", agent.port, tmp_path, extra=("-nr",))
    passed(run)
    answers = final(received(run))
    assert len(answers) >= 2
    assert answers[0] == answers[1]


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_options_ok(sipp: str, agent: SipAgentProcess, tmp_path: Path, transport: str) -> None:
    run = run_sipp(sipp, "options.xml", agent.port, tmp_path, transport=transport)
    passed(run)
    assert received(run)[0].startswith("SIP/2.0 200 OK")


def test_unknown_method_405(sipp: str, agent: SipAgentProcess, tmp_path: Path) -> None:
    run = run_sipp(sipp, "unknown_method.xml", agent.port, tmp_path)
    passed(run)
    assert received(run)[0].startswith("SIP/2.0 405 Method Not Allowed")


def test_malformed_answered_400_or_dropped(
    agent: SipAgentProcess, sipp: str, tmp_path: Path
) -> None:
    """Raw datagrams: a readable request with a bad CSeq gets 400; garbage gets nothing; the
    agent keeps serving (OPTIONS still answered)."""
    bad_cseq = (
        b"INVITE sip:1002@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKbad;rport\r\n"
        b"From: <sip:1001@example.net>;tag=x\r\nTo: <sip:1002@127.0.0.1>\r\n"
        b"Call-ID: bad-cseq\r\nCSeq: one INVITE\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(b"\x00\x01garbage\r\n\r\n", ("127.0.0.1", agent.port))
        sock.sendto(bad_cseq, ("127.0.0.1", agent.port))
        answer, _ = sock.recvfrom(65535)
        assert answer.startswith(b"SIP/2.0 400 Bad Request")
        assert b"Call-ID: bad-cseq" in answer
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recvfrom(65535)  # nothing for the garbage
    run = run_sipp(sipp, "options.xml", agent.port, tmp_path)
    passed(run)


def test_engine_down_503(sipp: str, tmp_path: Path) -> None:
    """No engine listening: the INVITE gets 503 with Retry-After (default templates)."""

    class NoEngine:
        tcp_port = free_port()  # nothing listens there

    down = start_sip_agent(NoEngine(), tmp_path / "agent")  # type: ignore[arg-type]
    try:
        scenario = tmp_path / "reject_503.xml"
        scenario.write_text((SCENARIOS / "reject.xml").read_text().replace("RESPONSE_CODE", "503"))
        run = run_sipp(sipp, str(scenario), down.port, tmp_path / "sipp")
        passed(run)
        answer = final(received(run))[0]
        assert answer.startswith("SIP/2.0 503 Service Unavailable")
        assert header_values(answer, "Retry-After") == ["5"]
    finally:
        assert stop_sip_agent(down) == 0, down.log_text()


def test_demo_plan_least_cost_carriers(sipp: str, tmp_path: Path) -> None:
    """The shipped demo plan (config/tariffplans/demo, ROUTE_LCR over three carriers) with the
    default templates switched to *postpaid (the demo has no accounts): the carriers in cost
    order, their SIP hosts as Contacts."""
    (tmp_path / "engine").mkdir()
    engine = EngineProcess(tmp_path / "engine").start()
    try:
        reply = engine.call(
            "APIerSv1.LoadTariffPlanFromFolder",
            {"FolderPath": str(REPO_ROOT / "config" / "tariffplans" / "demo")},
        )
        assert reply["result"] == "OK", reply
        templates = tmp_path / "templates"
        templates.mkdir()
        default = (REPO_ROOT / "templates" / "sip" / "redirect.yaml").read_text()
        assert '"*prepaid"' in default
        (templates / "redirect.yaml").write_text(default.replace('"*prepaid"', '"*postpaid"'))
        agent = start_sip_agent(engine, tmp_path / "agent", templates=str(templates))
        try:
            run = run_sipp(sipp, "redirect.xml", agent.port, tmp_path / "sipp",
                           caller="1001", callee="4915112345678")  # fmt: skip
            passed(run)
        finally:
            assert stop_sip_agent(agent) == 0, agent.log_text()
    finally:
        assert engine.stop() == 0, engine.log_text()
    contacts = header_values(final(received(run))[0], "Contact")
    hosts = [re.search(r"@([^>;]+)", c).group(1) for c in contacts]  # type: ignore[union-attr]
    assert hosts == ["sip.carrier-b.example", "sip.carrier-c.example", "sip.carrier-a.example"]
    costs = [Decimal(re.search(r";cost=([0-9.]+)", c).group(1)) for c in contacts]  # type: ignore[union-attr]
    assert costs == sorted(costs)
    assert all(c.endswith(";maxusage=10800") for c in contacts)  # the 3 h asked, postpaid
