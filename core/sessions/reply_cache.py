"""Retransmissions get the first answer: a reply cache keyed by (method, tenant, event ID).

A request seen again inside the window, while the first is still running or after it answered,
awaits the same outcome instead of running again, so a retransmitted debit is never charged
twice. Requests without an event ID are not cached (nothing identifies a retransmission).

An entry holds the outcome itself once known, not a future: every request makes one, and each
lives the whole window, so what it keeps alive is what the garbage collector's young
generation fills with. A future is made only for a retransmission that arrives while the first
request is still running.
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

_Key = tuple[str, str, str]


class _Running:
    """The outcome of an entry whose first request has not answered yet."""


_RUNNING: Final = _Running()


class _Failed:
    """The outcome of an entry whose first request raised: a retransmission raises it too."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _as_raised(error: Exception) -> BaseException:
    return error


class ReplyCache:
    def __init__(
        self,
        ttl_ns: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        failure: Callable[[Exception], BaseException] = _as_raised,
    ) -> None:
        """``failure``: what the caller raises for an error of the work (the first request
        and its retransmissions alike); here rather than in a wrapper coroutine around
        :meth:`run`, which would be one more coroutine layer per request."""
        self._ttl_s = ttl_ns / SECOND
        self._clock = clock
        self._failure = failure
        # key -> (deadline, outcome: the reply, a _Failed, or _RUNNING)
        self._entries: OrderedDict[_Key, tuple[float, Any]] = OrderedDict()
        # Retransmissions waiting for a first request that is still running.
        self._waiters: dict[_Key, list[asyncio.Future[Any]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def run(
        self, method: str, tenant: str, event_id: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        if not event_id or self._ttl_s <= 0:
            try:
                return await call()
            except Exception as exc:
                failure = self._failure(exc)
                if failure is exc:
                    raise
                raise failure from None
        now = self._clock()
        self._expire(now)
        key = (method, tenant, event_id)
        entry = self._entries.get(key)
        if entry is not None:
            repeated: T = await self._repeat(key, entry[1])
            return repeated
        self._entries[key] = (now + self._ttl_s, _RUNNING)
        try:
            value = await call()
        except BaseException as error:  # a name of its own: mypyc types each name once
            failure = self._failure(error) if isinstance(error, Exception) else error
            self._settle(key, _Failed(failure))
            if failure is error:
                raise
            raise failure from None
        self._settle(key, value)
        return value

    async def _repeat(self, key: _Key, outcome: Any) -> Any:
        """A retransmission: the first request's outcome, once it has one."""
        if outcome is _RUNNING:
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(key, []).append(waiter)
            outcome = await waiter  # cancelling this one leaves the first request alone
        if type(outcome) is _Failed:
            raise outcome.error
        return outcome

    def _settle(self, key: _Key, outcome: Any) -> None:
        """Records the first request's outcome (unless its entry expired meanwhile) and hands
        it to the retransmissions waiting for it."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], outcome)  # an existing key keeps its place
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(outcome)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            _key, (deadline, outcome) = next(iter(entries.items()))
            if deadline > now and len(entries) < MAX_ENTRIES:
                break
            if outcome is _RUNNING and deadline > now:
                break
            entries.popitem(last=False)
