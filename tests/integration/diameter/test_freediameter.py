"""Interop: freeDiameterd (Debian freediameter) connects to our Diameter transport.

freeDiameter is installed by scripts/setup-peers when missing; if it cannot be installed this
test fails (it is never skipped). It exchanges CER/CEA with us (advertising the Relay application,
which we accept as common), answers our DWRs, and on SIGTERM disconnects with DPR/DPA.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.diameter import codec
from agents.diameter.transport import (
    AllowedPeer,
    DiameterConfig,
    DiameterNode,
    DiameterTransportError,
    Peer,
    PeerState,
)

ROOT = Path(__file__).resolve().parents[3]
FD_IDENTITY = "fd.chargeflow.test"
OUR_HOST = "ocs.chargeflow.test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _freediameterd() -> str:
    setup = subprocess.run(
        [str(ROOT / "scripts" / "setup-peers"), "freediameter"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert setup.returncode == 0, f"scripts/setup-peers freediameter failed: {setup.stderr}"
    binary = shutil.which("freeDiameterd") or "/usr/bin/freeDiameterd"
    assert Path(binary).exists(), "freeDiameterd missing after setup-peers"
    return binary


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _make_ca_and_certs(tmp: Path, *names: str) -> Path:
    """A throwaway CA and one certificate per DiameterIdentity (CN and SAN), signed by it."""
    ca = tmp / "ca.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=chargeflow-test-ca", "-keyout", str(tmp / "ca.key"), "-out", str(ca))  # fmt: skip
    for name in names:
        ext = tmp / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(tmp / f"{name}.key"), "-out", str(tmp / f"{name}.csr"))  # fmt: skip
        _openssl("x509", "-req", "-in", str(tmp / f"{name}.csr"), "-CA", str(ca), "-CAkey",
                 str(tmp / "ca.key"), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
                 "-out", str(tmp / f"{name}.pem"))  # fmt: skip
    return ca


def _write_config(
    tmp: Path,
    our_port: int,
    *,
    peer: str = OUR_HOST,
    listen_port: int | None = None,
    ca: Path | None = None,
) -> Path:
    """freeDiameter connecting to us on ``our_port``: TLS with certificates from
    ``_make_ca_and_certs`` when ``ca`` is given, plain TCP otherwise."""
    tls = ca is not None
    if ca is not None:
        cert, key = tmp / f"{FD_IDENTITY}.pem", tmp / f"{FD_IDENTITY}.key"
    else:
        # freeDiameter wants TLS credentials even when every peer is No_TLS: a throwaway cert.
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 f"/CN={FD_IDENTITY}", "-keyout", str(key), "-out", str(cert))  # fmt: skip
        ca = cert
    conf = tmp / "freeDiameter.conf"
    conf.write_text(
        f"""
Identity = "{FD_IDENTITY}";
Realm = "chargeflow.test";
Port = {listen_port or _free_port()};
SecPort = {_free_port()};
ListenOn = "127.0.0.1";
No_SCTP;
No_IPv6;
TcTimer = 1;
TwTimer = 6;
TLS_Cred = "{cert}", "{key}";
TLS_CA = "{ca}";
ConnectPeer = "{peer}" {{ ConnectTo = "127.0.0.1"; Port = {our_port};{"" if tls else " No_TLS;"} }};
"""
    )
    return conf


@pytest.fixture
async def node() -> AsyncIterator[DiameterNode]:
    config = DiameterConfig(
        origin_host=OUR_HOST,
        origin_realm="chargeflow.test",
        listen_port=0,
        watchdog_interval=0.3,  # tiny Tw: our DWRs flow to freeDiameter within the test
        allowed_peers=(AllowedPeer(FD_IDENTITY, frozenset({"127.0.0.1"})),),
    )
    ours = DiameterNode(config)
    await ours.start()
    yield ours
    await asyncio.wait_for(ours.stop(), 10)


async def _wait_for_peer(node: DiameterNode, host: str, timeout: float) -> Peer:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        peer = node.peers.get(host)
        if peer is not None and peer.state is PeerState.OPEN:
            return peer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{host} did not open a connection in {timeout}s")


async def _start_freediameterd(conf: Path, log_path: Path) -> asyncio.subprocess.Process:
    binary = _freediameterd()
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            binary, "-c", str(conf), stdout=log, stderr=subprocess.STDOUT
        )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10.0)


async def test_freediameter_cer_dwr_dpr(node: DiameterNode, tmp_path: Path) -> None:
    _freediameterd()  # installs it first if missing (before the openssl and config steps)
    conf = _write_config(tmp_path, node.port)
    log_path = tmp_path / "freeDiameterd.log"
    proc = await _start_freediameterd(conf, log_path)
    try:
        peer = await _wait_for_peer(node, FD_IDENTITY, 20.0)
        assert peer.origin_realm == "chargeflow.test"
        assert codec.APP_RELAY in peer.applications  # freeDiameter relays: all apps common

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while peer.dwa_received < 3 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert peer.dwa_received >= 3, "freeDiameter did not answer our DWRs"
        assert peer.state is PeerState.OPEN

        # SIGTERM: freeDiameter sends DPR, we answer DPA and close.
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(peer.closed.wait(), 20.0)
        assert peer.dpr_received == 1
        assert await asyncio.wait_for(proc.wait(), 20.0) == 0
        text = log_path.read_text(errors="replace")
        assert "'STATE_WAITCEA'\t-> 'STATE_OPEN'" in text, text[-2000:]
    finally:
        await _stop(proc)


async def test_our_client_to_freediameter_answers_its_dwr(tmp_path: Path) -> None:
    """We connect out (client side); freeDiameter's own watchdog (Tw = 6 s) gets our DWA."""
    _freediameterd()
    fd_port = _free_port()
    # freeDiameter only accepts configured peers; the ConnectTo port is closed on purpose, so
    # it never wins the connection race and takes ours.
    conf = _write_config(tmp_path, _free_port(), peer="pgw.chargeflow.test", listen_port=fd_port)
    proc = await _start_freediameterd(conf, tmp_path / "freeDiameterd.log")
    client = DiameterNode(
        DiameterConfig(
            origin_host="pgw.chargeflow.test",
            origin_realm="chargeflow.test",
            listen_port=0,
            watchdog_interval=60.0,  # stay silent: freeDiameter's DWR comes first
        )
    )
    try:
        peer: Peer | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20.0
        while peer is None:
            try:
                peer = await client.connect("127.0.0.1", fd_port)
            except DiameterTransportError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)  # freeDiameter still starting
        assert peer.origin_host == FD_IDENTITY and peer.state is PeerState.OPEN
        deadline = loop.time() + 15.0
        while peer.dwr_received < 1 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert peer.dwr_received >= 1, "no DWR from freeDiameter"
        await asyncio.sleep(0.2)
        assert peer.state is PeerState.OPEN  # it took our DWA
        await asyncio.wait_for(peer.disconnect(), 10.0)  # our DPR, its DPA
        assert peer.state is PeerState.CLOSED
    finally:
        await client.stop()
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20.0)
        await _stop(proc)


async def test_freediameter_over_tls(tmp_path: Path) -> None:
    """freeDiameter connects with TLS from the first byte; both sides check certificates
    issued by one throwaway CA for their DiameterIdentity."""
    _freediameterd()
    ca = _make_ca_and_certs(tmp_path, FD_IDENTITY, OUR_HOST)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    server_ctx.load_cert_chain(tmp_path / f"{OUR_HOST}.pem", tmp_path / f"{OUR_HOST}.key")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL  # check freeDiameter's cert if it sends one
    ours = DiameterNode(
        DiameterConfig(
            origin_host=OUR_HOST,
            origin_realm="chargeflow.test",
            listen_port=0,
            watchdog_interval=0.3,
            tls_server=server_ctx,
        )
    )
    await ours.start()
    conf = _write_config(tmp_path, ours.port, ca=ca)
    proc = await _start_freediameterd(conf, tmp_path / "freeDiameterd.log")
    try:
        peer = await _wait_for_peer(ours, FD_IDENTITY, 20.0)
        ssl_object = peer.writer.get_extra_info("ssl_object")
        assert ssl_object is not None and ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while peer.dwa_received < 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert peer.dwa_received >= 2
    finally:
        await asyncio.wait_for(ours.stop(), 10.0)
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20.0)
        await _stop(proc)
