"""Issue 6 §2: ENUM LCR through the DNS agent against a real engine (RouteS), asked by dig and
kdig over UDP and TCP: NAPTRs in route order, NXDOMAIN without route, SERVFAIL with the engine
down, FORMERR for malformed bytes, REFUSED over the cap, TC for big answers, EDNS0 in and out,
and the agent as its own process (``python -m core.cli agent dns``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dnslib  # type: ignore[import-untyped]
import pytest

from core.config import REPO_ROOT
from tests.e2e.dns.conftest import (
    BERLIN,
    BERLIN_HOSTS,
    GERMAN,
    GERMAN_ORDER,
    UNROUTED,
    DnsAgentRun,
    enum_name,
    resolve,
    start_dns_agent,
    write_agent_config,
)
from tests.e2e.radius.conftest import _bound
from tests.integration.engine_process import EngineProcess, free_port

RAW_TIMEOUT = 3.0


@pytest.mark.parametrize("tool", ["dig", "kdig"])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_naptr_per_route_in_route_order(
    resolvers: dict[str, str], agent: DnsAgentRun, tool: str, tcp: bool
) -> None:
    answer = await resolve(resolvers[tool], agent.port, enum_name(GERMAN), tcp=tcp)
    assert answer.status == "NOERROR", answer.output
    assert "aa" in answer.flags and "qr" in answer.flags
    assert answer.naptrs() == [
        (100, 10 * (position + 1), "U", "E2U+sip", host)
        for position, host in enumerate(GERMAN_ORDER)
    ]
    assert {record[0].lower() for record in answer.records} == {enum_name(GERMAN)}


@pytest.mark.parametrize("tool", ["dig", "kdig"])
async def test_no_route_is_nxdomain(
    resolvers: dict[str, str], agent: DnsAgentRun, tool: str
) -> None:
    answer = await resolve(resolvers[tool], agent.port, enum_name(UNROUTED))
    assert answer.status == "NXDOMAIN", answer.output
    assert "aa" in answer.flags and answer.records == []


async def test_other_types_and_other_names(resolvers: dict[str, str], agent: DnsAgentRun) -> None:
    nodata = await resolve(resolvers["dig"], agent.port, enum_name(GERMAN), "A")
    assert nodata.status == "NOERROR" and "aa" in nodata.flags and nodata.records == []
    refused = await resolve(resolvers["kdig"], agent.port, "www.example.com.", "A")
    assert refused.status == "REFUSED", refused.output


async def test_engine_down_is_servfail(
    resolvers: dict[str, str], engine: EngineProcess, agent: DnsAgentRun
) -> None:
    assert engine.stop() == 0
    answer = await resolve(resolvers["dig"], agent.port, enum_name(GERMAN))
    assert answer.status == "SERVFAIL", answer.output
    answer = await resolve(resolvers["kdig"], agent.port, enum_name(GERMAN), tcp=True)
    assert answer.status == "SERVFAIL", answer.output


async def raw_exchange(port: int, data: bytes, wait: float = RAW_TIMEOUT) -> bytes | None:
    def run() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(wait)
            sock.sendto(data, ("127.0.0.1", port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                return None

    return await asyncio.to_thread(run)


async def test_malformed_bytes_get_formerr_or_nothing(agent: DnsAgentRun) -> None:
    # A readable header, then a question cut in the middle of a label.
    broken = struct.pack("!HHHHHH", 0x7E57, 0x0100, 1, 0, 0, 0) + b"\x011\x01"
    data = await raw_exchange(agent.port, broken)
    assert data is not None
    header = dnslib.DNSRecord.parse(data).header
    assert (header.id, header.rcode, header.qr) == (0x7E57, 1, 1)  # FORMERR
    assert await raw_exchange(agent.port, b"\xde\xad", wait=0.5) is None  # no header: dropped
    # The agent still answers afterwards.
    again = await resolve("dig", agent.port, enum_name(GERMAN))
    assert again.status == "NOERROR"


async def test_over_the_cap_is_refused(
    resolvers: dict[str, str], engine: EngineProcess, tmp_path: Path
) -> None:
    """max_in_flight 1: while one query waits for a frozen engine, the next is REFUSED."""
    run = await start_dns_agent(engine, tmp_path / "capped", max_in_flight=1)
    assert engine.process is not None
    pid = engine.process.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        first = asyncio.create_task(
            raw_exchange(
                run.port, bytes(dnslib.DNSRecord.question(enum_name(GERMAN), "NAPTR").pack())
            )
        )
        await asyncio.sleep(0.3)
        answer = await resolve(resolvers["dig"], run.port, enum_name(GERMAN))
        assert answer.status == "REFUSED", answer.output
    finally:
        os.kill(pid, signal.SIGCONT)
    reply = await first
    assert reply is not None  # answered once the engine came back or timed out
    assert dnslib.DNSRecord.parse(reply).header.rcode in (0, 2)
    after = await resolve(resolvers["kdig"], run.port, enum_name(GERMAN))
    assert after.status == "NOERROR" and len(after.naptrs()) == 3
    run.stop.set()
    assert await run.task == 0


@pytest.mark.parametrize("tool", ["dig", "kdig"])
async def test_big_answers_are_truncated_over_udp_then_complete_over_tcp(
    resolvers: dict[str, str], agent: DnsAgentRun, tool: str
) -> None:
    name = enum_name(BERLIN)
    edns_off = "+noedns"  # both resolvers: 512 octets for a plain UDP answer
    truncated = await resolve(resolvers[tool], agent.port, name, "NAPTR", edns_off, "+ignore")
    assert truncated.status == "NOERROR", truncated.output
    assert "tc" in truncated.flags and truncated.records == []
    # Without +ignore the resolver retries over TCP by itself and gets all ten.
    complete = await resolve(resolvers[tool], agent.port, name, "NAPTR", edns_off)
    assert [naptr[4] for naptr in complete.naptrs()] == BERLIN_HOSTS
    # 1232 octets of EDNS0 payload hold them over UDP.
    big_buffer = await resolve(
        resolvers[tool], agent.port, name, "NAPTR", "+bufsize=1232", "+ignore"
    )
    assert "tc" not in big_buffer.flags and len(big_buffer.naptrs()) == 10


async def test_edns0_options_in_and_out(resolvers: dict[str, str], agent: DnsAgentRun) -> None:
    """An ENUM Source-URI option names the caller: the tutorial's ROUTE_ACNT_1002 (*lc) then
    orders the routes to 1001 by cost; the answer carries our OPT record (1232 octets)."""
    uri = b"sip:1002@example.com".hex()
    answer = await resolve(resolvers["kdig"], agent.port, enum_name("1001"), "NAPTR",
                           f"+ednsopt=4:{uri}", "+bufsize=4096")  # fmt: skip
    assert answer.status == "NOERROR", answer.output
    assert [naptr[4] for naptr in answer.naptrs()] == ["route1", "route2"]  # 0.3 before 0.6
    assert "UDP size: 1232" in answer.output or "udp: 1232" in answer.output, answer.output
    dig = await resolve(resolvers["dig"], agent.port, enum_name("1001"), "NAPTR",
                        f"+ednsopt=4:{uri}")  # fmt: skip
    assert [naptr[4] for naptr in dig.naptrs()] == ["route1", "route2"]
    assert "udp: 1232" in dig.output, dig.output
    # Without the option there is no Account, and no route profile matches 1001.
    anonymous = await resolve(resolvers["dig"], agent.port, enum_name("1001"))
    assert anonymous.status == "NXDOMAIN", anonymous.output


async def test_agent_as_its_own_process(
    resolvers: dict[str, str], engine: EngineProcess, tmp_path: Path
) -> None:
    port = free_port()
    config = write_agent_config(tmp_path / "agent.yaml", engine.tcp_port, port)
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "agent", "dns", "--config", str(config)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not _bound(port):
            assert process.poll() is None, (tmp_path / "agent.log").read_text()
            assert time.monotonic() < deadline, "agent did not start"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        for tool, tcp in (("dig", False), ("kdig", True)):
            answer = await resolve(resolvers[tool], port, enum_name(GERMAN), tcp=tcp)
            assert [naptr[4] for naptr in answer.naptrs()] == GERMAN_ORDER, answer.output
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 15)
        log.close()
    assert code == 0, (tmp_path / "agent.log").read_text()
