"""CPU time per INVITE in the SIP agent, in-process (no sockets, a canned engine reply with three
routes), split into codec (decode + encode of the answer) and the whole agent path (transaction
layer, templates, Contacts, encode). CPU time, not wall clock: the machine is shared. Usage::

    .venv/bin/python scripts/bench/sip.py [REQUESTS]
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REQUESTS
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
