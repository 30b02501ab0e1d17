"""The reply cache: a retransmission (same method, tenant and event ID inside the window) gets
the first request's outcome, reply or error, and never runs the work again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from core.sessions.reply_cache import ReplyCache
from core.types import SECOND

TTL = 10 * SECOND


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Work:
    """Counts its runs; each run answers ``reply`` (or raises ``error``) once released."""

    def __init__(self, reply: object = "OK", error: Exception | None = None) -> None:
        self.runs = 0
        self.reply = reply
        self.error = error
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> object:
        self.runs += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.reply


def runner(cache: ReplyCache, work: Work) -> Callable[[str], Awaitable[object]]:
    def run(event_id: str) -> Awaitable[object]:
        return cache.run("SessionSv1.UpdateSession", "cgrates.org", event_id, work)

    return run


async def held_twice(work: Work) -> tuple[asyncio.Future[object], asyncio.Future[object]]:
    """A request whose work is held, and its retransmission, both started."""
    work.release.clear()
    run = runner(ReplyCache(TTL, Clock()), work)
    first = asyncio.ensure_future(run("e1"))
    await asyncio.sleep(0)
    again = asyncio.ensure_future(run("e1"))
    await asyncio.sleep(0)
    return first, again


async def test_a_retransmission_after_the_answer_gets_it_without_running_again() -> None:
    work = Work({"MaxUsage": 60})
    run = runner(ReplyCache(TTL, Clock()), work)
    first = await run("e1")
    assert await run("e1") is first
    assert work.runs == 1
    assert await run("e2") == {"MaxUsage": 60} and work.runs == 2  # another event runs


async def test_a_retransmission_while_running_waits_for_the_first() -> None:
    work = Work("OK")
    first, again = await held_twice(work)
    assert not again.done() and work.runs == 1
    work.release.set()
    assert await asyncio.gather(first, again) == ["OK", "OK"]
    assert work.runs == 1


async def test_an_error_is_the_answer_to_its_retransmissions_too() -> None:
    work = Work(error=ValueError("INSUFFICIENT_CREDIT"))
    first, waiting = await held_twice(work)
    work.release.set()
    for outcome in (first, waiting):
        with pytest.raises(ValueError, match="INSUFFICIENT_CREDIT"):
            await outcome
    assert work.runs == 1


async def test_an_error_answers_a_retransmission_after_it_too() -> None:
    work = Work(error=ValueError("INSUFFICIENT_CREDIT"))
    run = runner(ReplyCache(TTL, Clock()), work)
    for _ in range(2):
        with pytest.raises(ValueError, match="INSUFFICIENT_CREDIT"):
            await run("e1")
    assert work.runs == 1


async def test_a_cancelled_retransmission_leaves_the_first_alone() -> None:
    work = Work("OK")
    first, again = await held_twice(work)
    again.cancel()
    work.release.set()
    assert await first == "OK"
    with pytest.raises(asyncio.CancelledError):
        await again


async def test_after_the_window_the_work_runs_again() -> None:
    clock = Clock()
    cache = ReplyCache(TTL, clock)
    work = Work("OK")
    run = runner(cache, work)
    await run("e1")
    clock.now += TTL / SECOND + 1
    await run("e2")  # expires e1 on the way
    assert len(cache) == 1
    await run("e1")
    assert work.runs == 3


async def test_a_running_entry_is_not_expired_before_its_deadline() -> None:
    clock = Clock()
    cache = ReplyCache(TTL, clock)
    work = Work("OK")
    work.release.clear()
    run = runner(cache, work)
    first = asyncio.ensure_future(run("e1"))
    await asyncio.sleep(0)
    clock.now += 1
    later = asyncio.ensure_future(run("e2"))
    await asyncio.sleep(0)
    assert len(cache) == 2
    work.release.set()
    await asyncio.gather(first, later)
    assert await run("e1") == "OK" and work.runs == 2


async def test_no_event_id_is_never_cached() -> None:
    cache = ReplyCache(TTL, Clock())
    work = Work("OK")
    run = runner(cache, work)
    await run("")
    await run("")
    assert work.runs == 2 and len(cache) == 0


class Refused(Exception):
    """What the caller answers for a KeyError of the work (a translated failure)."""


def refused(error: Exception) -> Exception:
    return Refused(f"refused: {error}") if isinstance(error, KeyError) else error


@pytest.mark.parametrize("event_id", ["e1", ""])
async def test_a_failure_is_raised_as_the_caller_asks_first_and_again(event_id: str) -> None:
    work = Work(error=KeyError("NOT_FOUND"))
    run = runner(ReplyCache(TTL, Clock(), failure=refused), work)
    for _ in range(2):
        with pytest.raises(Refused, match="refused: 'NOT_FOUND'"):
            await run(event_id)
    assert work.runs == (1 if event_id else 2)


async def test_a_failure_the_caller_does_not_translate_is_raised_as_it_is() -> None:
    error = ValueError("bad")
    work = Work(error=error)
    run = runner(ReplyCache(TTL, Clock(), failure=refused), work)
    with pytest.raises(ValueError) as raised:
        await run("e1")
    assert raised.value is error


async def test_a_translated_failure_reaches_a_waiting_retransmission() -> None:
    work = Work(error=KeyError("NOT_FOUND"))
    work.release.clear()
    run = runner(ReplyCache(TTL, Clock(), failure=refused), work)
    first = asyncio.ensure_future(run("e1"))
    await asyncio.sleep(0)
    again = asyncio.ensure_future(run("e1"))
    await asyncio.sleep(0)
    work.release.set()
    for outcome in (first, again):
        with pytest.raises(Refused):
            await outcome
    assert work.runs == 1
