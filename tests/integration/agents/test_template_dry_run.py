"""``chargeflow template dry-run``: a captured CCR through the real Diameter agent, offline."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from diameter.message import constants as C  # type: ignore[import-untyped]

from agents.dryrun import live_call
from tests.e2e.diameter.conftest import start_engine
from tests.e2e.diameter.gy_client import GyClient
from tests.e2e.test_sessions_acceptance import cdrs, money, set_money
from tests.integration.engine_process import EngineProcess

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "diameter"
VOICE_CCR = VECTORS / "voice_ims_ccr_initial.hex"
DATA_CCR = VECTORS / "gy_data_ccr_initial.hex"
SMS_CCR = VECTORS / "sms_ccr_event.hex"
TIMEOUT_S = 60
INITIAL = C.E_CC_REQUEST_TYPE_INITIAL_REQUEST
UPDATE = C.E_CC_REQUEST_TYPE_UPDATE_REQUEST
TERMINATE = C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST


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


# ------------------------------------------------------------------- answers of the templates
def answer_tree(out: str) -> list[dict[str, Any]]:
    """The answer the dry run printed (a list of ``{AVP name: value}``, grouped AVPs nested)."""
    start = out.index("== answer\n") + len("== answer\n")
    tree, _ = json.JSONDecoder().raw_decode(out, start)
    assert isinstance(tree, list)
    return tree


def avps(tree: list[dict[str, Any]], *path: str) -> list[Any]:
    """The values at a path of AVP names, through every repeated grouped AVP."""
    found: list[Any] = [tree]
    for name in path:
        found = [item[name] for level in found for item in level if name in item]
    return found


def with_reply(tmp_path: Path, packet: Path, reply: Any) -> list[dict[str, Any]]:
    reply_file = tmp_path / "reply.json"
    reply_file.write_text(json.dumps(reply))
    run = dry_run("--packet", str(packet), "--engine-reply", str(reply_file))
    assert run.returncode == 0, run.stderr
    return answer_tree(run.stdout)


MSCC = "Multiple-Services-Credit-Control"
GSU = "Granted-Service-Unit"
FUA = ("Final-Unit-Indication", "Final-Unit-Action")
SECOND_NS = 1_000_000_000


@pytest.mark.parametrize(
    ("reply", "result_code", "granted_s", "final_unit"),
    [
        ({"MaxUsage": 300 * SECOND_NS}, 2001, [300], []),  # all that was asked for
        ({"MaxUsage": 3 * SECOND_NS}, 2001, [3], [0]),  # the last grant: TERMINATE
        ({"MaxUsage": 0}, 4012, [], []),  # CREDIT_LIMIT_REACHED
        ({"error": "RALS_ERROR:INSUFFICIENT_CREDIT"}, 4012, [], []),
        ({"error": "RALS_ERROR:RATING_PLAN_NOT_FOUND"}, 5031, [], []),  # RATING_FAILED
        ({"error": "SERVER_ERROR: boom"}, 5012, [], []),  # UNABLE_TO_COMPLY
    ],
)
def test_voice_answer_codes_and_final_unit(
    tmp_path: Path, reply: Any, result_code: int, granted_s: list[int], final_unit: list[int]
) -> None:
    # The shipped voice CCR-I asks for CC-Time 300 in an MSCC.
    tree = with_reply(tmp_path, VOICE_CCR, reply)
    assert avps(tree, "Result-Code") == [result_code]
    assert avps(tree, MSCC, GSU, "CC-Time") == granted_s
    assert avps(tree, MSCC, *FUA) == final_unit


@pytest.mark.parametrize(
    ("reply", "result_code", "mscc_codes", "granted", "final_units"),
    [
        # The CCR-I's three Rating-Groups ask for the default grant; 500 octets is less.
        ({"MaxUsage": 500}, 2001, [2001] * 3, [500] * 3, [0] * 3),
        ({"MaxUsage": 0}, 4012, [4012] * 3, [], []),
        ({"error": "RALS_ERROR:INSUFFICIENT_CREDIT"}, 4012, [4012] * 3, [], []),
        ({"error": "RALS_ERROR:RATING_PLAN_NOT_FOUND"}, 5031, [5031] * 3, [], []),
        ({"error": "SERVER_ERROR: boom"}, 5012, [5012] * 3, [], []),
    ],
)
def test_data_answer_codes_and_final_unit_per_rating_group(
    tmp_path: Path,
    reply: Any,
    result_code: int,
    mscc_codes: list[int],
    granted: list[int],
    final_units: list[int],
) -> None:
    tree = with_reply(tmp_path, DATA_CCR, reply)
    assert avps(tree, "Result-Code") == [result_code]
    assert avps(tree, MSCC, "Rating-Group") == [1, 2, 3]
    assert avps(tree, MSCC, "Result-Code") == mscc_codes
    assert avps(tree, MSCC, GSU, "CC-Total-Octets") == granted
    assert avps(tree, MSCC, *FUA) == final_units


# ----------------------------------------------------------------- against a live engine
ACCOUNT = "1001"


def sent_params(out: str, header: str) -> Any:
    """The JSON printed under a call's ``header`` line."""
    start = out.index(header)
    params, _ = json.JSONDecoder().raw_decode(out, out.index("{", start))
    return params


def engine_state(engine: EngineProcess) -> tuple[Decimal, int, int]:
    """Money, active sessions and CDRs: what a dry run must leave as they were."""
    active = engine.call("SessionSv1.GetActiveSessionsCount", {})
    assert active["error"] is None, active
    return money(engine, ACCOUNT), active["result"], len(cdrs(engine))


def test_live_engine_dry_run_charges_nothing(tmp_path: Path) -> None:
    engine = start_engine(tmp_path / "engine")
    try:
        set_money(engine, ACCOUNT, 10)
        client = GyClient("unused", 0, origin_host="pcef.test.net")
        packets = tmp_path / "packets"
        packets.mkdir()

        def packet(name: str, message: Any) -> Path:
            path = packets / f"{name}.hex"
            path.write_text(message.as_bytes().hex())
            return path

        live = "pcef.test.net;live;1"
        initial = packet("ccr_i", client.voice_ccr(live, INITIAL, 0, requested=120))
        update = packet("ccr_u", client.voice_ccr(live, UPDATE, 1, requested=120, used=120))
        terminate = packet("ccr_t", client.voice_ccr(live, TERMINATE, 2, used=30))
        sms = packet("ccr_e", client.sms_ccr("pcef.test.net;sms;1", "1002"))
        new_call = packet("ccr_i_new", client.voice_ccr("pcef.test.net;new;1", INITIAL, 0,
                                                        requested=120))  # fmt: skip

        # A call in progress: opened for real with the InitiateSession the agent builds.
        offline = dry_run("--packet", str(initial))
        assert offline.returncode == 0, offline.stderr
        opened = engine.call(
            "SessionSv1.InitiateSession",
            sent_params(offline.stdout, "-- 1. SessionSv1.InitiateSession"),
        )
        assert opened["error"] is None and opened["result"]["MaxUsage"] == 120 * SECOND_NS
        before = engine_state(engine)
        # (one active session per charger run of the tutorial: more than one)
        assert before[0] < 10 and before[1] > 0 and before[2] == 0

        live_engine = ("--engine", f"127.0.0.1:{engine.tcp_port}")
        runs = {
            name: dry_run("--packet", str(path), *live_engine)
            for name, path in [("new", new_call), ("update", update), ("terminate", terminate),
                               ("sms", sms)]
        }  # fmt: skip
        for name, run in runs.items():
            assert run.returncode == 0, (name, run.stderr)
            assert "only side-effect-free calls were sent" in run.stdout, name
            assert engine_state(engine) == before, name

        # CCR-I and CCR-U: the charging call is shown, and an AuthorizeEvent asked instead;
        # the answer is built from its MaxUsage (10 of money allows the 120 s asked for).
        charging = [("new", "InitiateSession", "InitSession"),
                    ("update", "UpdateSession", "UpdateSession")]  # fmt: skip
        for name, method, charging_flag in charging:
            out = runs[name].stdout
            assert f"-- 1. SessionSv1.{method} (would have been sent, NOT sent)" in out
            assert sent_params(out, f"-- 1. SessionSv1.{method}")[charging_flag] is True
            header = "-- 1. sent instead: SessionSv1.AuthorizeEvent"
            authorize = sent_params(out, header)
            assert authorize["GetMaxUsage"] is True and charging_flag not in authorize
            assert authorize["ID"] != sent_params(out, f"-- 1. SessionSv1.{method}")["ID"]
            assert authorize["ProcessThresholds"] is False and authorize["ProcessStats"] is False
            tree = answer_tree(out)
            assert avps(tree, "Result-Code") == [2001], name
            assert avps(tree, MSCC, GSU, "CC-Time") == [120], name
        # CCR-T: neither TerminateSession nor ProcessCDR is sent; the answer is the success.
        out = runs["terminate"].stdout
        assert "-- 1. SessionSv1.TerminateSession (would have been sent, NOT sent)" in out
        assert "-- 2. SessionSv1.ProcessCDR (would have been sent, NOT sent)" in out
        assert out.count("nothing sent instead (not sent:") == 2
        assert "sent instead: SessionSv1" not in out
        assert avps(answer_tree(out), "Result-Code") == [2001]
        # SMS CCR-E: ProcessMessage (a debit) becomes an AuthorizeEvent; no CDR is sent.
        out = runs["sms"].stdout
        assert "-- 1. SessionSv1.ProcessMessage (would have been sent, NOT sent)" in out
        assert sent_params(out, "-- 1. sent instead: SessionSv1.AuthorizeEvent")["GetMaxUsage"]
        assert "-- 2. SessionSv1.ProcessCDR (would have been sent, NOT sent)" in out
        tree = answer_tree(out)
        assert avps(tree, "Result-Code") == [2001]
        assert avps(tree, MSCC, GSU, "CC-Service-Specific-Units") == [1]

        # Out of money, the dry run answers what the real call would: CREDIT_LIMIT_REACHED.
        set_money(engine, ACCOUNT, 0)
        broke = engine_state(engine)
        run = dry_run("--packet", str(new_call), *live_engine)
        assert run.returncode == 0, run.stderr
        # (the AuthorizeEvent has an ID of its own: not the engine's cached reply of before)
        assert avps(answer_tree(run.stdout), "Result-Code") == [4012], run.stdout
        assert engine_state(engine) == broke
    finally:
        assert engine.stop() == 0, engine.log_text()


def test_live_calls_have_no_side_effects() -> None:
    event = {"Tenant": "cgrates.org", "ID": "e1", "Event": {"Account": "1001"}}
    # A query goes as it is.
    query = live_call("SessionSv1.GetActiveSessions", {"Tenant": "cgrates.org"})
    assert (query.method, query.params, query.note) == ("SessionSv1.GetActiveSessions",
                                                        {"Tenant": "cgrates.org"}, "")  # fmt: skip
    # An AuthorizeEvent loses its thresholds and stats, and its event ID.
    authorize = live_call(
        "SessionSv1.AuthorizeEvent", {**event, "GetMaxUsage": True, "ProcessThresholds": True}
    )
    assert authorize.method == "SessionSv1.AuthorizeEvent" and authorize.note
    assert authorize.params["ProcessThresholds"] is False and authorize.params["GetMaxUsage"]
    assert authorize.params["ID"].startswith("e1#dry-run-")
    # ProcessEvent: asked as an AuthorizeEvent, answered in its own shape.
    flags = ["*message", "*accounts", "*attributes:*ids:ATTR_1", "*cdrs"]
    process = live_call("SessionSv1.ProcessEvent", {**event, "Flags": flags})
    assert process.method == "SessionSv1.AuthorizeEvent" and "Flags" not in process.params
    assert process.params["GetMaxUsage"] is True and process.params["GetAttributes"] is True
    assert process.params["GetRoutes"] is False
    reply = process.reply({"MaxUsage": 5, "Attributes": None, "Routes": None})
    assert reply["MaxUsage"] == {"*default": 5} and reply["RouteProfiles"] is None
    # A ProcessEvent that only records (CDRs, stats) sends nothing.
    cdr_only = live_call("SessionSv1.ProcessEvent", {**event, "Flags": ["*cdrs", "*stats"]})
    assert cdr_only.method == "" and cdr_only.reply(None)["MaxUsage"] is None
    # An UpdateSession that only asks attributes: an AuthorizeEvent without GetMaxUsage.
    update = live_call("SessionSv1.UpdateSession", {**event, "GetAttributes": True})
    assert update.params["GetMaxUsage"] is False and update.params["GetAttributes"] is True
    assert update.reply({"MaxUsage": None, "Attributes": {"A": 1}}) == {
        "Attributes": {"A": 1}, "MaxUsage": None,
    }  # fmt: skip
    # Terminate and CDRs: nothing sent, the engine's success answer.
    for method in ("SessionSv1.TerminateSession", "SessionSv1.ProcessCDR"):
        plan = live_call(method, {**event, "TerminateSession": True})
        assert plan.method == "" and plan.reply(None) == "OK" and not plan.error
    # Anything else that may write: not sent, an error.
    other = live_call("APIerSv1.SetBalance", {"Account": "1001"})
    assert other.method == "" and "APIerSv1.SetBalance not sent" in other.error
