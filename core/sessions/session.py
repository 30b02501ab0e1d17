"""The session table's rows: one Session per call, one Run per charger run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.accounts import DebitResult
from core.charging import RunEvent
from core.filters.event import CGREvent
from core.rpc import PeerLink
from core.types import ZERO, format_time


@dataclass(slots=True)
class Run:
    """One charger run of a session. ``charged`` is the usage debited so far (whole
    increments); ``used`` what the network confirmed used; ``money`` the money taken."""

    event: RunEvent
    charged: int = 0
    used: int = 0
    money: Decimal = ZERO
    debits: list[DebitResult] = field(default_factory=list)
    details: Any = None  # the EventCost of what was charged, once settled
    # The backup's encoded-once parts: the fields, and the docs of
    # debits[backup_start:backup_start + len(backup_debits)], the ones not in a sealed chunk
    # (debits are only ever appended, and never change once recorded).
    backup_fields: dict[str, Any] | None = None
    backup_debits: list[dict[str, Any]] = field(default_factory=list)
    backup_start: int = 0
    # The doc of the debit last written as pending (before it was recorded): reused when that
    # same debit is recorded, so each debit is encoded once.
    backup_pending: tuple[DebitResult, dict[str, Any]] | None = None

    def __init__(
        self,
        event: RunEvent,
        charged: int = 0,
        used: int = 0,
        money: Decimal = ZERO,
        debits: list[DebitResult] | None = None,
        details: Any = None,
        backup_fields: dict[str, Any] | None = None,
        backup_debits: list[dict[str, Any]] | None = None,
        backup_pending: tuple[DebitResult, dict[str, Any]] | None = None,
        backup_start: int = 0,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.event = event
        self.charged = charged
        self.used = used
        self.money = money
        self.debits = [] if debits is None else debits
        self.details = details
        self.backup_fields = backup_fields
        self.backup_debits = [] if backup_debits is None else backup_debits
        self.backup_pending = backup_pending
        self.backup_start = backup_start

    @property
    def run_id(self) -> str:
        return self.event.run_id

    @property
    def request_type(self) -> str:
        return self.event.request_type


@dataclass(slots=True)
class Session:
    cgrid: str
    event: CGREvent  # the event that opened the session (after attributes)
    runs: list[Run]
    started: datetime
    connection: PeerLink | None = None  # the agent's connection, for callbacks
    debit_interval: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    debit_task: asyncio.Task[None] | None = None
    ttl_handle: asyncio.TimerHandle | None = None
    ended: bool = False
    backup_head: dict[str, Any] | None = None  # the backup's parts that never change

    def __init__(
        self,
        cgrid: str,
        event: CGREvent,
        runs: list[Run],
        started: datetime,
        connection: PeerLink | None = None,
        debit_interval: int = 0,
        lock: asyncio.Lock | None = None,
        debit_task: asyncio.Task[None] | None = None,
        ttl_handle: asyncio.TimerHandle | None = None,
        ended: bool = False,
        backup_head: dict[str, Any] | None = None,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.cgrid = cgrid
        self.event = event
        self.runs = runs
        self.started = started
        self.connection = connection
        self.debit_interval = debit_interval
        self.lock = asyncio.Lock() if lock is None else lock
        self.debit_task = debit_task
        self.ttl_handle = ttl_handle
        self.ended = ended
        self.backup_head = backup_head

    @property
    def origin_id(self) -> str:
        return self.runs[0].event.origin_id if self.runs else ""

    @property
    def origin_host(self) -> str:
        return self.runs[0].event.origin_host if self.runs else ""

    def external(self, node_id: str) -> list[dict[str, Any]]:
        """CGRateS's ExternalSession: one row per run (GetActiveSessions)."""
        rows = []
        for run in self.runs:
            event = run.event
            extra = {
                key: value if isinstance(value, str) else str(value)
                for key, value in event.fields.items()
                if key not in _EXTERNAL_FIELDS
            }
            rows.append(
                {
                    "CGRID": self.cgrid,
                    "RunID": run.run_id,
                    "ToR": event.tor,
                    "OriginID": event.origin_id,
                    "OriginHost": event.origin_host,
                    "Source": event.source or "SessionS",
                    "RequestType": event.request_type,
                    "Tenant": event.tenant,
                    "Category": event.category,
                    "Account": event.account,
                    "Subject": event.subject or event.account,
                    "Destination": event.destination,
                    "SetupTime": format_time(event.setup_time) if event.setup_time else None,
                    "AnswerTime": format_time(event.answer_time) if event.answer_time else None,
                    "Usage": run.used,
                    "ExtraFields": extra,
                    "NodeID": node_id,
                    "DebitInterval": self.debit_interval,
                    "MaxCostSoFar": run.money,
                    "CostSoFar": run.money,
                    "ChargedUsage": run.charged,
                }
            )
        return rows


_EXTERNAL_FIELDS = frozenset(
    {"ToR", "OriginID", "OriginHost", "Source", "RequestType", "Tenant", "Category", "Account",
     "Subject", "Destination", "SetupTime", "AnswerTime", "Usage", "RunID", "CGRID", "LastUsed"}
)  # fmt: skip
