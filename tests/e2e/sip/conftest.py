"""Fixtures: a real engine process with the tutorial plan and route profiles set up here, the SIP
agent as its own process (``chargeflow agent sip``, short RFC 3261 timers), and SIPp (Debian
sip-tester, installed by scripts/setup-peers) playing the scenarios in this folder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from core.config import REPO_ROOT
from tests.e2e.diameter.conftest import start_engine
from tests.integration.engine_process import EngineProcess, free_port

SCENARIOS = Path(__file__).resolve().parent
AGENT_START_TIMEOUT = 15.0
AGENT_STOP_TIMEOUT = 10.0
SIPP_TIMEOUT = 20  # seconds: the whole run (-timeout), so a lost answer ends the test
SIPP_RECV_TIMEOUT_MS = 5000  # one expected message (-recv_timeout)
# Timers for the agent under test: T1 100 ms makes G fire at 0.1, 0.3, 0.7 s ... and H at 6.4 s.
TEST_T1 = 0.1
TEST_T4 = 0.5

# Account 1001: our own *weight profile (heavier than the tutorial's ROUTE_ACNT_1001), whose
# RouteParameters are the gateways the Contacts must name, gw-b (weight 20) first.
SIP_ROUTES_1001 = {
    "Tenant": "cgrates.org",
    "ID": "ROUTE_SIP_1001",
    "FilterIDs": ["*string:~*req.Account:1001"],
    "Sorting": "*weight",
    "Routes": [
        {"ID": "gw-a", "Weight": 10, "RouteParameters": "10.0.0.1:5060"},
        {"ID": "gw-b", "Weight": 20, "RouteParameters": "10.0.0.2:5080;transport=tcp"},
    ],
    "Weight": 100,
}
# Account 1004: rated like 1001, routed, no money -> 402. Account 1005: rated, money, but no
# route profile matches it -> 480.
ROUTES_1004 = {
    "Tenant": "cgrates.org",
    "ID": "ROUTE_SIP_1004",
    "FilterIDs": ["*string:~*req.Account:1004"],
    "Sorting": "*weight",
    "Routes": [{"ID": "gw-a", "Weight": 10, "RouteParameters": "10.0.0.1:5060"}],
    "Weight": 10,
}


def rating_profile(subject: str) -> dict[str, object]:
    return {
        "Tenant": "cgrates.org", "Category": "call", "Subject": subject, "Overwrite": True,
        "RatingPlanActivations": [
            {"ActivationTime": "2014-01-14T00:00:00Z", "RatingPlanId": "RP_1001",
             "FallbackSubjects": ""}
        ],
    }  # fmt: skip


def set_up_routing(engine: EngineProcess) -> None:
    """The route profiles, accounts and rating profiles the tests expect (see above)."""
    calls: list[tuple[str, dict[str, object]]] = [
        ("APIerSv1.SetRouteProfile", SIP_ROUTES_1001),
        ("APIerSv1.SetRouteProfile", ROUTES_1004),
    ]
    for account in ("1004", "1005"):
        calls.append(("APIerSv1.SetRatingProfile", rating_profile(account)))
        calls.append(
            ("APIerSv1.SetAccount",
             {"Tenant": "cgrates.org", "Account": account, "ActionTriggerIDs": []})
        )  # fmt: skip
    calls.append(
        ("APIerSv1.SetBalance",
         {"Tenant": "cgrates.org", "Account": "1005", "BalanceType": "*monetary", "Value": 10,
          "Balance": {"ID": "test"}})
    )  # fmt: skip
    for method, params in calls:
        reply = engine.call(method, params)
        assert reply["result"] == "OK", (method, reply)


@pytest.fixture(scope="session")
def sipp() -> str:
    setup = subprocess.run(
        [str(REPO_ROOT / "scripts" / "setup-peers"), "sip-tester"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    found = shutil.which("sipp") or "/usr/bin/sipp"
    assert Path(found).exists(), "sipp is not installed"
    return found


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    process = start_engine(tmp_path_factory.mktemp("sip-engine"))
    set_up_routing(process)
    yield process
    assert process.stop() == 0, process.log_text()


@dataclass
class SipAgentProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _udp_bound(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return True
    finally:
        probe.close()
    return False


def start_sip_agent(engine: EngineProcess, workdir: Path, **options: object) -> SipAgentProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "agent.yaml"
    block = {
        "enabled": True,
        "listen": f"127.0.0.1:{port}",
        "templates": str(REPO_ROOT / "templates" / "sip"),
        "t1": TEST_T1,
        "t4": TEST_T4,
        **options,
    }
    config_path.write_text(
        yaml.safe_dump(
            {
                "engine": {"rpc_json_listen": f"127.0.0.1:{engine.tcp_port}", "http_listen": ""},
                "tariffplans": {"load_on_start": []},
                "agents": {"sip": block},
            }
        )
    )
    log_path = workdir / "agent.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "agent", "sip", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = SipAgentProcess(port, process, log_path)
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while True:
        assert process.poll() is None, f"agent exited: {running.log_text()}"
        if _udp_bound(port) and "ready" in running.log_text():
            break
        assert time.monotonic() < deadline, f"agent did not start: {running.log_text()}"
        time.sleep(0.05)
    return running


def stop_sip_agent(agent: SipAgentProcess) -> int:
    if agent.process.poll() is None:
        agent.process.send_signal(signal.SIGTERM)
        try:
            agent.process.wait(AGENT_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            agent.process.kill()
            agent.process.wait()
    return agent.process.returncode


@pytest.fixture(scope="module")
def agent(
    engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SipAgentProcess]:
    running = start_sip_agent(engine, tmp_path_factory.mktemp("sip-agent"))
    yield running
    assert stop_sip_agent(running) == 0, running.log_text()


@dataclass
class SippRun:
    returncode: int
    output: str
    messages: str  # SIPp's message trace (-trace_msg)


def run_sipp(
    sipp: str,
    scenario: str,
    port: int,
    workdir: Path,
    *,
    caller: str = "1001",
    callee: str = "1002",
    transport: str = "u1",
    calls: int = 1,
    extra: tuple[str, ...] = (),
) -> SippRun:
    """Plays ``scenario`` (a file in this folder) ``calls`` times against 127.0.0.1:port;
    ``[field0]``/``[field1]`` are the caller and callee."""
    workdir.mkdir(parents=True, exist_ok=True)
    injection = workdir / "users.csv"
    injection.write_text(f"SEQUENTIAL\n{caller};{callee};\n")
    command = [
        sipp,
        "-sf", str(SCENARIOS / scenario),
        "-inf", str(injection),
        "-m", str(calls),
        "-t", transport,
        "-i", "127.0.0.1",
        "-p", str(free_port()),
        "-timeout", f"{SIPP_TIMEOUT}s",
        "-timeout_error",
        "-recv_timeout", str(SIPP_RECV_TIMEOUT_MS),
        "-max_recv_loops", "1000",
        "-nostdin",
        "-trace_msg",
        "-message_file", str(workdir / "messages.log"),
        "-trace_err",
        "-error_file", str(workdir / "errors.log"),
        *extra,
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=SIPP_TIMEOUT + 10,
        check=False,
    )  # fmt: skip
    messages = workdir / "messages.log"
    errors = workdir / "errors.log"
    output = done.stdout[-3000:] + done.stderr[-3000:]
    if errors.exists():
        output += "\n" + errors.read_text(errors="replace")[-3000:]
    return SippRun(
        done.returncode,
        output,
        messages.read_text(errors="replace") if messages.exists() else "",
    )
