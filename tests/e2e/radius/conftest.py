"""Fixtures: a real engine process with the tutorial plan, the RADIUS agent run in-process by the
real agent runtime (``run_agent``), and FreeRADIUS's ``radclient`` (Debian freeradius-utils,
installed by scripts/setup-peers) as the NAS."""

from __future__ import annotations

import asyncio
import errno
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.runtime import run_agent
from core.config import REPO_ROOT, load_config
from tests.e2e.diameter.conftest import start_engine
from tests.integration.engine_process import EngineProcess, free_port

SECRET = "testing123"
AGENT_START_TIMEOUT = 10.0
RADCLIENT_TIMEOUT = 1  # seconds per try


@pytest.fixture(scope="session")
def radclient() -> str:
    found = shutil.which("radclient")
    if found is None:
        setup = subprocess.run(
            [str(REPO_ROOT / "scripts" / "setup-peers"), "freeradius-utils"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert setup.returncode == 0, setup.stderr
        found = shutil.which("radclient") or "/usr/bin/radclient"
    return found


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    process = start_engine(tmp_path / "engine")
    yield process
    assert process.stop() == 0, process.log_text()


@dataclass
class RadiusAgentProcess:
    auth_port: int
    acct_port: int
    stop: asyncio.Event
    task: asyncio.Task[int]


def _bound(port: int) -> bool:
    """True when something already listens on UDP 127.0.0.1:port."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        probe.close()
    return False


async def start_radius_agent(
    engine: EngineProcess, workdir: Path, **options: Any
) -> RadiusAgentProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    auth_port, acct_port = free_port(), free_port()
    config_path = workdir / "agent.yaml"
    block = {
        "enabled": True,
        "listen": f"127.0.0.1:{auth_port}",
        "acct_listen": f"127.0.0.1:{acct_port}",
        "templates": str(REPO_ROOT / "templates" / "radius"),
        "clients": {"127.0.0.1": {"secret": SECRET, "require_message_authenticator": True}},
        **options,
    }
    config_path.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine.tcp_port}", "http_listen": ""},
                "tariffplans": {"load_on_start": []},
                "agents": {"radius": block},
            }
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent("radius", load_config(config_path), stop=stop))
    deadline = asyncio.get_running_loop().time() + AGENT_START_TIMEOUT
    while not (_bound(auth_port) and _bound(acct_port)):
        assert not task.done(), f"agent exited with {task.result()}"
        assert asyncio.get_running_loop().time() < deadline, "agent did not start"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # engine connections up
    return RadiusAgentProcess(auth_port, acct_port, stop, task)


async def stop_radius_agent(agent: RadiusAgentProcess) -> None:
    agent.stop.set()
    assert await agent.task == 0


@pytest.fixture
async def agent(engine: EngineProcess, tmp_path: Path) -> AsyncIterator[RadiusAgentProcess]:
    running = await start_radius_agent(engine, tmp_path / "agent")
    yield running
    if not running.task.done():
        await stop_radius_agent(running)


@dataclass
class RadReply:
    code: str  # "Access-Accept", "Accounting-Response", ... or "" when nothing came back
    attributes: dict[str, str]
    output: str


_RECEIVED = re.compile(r"Received (\S+) Id")
_ATTRIBUTE = re.compile(r"^\s+([A-Za-z0-9-]+) = (.*)$")


async def radclient_send(
    radclient: str,
    port: int,
    kind: str,
    attributes: dict[str, Any],
    *,
    secret: str = SECRET,
    retries: int = 1,
    protocol: str = "udp",
) -> RadReply:
    """One request through radclient (``kind`` auth or acct); the reply it printed."""
    lines = "\n".join(f"{name} = {_quoted(value)}" for name, value in attributes.items())
    process = await asyncio.create_subprocess_exec(
        radclient,
        "-x",
        "-P",
        protocol,
        "-r",
        str(retries),
        "-t",
        str(RADCLIENT_TIMEOUT),
        f"127.0.0.1:{port}",
        kind,
        secret,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate(lines.encode() + b"\n")
    text = out.decode(errors="replace")
    found = _RECEIVED.search(text)
    replies: dict[str, str] = {}
    if found:
        for line in text[found.end() :].splitlines()[1:]:
            match = _ATTRIBUTE.match(line)
            if match is None:
                break
            replies[match.group(1)] = match.group(2).strip('"')
    return RadReply(found.group(1) if found else "", replies, text)


def _quoted(value: Any) -> str:
    text = str(value)
    if text.startswith("0x") or text.isdigit():
        return text
    return '"' + text.replace('"', '\\"') + '"'
