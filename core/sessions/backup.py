"""Live sessions survive an engine restart (CGRateS's session backup).

Without it, a ``*prepaid`` call debited at initiate and terminated after a restart would find no
session and be charged whole a second time. Each session's money state — what each run was
charged, used and paid, debit by debit, so unused increments can still be refunded — is written
to DataDB in the same transaction as each debit's balances (so a crash never keeps a debit
the backup does not know of), or on its own when an update changes only the usage, and
removed when the session ends.

A long session makes thousands of debits (a data session updated every minute for a day).
Rewriting all of them at every debit would make each update cost more than the one before, so
a run's debits are kept in chunks: the head document (``sessions``) holds the newest debits,
fewer than :data:`DEBITS_PER_CHUNK`; the debit that fills the head's list seals it as one
``session_debits`` document, written once in that debit's commit and never again. Every write
is then bounded, however long the session. A head without ``Chunks`` (written before chunks
existed) holds all its debits; it restores as it always did and is rewritten in chunks then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
KIND_SESSION_DEBITS: Final = "session_debits"
DEBITS_PER_CHUNK: Final = 64  # per sealed chunk; the head holds fewer than this


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


def chunk_key(cgrid: str, run_index: int, chunk: int) -> str:
    return f"{cgrid}:{run_index}:{chunk}"


def _open_debit_docs(run: Run) -> list[dict[str, Any]]:
    """The docs of the run's recorded debits not in a sealed chunk (the head's list), each
    encoded once: as the pending debit of its commit, or here."""
    start = len(run.debits) // DEBITS_PER_CHUNK * DEBITS_PER_CHUNK
    cached = run.backup_debits
    if run.backup_start != start:  # a chunk was sealed since: its docs are written for good
        del cached[: start - run.backup_start]
        run.backup_start = start
    early = run.backup_pending
    for debit in run.debits[start + len(cached) :]:
        cached.append(early[1] if early is not None and early[0] is debit else _debit_doc(debit))
    return cached


def _run_doc(
    run: Run, pending: DebitResult | None, sealed: Callable[[int, list[dict[str, Any]]], None]
) -> dict[str, Any]:
    """The run's part of the head; ``sealed(chunk, docs)`` receives the chunk ``pending``
    fills, if it fills one."""
    if run.backup_fields is None:
        run.backup_fields = dict(run.event.fields)
    charged, money, debits = run.charged, run.money, list(_open_debit_docs(run))
    chunks = len(run.debits) // DEBITS_PER_CHUNK
    if pending is not None:  # as the run will be once this debit is recorded
        charged += pending.usage
        money += pending.cost
        doc = _debit_doc(pending)
        run.backup_pending = (pending, doc)
        debits.append(doc)
        if len(debits) == DEBITS_PER_CHUNK:
            sealed(chunks, debits)
            chunks, debits = chunks + 1, []
    return {
        "Fields": run.backup_fields,
        "Charged": charged,
        "Used": run.used,
        "Money": money_str(money),
        "Chunks": chunks,
        "Debits": debits,
    }


def session_writes(
    session: Session,
    pending: tuple[Run, DebitResult] | None = None,
    *,
    every_chunk: bool = False,
) -> list[Write]:
    """The storage writes of the session's backup: its head and, when ``pending`` (a debit not
    yet recorded in its run, committing with these writes) fills a chunk, that chunk; with
    ``every_chunk``, every sealed chunk too (a backup written before chunks existed)."""
    if session.backup_head is None:
        session.backup_head = {
            "Event": session.event.to_wire(),
            "Started": format_time(session.started),
            "DebitInterval": session.debit_interval,
        }
    writes: list[Write] = []
    runs: list[dict[str, Any]] = []
    for index, run in enumerate(session.runs):

        def sealed(chunk: int, docs: list[dict[str, Any]], index: int = index) -> None:
            writes.append(Write(KIND_SESSION_DEBITS, chunk_key(session.cgrid, index, chunk), docs))

        debit = pending[1] if pending is not None and pending[0] is run else None
        runs.append(_run_doc(run, debit, sealed))
        if every_chunk:
            for chunk in range(len(run.debits) // DEBITS_PER_CHUNK):
                first = chunk * DEBITS_PER_CHUNK
                part = run.debits[first : first + DEBITS_PER_CHUNK]
                sealed(chunk, [_debit_doc(recorded) for recorded in part])
    writes.insert(0, Write(KIND_SESSIONS, session.cgrid, {**session.backup_head, "Runs": runs}))
    return writes


def written_before_chunks(doc: dict[str, Any]) -> bool:
    """Whether a head holds, inline, debits that now belong in sealed chunks."""
    return any(
        "Chunks" not in raw and len(raw["Debits"]) >= DEBITS_PER_CHUNK for raw in doc["Runs"]
    )


def session_doc(session: Session) -> dict[str, Any]:
    """The head document of the session's backup as it stands (no pending debit)."""
    head: dict[str, Any] = session_writes(session)[0].value
    return head


def session_from_doc(
    cgrid: str,
    doc: dict[str, Any],
    read_run: Callable[[CGREvent], RunEvent],
    timezone: Any,
    now: datetime,
    chunks: Mapping[str, Any] | None = None,
) -> Session:
    """The session of a head document; ``chunks`` holds its sealed debit chunks by key
    (a missing one raises KeyError: the backup is unreadable, not silently shorter)."""
    event = CGREvent.from_wire(doc["Event"], "", timezone)
    runs: list[Run] = []
    for index, raw in enumerate(doc["Runs"]):
        run_event = read_run(CGREvent(event.tenant, event.id, None, dict(raw["Fields"])))
        run = Run(run_event, int(raw["Charged"]), int(raw["Used"]), Decimal(raw["Money"]))
        sealed: list[Any] = []
        for chunk in range(int(raw.get("Chunks", 0))):
            part = (chunks or {})[chunk_key(cgrid, index, chunk)]
            if len(part) != DEBITS_PER_CHUNK:
                raise ValueError(f"chunk {chunk} of run {index} holds {len(part)} debits")
            sealed.extend(part)
        for debit in [*sealed, *raw["Debits"]]:
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

    async def save(self, session: Session, *, every_chunk: bool = False) -> None:
        await self._datadb.apply(session_writes(session, every_chunk=every_chunk))

    @staticmethod
    def writes(session: Session, pending: tuple[Run, DebitResult] | None = None) -> list[Write]:
        """The storage writes of the session's state (with ``pending``, see
        :func:`session_writes`), to commit with the balances of that debit."""
        return session_writes(session, pending)

    @staticmethod
    def removals(session: Session) -> list[Write]:
        """The storage writes that forget a session (its head and every sealed chunk), to
        apply with others in one commit."""
        return [
            Write(KIND_SESSIONS, session.cgrid, None),
            *(
                Write(KIND_SESSION_DEBITS, chunk_key(session.cgrid, index, chunk), None)
                for index, run in enumerate(session.runs)
                for chunk in range(len(run.debits) // DEBITS_PER_CHUNK)
            ),
        ]

    async def load(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """The head documents by cgrid, and every sealed chunk by key."""
        heads: dict[str, dict[str, Any]] = await self._datadb.get_all(KIND_SESSIONS)
        chunks: dict[str, Any] = await self._datadb.get_all(KIND_SESSION_DEBITS) if heads else {}
        return heads, chunks
