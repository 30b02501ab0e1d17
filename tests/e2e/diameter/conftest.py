"""Fixtures: a real engine process with the tutorial plan, the Diameter agent run in-process by
the real agent runtime (``run_agent``), and a python-diameter client connected to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.runtime import run_agent
from core.config import REPO_ROOT, load_config
from tests.e2e.diameter.gy_client import GyClient
from tests.integration.engine_process import TUTORIAL, EngineProcess, free_port

AGENT_START_TIMEOUT = 10.0
DATA_RATING_PROFILE = {
    # The tutorial prices no data: data is rated like SMS there, 0.01 per unit (octet).
    "Tenant": "cgrates.org", "Category": "data", "Subject": "*any", "Overwrite": True,
    "RatingPlanActivations": [
        {"ActivationTime": "2014-01-14T00:00:00Z", "RatingPlanId": "RP_SMS", "FallbackSubjects": ""}
    ],
}  # fmt: skip


def start_engine(workdir: Path, sessions: dict[str, Any] | None = None) -> EngineProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    extra = {"sessions": sessions} if sessions else None
    engine = EngineProcess(workdir, extra).start()
    reply = engine.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})
    assert reply["result"] == "OK", reply
    reply = engine.call("APIerSv1.SetRatingProfile", DATA_RATING_PROFILE)
    assert reply["result"] == "OK", reply
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    process = start_engine(tmp_path / "engine")
    yield process
    assert process.stop() == 0, process.log_text()


@dataclass
class AgentProcess:
    """The agent running in this test's event loop, as ``chargeflow agent diameter`` runs it."""

    config_path: Path
    port: int
    stop: asyncio.Event
    task: asyncio.Task[int]


async def start_agent(
    engine: EngineProcess, workdir: Path, port: int | None = None, **options: Any
) -> AgentProcess:
    port = port or free_port()
    config_path = workdir / "agent.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine.tcp_port}", "http_listen": ""},
                "tariffplans": {"load_on_start": []},
                "agents": {
                    "diameter": {
                        "enabled": True,
                        "listen": f"127.0.0.1:{port}",
                        "templates": str(REPO_ROOT / "templates" / "diameter"),
                        "data_dir": str(workdir / "diameter"),
                        "origin_host": "ocs.localdomain",
                        **options,
                    }
                },
            }
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent("diameter", load_config(config_path), stop=stop))
    deadline = asyncio.get_running_loop().time() + AGENT_START_TIMEOUT
    while True:
        assert not task.done(), f"agent exited with {task.result()}"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, "agent did not start"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        break
    return AgentProcess(config_path, port, stop, task)


async def stop_agent(agent: AgentProcess) -> None:
    agent.stop.set()
    assert await agent.task == 0


@pytest.fixture
async def agent(engine: EngineProcess, tmp_path: Path) -> AsyncIterator[AgentProcess]:
    running = await start_agent(engine, tmp_path)
    yield running
    if not running.task.done():
        await stop_agent(running)


@pytest.fixture
async def client(agent: AgentProcess) -> AsyncIterator[GyClient]:
    gy = GyClient("127.0.0.1", agent.port)
    await gy.connect()
    yield gy
    await gy.close()
