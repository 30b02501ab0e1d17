"""Runs ``chargeflow engine`` as a real OS process on free loopback ports, for integration tests."""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 10.0
TUTORIAL = Path(__file__).resolve().parents[3] / "shared" / "tariffplans" / "cgrates_tutorial"


# Engines still running when the test process exits (a fixture that failed before its teardown,
# an interrupted run) are killed then, never left behind holding ports and files.
_RUNNING: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_RUNNING):
        if process.poll() is None:
            process.kill()
            process.wait()
    _RUNNING.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EngineProcess:
    """One engine process; ``call``/``http_call`` speak the CGRateS wire format."""

    def __init__(self, workdir: Path, extra_config: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.tcp_port = free_port()
        self.http_port = free_port()
        config: dict[str, dict[str, Any]] = {
            "engine": {
                "rpc_json_listen": f"127.0.0.1:{self.tcp_port}",
                "http_listen": f"127.0.0.1:{self.http_port}",
            },
            "storage": {"type": "sqlite", "data_dir": str(workdir / "data")},
            "tariffplans": {"load_on_start": []},
        }
        for section, values in (extra_config or {}).items():
            config.setdefault(section, {}).update(values)
        self.config_path = workdir / "chargeflow.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self._next_id = 0

    def start(self) -> EngineProcess:
        log = open(self.workdir / "engine.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "engine", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        _RUNNING.add(self.process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"engine exited: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"engine did not start: {self.log_text()}")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        _RUNNING.discard(self.process)
        self.process = None
        return code

    def log_text(self) -> str:
        return (self.workdir / "engine.log").read_text(errors="replace")

    # ---------------------------------------------------------------------------- wire helpers
    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=IO_TIMEOUT_S)
        return sock

    def call(self, method: str, params: Any) -> dict[str, Any]:
        """One request on a fresh TCP connection; returns the whole reply object."""
        self._next_id += 1
        with self.connect() as sock:
            sock.sendall(
                json.dumps({"method": method, "params": [params], "id": self._next_id}).encode()
            )
            return read_replies(sock, 1)[0]

    def http_call(self, method: str, params: Any, body: bytes | None = None) -> dict[str, Any]:
        self._next_id += 1
        data = (
            body or json.dumps({"method": method, "params": [params], "id": self._next_id}).encode()
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/jsonrpc",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=IO_TIMEOUT_S) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply


def read_replies(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    """Reads ``count`` JSON objects from the stream (the engine ends each with a newline)."""
    decoder = json.JSONDecoder()
    buffer = ""
    replies: list[dict[str, Any]] = []
    while len(replies) < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(replies)} of {count} replies")
        buffer += chunk.decode()
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                obj, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                break
            replies.append(obj)
            buffer = buffer[end:]
    return replies
