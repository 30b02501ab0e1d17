"""Accounting Start/Stop pairs per second and p50/p99 through the RADIUS agent (a separate
``chargeflow agent radius`` process) with a real engine charging *prepaid sessions and storing
CDRs in SQLite, or against any RADIUS server on 127.0.0.1 (e.g. FreeRADIUS 3.2 with rlm_sql on
SQLite) with the same load generator. Usage::

    .venv/bin/python scripts/bench/radius.py PAIRS IN_FLIGHT [agent|ACCT_PORT]

The load generator keeps IN_FLIGHT sessions going, each from its own UDP socket with rotating
Identifiers, and retransmits after 2 s as a NAS would.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

# The load generator reuses the e2e fixtures (engine process, NAS secret): the checkout first,
# and not this folder, whose diameter.py is named like python-diameter's package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent.parent))

from agents.radius import codec  # noqa: E402
from core.config import REPO_ROOT  # noqa: E402
from tests.e2e.radius.conftest import SECRET, _bound  # noqa: E402
from tests.e2e.test_sessions_acceptance import set_money  # noqa: E402
from tests.integration.engine_process import TUTORIAL, EngineProcess, free_port  # noqa: E402

RETRANSMIT_AFTER = 2.0


def _start_engine(workdir: Path) -> EngineProcess:
    """A real engine process (SQLite storage) with the CGRateS tutorial plan loaded."""
    workdir.mkdir(parents=True, exist_ok=True)
    engine = EngineProcess(workdir).start()
    reply = engine.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})
    assert reply["result"] == "OK", reply
    return engine
ATTEMPTS = 5


class Nas(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        future = self.waiting.pop(data[1], None)
        if future is not None and not future.done():
            future.set_result(data)


def accounting(status: str, number: int, identifier: int) -> bytes:
    items: list[tuple[str, Any]] = [
        ("User-Name", "1001"),
        ("Called-Station-Id", "1002"),
        ("Acct-Status-Type", status),
        ("Acct-Session-Id", f"bench-{number}"),
        ("Acct-Interim-Interval", 60),
    ]
    if status == "Stop":
        items.append(("Acct-Session-Time", 30))
    return codec.encode_request(
        codec.ACCOUNTING_REQUEST, identifier, codec.attributes_from(items), SECRET.encode()
    )


def start_agent(workdir: Path, engine_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / "agent.yaml"
    block = {
        "enabled": True,
        "listen": f"127.0.0.1:{free_port()}",
        "acct_listen": f"127.0.0.1:{port}",
        "templates": str(REPO_ROOT / "templates" / "radius"),
        "clients": {"127.0.0.1": SECRET},
    }
    config.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine_port}", "http_listen": ""},
                "tariffplans": {"load_on_start": []},
                "agents": {"radius": block},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--log-level", "WARNING", "agent", "radius",
         "--config", str(config)],
        cwd=REPO_ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not _bound(port):
        assert time.monotonic() < deadline, "agent did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # engine connections up
    return process, port


async def load(port: int, pairs: int, in_flight: int) -> tuple[float, list[float]]:
    loop = asyncio.get_running_loop()
    sockets = [
        await loop.create_datagram_endpoint(Nas, remote_addr=("127.0.0.1", port))
        for _ in range(in_flight)
    ]
    counters = [0] * in_flight
    latencies: list[float] = []

    async def request(slot: int, status: str, number: int) -> None:
        transport, nas = sockets[slot]
        identifier = counters[slot] % 256
        counters[slot] += 1
        future: asyncio.Future[bytes] = loop.create_future()
        nas.waiting[identifier] = future
        data = accounting(status, number, identifier)
        started = time.perf_counter()
        for _ in range(ATTEMPTS):
            transport.sendto(data)
            try:
                await asyncio.wait_for(asyncio.shield(future), RETRANSMIT_AFTER)
                break
            except TimeoutError:
                continue
        latencies.append(time.perf_counter() - started)

    async def worker(slot: int) -> None:
        for number in range(slot, pairs, in_flight):
            await request(slot, "Start", number)
            await request(slot, "Stop", number)

    started = time.perf_counter()
    await asyncio.gather(*(worker(slot) for slot in range(in_flight)))
    elapsed = time.perf_counter() - started
    for transport, _ in sockets:
        transport.close()
    return elapsed, sorted(latencies)


async def main(pairs: int, in_flight: int, target: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="chargeflow-radius-bench-"))
    engine = None
    agent = None
    try:
        if target == "agent":
            engine = await asyncio.to_thread(_start_engine, workdir / "engine")
            await asyncio.to_thread(set_money, engine, "1001", 10**9)
            agent, port = start_agent(workdir, engine.tcp_port)
        else:
            port = int(target)
        elapsed, latencies = await load(port, pairs, in_flight)
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        print(
            f"target={target} pairs={pairs} in_flight={in_flight} elapsed={elapsed:.2f}s "
            f"pairs/s={pairs / elapsed:.0f} p50={p50:.1f}ms p99={p99:.1f}ms"
        )
        if engine is not None:
            found = engine.call("CDRsV1.GetCDRs", {"RunIDs": ["*default"]})
            print(f"CDRs stored: {len(found.get('result') or [])}")
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait()
        if engine is not None:
            engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(
        main(
            int(arguments[0]) if arguments else 2000,
            int(arguments[1]) if len(arguments) > 1 else 64,
            arguments[2] if len(arguments) > 2 else "agent",
        )
    )
