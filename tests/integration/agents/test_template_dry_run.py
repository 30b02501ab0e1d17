"""``chargeflow template dry-run``: a captured CCR through the real Diameter agent, offline."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
VOICE_CCR = REPO / "tests" / "vectors" / "diameter" / "voice_ims_ccr_initial.hex"
TIMEOUT_S = 60


def dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "template", "dry-run", "--agent", "diameter", *args],
        capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT_S,
    )  # fmt: skip


def write_pcap(path: Path, payload: bytes) -> None:
    """One Ethernet/IPv4/TCP frame carrying ``payload``, in the classic pcap format."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 3868, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))  # fmt: skip
    frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 0, 0, len(frame), len(frame))
    path.write_bytes(header + record + frame)


def test_voice_ccr_initial_with_a_given_engine_reply(tmp_path: Path) -> None:
    reply = tmp_path / "reply.json"
    reply.write_text(json.dumps({"MaxUsage": 300_000_000_000, "Attributes": None}))
    run = dry_run("--packet", str(VOICE_CCR), "--engine-reply", str(reply))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert '"Subscription-Id-Data": "491701234567"' in out  # the decoded request
    assert "== processor matched: gy_voice_initial" in out
    assert "-- 1. SessionSv1.InitiateSession" in out
    assert '"Account": "491701234567"' in out
    assert '"Result-Code": 2001' in out and '"CC-Time": 300' in out


def test_engine_error_is_mapped_to_the_diameter_result(tmp_path: Path) -> None:
    reply = tmp_path / "error.json"
    reply.write_text(json.dumps({"error": "RALS_ERROR:ACCOUNT_NOT_FOUND"}))
    run = dry_run("--packet", str(VOICE_CCR), "--engine-reply", str(reply))
    assert run.returncode == 0, run.stderr
    assert '"Result-Code": 5030' in run.stdout  # DIAMETER_USER_UNKNOWN
    assert '"error": "RALS_ERROR:ACCOUNT_NOT_FOUND"' in run.stdout


def test_reads_the_request_from_a_pcap(tmp_path: Path) -> None:
    capture = tmp_path / "ccr.pcap"
    write_pcap(capture, bytes.fromhex(VOICE_CCR.read_text().strip()))
    run = dry_run("--packet", str(capture))
    assert run.returncode == 0, run.stderr
    assert "== processor matched: gy_voice_initial" in run.stdout


def test_garbage_packet_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hex"
    bad.write_text("01 00 00 ff zz")
    run = dry_run("--packet", str(bad))
    assert run.returncode == 1
    assert "neither a pcap file nor a hex dump" in run.stderr
    short = tmp_path / "short.hex"
    short.write_text("0100001400000000")
    run = dry_run("--packet", str(short))
    assert run.returncode == 1
    assert "not a valid Diameter message" in run.stderr
