"""Long-session benchmark: does an UpdateSession cost more as its session ages?

One ``*prepaid`` session (tutorial plan, 1001 -> 1002, funded with 10^9 on an account of its
own) gets ``--updates`` UpdateSessions of 60 s each over JSON-RPC TCP, one at a time, against
an engine in this process (``--storage memory`` or ``sqlite`` in a temp dir); then it is
terminated and its CDR processed. Per block of ``--block`` updates it prints the updates/s,
p50/p99 latency and the CPU per update: a flat column means an update costs the same at the
3,000th as at the first (the session backup used to rewrite every earlier debit at each one).

    .venv/bin/python scripts/bench/long_session.py --storage memory --updates 3000 --block 250
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from core.config import Address, load_config
from core.engine import Engine
from core.rpc import RpcClient

REPO: Final = Path(__file__).resolve().parents[2]
TUTORIAL: Final = REPO.parent / "shared" / "tariffplans" / "cgrates_tutorial"
SECOND_NS: Final = 1_000_000_000
GRANT_NS: Final = 60 * SECOND_NS
FUNDS: Final = 10**9
ACCOUNT: Final = "long-session"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench(args: argparse.Namespace, data_dir: Path) -> None:
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type=args.storage, data_dir=data_dir),
        engine=replace(config.engine, rpc_json_listen=Address("127.0.0.1", 0), http_listen=None),
        tariffplans=replace(config.tariffplans, load_on_start=(TUTORIAL,)),
    )
    engine = Engine(config)
    await engine.start()
    try:
        port = int(engine.listening()[0].rsplit(":", 1)[1])
        client = await RpcClient.connect("127.0.0.1", port)
        balance = {"Tenant": "cgrates.org", "Account": ACCOUNT, "BalanceType": "*monetary",
                   "Value": FUNDS}  # fmt: skip
        assert await client.call("APIerSv1.SetBalance", balance) == "OK"
        event: dict[str, Any] = {
            "Tenant": "cgrates.org", "Account": ACCOUNT, "Subject": "1001", "Destination": "1002",
            "OriginID": "long-session-1", "RequestType": "*prepaid",
            "AnswerTime": "2024-01-07T17:00:10Z", "Usage": GRANT_NS, "LastUsed": GRANT_NS,
        }  # fmt: skip
        await client.call("SessionSv1.InitiateSession", {"InitSession": True, "Event": event})
        print(
            f"long-session bench: storage {args.storage}, nproc {os.cpu_count()}, "
            f"{args.updates} updates of 60 s in blocks of {args.block}"
        )
        print(f"{'updates':>13} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU/update':>11}")
        for first in range(0, args.updates, args.block):
            latencies: list[float] = []
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(min(args.block, args.updates - first)):
                sent = time.perf_counter()
                await client.call(
                    "SessionSv1.UpdateSession", {"UpdateSession": True, "Event": event}
                )
                latencies.append((time.perf_counter() - sent) * 1e3)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{first:>6}-{first + len(latencies):<6} {len(latencies) / wall:>10,.0f} "
                f"{percentile(latencies, 0.5):>8.3f} {percentile(latencies, 0.99):>8.3f} "
                f"{cpu / len(latencies) * 1e6:>8.0f} µs"
            )
        total = {**event, "Usage": GRANT_NS * (args.updates + 1)}
        total.pop("LastUsed")
        ended = {"TerminateSession": True, "Event": total}
        assert await client.call("SessionSv1.TerminateSession", ended) == "OK"
        assert await client.call("SessionSv1.ProcessCDR", {"Event": total}) == "OK"
        await client.close()
    finally:
        await engine.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--block", type=int, default=250)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chargeflow-long-session-") as scratch:
        asyncio.run(bench(args, Path(scratch)))


if __name__ == "__main__":
    main()
