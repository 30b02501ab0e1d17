"""Retransmissions get the first answer: a reply cache keyed by (method, tenant, event ID).

A request seen again inside the window, while the first is still running or after it answered,
awaits the same outcome instead of running again, so a retransmitted debit is never charged
twice. Requests without an event ID are not cached (nothing identifies a retransmission).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from core.types import SECOND

T = TypeVar("T")
MAX_ENTRIES: Final = 1_000_000  # bounds memory if a client floods unique IDs


class ReplyCache:
    def __init__(self, ttl_ns: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_ns / SECOND
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, asyncio.Future[Any]]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def run(
        self, method: str, tenant: str, event_id: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        if not event_id or self._ttl_s <= 0:
            return await call()
        now = self._clock()
        self._expire(now)
        key = (method, tenant, event_id)
        entry = self._entries.get(key)
        if entry is not None:
            result: T = await asyncio.shield(entry[1])
            return result
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now + self._ttl_s, future)
        try:
            value = await call()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters re-raise it, no "never retrieved" noise
            raise
        future.set_result(value)
        return value

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            _key, (deadline, future) = next(iter(entries.items()))
            if deadline > now and len(entries) < MAX_ENTRIES:
                break
            if not future.done() and deadline > now:
                break
            entries.popitem(last=False)
