"""``chargeflow up`` and ``chargeflow agent`` as real processes.

The agent under test is ``LineAgent`` below, loaded by the agent process through the config's
``factory`` key: one line in (an engine method name), the engine's JSON result out, so a reply
proves the path client -> agent process -> EnginePool -> engine in ``up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.base import Agent, AgentContext
from tests.integration.engine_process import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
# Every agent the shipped configuration names (and may enable).
DEFAULT_AGENTS = tuple(yaml.safe_load((REPO / "config" / "chargeflow.yaml").read_text())["agents"])
STOP_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 5.0
AGENT_PID = re.compile(r"agent line started \(pid (\d+)\)")


class LineAgent(Agent):
    """A test agent: ``METHOD\\n`` -> the engine's result of ``METHOD({})`` as a JSON line."""

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        if context.config.listen is None:
            raise ValueError("listen is required")
        self.listen = context.config.listen
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, self.listen.host, self.listen.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await self.server.wait_closed()

    async def handle(self, method: str) -> Any:
        return await self.engine.call(method, {})

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while line := await reader.readline():
                try:
                    reply = await self.handle(line.decode().strip())
                except Exception as exc:
                    reply = {"error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            self.writers.discard(writer)
            writer.close()


class UpProcess:
    """``chargeflow up`` with memory storage on free ports, the line agent enabled."""

    def __init__(self, workdir: Path, agents: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.agent_port = free_port()
        self.engine_port = free_port()
        config = {
            "engine": {"rpc_json_listen": f"127.0.0.1:{self.engine_port}", "http_listen": ""},
            "storage": {"type": "memory"},
            "tariffplans": {"load_on_start": []},
            # The default config enables its agents on their standard ports: these tests run
            # only the agents they name.
            "agents": {name: {"enabled": False} for name in DEFAULT_AGENTS}
            | (
                agents
                if agents is not None
                else {
                    "line": {
                        "enabled": True,
                        "factory": f"{__name__}:LineAgent",
                        "listen": f"127.0.0.1:{self.agent_port}",
                    }
                }
            ),
        }
        self.config_path = workdir / "chargeflow.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "up.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> UpProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "up", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def agent_pid(self) -> int:
        found = AGENT_PID.search(self.log_text())
        assert found is not None, self.log_text()
        return int(found.group(1))

    def ask_agent(self, method: str) -> Any:
        with socket.create_connection(("127.0.0.1", self.agent_port), timeout=IO_TIMEOUT_S) as s:
            s.sendall(method.encode() + b"\n")
            return json.loads(s.makefile("rb").readline())

    def wait_for_agent(self) -> Any:
        """The agent's first answer, once it listens and reaches the engine."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"up exited early:\n{self.log_text()}")
            with contextlib.suppress(OSError, ValueError):
                reply = self.ask_agent("CoreSv1.Ping")
                if reply == "Pong":
                    return reply
            if time.monotonic() > deadline:
                raise AssertionError(f"agent did not answer:\n{self.log_text()}")
            time.sleep(0.1)

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(STOP_TIMEOUT_S)

    def kill_all(self) -> None:
        """Test cleanup: whatever is still running, by PID."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        found = AGENT_PID.search(self.log_text()) if self.log_path.exists() else None
        if found is not None and alive(int(found.group(1))):
            os.kill(int(found.group(1)), signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path)
    yield process
    process.kill_all()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_up_runs_the_agent_as_a_child_and_a_signal_stops_both(
    up: UpProcess, stop_signal: signal.Signals
) -> None:
    up.start()
    assert up.wait_for_agent() == "Pong"
    pid = up.agent_pid()
    assert up.process is not None
    assert pid != up.process.pid
    assert alive(pid)
    assert up.ask_agent("Nobody.Home") == {"error": "rpc: can't find service Nobody.Home"}
    up.process.send_signal(stop_signal)
    assert up.wait() == 0, up.log_text()
    assert not alive(pid), "the agent process outlived up"
    assert "agent line ready" in up.log_text()
    assert "Traceback" not in up.log_text()  # Ctrl-C is a clean stop, not a KeyboardInterrupt


def test_up_with_the_diameter_agent_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    up = UpProcess(tmp_path, agents={"diameter": {
        "enabled": True, "listen": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "diameter"),
    }})  # fmt: skip
    pid: int | None = None
    try:
        up.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert up.process is not None and up.process.poll() is None, up.log_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, up.log_text()
            time.sleep(0.1)
        found = re.search(r"agent diameter started \(pid (\d+)\)", up.log_text())
        assert found is not None, up.log_text()
        pid = int(found.group(1))
        assert alive(pid)
        up.process.send_signal(signal.SIGINT)
        assert up.wait() == 0, up.log_text()
        assert not alive(pid), "the diameter agent outlived up"
        assert "Traceback" not in up.log_text()
    finally:
        up.kill_all()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_up_exits_non_zero_when_an_agent_dies(up: UpProcess) -> None:
    up.start()
    up.wait_for_agent()
    pid = up.agent_pid()
    os.kill(pid, signal.SIGKILL)
    assert up.wait() == 1, up.log_text()
    assert "agents are not restarted" in up.log_text()


def test_up_with_every_agent_disabled_stops_cleanly(tmp_path: Path) -> None:
    up = UpProcess(tmp_path, agents={})
    try:
        up.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while "engine ready" not in up.log_text():
            assert up.process is not None and up.process.poll() is None, up.log_text()
            assert time.monotonic() < deadline, up.log_text()
            time.sleep(0.05)
        assert "started (pid" not in up.log_text()
        assert up.process is not None
        up.process.send_signal(signal.SIGTERM)
        assert up.wait() == 0, up.log_text()
    finally:
        up.kill_all()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=START_TIMEOUT_S,
    )


def test_agent_command_rejects_unknown_and_disabled_agents(tmp_path: Path) -> None:
    unknown = run_cli("agent", "nosuch")
    assert unknown.returncode == 2
    assert "unknown agent 'nosuch'" in unknown.stderr
    config = tmp_path / "disabled.yaml"
    config.write_text(yaml.safe_dump({"agents": {"diameter": {"enabled": False}}}))
    disabled = run_cli("agent", "diameter", "--config", str(config))
    assert disabled.returncode == 2
    assert "agent 'diameter' is disabled" in disabled.stderr


def test_up_refuses_an_enabled_unknown_agent_before_starting(tmp_path: Path) -> None:
    up = UpProcess(tmp_path, agents={"nosuch": {"enabled": True}})
    run = run_cli("up", "--config", str(up.config_path))
    assert run.returncode == 2
    assert "unknown agent(s) enabled: nosuch" in run.stderr
