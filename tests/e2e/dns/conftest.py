"""Fixtures: a real engine process (tutorial plan plus ENUM route profiles set through
``APIerSv1.SetRouteProfile``), the DNS agent run in-process by the real agent runtime
(``run_agent``), and BIND's ``dig`` / Knot's ``kdig`` (Debian dnsutils, knot-dnsutils, installed
by scripts/setup-peers) as resolvers."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.runtime import run_agent
from core.config import REPO_ROOT, load_config
from tests.e2e.diameter.conftest import start_engine
from tests.e2e.radius.conftest import _bound
from tests.integration.engine_process import EngineProcess, free_port

AGENT_START_TIMEOUT = 10.0
CLIENT_TIMEOUT = 3  # seconds dig/kdig wait for an answer (one try)
PEERS = {"dig": "dnsutils", "kdig": "knot-dnsutils"}

# 8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa. = +49 1511 2345678: three routes, weights 10/30/20.
GERMAN = "4915112345678"
GERMAN_ROUTES = [("carrier_a", "", 10), ("carrier_b", "sbc-b.example.net", 30),
                 ("carrier_c", "sbc-c.example.net", 20)]  # fmt: skip
GERMAN_ORDER = ["sbc-b.example.net", "sbc-c.example.net", "carrier_a"]
# +49 30 ...: ten routes with long host names, more than 512 octets of NAPTRs.
BERLIN = "49301234567"
BERLIN_HOSTS = [f"sbc{n:02d}.a-rather-long-carrier-domain.example.net" for n in range(10)]
UNROUTED = "33123456789"  # no route profile matches


def enum_name(number: str) -> str:
    return ".".join(reversed(number)) + ".e164.arpa."


def route_profile(
    profile_id: str, prefix: str, routes: list[tuple[str, str, int]]
) -> dict[str, Any]:
    return {
        "Tenant": "cgrates.org",
        "ID": profile_id,
        "FilterIDs": [f"*prefix:~*req.Destination:{prefix}"],
        "ActivationInterval": None,
        "Sorting": "*weight",
        "SortingParameters": [],
        "Routes": [
            {
                "ID": rid,
                "FilterIDs": [],
                "AccountIDs": [],
                "RatingPlanIDs": [],
                "ResourceIDs": [],
                "StatIDs": [],
                "Weight": weight,
                "Blocker": False,
                "RouteParameters": params,
            }
            for rid, params, weight in routes
        ],
        "Weight": 20,
    }


def start_enum_engine(workdir: Path) -> EngineProcess:
    engine = start_engine(workdir)
    profiles = [
        route_profile("ROUTE_ENUM_DE", "4915", GERMAN_ROUTES),
        route_profile(
            "ROUTE_ENUM_BERLIN",
            "4930",
            [(f"r{n}", host, 100 - n) for n, host in enumerate(BERLIN_HOSTS)],
        ),
    ]
    for profile in profiles:
        reply = engine.call("APIerSv1.SetRouteProfile", profile)
        assert reply["result"] == "OK", reply
    return engine


@pytest.fixture(scope="session")
def resolvers() -> dict[str, str]:
    """dig and kdig (scripts/setup-peers installs what is missing; a no-op otherwise)."""
    setup = subprocess.run(
        [str(REPO_ROOT / "scripts" / "setup-peers"), *PEERS.values()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    found = {tool: shutil.which(tool) or f"/usr/bin/{tool}" for tool in PEERS}
    return found


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    process = start_enum_engine(tmp_path / "engine")
    yield process
    if process.process is not None:
        assert process.stop() == 0, process.log_text()


@dataclass
class DnsAgentRun:
    port: int
    stop: asyncio.Event
    task: asyncio.Task[int]


def write_agent_config(path: Path, engine_port: int, port: int, **options: Any) -> Path:
    block = {
        "enabled": True,
        "listen": f"127.0.0.1:{port}",
        "templates": str(REPO_ROOT / "templates" / "dns"),
        **options,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine_port}", "http_listen": ""},
                "tariffplans": {"load_on_start": []},
                "agents": {"dns": block, "diameter": {"enabled": False},
                           "radius": {"enabled": False}},
            }
        )
    )  # fmt: skip
    return path


async def start_dns_agent(engine: EngineProcess, workdir: Path, **options: Any) -> DnsAgentRun:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_agent_config(workdir / "agent.yaml", engine.tcp_port, port, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent("dns", load_config(config), stop=stop))
    deadline = asyncio.get_running_loop().time() + AGENT_START_TIMEOUT
    while not _bound(port):
        assert not task.done(), f"agent exited with {task.result()}"
        assert asyncio.get_running_loop().time() < deadline, "agent did not start"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # engine connections up
    return DnsAgentRun(port, stop, task)


@pytest.fixture
async def agent(engine: EngineProcess, tmp_path: Path) -> AsyncIterator[DnsAgentRun]:
    running = await start_dns_agent(engine, tmp_path / "agent")
    yield running
    running.stop.set()
    assert await running.task == 0


@dataclass
class Answer:
    """What dig or kdig printed, read back."""

    status: str
    flags: set[str]
    records: list[list[str]] = field(default_factory=list)  # answer lines, split in fields
    output: str = ""

    def naptrs(self) -> list[tuple[int, int, str, str, str]]:
        """(order, preference, flags, service, host of the regexp) per NAPTR, in order."""
        out = []
        for fields in self.records:
            if "NAPTR" not in fields:
                continue
            rdata = fields[fields.index("NAPTR") + 1 :]
            host = _REGEXP_HOST.search(rdata[4])
            assert host is not None, rdata
            out.append((int(rdata[0]), int(rdata[1]), rdata[2].strip('"'),
                        rdata[3].strip('"'), host.group(1)))  # fmt: skip
        return out


_STATUS = re.compile(r"status: (\w+)")
_FLAGS = re.compile(r";; flags: ([a-z ]*);", re.IGNORECASE)
_REGEXP_HOST = re.compile(r"sip:\\+1@([^!]+)!")


def parse_output(text: str) -> Answer:
    status = _STATUS.search(text)
    flags = _FLAGS.search(text)
    records: list[list[str]] = []
    in_answer = False
    for line in text.splitlines():
        if "ANSWER SECTION" in line:
            in_answer = True
            continue
        if in_answer:
            if not line.strip() or line.startswith(";;"):
                in_answer = False
                continue
            records.append(line.split())
    return Answer(
        status.group(1) if status else "",
        set(flags.group(1).lower().split()) if flags else set(),
        records,
        text,
    )


async def resolve(
    tool: str, port: int, name: str, qtype: str = "NAPTR", *options: str, tcp: bool = False
) -> Answer:
    """One query through dig or kdig at the agent; the answer as printed."""
    args = [tool, "-p", str(port), "@127.0.0.1", name, qtype]
    if tool.endswith("kdig"):
        args += [f"+timeout={CLIENT_TIMEOUT}", "+retry=0"]
    else:
        args += [f"+time={CLIENT_TIMEOUT}", "+tries=1"]
    if tcp:
        args.append("+tcp")
    args += list(options)
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return parse_output(out.decode(errors="replace"))
