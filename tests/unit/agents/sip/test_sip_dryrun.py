"""``chargeflow template dry-run --agent sip``: a golden INVITE through the real agent, offline,
with a canned engine reply."""

from __future__ import annotations

import io

from agents.dryrun import dry_run
from core.config import REPO_ROOT, load_config

INVITE = REPO_ROOT / "tests" / "vectors" / "sip" / "invite.hex"
REPLY = {
    "MaxUsage": 60 * 10**9,
    "Routes": [{"ProfileID": "P", "Sorting": "*weight",
                "Routes": [{"RouteID": "gw1", "RouteParameters": "", "SortingData": {}}]}],
}  # fmt: skip


async def test_invite_redirect() -> None:
    out = io.StringIO()
    code = await dry_run(load_config(), "sip", INVITE, engine_reply=REPLY, out=out)
    text = out.getvalue()
    assert code == 0
    assert "== decoded request: INVITE sip:1002@chargeflow.test" in text
    assert "== processor matched: sip_invite_redirect" in text
    assert "SessionSv1.AuthorizeEvent" in text and '"Account": "1001"' in text
    assert "== reply: 302 Moved Temporarily" in text
    assert "Contact: <sip:1002@gw1>;q=1.0;maxusage=60" in text


async def test_engine_error_forbidden() -> None:
    out = io.StringIO()
    await dry_run(load_config(), "sip", INVITE, engine_reply={"error": "RALS_ERROR:X"}, out=out)
    assert "== reply: 403 Forbidden" in out.getvalue()
