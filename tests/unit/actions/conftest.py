"""Shared fixtures of the action tests: a fake clock and an ActionService on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiohttp import web

from core.accounts import MONETARY, AccountService
from core.actions import ActionService
from core.storage import DataDB

T = "cgrates.org"
T0 = datetime(2024, 3, 4, 10, 0, 30, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def service(
    accounts: AccountService, datadb: DataDB, clock: FakeClock
) -> AsyncIterator[ActionService]:
    accounts.clock = clock
    actions = ActionService(accounts, datadb=datadb, clock=clock, http_backoff=0.01)
    yield actions
    await actions.close()


async def money(accounts: AccountService, account: str = "1001") -> Decimal:
    acc = await accounts.get(T, account)
    assert acc is not None
    return acc.total(MONETARY)


@asynccontextmanager
async def hook_server(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A local HTTP server answering POST /hook with ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()
