"""``chargeflow template dry-run --agent dns``: the golden NAPTR query through the real agent and
the default ENUM templates, offline, with a canned RouteS reply."""

from __future__ import annotations

import io

import dnslib  # type: ignore[import-untyped]

from agents.dryrun import dry_run
from core.config import REPO_ROOT, load_config

QUERY = REPO_ROOT / "tests" / "vectors" / "dns" / "naptr_query_edns.hex"
ROUTES = {
    "Routes": [
        {
            "ProfileID": "ROUTE_ENUM",
            "Sorting": "*lc",
            "Routes": [
                {"RouteID": "carrier_b", "RouteParameters": "sbc-b.example.net", "SortingData": {}},
                {"RouteID": "carrier_a", "RouteParameters": "", "SortingData": {}},
            ],
        }
    ]
}


async def test_enum_query_answered_from_routes() -> None:
    out = io.StringIO()
    code = await dry_run(load_config(), "dns", QUERY, engine_reply=ROUTES, out=out)
    text = out.getvalue()
    assert code == 0
    assert '"Name": "8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa."' in text
    assert '"Uri": "sip:1001@example.com"' in text
    assert "== processor matched: enum_naptr_routes" in text
    assert "SessionSv1.ProcessMessage" in text and '"Destination": "4915112345678"' in text
    assert '"Account": "1001"' in text
    assert "== answer: NOERROR" in text
    data = bytes.fromhex(text.split("== answer bytes\n")[1].split("\n")[0])
    answer = dnslib.DNSRecord.parse(data)
    assert [bytes(rr.rdata.regexp) for rr in answer.rr] == [
        b"!^(.*)$!sip:\\1@sbc-b.example.net!",
        b"!^(.*)$!sip:\\1@carrier_a!",
    ]


async def test_no_route_is_nxdomain() -> None:
    out = io.StringIO()
    await dry_run(
        load_config(), "dns", QUERY, engine_reply={"error": "ROUTES_ERROR:NOT_FOUND"}, out=out
    )
    assert "== answer: NXDOMAIN" in out.getvalue()
