"""SessionS: authorize, initiate, update and terminate calls against real balances.

Money moves only here and in CDRs. ``*prepaid`` runs are debited as the call goes (at initiate
and each update, or by the debit loop) and corrected at terminate: unused whole increments are
refunded, missing usage is charged (the call happened), and the total is rounded as its rating
rounds. The other request types are charged from the CDR. Each session has its own lock, each
account its own (in AccountService), so unrelated calls never wait on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

from core.accounts import AccountError, AccountService, Charge, DebitResult, charge_amounts
from core.cdrs.service import (
    CdrService,
    SessionCosts,
    add_amounts,
    balances_taken,
    record_accounting,
    round_charged,
)
from core.charging import (
    BALANCE_CHECKED,
    LAST_USED,
    PREPAID,
    TOTAL_USAGE,
    ChargingError,
    RunEvent,
    cgrid,
    read_run_event,
)
from core.filters.event import CGREvent
from core.rating import Rater, RatingError
from core.rpc import PeerLink
from core.sessions.backup import SessionBackup, session_from_doc, written_before_chunks
from core.sessions.session import Run, Session
from core.storage import Write
from core.types import HOUR, SECOND, InvalidValue, parse_duration

log = logging.getLogger("chargeflow.sessions")

DEFAULT_MAX_CALL_DURATION: Final = 3 * HOUR
DEFAULT_REPLY_CACHE_TTL: Final = 10 * SECOND
DISCONNECT_TIMEOUT_S: Final = 2.0

ERR_INSUFFICIENT_CREDIT: Final = "INSUFFICIENT_CREDIT"
ERR_SESSION_NOT_FOUND: Final = "SESSION_NOT_FOUND"
ERR_NOT_FOUND: Final = "NOT_FOUND"
REASON_INSUFFICIENT_CREDIT: Final = "INSUFFICIENT_CREDIT"
REASON_FORCED: Final = "FORCED_DISCONNECT"
REASON_TTL: Final = "SESSION_TTL_EXPIRED"
REASON_NOT_ON_AGENT: Final = "SESSION_NOT_ON_AGENT"

# Agent callbacks over the agent's own JSON-RPC connection (see docs/agents.md).
AGENT_DISCONNECT: Final = "AgentV1.DisconnectSession"
AGENT_WARN_DISCONNECT: Final = "AgentV1.WarnDisconnect"
AGENT_ACTIVE_SESSION_IDS: Final = "AgentV1.GetActiveSessionIDs"

RunsOf = Callable[[CGREvent], Awaitable[list[CGREvent]]]
Clock = Callable[[], datetime]


class SessionError(ChargingError):
    """A session request failed; the text is the CGRateS error string."""


def rals_error(exc: Exception) -> SessionError:
    """Account and rating failures, as CGRateS's SessionS reports them."""
    return SessionError(f"RALS_ERROR:{exc}")


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    max_call_duration: int = DEFAULT_MAX_CALL_DURATION  # default usage to authorize/debit
    debit_interval: int = 0  # > 0: *prepaid sessions are debited by a loop, this often
    session_ttl: int = 0  # > 0: a session with no update for this long is terminated
    reply_cache_ttl: int = DEFAULT_REPLY_CACHE_TTL
    default_request_type: str = "*rated"


class SessionService:
    def __init__(
        self,
        config: SessionsConfig,
        accounts: AccountService,
        rater: Callable[[], Rater],
        cdrs: CdrService,
        session_costs: SessionCosts,
        runs_of: RunsOf,
        *,
        default_category: str,
        backup: SessionBackup | None = None,
        timezone: tzinfo = UTC,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._backup = backup
        self._accounts = accounts
        self._rater = rater
        self._cdrs = cdrs
        self._session_costs = session_costs
        self._runs_of = runs_of
        self._default_category = default_category
        self._timezone = timezone
        self._clock = clock
        self.sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.node_id = platform.node()
        # The open links that may own a session whose own link closed (set by the engine:
        # its TCP connections from the same host); none by default.
        self.successors: Callable[[PeerLink], list[PeerLink]] = lambda gone: []

    # ------------------------------------------------------------------------------- helpers
    def _run_event(self, event: CGREvent, like: RunEvent | None = None) -> RunEvent:
        """Reads ``event``; ``like``: the reading of the event it was copied from (only the
        fields that differ are read again)."""
        try:
            return read_run_event(
                event.tenant,
                event.event,
                default_category=self._default_category,
                default_request_type=self.config.default_request_type,
                timezone=self._timezone,
                like=like,
            )
        except InvalidValue as exc:
            raise SessionError(f"SERVER_ERROR: invalid params: {exc}") from None

    async def _runs(self, event: CGREvent, request: RunEvent) -> list[RunEvent]:
        """The charger runs of ``event``, read from ``request`` (its reading): a run copies
        the request, so only the fields its charger changed are read again."""
        return [self._run_event(run, request) for run in await self._runs_of(event)]

    def requested_usage(self, event: CGREvent) -> int:
        return self._requested(self._run_event(event))

    def _requested(self, run_event: RunEvent) -> int:
        """The usage a request asks for (its Usage, else max_call_duration)."""
        usage = run_event.usage
        return self.config.max_call_duration if usage is None else usage

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------------------- authorize
    async def max_usage(self, event: CGREvent) -> int:
        """MaxUsage of AuthorizeEvent: the requested usage (default max_call_duration), capped
        by what each balance-checked run's account allows; the minimum over the runs."""
        request = self._run_event(event)
        requested = self._requested(request)
        allowed = requested
        now = self._clock()
        for run in await self._runs(event, request):
            if run.request_type not in BALANCE_CHECKED:
                continue
            try:
                usage = await self._accounts.max_usage(run.debit_event(requested, now))
            except (AccountError, RatingError) as exc:
                raise rals_error(exc) from None
            allowed = min(allowed, usage)
        return allowed

    # ----------------------------------------------------------------------------- initiate
    async def initiate(
        self,
        event: CGREvent,
        connection: PeerLink | None,
        run_event: RunEvent | None = None,
    ) -> int:
        """Opens the session and makes its first debit; returns MaxUsage. ``run_event``:
        ``event`` already read (saves reading it again)."""
        request = run_event or self._run_event(event)
        requested = self._requested(request)
        runs = await self._runs(event, request)
        if not runs:
            raise SessionError(ERR_NOT_FOUND)
        session_id = cgrid(runs[0].origin_id, runs[0].origin_host)
        if session_id in self.sessions:
            # A second initiate of a live call (a retransmission outside the reply cache, or
            # an agent that restarted): answer for the session that exists, charge nothing.
            return self._reserved(self.sessions[session_id])
        session = Session(
            session_id,
            event,
            [Run(run) for run in runs],
            self._clock(),
            connection,
            self.config.debit_interval,
        )
        self.sessions[session_id] = session
        async with session.lock:
            failure: SessionError | None = None
            max_usage = 0
            try:
                if session.debit_interval > 0:
                    max_usage = await self._debit_all(session, session.debit_interval)
                    if any(run.request_type == PREPAID for run in session.runs):
                        session.debit_task = asyncio.ensure_future(self._debit_loop(session))
                else:
                    max_usage = await self._debit_all(session, requested)
            except SessionError as exc:
                failure = exc
            if failure is not None:
                # Ended outside the handler: compiled code must not suspend while handling
                # an exception (tests/unit/test_native.py says why).
                await self._end(session, store_costs=False)
                raise failure
            if max_usage == 0 and requested > 0 and self._has_prepaid(session):
                await self._end(session, store_costs=False)
                raise rals_error(Exception(ERR_INSUFFICIENT_CREDIT))
            self._arm_ttl(session)
            return max_usage

    def _has_prepaid(self, session: Session) -> bool:
        return any(run.request_type == PREPAID for run in session.runs)

    def _reserved(self, session: Session) -> int:
        prepaid = [run.charged - run.used for run in session.runs if run.request_type == PREPAID]
        return min(prepaid) if prepaid else self.config.max_call_duration

    async def _debit_all(self, session: Session, requested: int) -> int:
        """Extends every *prepaid run's reservation to ``used + requested``; returns MaxUsage
        (the least any run can still use from its confirmed usage)."""
        max_usage = requested
        debited = False
        for run in session.runs:
            if run.request_type != PREPAID:
                continue
            target = run.used + requested
            if target > run.charged:
                await self._debit(session, run, target - run.charged, allow_negative=None)
                debited = True
            max_usage = min(max_usage, max(0, run.charged - run.used))
        if self._backup is not None and not debited and self._has_prepaid(session):
            await self._backup.save(session)  # the usage confirmed changed, no debit carried it
        return max_usage

    async def _debit(
        self,
        session: Session,
        run: Run,
        usage: int,
        *,
        allow_negative: bool | None,
        then: Callable[[DebitResult], list[Write]] | None = None,
    ) -> int:
        """Debits one run; ``then`` adds writes (made from the result) to its commit."""
        event = run.event.debit_event(usage, self._clock(), elapsed=run.charged)
        backup = self._backup

        def also(result: DebitResult) -> list[Write]:
            # The session's backup, this debit included, commits with the debit's balances.
            writes = [] if backup is None else backup.writes(session, (run, result))
            return writes if then is None else [*writes, *then(result)]

        try:
            result = await self._accounts.debit(event, allow_negative=allow_negative, also=also)
        except (AccountError, RatingError) as exc:
            raise rals_error(exc) from None
        run.debits.append(result)
        run.charged += result.usage
        run.money += result.cost
        return result.usage

    # ------------------------------------------------------------------------------- update
    async def update(self, event: CGREvent, connection: PeerLink | None) -> int:
        """Reconciles the usage reported (LastUsed/TotalUsage) and reserves the next
        ``Usage``; returns MaxUsage. An update for an unknown session opens it."""
        run_event = self._run_event(event)
        session = self.sessions.get(cgrid(run_event.origin_id, run_event.origin_host))
        if session is None:
            return await self.initiate(event, connection, run_event)
        async with session.lock:
            if session.ended:
                raise SessionError(ERR_SESSION_NOT_FOUND)
            self._rebind(session, connection)
            self._confirm_usage(session, event)
            max_usage = await self._debit_all(session, self._requested(run_event))
            self._arm_ttl(session)
            return max_usage

    @staticmethod
    def _rebind(session: Session, connection: PeerLink | None) -> None:
        """The agent's latest connection owns the session: after a reconnect, callbacks go
        over the new connection, not the dead one."""
        if connection is not None:
            session.connection = connection

    def _confirm_usage(self, session: Session, event: CGREvent) -> None:
        """LastUsed adds to the usage confirmed, TotalUsage replaces it; with neither, the
        reservation so far counts as used (CGRateS's default for updates)."""
        last_used = _duration(event.event.get(LAST_USED))
        total = _duration(event.event.get(TOTAL_USAGE))
        _record_usage(session, total, last_used, reservation_for_all=False)

    # ---------------------------------------------------------------------------- terminate
    async def terminate(self, event: CGREvent, connection: PeerLink | None) -> None:
        """Ends the call at its real usage: ``Usage`` is the total, or LastUsed adds to what
        was confirmed. A terminate with no session charges the whole call at once."""
        run_event = self._run_event(event)
        session_id = cgrid(run_event.origin_id, run_event.origin_host)
        session = self.sessions.get(session_id)
        if session is None:
            runs = await self._runs(event, run_event)
            session = Session(session_id, event, [Run(run) for run in runs], self._clock())
            self.sessions[session_id] = session
        async with session.lock:
            if session.ended:
                raise SessionError(ERR_SESSION_NOT_FOUND)
            self._rebind(session, connection)
            last_used = _duration(event.event.get(LAST_USED))
            _record_usage(session, run_event.usage, last_used, reservation_for_all=True)
            failure: SessionError | None = None
            stored = False
            try:
                stored = await self._settle(session)
            except (AccountError, RatingError) as exc:
                failure = rals_error(exc)  # as CGRateS
            if failure is not None and any(run.debits for run in session.runs):
                # It took money already: it stays open, so a retry (the account enabled
                # again, say) settles it from what it took, never charging the call afresh;
                # else its TTL ends it.
                raise failure
            await self._end(session, store_costs=True, stored=stored)
            if failure is not None:  # nothing taken: it ends, its CDR marks what is missing
                raise failure

    async def _settle(self, session: Session) -> bool:
        """Brings each *prepaid run's charge to exactly its used usage, then rounds it.

        The session's end writes (its costs, the backup's removal) commit with the last balance
        change this makes, when there is one: True then, and ``_end`` has nothing left to write.
        """
        now = self._clock()
        prepaid = [run for run in session.runs if run.request_type == PREPAID]
        stored = False
        for run in prepaid:
            stored = await self._settle_run(session, run, now, last_run=run is prepaid[-1])
        return stored

    async def _settle_run(
        self, session: Session, run: Run, now: datetime, *, last_run: bool
    ) -> bool:
        """Settles one *prepaid run (see ``_settle``); True when the session's end writes
        committed with its last change. Its cost (``run.details``) records in ``Accounting``
        what the run took from each balance in the end — its debits, minus the increments given
        back, plus the rounding correction — as a CDR charged by CDRs does, so its CDR can be
        re-rated (``CdrService.rate_cdrs`` gives exactly that back)."""
        rated = self._rater().get_cost(run.event.cost_query(run.used, now))
        details = rated.to_event_cost(session.cgrid, run.run_id)
        run.details = details
        rounder = rated.round
        charge_key = f"session:{session.cgrid}:{run.run_id}"
        taken = balances_taken(run.debits)
        returned: dict[str, Decimal] = {}  # what the refund gives back, per balance
        stored = False

        def end_writes(
            total: Decimal, amounts: dict[str, Decimal], *, rounded: bool
        ) -> list[Write]:
            """The end writes, if the change that leaves ``total`` taken (``amounts`` per
            balance) is the session's last one."""
            nonlocal stored
            if not last_run or (not rounded and rounder(total) != total):
                return []  # another run, or a rounding correction, comes after this change
            stored = True
            ending = dict(details)
            record_accounting(ending, run.event, amounts, charge_key)
            return self._end_writes(session, {run.run_id: (total, ending)})

        def after_debit(result: DebitResult) -> list[Write]:
            amounts = add_amounts(dict(taken), result.balance_amounts())
            return end_writes(run.money + result.cost, amounts, rounded=False)

        def after_refund(refunded: Decimal) -> list[Write]:
            amounts = add_amounts(dict(taken), returned, -1)
            return end_writes(run.money - refunded, amounts, rounded=False)

        if run.used > run.charged:
            # The call happened: charge it whole, past the credit if need be.
            await self._debit(
                session, run, run.used - run.charged, allow_negative=True, then=after_debit
            )
            add_amounts(taken, run.debits[-1].balance_amounts())
        elif run.used < run.charged:
            refunds = _unused_charges(run, run.charged - run.used)
            returned.update(charge_amounts(refunds))
            await self._refund(run, refunds, then=after_refund)
            add_amounts(taken, returned, -1)
        money = run.money  # before rounding

        def after_rounding(rounded: Decimal, payer: str) -> list[Write]:
            amounts = add_amounts(dict(taken), {payer: rounded - money})
            return end_writes(rounded, amounts, rounded=True)

        last = run.debits[-1] if run.debits else None
        run.money, payer = await round_charged(
            self._accounts, run.event, money, rounder, last, also=after_rounding
        )
        if payer:
            add_amounts(taken, {payer: run.money - money})
        record_accounting(details, run.event, taken, charge_key)
        return stored

    async def _refund(
        self,
        run: Run,
        refunds: list[Charge],
        *,
        then: Callable[[Decimal], list[Write]] | None = None,
    ) -> None:
        """Gives back ``refunds`` (whole increments of the run's debits: ``_unused_charges``)."""
        if not refunds:
            return
        try:
            money = await self._accounts.refund(
                run.event.tenant, run.event.account, refunds, also=then
            )
        except AccountError as exc:
            raise rals_error(exc) from None
        run.money -= money
        run.charged -= sum(charge.total_usage for charge in refunds)

    def _end_writes(self, session: Session, ending: dict[str, tuple[Decimal, Any]]) -> list[Write]:
        """One commit: the session is forgotten exactly when the costs its CDRs need are stored.
        ``ending`` overrides a run's money and cost details (by run id) with what they are once
        this commits."""
        writes: list[Write] = []
        for run in session.runs:
            if run.request_type != PREPAID:
                continue
            money, details = ending.get(run.run_id, (run.money, run.details))
            writes.append(
                self._session_costs.write(session.cgrid, run.run_id, money, run.used, details)
            )
        if self._backup is not None and writes:
            writes.extend(self._backup.removals(session))
        return writes

    async def _end(self, session: Session, *, store_costs: bool, stored: bool = False) -> None:
        """Forgets the session; its end writes too unless ``stored`` (already committed)."""
        session.ended = True
        self.sessions.pop(session.cgrid, None)
        if session.ttl_handle is not None:
            session.ttl_handle.cancel()
        task = session.debit_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if not store_costs:
            await self._refund_all(session)
            if self._backup is not None and self._has_prepaid(session):
                await self._session_costs.apply(self._backup.removals(session))
        elif not stored:
            writes = self._end_writes(session, {})
            if writes:
                await self._session_costs.apply(writes)  # the same DataDB holds both kinds

    async def _refund_all(self, session: Session) -> None:
        """A session that fails to open keeps nothing of what it took."""
        for run in session.runs:
            if run.charged > 0:
                await self._refund(run, _unused_charges(run, run.charged))

    # --------------------------------------------------------------------- loop, TTL, cut-off
    async def _debit_loop(self, session: Session) -> None:
        """*prepaid with a debit interval: reserve one interval ahead, every interval; when
        the credit ends, cut the call off once what was reserved is used up."""
        interval = session.debit_interval
        try:
            while True:
                await asyncio.sleep(interval / SECOND)
                async with session.lock:
                    if session.ended:
                        return
                    for run in session.runs:
                        if run.request_type == PREPAID:
                            run.used = run.charged
                    granted = await self._debit_all(session, interval)
                if granted < interval:
                    # Credit ends within this interval: warn now, cut off when it is used.
                    await self._warn(session)
                    await asyncio.sleep(granted / SECOND)
                    await self.disconnect(session, REASON_INSUFFICIENT_CREDIT)
                    return
        except asyncio.CancelledError:
            return
        except SessionError as exc:
            log.warning("debit loop of %s stopped: %s", session.cgrid, exc)
        # Only a SessionError gets here; the cut-off runs outside the handler (compiled code
        # must not suspend while handling an exception: tests/unit/test_native.py).
        await self.disconnect(session, REASON_INSUFFICIENT_CREDIT)

    def _arm_ttl(self, session: Session) -> None:
        if self.config.session_ttl <= 0:
            return
        if session.ttl_handle is not None:
            session.ttl_handle.cancel()
        loop = asyncio.get_running_loop()
        session.ttl_handle = loop.call_later(
            self.config.session_ttl / SECOND,
            lambda: self._spawn(self.force_terminate(session, REASON_TTL)),
        )

    async def _warn(self, session: Session) -> None:
        """AgentV1.WarnDisconnect: the call will be cut off when its last reservation ends."""
        if session.connection is None or session.connection.closed:
            return
        try:
            await session.connection.call(
                AGENT_WARN_DISCONNECT,
                {"EventStart": session.event.event},
                timeout=DISCONNECT_TIMEOUT_S,
            )
        except Exception as exc:  # a warning is best effort
            log.info("WarnDisconnect of %s failed: %s", session.cgrid, exc)

    async def disconnect(self, session: Session, reason: str) -> None:
        """Asks the owning agent to cut the call (AgentV1.DisconnectSession), then ends the
        session at what was used and writes its CDRs. When the connection that opened the
        session is gone (the agent restarted and keeps its sessions on disk), the agent's new
        connections are asked in turn: an agent that does not know the session refuses it."""
        owner = session.connection
        if owner is None:
            links: list[PeerLink] = []
        elif not owner.closed:
            links = [owner]
        else:
            links = self.successors(owner)
        request = {"EventStart": session.event.event, "Reason": reason}
        for link in links:
            try:
                await link.call(AGENT_DISCONNECT, request, timeout=DISCONNECT_TIMEOUT_S)
                break
            except Exception as exc:  # the agent may be gone: the session still ends
                log.warning("disconnect of %s via %s failed: %s", session.cgrid, link.peer, exc)
        await self.force_terminate(session, reason)

    async def force_terminate(self, session: Session, reason: str) -> None:
        """Ends a session the network did not terminate (TTL, cut-off, forced): usage is what
        was charged; then its CDRs are written (CGRateS's forceSTerminate)."""
        async with session.lock:
            if session.ended:
                return
            for run in session.runs:
                run.used = max(run.used, run.charged)
            stored = await self._settle(session)
            await self._end(session, store_costs=True, stored=stored)
        log.info("session %s ended: %s", session.cgrid, reason)
        for run in session.runs:
            fields = dict(run.event.fields)
            fields["Usage"] = run.used
            fields["RunID"] = run.run_id
            cdr_event = CGREvent(run.event.tenant, "", None, fields)
            try:
                await self._cdrs.process_event(cdr_event, chargers=False, attributes=False)
            except Exception as exc:
                log.error("CDR of ended session %s failed: %s", session.cgrid, exc)

    # ------------------------------------------------------------------------------ restore
    async def restore(self) -> int:
        """Reloads the sessions that were live when the engine stopped; their agents rebind
        them with their next request. Returns how many."""
        if self._backup is None:
            return 0
        now = self._clock()
        heads, chunks = await self._backup.load()
        for cgrid_key, doc in heads.items():
            try:
                session = session_from_doc(
                    cgrid_key, doc, self._run_event, self._timezone, now, chunks
                )
                if written_before_chunks(doc):
                    await self._backup.save(session, every_chunk=True)
            except (KeyError, TypeError, ValueError, InvalidValue, SessionError) as exc:
                log.error("session backup %s unreadable, left in storage: %s", cgrid_key, exc)
                continue
            self.sessions[cgrid_key] = session
            if session.debit_interval > 0 and self._has_prepaid(session):
                session.debit_task = asyncio.ensure_future(self._debit_loop(session))
            self._arm_ttl(session)
        if self.sessions:
            log.info("%d live sessions restored", len(self.sessions))
        return len(self.sessions)

    # ------------------------------------------------------------------------------ queries
    def find(
        self, tenant: str = "", predicate: Callable[[Session], bool] | None = None
    ) -> list[Session]:
        return [
            session
            for session in list(self.sessions.values())
            if (not tenant or session.event.tenant == tenant)
            and (predicate is None or predicate(session))
        ]

    async def sync(self) -> int:
        """Asks every agent connection which sessions it still has; ends the others."""
        by_connection: dict[PeerLink, list[Session]] = {}
        for session in list(self.sessions.values()):
            if session.connection is not None:
                by_connection.setdefault(session.connection, []).append(session)
        ended = 0
        for connection, sessions in by_connection.items():
            if connection.closed:
                # The agent cannot be asked over a dead connection; it rebinds its sessions
                # when it reconnects, and the TTL ends the ones it really lost.
                continue
            alive: set[str] | None = None
            if not connection.closed:
                try:
                    reply = await connection.call(
                        AGENT_ACTIVE_SESSION_IDS, "", timeout=DISCONNECT_TIMEOUT_S
                    )
                    alive = {
                        cgrid(str(item.get("OriginID", "")), str(item.get("OriginHost", "")))
                        for item in reply or []
                        if isinstance(item, dict)
                    }
                except Exception as exc:
                    log.warning("GetActiveSessionIDs failed: %s", exc)
                    continue
            for session in sessions:
                if alive is None or session.cgrid not in alive:
                    await self.force_terminate(session, REASON_NOT_ON_AGENT)
                    ended += 1
        return ended

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            if session.debit_task is not None:
                session.debit_task.cancel()
            if session.ttl_handle is not None:
                session.ttl_handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _record_usage(
    session: Session, total: int | None, last_used: int | None, *, reservation_for_all: bool
) -> None:
    """The usage each run confirms: ``total`` replaces it, ``last_used`` adds to it; with
    neither, what was reserved counts as used — for every run when the call ends, for *prepaid
    runs only on an update."""
    for run in session.runs:
        if total is not None:
            run.used = total
        elif last_used is not None:
            run.used += last_used
        elif reservation_for_all or run.request_type == PREPAID:
            run.used = max(run.used, run.charged)


def _unused_charges(run: Run, unused: int) -> list[Charge]:
    """The whole increments past the usage used (the last ``unused`` ns charged), newest
    debit first: what a refund gives back."""
    refunds: list[Charge] = []
    remaining = unused
    for debit in reversed(run.debits):
        if remaining <= 0:
            break
        part = min(remaining, debit.usage)
        refunds.extend(debit.unused_charges(part))
        remaining -= part
    return refunds


def _duration(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return parse_duration(value)
    except InvalidValue as exc:
        raise SessionError(f"SERVER_ERROR: invalid params: {exc}") from None
