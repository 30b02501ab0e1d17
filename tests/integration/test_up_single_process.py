"""``chargeflow up --single-process`` as a real process: the agent runs inside it (no child
process), reaches the engine in-process, and SIGTERM stops both with exit code 0."""

from __future__ import annotations

import contextlib
import json
import os
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

from tests.integration.engine_process import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 5.0
SHIPPED_AGENTS = tuple(yaml.safe_load((REPO / "config" / "chargeflow.yaml").read_text())["agents"])


class SingleProcessUp:
    def __init__(self, workdir: Path, listen: bool = True) -> None:
        self.agent_port = free_port()
        config = {
            "engine": {"rpc_json_listen": f"127.0.0.1:{free_port()}", "http_listen": ""},
            "storage": {"type": "memory"},
            "tariffplans": {"load_on_start": []},
            "agents": {name: {"enabled": False} for name in SHIPPED_AGENTS}
            | {
                "line": {  # one line in (an engine method), its JSON result out
                    "enabled": True,
                    "factory": "tests.integration.test_up:LineAgent",
                }
                | ({"listen": f"127.0.0.1:{self.agent_port}"} if listen else {})
            },
        }
        self.config_path = workdir / "chargeflow.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "up.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "up", "--single-process",
                 "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ask_agent(self, method: str) -> Any:
        with socket.create_connection(("127.0.0.1", self.agent_port), timeout=IO_TIMEOUT_S) as s:
            s.sendall(method.encode() + b"\n")
            return json.loads(s.makefile("rb").readline())

    def wait_for_agent(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"up exited early:\n{self.log_text()}")
            with contextlib.suppress(OSError, ValueError):
                if self.ask_agent("CoreSv1.Ping") == "Pong":
                    return
            assert time.monotonic() < deadline, f"agent did not answer:\n{self.log_text()}"
            time.sleep(0.1)

    def children(self) -> list[int]:
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in found.stdout.split()]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[SingleProcessUp]:
    process = SingleProcessUp(tmp_path)
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait()


def test_the_agent_runs_inside_up_and_sigterm_stops_it(up: SingleProcessUp) -> None:
    up.wait_for_agent()
    assert up.children() == []  # no agent process: the agent is in up's own process
    assert up.ask_agent("Nobody.Home") == {"error": "rpc: can't find service Nobody.Home"}
    assert "agent line ready (the engine in this process)" in up.log_text()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(STOP_TIMEOUT_S) == 0, up.log_text()
    assert "agent line stopping" in up.log_text()


def test_sigint_stops_it_too(up: SingleProcessUp) -> None:
    up.wait_for_agent()
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(STOP_TIMEOUT_S) == 0, up.log_text()


def test_an_agent_that_cannot_start_stops_up_with_exit_code_1(tmp_path: Path) -> None:
    up = SingleProcessUp(tmp_path, listen=False)  # the line agent requires listen
    try:
        assert up.process.wait(STOP_TIMEOUT_S) == 1, up.log_text()
        assert "listen is required" in up.log_text()
        assert "agent line ended before the stop signal" in up.log_text()
    finally:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()
