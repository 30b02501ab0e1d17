"""Issue 3 acceptance: CGRateS session flows against a real engine process and the tutorial plan."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.rpc import RpcClient
from tests.integration.engine_process import TUTORIAL, EngineProcess, read_replies

# The customer's blobs, verbatim.
BLOBS = [
    '{"method":"SessionSv1.AuthorizeEvent","params":[{"GetAttributes":false,"AuthorizeResources":false,"GetMaxUsage":true,"ProcessThresholds":false,"ProcessStats":false,"GetSuppliers":false,"SuppliersMaxCost":"","SuppliersIgnoreErrors":false,"Event":{"Account":"1001","Destination":"1002","OriginID":"abcd123","RequestType":"*prepaid","SetupTime":"2018-01-07T17:00:00Z"}}],"id":2}',
    '{"method":"SessionSv1.InitiateSession","params":[{"InitSession":true,"Event":{"Account":"1001","AnswerTime":"2023-01-07T17:00:10Z","Destination":"1002","OriginID":"abcd123","RequestType":"*prepaid","Usage":"5m"}}],"id":4}',
    '{"method":"SessionSv1.UpdateSession","params":[{"UpdateSession":true,"Event":{"Account":"1001","AnswerTime":"2023-01-07T17:00:10Z","Destination":"1002","OriginID":"abcd123","RequestType":"*prepaid","Usage":"5m"}}],"id":8}',
    '{"method":"SessionSv1.TerminateSession","params":[{"TerminateSession":true,"Event":{"Account":"1001","AnswerTime":"2023-01-07T17:00:10Z","Destination":"1002","OriginID":"abcd123","RequestType":"*prepaid","Usage":"12m"}}],"id":10}',
    '{"method":"SessionSv1.ProcessCDR","params":[{"Event":{"Account":"1001","AnswerTime":"2023-01-07T17:00:10Z","Destination":"1002","OriginID":"abcd123","RequestType":"*prepaid","Usage":"12m"}}],"id":12}',
]
EXPECTED_RESULTS: list[Any] = [
    {"MaxUsage": 10_800_000_000_000},
    {"MaxUsage": 300_000_000_000},
    {"MaxUsage": 300_000_000_000},
    "OK",
    "OK",
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(tmp_path).start()
    try:
        reply = process.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})
        assert reply["result"] == "OK", reply
    except BaseException:
        process.stop()
        raise
    yield process
    assert process.stop() == 0, process.log_text()


def money(engine: EngineProcess, account: str) -> Decimal:
    reply = engine.call("APIerSv2.GetAccount", {"Tenant": "cgrates.org", "Account": account})
    assert reply["error"] is None, reply
    balances = reply["result"]["BalanceMap"].get("*monetary") or []
    return sum((Decimal(str(b["Value"])) for b in balances), Decimal(0))


def voice_left(engine: EngineProcess, account: str) -> int:
    reply = engine.call("APIerSv2.GetAccount", {"Tenant": "cgrates.org", "Account": account})
    return sum(int(b["Value"]) for b in reply["result"]["BalanceMap"].get("*voice") or [])


def set_money(engine: EngineProcess, account: str, value: int | str) -> None:
    """Sets the account's monetary balance. The tutorial's STANDARD_TRIGGERS disable an account
    whose money reaches 100 (``*max_balance`` -> DISABLE_AND_LOG), as in CGRateS, so an account
    topped up beyond that has its triggers removed first."""
    if Decimal(str(value)) >= 100:
        reply = engine.call(
            "APIerSv1.SetAccount",
            {"Tenant": "cgrates.org", "Account": account, "ActionTriggerIDs": [],
             "ActionTriggerOverwrite": True},
        )  # fmt: skip
        assert reply["result"] == "OK", reply
    reply = engine.call(
        "APIerSv1.SetBalance",
        {"Tenant": "cgrates.org", "Account": account, "BalanceType": "*monetary",
         "Value": value, "Balance": {"ID": "test"}},
    )  # fmt: skip
    assert reply["result"] == "OK", reply


def cdrs(engine: EngineProcess, **flt: Any) -> list[dict[str, Any]]:
    reply = engine.call("CDRsV1.GetCDRs", flt)
    return reply["result"] or [] if reply["error"] is None else []


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_customer_blobs_verbatim(engine: EngineProcess, transport: str) -> None:
    set_money(engine, "1001", 1000)
    for blob, expected in zip(BLOBS, EXPECTED_RESULTS, strict=True):
        if transport == "tcp":
            with engine.connect() as sock:
                sock.sendall(blob.encode())
                (reply,) = read_replies(sock, 1)
        else:
            reply = engine.http_call("", None, body=blob.encode())
        assert reply["error"] is None, (blob, reply)
        if isinstance(expected, dict):
            for key, value in expected.items():
                assert reply["result"][key] == value, (blob, reply)
        else:
            assert reply["result"] == expected
    # Charged exactly once for 12 minutes to 1002: 0.4 + 0.2 + 660 x 0.00167.
    assert money(engine, "1001") == Decimal(1000) - Decimal("1.7022")
    default_cdrs = cdrs(engine, OriginIDs=["abcd123"], RunIDs=["*default"])
    assert len(default_cdrs) == 1
    assert Decimal(str(default_cdrs[0]["Cost"])) == Decimal("1.7022")
    assert default_cdrs[0]["Usage"] == 720_000_000_000
    # A second ProcessCDR of the same call is refused and charges nothing.
    with engine.connect() as sock:
        sock.sendall(BLOBS[-1].replace('"id":12', '"id":13').encode())
        (again,) = read_replies(sock, 1)
    assert again["error"] == "EXISTS"
    assert money(engine, "1001") == Decimal(1000) - Decimal("1.7022")


def prepaid_event(origin_id: str, usage: str, **extra: Any) -> dict[str, Any]:
    return {
        "Account": "1001", "Destination": "1002", "OriginID": origin_id,
        "RequestType": "*prepaid", "AnswerTime": "2023-01-07T17:00:10Z", "Usage": usage, **extra,
    }  # fmt: skip


def test_terminate_without_initiate_then_update_without_initiate(engine: EngineProcess) -> None:
    assert money(engine, "1001") == Decimal(10)  # the tutorial's *asap top-up
    reply = engine.call(
        "SessionSv1.TerminateSession",
        {"TerminateSession": True, "Event": prepaid_event("no-init-1", "2m")},
    )
    assert reply["result"] == "OK", reply
    assert money(engine, "1001") == Decimal("9.2998")
    assert (
        engine.call("SessionSv1.ProcessCDR", {"Event": prepaid_event("no-init-1", "2m")})["result"]
        == "OK"
    )
    (cdr,) = cdrs(engine, OriginIDs=["no-init-1"], RunIDs=["*default"])
    assert Decimal(str(cdr["Cost"])) == Decimal("0.7002")
    assert cdr["CostSource"] == "*sessions"
    assert money(engine, "1001") == Decimal("9.2998")  # the CDR took the session's cost
    reply = engine.call(
        "SessionSv1.UpdateSession",
        {"UpdateSession": True, "Event": prepaid_event("no-init-2", "2m")},
    )
    assert reply["result"]["MaxUsage"] == 120_000_000_000, reply
    assert money(engine, "1001") == Decimal("8.5996")


def test_no_subsystem_flag_is_mandatory_ie_missing(engine: EngineProcess) -> None:
    reply = engine.call("SessionSv1.AuthorizeEvent", {"Event": prepaid_event("x", "1m")})
    assert reply["error"] == "MANDATORY_IE_MISSING: [subsystems]"


def test_retransmitted_update_with_same_id_is_charged_once(engine: EngineProcess) -> None:
    args = {"UpdateSession": True, "ID": "evt-42", "Event": prepaid_event("retx", "1m")}
    first = engine.call("SessionSv1.UpdateSession", args)
    second = engine.call("SessionSv1.UpdateSession", args)
    assert first["result"] == second["result"] == {"Attributes": None, "MaxUsage": 60_000_000_000}
    assert money(engine, "1001") == Decimal(10) - Decimal("0.6")


def test_insufficient_credit_limits_max_usage(engine: EngineProcess) -> None:
    set_money(engine, "1001", "0.7")
    reply = engine.call(
        "SessionSv1.AuthorizeEvent",
        {"GetMaxUsage": True, "Event": prepaid_event("poor", "10m")},
    )
    # 0.4 connect + 0.2 first minute leaves 0.1: 59 whole 0.00167 seconds.
    assert reply["result"]["MaxUsage"] == 119_000_000_000
    # *disconnect MaxCost on 1003: 12 s whatever the money.
    set_money(engine, "1001", 100)
    reply = engine.call(
        "SessionSv1.AuthorizeEvent",
        {"GetMaxUsage": True, "Event": {**prepaid_event("cap", "1m"), "Destination": "1003"}},
    )
    assert reply["result"]["MaxUsage"] == 12_000_000_000


def test_pseudoprepaid_external_cdr_uses_voice_balance(engine: EngineProcess) -> None:
    reply = engine.call(
        "ApierV1.SetBalance",
        {"Tenant": "cgrates.org", "Account": "1002", "BalanceType": "*voice", "Value": "5m",
         "Balance": {"ID": "minutes", "Weight": 25}},
    )  # fmt: skip
    assert reply["result"] == "OK", reply
    reply = engine.call(
        "CDRsV2.ProcessExternalCDR",
        {"OriginID": "ext-1", "OriginHost": "127.0.0.1", "Source": "script",
         "RequestType": "*pseudoprepaid", "ToR": "*voice", "Tenant": "cgrates.org",
         "Category": "call", "Account": "1002", "Subject": "1002", "Destination": "1001",
         "SetupTime": "2023-01-07T17:00:00Z", "AnswerTime": "2023-01-07T17:00:10Z",
         "Usage": "150s"},
    )  # fmt: skip
    assert reply["result"] == "OK", reply
    assert voice_left(engine, "1002") == 150_000_000_000
    assert money(engine, "1002") == Decimal(10)


def test_destination_balances_first_and_spill(engine: EngineProcess) -> None:
    for balance_id, seconds, destinations, weight in (
        ("dst-a", 1200, ["DST_1002"], 60),
        ("dst-b", 1200, ["DST_1002"], 60),
        ("general", 3600, [], 10),
    ):
        reply = engine.call(
            "APIerSv1.SetBalance",
            {"Tenant": "cgrates.org", "Account": "1001", "BalanceType": "*voice",
             "Value": f"{seconds}s", "Balance": {"ID": balance_id, "Weight": weight,
                                                 "DestinationIDs": destinations}},
        )  # fmt: skip
        assert reply["result"] == "OK", reply
    reply = engine.call(
        "SessionSv1.TerminateSession",
        {"TerminateSession": True, "Event": prepaid_event("spill", "2450s")},
    )
    assert reply["result"] == "OK", reply
    account = engine.call("APIerSv2.GetAccount", {"Tenant": "cgrates.org", "Account": "1001"})
    left = {b["ID"]: int(b["Value"]) for b in account["result"]["BalanceMap"]["*voice"]}
    assert left == {"dst-a": 0, "dst-b": 0, "general": 3550_000_000_000}
    assert money(engine, "1001") == Decimal(10)


def test_asap_action_plan_credits_signup_bonus(engine: EngineProcess) -> None:
    steps = [
        ("APIerSv1.SetActions", {"ActionsId": "ACT_SIGNUP", "Actions": [
            {"Identifier": "*topup", "BalanceType": "*monetary", "Units": 99,
             "BalanceId": "bonus", "Weight": 10}]}),
        ("APIerSv1.SetActionPlan", {"Id": "AP_SIGNUP", "ActionPlan": [
            {"ActionsId": "ACT_SIGNUP", "Time": "*asap", "Weight": 10}]}),
        ("APIerSv1.SetAccount", {"Tenant": "cgrates.org", "Account": "newcomer",
                                 "ActionPlanIDs": ["AP_SIGNUP"]}),
    ]  # fmt: skip
    for method, params in steps:
        reply = engine.call(method, params)
        assert reply["result"] == "OK", (method, reply)
    assert money(engine, "newcomer") == Decimal(99)


def test_concurrent_sessions_on_one_account_are_exact(engine: EngineProcess) -> None:
    sessions = 200
    set_money(engine, "1001", 1000)

    async def one_call(client: RpcClient, number: int) -> None:
        origin = f"conc-{number}"
        init = await client.call(
            "SessionSv1.InitiateSession",
            {"InitSession": True, "Event": prepaid_event(origin, "60s")},
        )
        assert init["MaxUsage"] == 60_000_000_000
        update = await client.call(
            "SessionSv1.UpdateSession",
            {"UpdateSession": True, "Event": prepaid_event(origin, "60s", LastUsed="60s")},
        )
        assert update["MaxUsage"] == 60_000_000_000
        assert (
            await client.call(
                "SessionSv1.TerminateSession",
                {"TerminateSession": True, "Event": prepaid_event(origin, "90s")},
            )
            == "OK"
        )
        assert (
            await client.call("SessionSv1.ProcessCDR", {"Event": prepaid_event(origin, "90s")})
            == "OK"
        )

    async def run_all() -> None:
        clients = [
            await RpcClient.connect("127.0.0.1", engine.tcp_port, timeout=30) for _ in range(4)
        ]
        try:
            await asyncio.gather(*(one_call(clients[n % 4], n) for n in range(sessions)))
        finally:
            for client in clients:
                await client.close()

    asyncio.run(run_all())
    # Each call: 0.4 + 0.2 + 30 x 0.00167 = 0.6501.
    assert money(engine, "1001") == Decimal(1000) - sessions * Decimal("0.6501")
    count = engine.call("CDRsV1.GetCDRsCount", {"RunIDs": ["*default"], "Accounts": ["1001"]})
    assert count["result"] == sessions
    assert engine.call("SessionSv1.GetActiveSessionsCount", {})["result"] == 0


def test_get_cdrs_reply_shape(engine: EngineProcess) -> None:
    engine.call(
        "SessionSv1.ProcessCDR",
        {"Event": {**prepaid_event("shape", "1m"), "RequestType": "*rated", "Extra": "x"}},
    )
    raw, cdr = sorted(cdrs(engine, OriginIDs=["shape"]), key=lambda c: c["RunID"] == "*default")
    # The tutorial's chargers fork the event: *default is rated, *raw (RequestType *none) not.
    assert (raw["RunID"], raw["RequestType"], raw["Cost"]) == ("*raw", "*none", -1)
    assert cdr["RunID"] == "*default"
    assert cdr["ExtraFields"] == {"Extra": "x"}
    assert json.loads(json.dumps(cdr))["Cost"] == 0.6


def test_attribute_maps_did_to_account_in_cdrs_context(engine: EngineProcess) -> None:
    reply = engine.call(
        "APIerSv1.SetAttributeProfile",
        {"Tenant": "cgrates.org", "ID": "ATTR_DID_12340003", "Contexts": ["*cdrs"],
         "FilterIDs": ["*string:~*req.Account:12340003"], "Weight": 20,
         "Attributes": [{"Path": "*req.Account", "Type": "*constant",
                         "Value": "Nick_Test_123"}]},
    )  # fmt: skip
    assert reply["result"] == "OK", reply
    reply = engine.call(
        "CDRsV2.ProcessExternalCDR",
        {"OriginID": "did-1", "OriginHost": "10.0.0.1", "RequestType": "*rated",
         "Tenant": "cgrates.org", "Category": "call", "Account": "12340003", "Subject": "1001",
         "Destination": "1002", "AnswerTime": "2023-01-07T17:00:10Z", "Usage": "60s"},
    )  # fmt: skip
    assert reply["result"] == "OK", reply
    (cdr,) = cdrs(engine, OriginIDs=["did-1"], RunIDs=["*default"])
    assert cdr["Account"] == "Nick_Test_123"
    assert Decimal(str(cdr["Cost"])) == Decimal("0.6")
    # The same profile does not apply in the *sessions context.
    auth = engine.call(
        "AttributeSv1.ProcessEvent",
        {"Tenant": "cgrates.org", "ID": "probe", "Context": "*sessions",
         "Event": {"Account": "12340003"}},
    )  # fmt: skip
    assert auth["error"] == "NOT_FOUND"


def test_authorize_with_attributes_and_digest(engine: EngineProcess) -> None:
    args = {"GetAttributes": True, "GetMaxUsage": True,
            "Event": {"Account": "1001", "Destination": "1002", "OriginID": "attr-1",
                      "SetupTime": "2023-01-07T17:00:00Z"}}  # fmt: skip
    reply = engine.call("SessionSv1.AuthorizeEvent", args)["result"]
    attributes = reply["Attributes"]
    assert attributes["MatchedProfiles"] == ["ATTR_1001_SESSIONAUTH"]
    assert "*req.Password" in attributes["AlteredFields"]
    # The profile makes the call *prepaid, so 1001's 10 limit it: 0.4 + 0.2 buy the first
    # minute, 9.4 buy 5628 whole seconds at 0.00167.
    assert reply["MaxUsage"] == (60 + 5628) * 1_000_000_000
    digest = engine.call("SessionSv1.AuthorizeEventWithDigest", {**args, "ID": "d"})["result"]
    assert "Password:CGRateS.org" in digest["AttributesDigest"].split(",")
    assert "RequestType:*prepaid" in digest["AttributesDigest"].split(",")


def test_cdrlog_action_writes_a_cdr(engine: EngineProcess) -> None:
    steps = [
        ("APIerSv1.SetActions", {"ActionsId": "ACT_TOPUP_LOGGED", "Actions": [
            {"Identifier": "*topup", "BalanceType": "*monetary", "Units": 5,
             "BalanceId": "promo", "Weight": 20},
            {"Identifier": "*cdrlog", "BalanceType": "*monetary", "Units": 5,
             "BalanceId": "promo", "Weight": 10}]}),
        ("APIerSv1.ExecuteAction", {"Tenant": "cgrates.org", "Account": "1002",
                                    "ActionsId": "ACT_TOPUP_LOGGED"}),
    ]  # fmt: skip
    for method, params in steps:
        reply = engine.call(method, params)
        assert reply["result"] == "OK", (method, reply)
    assert money(engine, "1002") == Decimal(15)
    (logged,) = cdrs(engine, Accounts=["1002"])
    assert logged["Source"] == "*cdrlog"
    assert Decimal(str(logged["Cost"])) == Decimal(5)


def test_engine_restart_keeps_live_sessions_and_charges_once(tmp_path: Path) -> None:
    first = EngineProcess(tmp_path).start()
    try:
        assert (
            first.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(TUTORIAL)})["result"]
            == "OK"
        )
        reply = first.call(
            "SessionSv1.InitiateSession",
            {"InitSession": True, "Event": prepaid_event("restart-1", "5m")},
        )
        assert reply["result"]["MaxUsage"] == 300_000_000_000, reply
        assert money(first, "1001") == Decimal(10) - Decimal("1.0008")  # 0.4 + 0.2 + 240 s
    finally:
        assert first.stop() == 0
    second = EngineProcess(tmp_path).start()
    try:
        assert second.call("SessionSv1.GetActiveSessionsCount", {})["result"] == 2  # both runs
        reply = second.call(
            "SessionSv1.TerminateSession",
            {"TerminateSession": True, "Event": prepaid_event("restart-1", "12m")},
        )
        assert reply["result"] == "OK", reply
        # The 5 minutes debited before the restart are not charged again.
        assert money(second, "1001") == Decimal(10) - Decimal("1.7022")
        assert second.call("SessionSv1.GetActiveSessionsCount", {})["result"] == 0
    finally:
        assert second.stop() == 0
