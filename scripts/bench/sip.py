"""CPU time per INVITE in the SIP agent. CPU time, not wall clock: the machine is shared.

In-process (no sockets, a canned engine reply with three routes), split into codec (decode +
encode of the answer) and the whole agent path (transaction layer, templates, Contacts, encode)::

    .venv/bin/python scripts/bench/sip.py [REQUESTS] [--profile]

Or with SIPp as the caller (tests/e2e/sip/redirect.xml over UDP, REQUESTS calls at RATE per
second, at most 200 at once) against the agent process and a real engine (the e2e fixtures'
route profiles); prints the calls answered and each process's CPU per INVITE::

    .venv/bin/python scripts/bench/sip.py sipp REQUESTS RATE
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The checkout first, and not this folder (its diameter.py is named like python-diameter).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent.parent))

from agents.base import AgentContext  # noqa: E402
from agents.sip import codec  # noqa: E402
from agents.sip.agent import SipAgent  # noqa: E402
from agents.sip.transport import Peer, build_response  # noqa: E402
from core.config import AgentConfig  # noqa: E402

DEFAULT_REQUESTS = 20_000
SIPP_MAX_CALLS = 200  # calls in progress at once (-l)
SIPP_TIMEOUT = "60s"
SIPP_T1 = 0.5  # the agent's RFC 3261 T1 (the default)
REPLY = {
    "MaxUsage": 3600 * 10**9,
    "Routes": [
        {"ProfileID": "LCR", "Sorting": "*lc", "Routes": [
            {"RouteID": f"gw{i}", "RouteParameters": f"10.0.0.{i}:5060",
             "SortingData": {"Cost": f"0.0{i}", "Weight": 10}}
            for i in range(1, 4)
        ]}
    ],
}  # fmt: skip


class CannedEngine:
    async def call(self, method: str, params: Any) -> Any:
        return REPLY


def invite(number: int) -> bytes:
    return (
        "INVITE sip:1002@chargeflow.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{number};rport\r\n"
        f'From: "Caller" <sip:1001@example.net>;tag={number}\r\n'
        "To: <sip:1002@chargeflow.test>\r\n"
        f"Call-ID: bench-{number}@192.0.2.10\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:1001@192.0.2.10:5060>\r\n"
        "Max-Forwards: 70\r\n"
        "User-Agent: bench\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def codec_only(packets: list[bytes]) -> float:
    start = time.process_time()
    for data in packets:
        request = codec.decode(data)
        request.vias()
        request.cseq()
        codec.encode(build_response(request, 302, "", ("192.0.2.10", 5060), to_tag="t"))
    return (time.process_time() - start) / len(packets)


async def whole_path(packets: list[bytes], profile: bool) -> float:
    agent = SipAgent(AgentContext(AgentConfig(name="sip", options={"t1": 1000}), CannedEngine()))
    sent: list[bytes] = []
    peer = Peer("UDP", ("192.0.2.10", 5060), lambda data, destination: sent.append(data))
    profiler = cProfile.Profile() if profile else None
    start = time.process_time()
    if profiler:
        profiler.enable()
    for data in packets:
        agent.layer.receive(data, peer)
        await asyncio.sleep(0)  # the handler task runs to its end (the engine reply is canned)
    if profiler:
        profiler.disable()
    spent = (time.process_time() - start) / len(packets)
    assert len(sent) == len(packets) and all(b" 302 " in s[:20] for s in sent)
    for transaction in agent.layer.transactions.values():
        transaction.cancel_timers()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)
    return spent


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def with_sipp(calls: int, rate: str) -> None:
    from tests.e2e.diameter.conftest import start_engine
    from tests.e2e.sip.conftest import (
        SCENARIOS,
        set_up_routing,
        start_sip_agent,
        stop_sip_agent,
    )
    from tests.integration.engine_process import free_port

    workdir = Path(tempfile.mkdtemp(prefix="sip-bench-"))
    engine = start_engine(workdir / "engine")
    set_up_routing(engine)
    agent = start_sip_agent(engine, workdir / "agent", t1=SIPP_T1)
    try:
        assert engine.process is not None
        (workdir / "users.csv").write_text("SEQUENTIAL\n1001;1002;\n")
        agent_cpu, engine_cpu = _cpu_seconds(agent.process.pid), _cpu_seconds(engine.process.pid)
        done = subprocess.run(
            ["sipp", "-sf", str(SCENARIOS / "redirect.xml"), "-inf", str(workdir / "users.csv"),
             "-m", str(calls), "-r", rate, "-l", str(SIPP_MAX_CALLS), "-t", "u1",
             "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin",
             "-timeout", SIPP_TIMEOUT, "-timeout_error", f"127.0.0.1:{agent.port}"],
            capture_output=True, text=True, cwd=workdir, check=False,
        )  # fmt: skip
        agent_cpu = _cpu_seconds(agent.process.pid) - agent_cpu
        engine_cpu = _cpu_seconds(engine.process.pid) - engine_cpu
        ok = re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", done.stdout)
        failed = re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", done.stdout)
        print(f"sipp exit {done.returncode}: {ok[-1] if ok else '?'} answered 302 and ACKed, "
              f"{failed[-1] if failed else '?'} failed, of {calls}")  # fmt: skip
        print(f"agent CPU {agent_cpu * 1e6 / calls:.0f} µs per INVITE, "
              f"engine CPU {engine_cpu * 1e6 / calls:.0f} µs per INVITE")  # fmt: skip
    finally:
        stop_sip_agent(agent)
        engine.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "sipp":
        with_sipp(int(sys.argv[2]), sys.argv[3])
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else DEFAULT_REQUESTS
    packets = [invite(i) for i in range(count)]
    per_codec = codec_only(packets)
    per_request = asyncio.run(whole_path(packets, profile=False))
    print(f"codec (decode INVITE + encode 302): {per_codec * 1e6:.1f} µs CPU each")
    rate = 1 / per_request
    print(f"whole agent path with 3 routes:    {per_request * 1e6:.1f} µs CPU each")
    print(f"  = ~{rate:,.0f} INVITE/s per core, before sockets and the engine call")
    if "--profile" in sys.argv:
        asyncio.run(whole_path(packets[: count // 4], profile=True))


if __name__ == "__main__":
    main()
