"""ENUM queries per second through the DNS agent (a ``chargeflow agent dns`` process asking a
real engine's RouteS for every query) against a static baseline, both driven by ``dnsperf``.

The baseline is the honest Python one (not dnslib's threaded ``DNSServer``, 4x slower): an
asyncio DatagramProtocol on uvloop that parses each query with dnslib and answers the same
three NAPTRs from an in-memory zone holding the same names. Usage::

    .venv/bin/python scripts/bench/dns.py [SECONDS] [OUTSTANDING] [MAX_QPS] [NAMES]

Prints, per server: qps, average/p50/p99 latency (from ``dnsperf -v``'s per-query lines),
the server's CPU time per query (from /proc, the number that survives a noisy machine), and the
agent/static throughput ratio. The static server runs before and after the agent (the ratio is
against the mean of both), so load from others that starts or stops meanwhile hits both sides.
Every run is bounded (``-l SECONDS``) and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

# Run from the checkout, and not this folder (its diameter.py shadows python-diameter's package).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent.parent))

from core.config import REPO_ROOT  # noqa: E402
from tests.e2e.radius.conftest import _bound  # noqa: E402
from tests.integration.engine_process import EngineProcess, free_port  # noqa: E402

DEFAULT_SECONDS: Final = 5
DEFAULT_OUTSTANDING: Final = 64
DEFAULT_NAMES: Final = 1000
PREFIX: Final = "4915"
SEED: Final = 6
# The routes RouteS returns (*weight: highest first) and the static zone answers, in that order.
ROUTES: Final = (("carrier_b", "sbc-b.example.net", 30), ("carrier_c", "sbc-c.example.net", 20),
                 ("carrier_a", "sbc-a.example.net", 10))  # fmt: skip
NAPTR_ORDER: Final = 100
TTL: Final = 60
START_TIMEOUT: Final = 15.0
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_LATENCY: Final = re.compile(r"^> \S+ .* (\d+\.\d+)$")


def enum_name(number: str) -> str:
    return ".".join(reversed(number)) + ".e164.arpa."


def numbers(count: int) -> list[str]:
    rng = random.Random(SEED)
    return [PREFIX + f"{rng.randrange(10**9):09d}" for _ in range(count)]


# ------------------------------------------------------------------------- static baseline
def serve_static(port: int, names_file: Path) -> None:
    """The baseline server (run in its own process): dnslib parse + zone lookup + pack."""
    import dnslib  # type: ignore[import-untyped]
    import uvloop

    zone: dict[str, list[Any]] = {}
    for line in names_file.read_text().splitlines():
        name = line.split()[0].lower()
        zone[name] = [
            dnslib.RR(
                name,
                dnslib.QTYPE.NAPTR,
                ttl=TTL,
                rdata=dnslib.NAPTR(
                    NAPTR_ORDER,
                    10 * (position + 1),
                    b"U",
                    b"E2U+sip",
                    f"!^(.*)$!sip:\\1@{host}!".encode(),
                    ".",
                ),
            )
            for position, (_, host, _) in enumerate(ROUTES)
        ]

    class Zone(asyncio.DatagramProtocol):
        transport: asyncio.DatagramTransport

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            try:
                request = dnslib.DNSRecord.parse(data)
            except Exception:
                return
            reply = request.reply()
            records = zone.get(str(request.q.qname).lower())
            if records and request.q.qtype == dnslib.QTYPE.NAPTR:
                for record in records:
                    reply.add_answer(record)
            elif not records:
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
            self.transport.sendto(reply.pack(), addr)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Zone, local_addr=("127.0.0.1", port))
        await asyncio.Event().wait()

    uvloop.run(main())


# ----------------------------------------------------------------------------- processes
def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def wait_bound(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _bound(port):
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)


def start_engine(workdir: Path) -> EngineProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    engine = EngineProcess(workdir).start()
    profile = {
        "Tenant": "cgrates.org",
        "ID": "ROUTE_ENUM_BENCH",
        "FilterIDs": [f"*prefix:~*req.Destination:{PREFIX}"],
        "Sorting": "*weight",
        "Routes": [
            {"ID": rid, "RouteParameters": host, "Weight": weight} for rid, host, weight in ROUTES
        ],
        "Weight": 10,
    }
    reply = engine.call("APIerSv1.SetRouteProfile", profile)
    assert reply["result"] == "OK", reply
    return engine


def start_agent(workdir: Path, engine_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / "agent.yaml"
    block = {
        "enabled": True,
        "listen": f"127.0.0.1:{port}",
        "templates": str(REPO_ROOT / "templates" / "dns"),
        "max_in_flight": 4096,
    }
    config.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine_port}", "http_listen": ""},
                "tariffplans": {"load_on_start": []},
                "agents": {"dns": block},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--log-level", "WARNING", "agent", "dns",
         "--config", str(config)],
        cwd=REPO_ROOT,
    )  # fmt: skip
    wait_bound(port, process)
    time.sleep(0.5)  # engine connections up
    return process, port


def start_static(names_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--static", str(port), str(names_file)], cwd=REPO_ROOT
    )
    wait_bound(port, process)
    return process, port


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -------------------------------------------------------------------------------- dnsperf
@dataclass
class Run:
    label: str
    qps: float
    completed: int
    lost: int
    rcodes: str
    average_ms: float
    p50_ms: float
    p99_ms: float
    cpu_us: dict[str, tuple[float, float]]  # per process: user, system µs per completed query


def dnsperf(
    label: str,
    port: int,
    names_file: Path,
    seconds: int,
    outstanding: int,
    max_qps: int,
    watched: dict[str, int],
) -> Run:
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(names_file),
            "-l", str(seconds), "-q", str(outstanding), "-t", "2", "-v"]  # fmt: skip
    if max_qps:
        args += ["-Q", str(max_qps)]
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    after = {name: cpu_seconds(pid) for name, pid in watched.items()}
    latencies = sorted(
        float(match.group(1)) for line in out.splitlines() if (match := _LATENCY.match(line))
    )
    completed = int(_find(r"Queries completed:\s+(\d+)", out))
    return Run(
        label,
        float(_find(r"Queries per second:\s+([\d.]+)", out)),
        completed,
        int(_find(r"Queries lost:\s+(\d+)", out)),
        _find(r"Response codes:\s+(.*)", out),
        float(_find(r"Average Latency \(s\):\s+([\d.]+)", out)) * 1000,
        _percentile(latencies, 0.50) * 1000,
        _percentile(latencies, 0.99) * 1000,
        {
            name: tuple(  # type: ignore[misc]
                (spent - start) / max(completed, 1) * 1e6
                for spent, start in zip(after[name], before[name], strict=True)
            )
            for name in watched
        },
    )


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"dnsperf output without {pattern!r}:\n{text[-2000:]}")
    return match.group(1).strip()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * fraction))]


def report(run: Run) -> None:
    cpu = ", ".join(
        f"{name} {user + system:.0f} µs (user {user:.0f})"
        for name, (user, system) in run.cpu_us.items()
    )
    print(
        f"{run.label:>7}: {run.qps:8.0f} qps  completed {run.completed} lost {run.lost}  "
        f"avg {run.average_ms:.2f} ms p50 {run.p50_ms:.2f} ms p99 {run.p99_ms:.2f} ms  "
        f"CPU/query: {cpu}  [{run.rcodes}]"
    )


def main(seconds: int, outstanding: int, max_qps: int, count: int) -> None:
    subprocess.run([str(REPO_ROOT / "scripts" / "setup-peers"), "dnsperf"], check=True)
    workdir = Path(tempfile.mkdtemp(prefix="chargeflow-dns-bench-"))
    names_file = workdir / "names.txt"
    names_file.write_text("".join(f"{enum_name(n)} NAPTR\n" for n in numbers(count)))
    static = agent = None
    engine: EngineProcess | None = None
    try:
        # static, agent, static again: the agent is compared with the mean of the two static
        # runs around it, so load from others that comes or goes meanwhile hits both sides.
        static, static_port = start_static(names_file)
        before = dnsperf("static", static_port, names_file, seconds, outstanding, max_qps,
                         {"server": static.pid})  # fmt: skip
        engine = start_engine(workdir / "engine")
        assert engine.process is not None
        agent, port = start_agent(workdir, engine.tcp_port)
        ours = dnsperf("agent", port, names_file, seconds, outstanding, max_qps,
                       {"agent": agent.pid, "engine": engine.process.pid})  # fmt: skip
        stop(agent)
        agent = None
        after = dnsperf("static", static_port, names_file, seconds, outstanding, max_qps,
                        {"server": static.pid})  # fmt: skip
        print(f"nproc={os.cpu_count()} seconds={seconds} outstanding={outstanding} "
              f"max_qps={max_qps or 'none'} names={count}")  # fmt: skip
        report(before)
        report(ours)
        report(after)
        baseline = (before.qps + after.qps) / 2
        print(
            f"ratio agent/static: {ours.qps / baseline:.0%} (of the static runs' mean; "
            f"{ours.qps / before.qps:.0%} and {ours.qps / after.qps:.0%} of each)"
        )
    finally:
        stop(static)
        stop(agent)
        if engine is not None:
            engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments and arguments[0] in ("-h", "--help"):
        print(__doc__)
    elif arguments and arguments[0] == "--static":
        serve_static(int(arguments[1]), Path(arguments[2]))
    else:
        main(
            int(arguments[0]) if arguments else DEFAULT_SECONDS,
            int(arguments[1]) if len(arguments) > 1 else DEFAULT_OUTSTANDING,
            int(arguments[2]) if len(arguments) > 2 else 0,
            int(arguments[3]) if len(arguments) > 3 else DEFAULT_NAMES,
        )
