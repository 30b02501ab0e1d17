"""Live sessions survive an engine restart (CGRateS's session backup).

Without it, a ``*prepaid`` call debited at initiate and terminated after a restart would find no
session and be charged whole a second time. Each session's money state — what each run was
charged, used and paid, debit by debit, so unused increments can still be refunded — is written
to DataDB in the same transaction as each debit's balances (so a crash never keeps a debit
the backup does not know of), or on its own when an update changes only the usage, and
removed when the session ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from core.accounts import Charge, DebitResult
from core.charging import RunEvent
from core.filters.event import CGREvent
from core.sessions.session import Run, Session
from core.storage import DataDB, Write
from core.types import format_time, money_str, parse_time

KIND_SESSIONS: Final = "sessions"


def _charge_doc(charge: Charge) -> list[Any]:
    return [
        charge.offset,
        charge.usage,
        charge.count,
        charge.unit_balance,
        charge.unit_type,
        money_str(charge.units),
        charge.money_balance,
        money_str(charge.cost),
    ]


def _charge(doc: list[Any]) -> Charge:
    offset, usage, count, unit_balance, unit_type, units, money_balance, cost = doc
    return Charge(
        int(offset), int(usage), int(count), str(unit_balance), str(unit_type), Decimal(units),
        str(money_balance), Decimal(cost),
    )  # fmt: skip


def _debit_doc(debit: DebitResult) -> dict[str, Any]:
    return {
        "Usage": debit.usage,
        "Cost": money_str(debit.cost),
        "Charges": [_charge_doc(charge) for charge in debit.charges],
    }


def _run_doc(run: Run, pending: DebitResult | None) -> dict[str, Any]:
    # A session's backup is written at every debit: the parts that do not change are built once.
    cached = run.backup_debits
    for debit in run.debits[len(cached) :]:
        early = run.backup_pending
        cached.append(early[1] if early is not None and early[0] is debit else _debit_doc(debit))
    if run.backup_fields is None:
        run.backup_fields = dict(run.event.fields)
    charged, money, debits = run.charged, run.money, list(cached)
    if pending is not None:  # as the run will be once this debit is recorded
        charged += pending.usage
        money += pending.cost
        doc = _debit_doc(pending)
        run.backup_pending = (pending, doc)
        debits.append(doc)
    return {
        "Fields": run.backup_fields,
        "Charged": charged,
        "Used": run.used,
        "Money": money_str(money),
        "Debits": debits,
    }


def session_doc(session: Session, pending: tuple[Run, DebitResult] | None = None) -> dict[str, Any]:
    """The backup document; ``pending`` adds a debit not yet recorded in its run (the document
    commits with that debit's balances)."""
    if session.backup_head is None:
        session.backup_head = {
            "Event": session.event.to_wire(),
            "Started": format_time(session.started),
            "DebitInterval": session.debit_interval,
        }
    return {
        **session.backup_head,
        "Runs": [
            _run_doc(run, pending[1] if pending is not None and pending[0] is run else None)
            for run in session.runs
        ],
    }


def session_from_doc(
    cgrid: str,
    doc: dict[str, Any],
    read_run: Callable[[CGREvent], RunEvent],
    timezone: Any,
    now: datetime,
) -> Session:
    event = CGREvent.from_wire(doc["Event"], "", timezone)
    runs: list[Run] = []
    for raw in doc["Runs"]:
        run_event = read_run(CGREvent(event.tenant, event.id, None, dict(raw["Fields"])))
        run = Run(run_event, int(raw["Charged"]), int(raw["Used"]), Decimal(raw["Money"]))
        for debit in raw["Debits"]:
            usage = int(debit["Usage"])
            run.debits.append(
                DebitResult(
                    run_event.debit_event(usage, now),
                    usage,
                    Decimal(debit["Cost"]),
                    [_charge(charge) for charge in debit["Charges"]],
                )
            )
        runs.append(run)
    started = parse_time(doc["Started"], timezone)
    return Session(cgrid, event, runs, started, None, int(doc["DebitInterval"]))


class SessionBackup:
    def __init__(self, datadb: DataDB) -> None:
        self._datadb = datadb

    async def save(self, session: Session) -> None:
        await self._datadb.set(KIND_SESSIONS, session.cgrid, session_doc(session))

    @staticmethod
    def write(session: Session, pending: tuple[Run, DebitResult] | None = None) -> Write:
        """The storage write of the session's state (with ``pending``, see
        :func:`session_doc`), to commit with the balances of that debit."""
        return Write(KIND_SESSIONS, session.cgrid, session_doc(session, pending))

    async def remove(self, cgrid: str) -> None:
        await self._datadb.remove(KIND_SESSIONS, cgrid)

    @staticmethod
    def removal(cgrid: str) -> Write:
        """The storage write that forgets a session, to apply with others in one commit."""
        return Write(KIND_SESSIONS, cgrid, None)

    async def load(self) -> dict[str, dict[str, Any]]:
        docs: dict[str, dict[str, Any]] = await self._datadb.get_all(KIND_SESSIONS)
        return docs
