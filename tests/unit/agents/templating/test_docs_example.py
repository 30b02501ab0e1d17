"""The complete example in docs/templates.md loads and does what the text says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from agents.templating import DictTree, load_templates, plan

DOC = Path(__file__).resolve().parents[4] / "docs" / "templates.md"

CCR_INITIAL = DictTree(
    {
        "Session-Id": "gy;1",
        "CC-Request-Type": 1,
        "CC-Request-Number": 0,
        "Service-Context-Id": "voice@3gpp.org",
        "Subscription-Id": [
            {"Subscription-Id-Type": 1, "Subscription-Id-Data": "262010000000001"},
            {"Subscription-Id-Type": 0, "Subscription-Id-Data": "4915112345678"},
        ],
        "Service-Information": {"IN-Information": {"Real-Called-Number": "004930123"}},
        "Event-Timestamp": "2024-01-01T10:00:00Z",
        "Requested-Service-Unit": {"CC-Time": 300},
    }
)
VARS = {
    "*cmd": "CCR",
    "RemoteHost": "10.0.0.1:3868",
    "OriginHost": "cgr",
    "OriginRealm": "r",
    "*appid": 4,
}


def example() -> dict[str, object]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    document: dict[str, object] = yaml.safe_load(blocks[-1])
    return document


def test_docs_example_success_and_error() -> None:
    templates = load_templates(example())
    outcome = plan(templates, CCR_INITIAL, VARS, engine_reply={"MaxUsage": 300_000_000_000})
    call = outcome.calls[0]
    assert call.method == "SessionSv1.InitiateSession"
    assert call.params["InitSession"] is True and call.params["GetAttributes"] is True
    assert call.params["Event"] == {
        "ToR": "*voice",
        "OriginID": "gy;1",
        "OriginHost": "10.0.0.1:3868",
        "RequestType": "*prepaid",
        "Account": "4915112345678",
        "Destination": "+4930123",
        "AnswerTime": "2024-01-01T10:00:00Z",
        "Usage": 300_000_000_000,
    }
    reply = outcome.reply.to_data()
    assert reply["Result-Code"] == "2001"
    assert reply["Granted-Service-Unit"] == {"CC-Time": "300"}
    failed = plan(templates, CCR_INITIAL, VARS, engine_error="INSUFFICIENT_CREDIT").reply
    assert failed.to_data()["Result-Code"] == "4012"
    assert "Granted-Service-Unit" not in failed.to_data()
