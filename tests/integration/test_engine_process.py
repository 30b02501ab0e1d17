"""The engine as a real process: tutorial plan over JSON-RPC, costs over TCP and HTTP, bad input,
restart persistence, atomic loads and the ``tp load`` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.engine_process import TUTORIAL, EngineProcess, read_replies

REPO = Path(__file__).resolve().parents[2]
ANSWER_TIME = "2014-08-04T13:00:00Z"


def cost_args(usage: object, destination: str = "1002", **extra: object) -> dict[str, object]:
    return {
        "Tenant": "cgrates.org",
        "Category": "call",
        "Subject": "1001",
        "AnswerTime": ANSWER_TIME,
        "Destination": destination,
        "Usage": usage,
        **extra,
    }


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    process = EngineProcess(tmp_path_factory.mktemp("engine")).start()
    reply = process.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})
    assert reply["error"] is None, reply
    assert reply["result"] == "OK"
    yield process
    assert process.stop() == 0, process.log_text()


def test_known_costs_over_tcp(engine: EngineProcess) -> None:
    for usage, expected in (("120s", "0.7002"), ("2m10s", "0.7169"), (130_000_000_000, "0.7169")):
        reply = engine.call("APIerSv1.GetCost", cost_args(usage))
        assert reply["error"] is None, reply
        assert Decimal(str(reply["result"]["Cost"])) == Decimal(expected)


def test_cost_breakdown_names_destination_plan_and_subject(engine: EngineProcess) -> None:
    result = engine.call("APIerSv1.GetCost", cost_args("2m10s"))["result"]
    assert result["Usage"] == 130_000_000_000
    assert result["StartTime"] == ANSWER_TIME
    (rating_filter,) = result["RatingFilters"].values()
    assert rating_filter == {
        "DestinationID": "DST_1002",
        "DestinationPrefix": "1002",
        "RatingPlanID": "RP_1001",
        "Subject": "*out:cgrates.org:call:1001",
    }
    increments = [inc for charge in result["Charges"] for inc in charge["Increments"]]
    assert increments[0] == {"Usage": 0, "Cost": 0.4, "AccountingID": "", "CompressFactor": 1}
    assert {"Usage": 1_000_000_000, "Cost": 0.00167, "AccountingID": "", "CompressFactor": 70} in (
        increments
    )


def test_known_costs_over_http_with_aliases(engine: EngineProcess) -> None:
    reply = engine.http_call("ApierV1.GetCost", cost_args("120s"))
    assert reply["error"] is None, reply
    assert Decimal(str(reply["result"]["Cost"])) == Decimal("0.7002")
    sms = engine.http_call("APIerSv1.GetCost", cost_args("1", destination="1003", Category="sms"))
    assert Decimal(str(sms["result"]["Cost"])) == Decimal("0.01")


def test_pipelined_requests_back_to_back_on_one_connection(engine: EngineProcess) -> None:
    body = b"".join(
        json.dumps({"method": "APIerSv1.GetCost", "params": [cost_args(f"{s}s")], "id": s}).encode()
        for s in range(60, 160, 10)
    )
    with engine.connect() as sock:
        sock.sendall(body)
        replies = read_replies(sock, 10)
    by_id = {reply["id"]: reply for reply in replies}
    assert sorted(by_id) == list(range(60, 160, 10))
    assert Decimal(str(by_id[120]["result"]["Cost"])) == Decimal("0.7002")
    assert Decimal(str(by_id[130]["result"]["Cost"])) == Decimal("0.7169")


def test_malformed_input_gets_errors_and_the_connection_keeps_working(
    engine: EngineProcess,
) -> None:
    with engine.connect() as sock:
        sock.sendall(b'{"method": "APIerSv1.GetCost", "params": [nonsense], "id": 7}')
        sock.sendall(b'{"method":"Nobody.Home","params":[{}],"id":8}')
        sock.sendall(
            json.dumps(
                {"method": "APIerSv1.GetCost", "params": [cost_args("abc")], "id": 9}
            ).encode()
        )
        sock.sendall(
            json.dumps(
                {"method": "APIerSv1.GetCost", "params": [{"Usage": "1s"}], "id": 10}
            ).encode()
        )
        sock.sendall(json.dumps({"method": "CoreSv1.Ping", "params": [{}], "id": 11}).encode())
        replies = read_replies(sock, 5)
    errors = [reply["error"] for reply in replies[:4]]
    assert errors[0].startswith("jsonrpc: invalid JSON"), errors
    assert errors[1] == "rpc: can't find service Nobody.Home"
    assert "not a duration" in errors[2]
    assert errors[3] == "MANDATORY_IE_MISSING: [Subject Destination]"
    assert all(reply["result"] is None for reply in replies[:4])
    assert replies[4] == {"id": 11, "result": "Pong", "error": None}


def test_malformed_http_body_gets_an_error_object(engine: EngineProcess) -> None:
    reply = engine.http_call("", None, body=b"{not json")
    assert reply["result"] is None
    assert reply["error"].startswith("jsonrpc: invalid JSON")


def test_unknown_subject_and_destination_errors(engine: EngineProcess) -> None:
    no_plan = engine.call("APIerSv1.GetCost", cost_args("60s", Subject="nobody", Tenant="x.org"))
    assert no_plan["error"] == "SERVER_ERROR: RATING_PLAN_NOT_FOUND"
    no_rate = engine.call("APIerSv1.GetCost", cost_args("60s", destination="999"))
    assert no_rate["error"] == "SERVER_ERROR: UNAUTHORIZED_DESTINATION"


def test_status_and_pings(engine: EngineProcess) -> None:
    status = engine.call("CoreSv1.Status", {})["result"]
    assert status["TariffPlan"]["rating_profiles"] == 7
    assert status["Uptime"] > 0
    for service in ("APIerSv1", "SessionSv1", "CDRsV1", "ApierV2"):
        assert engine.call(f"{service}.Ping", {})["result"] == "Pong"


def test_bad_row_is_named_and_nothing_is_applied(engine: EngineProcess, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(TUTORIAL, bad)
    # A valid change (1001 now rated by RP_1002) next to a broken rate: neither may apply.
    profiles = (bad / "RatingProfiles.csv").read_text()
    (bad / "RatingProfiles.csv").write_text(
        profiles.replace(
            "cgrates.org,call,1001,2014-01-14T00:00:00Z,RP_1001,",
            "cgrates.org,call,1001,2014-01-14T00:00:00Z,RP_1002,",
        )
    )
    with (bad / "Rates.csv").open("a") as rates:
        rates.write("\nRT_BROKEN,0,abc,60s,60s,0s\n")
    reply = engine.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(bad)})
    assert reply["result"] is None
    assert "Rates.csv:12:13: Rate: not a number: 'abc'" in reply["error"], reply["error"]
    still = engine.call("APIerSv1.GetCost", cost_args("120s"))
    assert Decimal(str(still["result"]["Cost"])) == Decimal("0.7002")


def test_missing_reference_is_an_error(engine: EngineProcess, tmp_path: Path) -> None:
    folder = tmp_path / "dangling"
    folder.mkdir()
    (folder / "DestinationRates.csv").write_text(
        "#Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,MaxCost,MaxCostStrategy\n"
        "DR_X,DST_1002,RT_MISSING,*up,4,0,\n"
    )
    reply = engine.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(folder)})
    assert reply["error"] is not None
    assert "DestinationRates.csv:2:" in reply["error"] and "RT_MISSING" in reply["error"]


def test_restart_keeps_the_loaded_plan(tmp_path: Path) -> None:
    first = EngineProcess(tmp_path).start()
    try:
        assert (
            first.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})["result"]
            == "OK"
        )
    finally:
        assert first.stop() == 0
    second = EngineProcess(tmp_path).start()
    try:
        reply = second.call("APIerSv1.GetCost", cost_args("2m10s"))
        assert Decimal(str(reply["result"]["Cost"])) == Decimal("0.7169")
    finally:
        assert second.stop() == 0


def test_staged_plan_is_activated_from_stordb(engine: EngineProcess) -> None:
    tp = "TP_STAGED"
    calls = [
        ("ApierV2.SetTPDestination", {"TPid": tp, "ID": "DST_4930", "Prefixes": ["4930"]}),
        ("ApierV1.SetTPRate", {"TPid": tp, "ID": "RT_STAGED", "RateSlots": [
            {"ConnectFee": 0.1, "Rate": 0.6, "RateUnit": "60s", "RateIncrement": "60s",
             "GroupIntervalStart": "0s"}]}),
        ("ApierV1.SetTPDestinationRate", {"TPid": tp, "ID": "DR_STAGED", "DestinationRates": [
            {"DestinationId": "DST_4930", "RateId": "RT_STAGED", "RoundingMethod": "*up",
             "RoundingDecimals": 4, "MaxCost": 0, "MaxCostStrategy": ""}]}),
        ("APIerSv1.SetTPRatingPlan", {"TPid": tp, "ID": "RP_STAGED", "RatingPlanBindings": [
            {"DestinationRatesId": "DR_STAGED", "TimingId": "*any", "Weight": 10}]}),
        ("APIerSv1.SetTPRatingProfile", {"TPid": tp, "LoadId": "L1", "Tenant": "cgrates.org",
            "Category": "call", "Subject": "staged", "RatingPlanActivations": [
                {"ActivationTime": "2014-01-01T00:00:00Z", "RatingPlanId": "RP_STAGED",
                 "FallbackSubjects": ""}]}),
    ]  # fmt: skip
    for method, params in calls:
        reply = engine.call(method, params)
        assert reply == {"id": reply["id"], "result": "OK", "error": None}, (method, reply)
    assert engine.call("ApierV1.GetTPDestinationIDs", {"TPid": tp})["result"] == ["DST_4930"]
    staged = engine.call("ApierV1.GetTPRate", {"TPid": tp, "ID": "RT_STAGED"})["result"]
    assert staged["RateSlots"][0]["RateUnit"] == "1m0s"
    # Staged only: not rated yet.
    before = engine.call(
        "APIerSv1.GetCost", cost_args("90s", destination="4930111", Subject="staged")
    )
    assert before["error"] == "SERVER_ERROR: RATING_PLAN_NOT_FOUND"
    assert engine.call("APIerSv1.LoadTariffPlanFromStorDb", {"TPid": tp})["result"] == "OK"
    after = engine.call(
        "APIerSv1.GetCost", cost_args("90s", destination="4930111", Subject="staged")
    )
    assert Decimal(str(after["result"]["Cost"])) == Decimal("1.3")  # 0.1 + 2 x 0.6


def test_direct_setters_take_effect_at_once(engine: EngineProcess) -> None:
    assert (
        engine.call("APIerSv1.SetDestination", {"Id": "DST_DIRECT", "Prefixes": ["77"]})["result"]
        == "OK"
    )
    assert engine.call("APIerSv1.GetDestination", "DST_DIRECT")["result"] == {
        "Id": "DST_DIRECT",
        "Prefixes": ["77"],
    }
    assert (
        engine.call("APIerSv1.SetDestination", {"Id": "DST_DIRECT", "Prefixes": ["78"]})["error"]
        == "EXISTS"
    )
    reply = engine.call(
        "APIerSv1.SetRatingProfile",
        {"Tenant": "cgrates.org", "Category": "call", "Subject": "direct",
         "RatingPlanActivations": [{"ActivationTime": "2012-01-01T00:00:00Z",
                                    "RatingPlanId": "RP_1002", "FallbackSubjects": ""}]},
    )  # fmt: skip
    assert reply["result"] == "OK", reply
    cost = engine.call("APIerSv1.GetCost", cost_args("60s", destination="1001", Subject="direct"))
    assert Decimal(str(cost["result"]["Cost"])) == Decimal("0.6")


def test_tp_load_command_dry_run_reports_the_bad_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(TUTORIAL, bad)
    (bad / "Destinations.csv").write_text("#Id,Prefix\nDST_1002\n")
    run = subprocess.run(
        [sys.executable, "-m", "core.cli", "tp", "load", str(bad), "--dry-run"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1
    assert "Destinations.csv:2:1:" in run.stderr, run.stderr
    good = subprocess.run(
        [sys.executable, "-m", "core.cli", "tp", "load", str(TUTORIAL), "--dry-run"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stdout


def test_tp_load_command_loads_through_the_running_engine(engine: EngineProcess) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "core.cli", "tp", "load", str(REPO / "config/tariffplans/demo"),
         "--engine", f"127.0.0.1:{engine.tcp_port}"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cost = engine.call(
        "APIerSv1.GetCost",
        cost_args("90s", destination="4930555", Subject="anyone",
                  AnswerTime="2025-03-05T10:00:00Z"),
    )  # fmt: skip
    # Wednesday 10:00 is peak: 0.05 connect + 0.02 first minute + 30 x 0.015/60 per second.
    assert Decimal(str(cost["result"]["Cost"])) == Decimal("0.0775")


def test_demo_plan_alone_authorizes_its_accounts_with_least_cost_carriers(tmp_path: Path) -> None:
    """What `scripts/run` serves: the demo accounts start with 10 of credit, so a prepaid call
    from 1001 is authorized, with the demo's three carriers cheapest first."""
    engine = EngineProcess(tmp_path).start()
    try:
        demo = str(REPO / "config/tariffplans/demo")
        loaded = engine.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": demo})
        assert loaded["error"] is None, loaded
        authorized = engine.call(
            "SessionSv1.AuthorizeEvent",
            {"GetMaxUsage": True, "GetRoutes": True, "Tenant": "cgrates.org", "ID": "demo-auth",
             "Event": {"Account": "1001", "Subject": "1001", "Destination": "4930555",
                       "RequestType": "*prepaid", "AnswerTime": "2025-03-05T10:00:00Z",
                       "Usage": 3_600_000_000_000}},
        )  # fmt: skip
        assert authorized["error"] is None, authorized
        assert authorized["result"]["MaxUsage"] == 3_600_000_000_000
        routes = authorized["result"]["Routes"][0]["Routes"]
        assert {route["RouteID"] for route in routes} == {"carrier_a", "carrier_b", "carrier_c"}
        costs = [Decimal(str(route["SortingData"]["Cost"])) for route in routes]
        assert costs == sorted(costs), routes
        balance = engine.call("APIerSv2.GetAccount", {"Tenant": "cgrates.org", "Account": "1003"})
        assert Decimal(str(balance["result"]["BalanceMap"]["*monetary"][0]["Value"])) == 10
    finally:
        assert engine.stop() == 0, engine.log_text()
