"""What every agent keeps of the sessions it opened: who owns them, for the engine's callbacks.

An agent remembers each engine session it opened (by OriginID) so that ``AgentV1.
DisconnectSession`` reaches the right client and ``AgentV1.GetActiveSessionIDs`` can answer;
entries idle for longer than ``session_idle`` (their end never came) are swept periodically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any, Final, Protocol, TypeVar

DEFAULT_SESSION_IDLE: Final = 4 * 3600.0  # seconds
SWEEP_INTERVAL: Final = 60.0  # seconds


class Seen(Protocol):
    seen: float  # time.monotonic() of the last request


class Owned(Seen, Protocol):
    origin_id: str
    origin_host: str


S = TypeVar("S", bound=Owned)
K = TypeVar("K")


def expire(table: MutableMapping[K, Any], oldest: float) -> None:
    """Drops the entries of ``table`` last seen before ``oldest``."""
    for key in [key for key, entry in table.items() if entry.seen < oldest]:
        del table[key]


class LiveSessions(dict[str, S]):
    """The agent's live engine sessions by OriginID."""

    def active_ids(self) -> list[dict[str, str]]:
        """The ``AgentV1.GetActiveSessionIDs`` answer."""
        return [{"OriginID": s.origin_id, "OriginHost": s.origin_host} for s in self.values()]


async def sweep_forever(sweep: Callable[[], None], interval: float = SWEEP_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        sweep()
