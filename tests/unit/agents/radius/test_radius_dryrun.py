"""``chargeflow template dry-run --agent radius``: a golden Accounting-Request through the real
agent, offline, with a canned engine reply."""

from __future__ import annotations

import io
from pathlib import Path

from agents.dryrun import dry_run
from core.config import REPO_ROOT, load_config

START = REPO_ROOT / "tests" / "vectors" / "radius" / "accounting_start.hex"


async def test_accounting_start(tmp_path: Path) -> None:
    out = io.StringIO()
    code = await dry_run(
        load_config(), "radius", START, engine_reply={"MaxUsage": 3 * 10**11}, out=out
    )
    text = out.getvalue()
    assert code == 0
    assert '"Acct-Status-Type": "Start"' in text
    assert "== processor matched: radius_acct_start" in text
    assert "== reply: Accounting-Response" in text
    assert "SessionSv1.InitiateSession" in text and '"OriginID": "5f3a-0001"' in text


async def test_engine_error_means_no_reply() -> None:
    out = io.StringIO()
    await dry_run(load_config(), "radius", START, engine_reply={"error": "SERVER_ERROR"}, out=out)
    assert "== no reply" in out.getvalue()
