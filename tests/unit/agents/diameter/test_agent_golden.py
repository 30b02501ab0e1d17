"""Golden answers: the shipped Gy templates turn each golden CCR (tests/vectors/diameter, built
by python-diameter) and a fixed engine reply into exactly the stored CCA and engine calls.

A change to the templates, the codec or the agent that alters a byte of an answer, or a field
of what is sent to the engine, fails here; if the change is meant, review the decoded answer
and regenerate: ``CHARGEFLOW_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest <this file>``.
Each CCA is also decoded by python-diameter and checked on the AVPs that matter.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from diameter.message import Message  # type: ignore[import-untyped]
from diameter.message import constants as C  # type: ignore[import-untyped]

from agents.base import AgentContext
from agents.diameter import codec
from agents.diameter.agent import DiameterAgent
from core.config import AgentConfig

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "diameter"
GOLDEN = VECTORS / "agent"
SHIPPED_TEMPLATES = Path(__file__).resolve().parents[4] / "templates" / "diameter"
REGENERATE = os.environ.get("CHARGEFLOW_REGENERATE_GOLDEN") == "1"
SECOND_NS = 1_000_000_000

# What a real engine answered for such calls (the voice grant: 300 s; data: 1 MB per group).
REPLIES: dict[str, Any] = {
    "SessionSv1.InitiateSession": {"MaxUsage": 300 * SECOND_NS},
    "SessionSv1.UpdateSession": {"MaxUsage": 1_000_000},
    "SessionSv1.TerminateSession": "OK",
    "SessionSv1.ProcessCDR": "OK",
    "SessionSv1.ProcessMessage": {"MaxUsage": 1},
}
CASES = (
    # vector, engine reply override (None: REPLIES), expected Result-Code
    ("voice_ims_ccr_initial", None, 2001),
    ("gy_data_ccr_initial", {"SessionSv1.InitiateSession": {"MaxUsage": 1_000_000}}, 2001),
    ("gy_data_ccr_update", None, 2001),
    ("gy_data_ccr_terminate", None, 2001),
    ("sms_ccr_event", None, 2001),
    ("voice_ims_ccr_initial", {"SessionSv1.InitiateSession": {"MaxUsage": 0}}, 4012),
)


class Engine:
    """Answers each SessionSv1 method with its fixed reply and records what was sent (the
    event's ``Time`` is the agent's clock: left out)."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.calls: list[dict[str, Any]] = []

    async def call(self, method: str, params: Any) -> Any:
        self.calls.append({"method": method, "params": _without_clock(params)})
        return self.replies[method]


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k != "Time"}
    if isinstance(value, list):
        return [_without_clock(item) for item in value]
    return value


class Peer:
    address = "127.0.0.1"
    origin_host: str | None = "pcef.test.net"
    origin_realm: str | None = "test.net"


async def answer_of(
    name: str, replies: dict[str, Any], tmp_path: Path, templates: Path | None = None
) -> tuple[bytes, Engine]:
    engine = Engine(replies)
    config = AgentConfig(name="diameter", options={"data_dir": str(tmp_path / "answers")})
    agent = DiameterAgent(AgentContext(config, engine, templates))
    agent.answers.open()
    try:
        request = codec.decode(bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip()))
        request.validate()
        answer = codec.encode(await agent.handle(request, Peer()))
    finally:
        await agent.answers.close()
    return answer, engine


@pytest.mark.parametrize(("name", "override", "code"), CASES)
async def test_golden_answers_and_engine_calls(
    name: str, override: dict[str, Any] | None, code: int, tmp_path: Path
) -> None:
    answer, engine = await answer_of(name, {**REPLIES, **(override or {})}, tmp_path)
    stem = f"{name}.{code}"
    golden_cca, golden_calls = GOLDEN / f"{stem}.cca.hex", GOLDEN / f"{stem}.calls.json"
    if REGENERATE:
        golden_cca.write_text(answer.hex() + "\n")
        golden_calls.write_text(json.dumps(engine.calls, indent=1, sort_keys=True) + "\n")
    assert answer.hex() == golden_cca.read_text().strip()
    assert engine.calls == json.loads(golden_calls.read_text())

    # The same answer through python-diameter's decoder (independent of ours).
    decoded = Message.from_bytes(answer)
    request = Message.from_bytes(bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip()))
    assert decoded.header.command_code == C.CMD_CREDIT_CONTROL
    assert not decoded.header.is_request
    assert (decoded.header.hop_by_hop_identifier, decoded.header.end_to_end_identifier) == (
        request.header.hop_by_hop_identifier, request.header.end_to_end_identifier)  # fmt: skip
    fields = {avp.code: avp.value for avp in decoded.avps}
    assert fields[C.AVP_RESULT_CODE] == code
    assert fields[C.AVP_SESSION_ID] == request.session_id
    assert fields[C.AVP_CC_REQUEST_NUMBER] == request.cc_request_number
    assert fields[C.AVP_CC_REQUEST_TYPE] == request.cc_request_type


async def test_a_template_failing_at_run_time_answers_5012_and_calls_no_engine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A value a template cannot convert (here a Session-Id read as a duration) is a template
    error at run time: 5012 UNABLE_TO_COMPLY, never a silent drop, nothing sent to the engine,
    and the log names the file, processor and field."""
    templates = tmp_path / "templates"
    shutil.copytree(SHIPPED_TEMPLATES, templates)
    voice = templates / "voice.yaml"
    text = voice.read_text()
    anchor = "    - {tag: UsageDefault"
    assert anchor in text
    broken = '    - {tag: Broken, path: "*cgreq.Broken", type: "*variable",\n' \
        '       value: "~*req.Session-Id{*duration_seconds}"}\n'
    voice.write_text(text.replace(anchor, broken + anchor, 1))
    answer, engine = await answer_of("voice_ims_ccr_initial", REPLIES, tmp_path, templates)
    fields = {avp.code: avp.value for avp in Message.from_bytes(answer).avps}
    assert fields[C.AVP_RESULT_CODE] == 5012
    assert engine.calls == []
    assert "voice.yaml" in caplog.text and "field 'Broken'" in caplog.text
