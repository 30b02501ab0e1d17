"""The duplicate-CCR answer cache on its own: TTL, bound, and persistence across instances."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agents.diameter.dedup import AnswerCache


async def test_answers_survive_a_restart(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.open()
    cache.start()
    cache.put(("s;1", 0), b"first")
    cache.put(("s;1", 1), b"second")
    await cache.close()  # flushes what the background writer has not written yet

    again = AnswerCache(tmp_path)
    again.open()
    assert again.get(("s;1", 0)) == b"first" and again.get(("s;1", 1)) == b"second"
    assert again.get(("s;1", 2)) is None
    await again.close()


async def test_expired_answers_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = AnswerCache(tmp_path, ttl=5)
    cache.open()
    cache.put(("s", 0), b"a")
    cache.flush()
    later = time.time() + 10
    monkeypatch.setattr(time, "time", lambda: later)
    assert cache.get(("s", 0)) is None
    await cache.close()
    reopened = AnswerCache(tmp_path, ttl=5)
    reopened.open()
    assert len(reopened) == 0
    await reopened.close()


def test_the_cache_is_bounded() -> None:
    cache = AnswerCache(None, max_entries=3)
    for number in range(5):
        cache.put(("s", number), bytes([number]))
    assert len(cache) == 3
    assert cache.get(("s", 0)) is None and cache.get(("s", 4)) == b"\x04"
