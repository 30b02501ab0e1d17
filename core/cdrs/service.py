"""CDRs: one per charger run, charged exactly once, never lost.

Order of work for a run, chosen so that a crash or a retransmission can neither lose a CDR nor
charge twice: the CDR is first stored unrated (cost -1) — the store's unique (CGRID, RunID) key
refuses a duplicate before any money moves — then it is charged, then its cost is written. A
crash between leaves a visible unrated CDR, which ``rate_cdrs`` charges later.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

from core.accounts import AccountError, AccountService, DebitResult, charge_amounts
from core.charging import (
    ACCOUNT_CHARGED,
    NONE,
    PREPAID,
    RATED,
    ChargingError,
    RunEvent,
    cdr_event_fields,
    read_run_event,
)
from core.filters.event import CGREvent
from core.rating import Rater, RatingError
from core.storage import DataDB, DuplicateError, StorDB, Write
from core.storage.cdr import Cdr, CdrFilter
from core.types import ZERO, money_str, to_money

log = logging.getLogger("chargeflow.cdrs")

KIND_SESSION_COSTS: Final = "session_costs"
COST_SOURCE_CDRS: Final = "*cdrs"
COST_SOURCE_SESSIONS: Final = "*sessions"
ERR_EXISTS: Final = "EXISTS"

RunsOf = Callable[[CGREvent], Awaitable[list[CGREvent]]]
# AttributeS in the *cdrs context: the altered event, or the event unchanged when no profile
# matches (raises CdrError on a real AttributeS failure).
AttributesOf = Callable[[CGREvent], Awaitable[CGREvent]]
CONTEXT_CDRS: Final = "*cdrs"
Clock = Callable[[], datetime]


class CdrError(ChargingError):
    """A CDR could not be processed; the text is the CGRateS error string."""


def _session_cost_key(cgrid: str, run_id: str) -> str:
    return f"{cgrid}:{run_id}"


class SessionCosts:
    """What SessionS charged per (CGRID, RunID), kept until the CDR takes it (StoreSCosts).

    Written through to DataDB (it is money), read from memory: the CDR that follows a terminate
    finds it without waiting on the disk; after a restart the stored ones are read back."""

    def __init__(self, datadb: DataDB) -> None:
        self._datadb = datadb
        self._live: dict[str, dict[str, Any]] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self._forgotten: list[str] = []  # keys whose removal the next flush writes

    @staticmethod
    def _doc(cost: Decimal, usage: int, details: Any) -> dict[str, Any]:
        return {"Cost": money_str(cost), "Usage": usage, "CostDetails": details}

    def write(self, cgrid: str, run_id: str, cost: Decimal, usage: int, details: Any) -> Write:
        """The storage write for one run's cost, to apply with others in one commit."""
        key = _session_cost_key(cgrid, run_id)
        doc = self._doc(cost, usage, details)
        self._live[key] = doc
        return Write(KIND_SESSION_COSTS, key, doc)

    async def put(self, cgrid: str, run_id: str, cost: Decimal, usage: int, details: Any) -> None:
        await self.apply([self.write(cgrid, run_id, cost, usage, details)])

    async def apply(self, writes: list[Write]) -> None:
        """Commits session-cost writes together with other DataDB writes (session backup)."""
        await self._datadb.apply(writes)

    async def get(self, cgrid: str, run_id: str) -> tuple[Decimal, int, Any] | None:
        key = _session_cost_key(cgrid, run_id)
        doc = self._live.get(key)
        if doc is None:
            doc = await self._datadb.get(KIND_SESSION_COSTS, key)
            if doc is None:
                return None
        return to_money(doc["Cost"]), int(doc["Usage"]), doc.get("CostDetails")

    def _drop_live(self, cgrid: str, run_id: str) -> str:
        """Forgets the run's cost in memory; returns its storage key."""
        key = _session_cost_key(cgrid, run_id)
        self._live.pop(key, None)
        return key

    async def remove(self, cgrid: str, run_id: str) -> None:
        await self._datadb.remove(KIND_SESSION_COSTS, self._drop_live(cgrid, run_id))

    def forget_later(self, cgrid: str, run_id: str) -> None:
        """``remove`` in the background (tracked, so shutdown can wait for it). The removals
        asked for while the loop is busy are written together, as one write of one task, and
        that write joins the next commit instead of starting its own (``deferrable``)."""
        self._forgotten.append(self._drop_live(cgrid, run_id))
        if len(self._forgotten) == 1:
            task = asyncio.ensure_future(self._flush_forgotten())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _flush_forgotten(self) -> None:
        keys, self._forgotten = self._forgotten, []
        writes = [Write(KIND_SESSION_COSTS, key, None) for key in keys]
        await self._datadb.apply(writes, deferrable=True)

    async def drain(self) -> None:
        """Waits for background removals (at shutdown, before storage closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class CdrService:
    def __init__(
        self,
        stordb: StorDB,
        accounts: AccountService,
        rater: Callable[[], Rater],
        session_costs: SessionCosts,
        runs_of: RunsOf,
        *,
        attributes_of: AttributesOf | None = None,
        default_tenant: str,
        default_category: str,
        default_request_type: str,
        timezone: tzinfo = UTC,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._stordb = stordb
        self._accounts = accounts
        self._rater = rater
        self.session_costs = session_costs
        self._runs_of = runs_of
        self._attributes_of = attributes_of
        self._default_tenant = default_tenant
        self._default_category = default_category
        self._default_request_type = default_request_type
        self._timezone = timezone
        self._clock = clock

    def run_event(self, event: CGREvent, like: RunEvent | None = None) -> RunEvent:
        """Reads ``event``; ``like``: the reading of an event it was copied from (another run
        of the same CDR: only the fields that differ are read again)."""
        return read_run_event(
            event.tenant,
            event.event,
            default_category=self._default_category,
            default_request_type=self._default_request_type,
            timezone=self._timezone,
            like=like,
        )

    # ------------------------------------------------------------------------------ process
    async def process_event(
        self, event: CGREvent, *, chargers: bool = True, attributes: bool = True
    ) -> list[Cdr]:
        """Stores and charges one CDR per charger run (or the event itself, when it names its
        RunID or ``chargers`` is off), after AttributeS in the ``*cdrs`` context. Raises
        CdrError("EXISTS") when every run is a duplicate; a duplicate run is never charged."""
        if attributes and self._attributes_of is not None:
            event = await self._attributes_of(event)
        runs = await self._runs_of(event) if chargers else [event]
        stored: list[Cdr] = []
        duplicates = 0
        # Runs that move no money are stored together (one commit to wait for, not one per
        # run); a run charged to an account is stored, charged and updated on its own, in order.
        priced: list[Cdr] = []
        run_event: RunEvent | None = None
        for run in runs:
            run_event = self.run_event(run, run_event)
            cdr = run_event.to_cdr(run_event.usage or 0)
            if run_event.request_type == NONE or await self._price_without_charging(run_event, cdr):
                priced.append(cdr)
                continue
            duplicates += await self._store_priced(priced, stored)
            if await self._store_and_charge(run_event, cdr):
                stored.append(cdr)
            else:
                duplicates += 1
        duplicates += await self._store_priced(priced, stored)
        if duplicates and not stored:
            raise CdrError(ERR_EXISTS)
        return stored

    async def store_prerated(self, cdr: Cdr) -> Cdr:
        """A CDR that arrives with its cost (PreRated): stored as it is, never charged."""
        try:
            cdr.order_id = await self._stordb.store_cdr(cdr)
        except DuplicateError:
            raise CdrError(ERR_EXISTS) from None
        return cdr

    async def _store_priced(self, priced: list[Cdr], stored: list[Cdr]) -> int:
        """Stores the CDRs no money moves for (one write each: its unique key refuses a
        duplicate), appends them to ``stored`` and empties ``priced``; returns the duplicates."""
        if not priced:
            return 0
        order_ids = await self._stordb.store_cdrs(priced)
        duplicates = 0
        for cdr, order_id in zip(priced, order_ids, strict=True):
            if order_id is None:
                log.info("duplicate CDR refused: %s %s", cdr.cgrid, cdr.run_id)
                duplicates += 1
                continue
            cdr.order_id = order_id
            stored.append(cdr)
            if cdr.cost_source == COST_SOURCE_SESSIONS:
                # The CDR holds the cost now; a leftover session-cost doc (after a crash) is
                # harmless, since the CDR's key refuses a second charge. Off the reply path.
                self.session_costs.forget_later(cdr.cgrid, cdr.run_id)
        priced.clear()
        return duplicates

    async def _store_and_charge(self, run: RunEvent, cdr: Cdr) -> bool:
        """A run charged to an account; False when it is a duplicate (nothing charged)."""
        try:
            cdr.order_id = await self._stordb.store_cdr(cdr)  # unrated first: the dedup point
        except DuplicateError:
            log.info("duplicate CDR refused: %s %s", cdr.cgrid, cdr.run_id)
            return False
        await self._charge(run, cdr)
        return True

    async def _price_without_charging(self, run: RunEvent, cdr: Cdr) -> bool:
        """Fills in the cost of a run no account pays now: a *prepaid run its session already
        charged, or a *rated run. False when the run must be charged to an account."""
        if run.request_type == PREPAID:
            from_session = await self.session_costs.get(run.cgrid, run.run_id)
            if from_session is None:
                return False
            cdr.cost, used, cdr.cost_details = from_session
            cdr.cost_source = COST_SOURCE_SESSIONS
            if run.usage is None:  # the session's usage, as CGRateS's ProcessCDR after a
                cdr.usage = used  # terminate that reported only LastUsed
            return True
        if run.request_type in ACCOUNT_CHARGED:
            return False
        try:
            rated = self._rater().get_cost(run.cost_query(cdr.usage, self._clock()))
        except RatingError as exc:
            cdr.extra_info = str(exc)  # stored unrated, with the reason
            return True
        cdr.cost, cdr.cost_source = rated.cost, COST_SOURCE_CDRS
        cdr.cost_details = rated.to_event_cost(run.cgrid, run.run_id)
        return True

    async def _charge(self, run: RunEvent, cdr: Cdr) -> None:
        if run.request_type == NONE:
            return
        unrated = False
        try:
            cost, details, source = await self._cost(run, cdr.usage)
        except (RatingError, AccountError) as exc:
            cdr.extra_info = str(exc)
            unrated = True
        if unrated:
            # Stored outside the handler: compiled code must not suspend while handling an
            # exception (tests/unit/test_native.py says why).
            await self._stordb.store_cdr(cdr, allow_update=True)
            return
        cdr.cost, cdr.cost_details, cdr.cost_source = cost, details, source
        await self._stordb.store_cdr(cdr, allow_update=True)
        if source == COST_SOURCE_SESSIONS:
            # Off the reply path: the CDR holds the cost now, and a leftover session-cost doc
            # (after a crash) is harmless, since the CDR's key refuses a second charge.
            self.session_costs.forget_later(cdr.cgrid, cdr.run_id)

    async def _cost(self, run: RunEvent, usage: int) -> tuple[Decimal, Any, str]:
        """(cost, CostDetails, CostSource) of one run: from its session, or charged now."""
        now = self._clock()
        if run.request_type == PREPAID:
            from_session = await self.session_costs.get(run.cgrid, run.run_id)
            if from_session is not None:
                cost, _usage, details = from_session
                return cost, details, COST_SOURCE_SESSIONS
        rater = self._rater()
        if run.request_type == RATED or run.request_type not in ACCOUNT_CHARGED:
            rated = rater.get_cost(run.cost_query(usage, now))
            return rated.cost, rated.to_event_cost(run.cgrid, run.run_id), COST_SOURCE_CDRS
        # Charged from the account now: *postpaid, *pseudoprepaid, and a *prepaid CDR whose
        # session cost is not known (no session, or its terminate never came). The call
        # happened, so it is charged whole even past the credit (CGRateS's forced debit).
        rated = rater.get_cost(run.cost_query(usage, now))
        charged = await self._accounts.charge_call(
            run.debit_event(usage, now),
            rated.round,
            idempotency_key=f"cdr:{run.cgrid}:{run.run_id}",  # a re-rated CDR is charged once
        )
        details = rated.to_event_cost(run.cgrid, run.run_id)
        if not charged.repeated:  # a repeat (after a crash) knows its money, not its balances
            record_accounting(details, run, charged.amounts, f"cdr:{run.cgrid}:{run.run_id}")
        return rated.round(charged.cost), details, COST_SOURCE_CDRS

    # ------------------------------------------------------------------------------ queries
    async def get_cdrs(self, flt: CdrFilter) -> list[Cdr]:
        return await self._stordb.get_cdrs(flt)

    async def count_cdrs(self, flt: CdrFilter) -> int:
        return await self._stordb.count_cdrs(flt)

    async def rate_cdrs(self, flt: CdrFilter) -> int:
        """CDRsV1.RateCDRs: (re-)rates the CDRs the filter selects; returns how many have a
        new cost. An unrated CDR (cost -1: its charging failed or was interrupted, or it was
        stored before its plan existed) is charged as when it arrived. A rated one is rated
        again with the plan as it is now: a ``*rated`` run just gets the new cost; a run charged
        to an account gets back what its stored cost took (the balances recorded in its
        CostDetails' Accounting) and is debited the new cost, in one change of the account,
        then its new cost is written. A ``*prepaid`` CDR costed by its session (CostSource
        ``*sessions``) is re-rated the same way: SessionS records in its cost what the session
        took from each balance in the end (debits, minus refunds, plus the rounding). Left as
        they are: ``*none`` and pre-rated CDRs, a CDR that can no longer be rated (the reason is
        logged), and a charged CDR whose balances were not recorded (charged before they were,
        or a session that failed to settle): giving back a guess could charge twice."""
        done = 0
        for cdr in await self._stordb.get_cdrs(flt):
            run = self.run_event(
                CGREvent(cdr.tenant, "", None, {**cdr.extra_fields, **cdr_event_fields(cdr)})
            )
            if run.request_type == NONE or cdr.pre_rated:
                continue
            if not cdr.rated:
                await self._charge(run, cdr)
                done += cdr.rated
                continue
            done += await self._rerate(run, cdr)
        return done

    async def _rerate(self, run: RunEvent, cdr: Cdr) -> int:
        """Rates an already rated CDR again (see rate_cdrs); 1 if its cost was rewritten."""
        now = self._clock()
        charged_to_account = run.request_type in ACCOUNT_CHARGED
        taken = recorded_accounting(cdr.cost_details) if charged_to_account else {}
        if taken is None:
            log.warning(
                "CDR %s %s not re-rated: the balances its cost took were not recorded",
                cdr.cgrid,
                cdr.run_id,
            )
            return 0
        failure = ""
        try:
            rated = self._rater().get_cost(run.cost_query(cdr.usage, now))
            details = rated.to_event_cost(run.cgrid, run.run_id)
            cost = rated.cost
            if charged_to_account:
                key = _rerate_key(cdr)
                charged = await self._accounts.charge_call(
                    run.debit_event(cdr.usage, now),
                    rated.round,
                    idempotency_key=key,
                    give_back=taken,
                )
                cost = rated.round(charged.cost)
                if not charged.repeated:
                    record_accounting(details, run, charged.amounts, key)
        except (RatingError, AccountError) as exc:
            failure = str(exc)
        if failure:
            log.warning("CDR %s %s not re-rated: %s", cdr.cgrid, cdr.run_id, failure)
            return 0
        cdr.cost, cdr.cost_details, cdr.cost_source = cost, details, COST_SOURCE_CDRS
        cdr.extra_info = ""
        await self._stordb.store_cdr(cdr, allow_update=True)
        return 1


ACCOUNTING_ID_LENGTH: Final = 7


def record_accounting(
    details: dict[str, Any], run: RunEvent, amounts: dict[str, Decimal], charge_key: str
) -> None:
    """Records in an EventCost what each balance gave (CGRateS's Accounting: BalanceCharge
    entries, Units in the balance's own unit, money for *monetary ones) and whose account it
    is (AccountSummary), so a re-rating can give exactly that back. The entry ids derive from
    ``charge_key``: each charge of the CDR has its own."""
    account_id = f"{run.tenant}:{run.account}"
    details["AccountSummary"] = {"Tenant": run.tenant, "ID": run.account}
    details["Accounting"] = {
        hashlib.sha1(f"{charge_key}:{uuid}".encode()).hexdigest()[:ACCOUNTING_ID_LENGTH]: {
            "AccountID": account_id,
            "BalanceUUID": uuid,
            "RatingID": "",
            "Units": amount,
            "ExtraChargeID": "",
        }
        for uuid, amount in amounts.items()
        if amount != ZERO
    }


def recorded_accounting(details: Any) -> dict[str, Decimal] | None:
    """What ``record_accounting`` recorded (balance uuid -> amount), or None when the
    EventCost does not say which balances its cost took."""
    if not isinstance(details, dict) or not details.get("AccountSummary"):
        return None
    taken: dict[str, Decimal] = {}
    for entry in (details.get("Accounting") or {}).values():
        uuid = str(entry.get("BalanceUUID") or "")
        if uuid:
            # Stored JSON gives floats back: their shortest text is the amount written.
            taken[uuid] = taken.get(uuid, ZERO) + to_money(entry.get("Units") or 0)
    return taken


def _rerate_key(cdr: Cdr) -> str:
    """The idempotency key of one re-rating of ``cdr``: the same as long as the CDR holds the
    same charge, so a re-rating whose CDR write was lost (a crash) gives nothing back twice."""
    details = cdr.cost_details if isinstance(cdr.cost_details, dict) else {}
    charge_ids = sorted(details.get("Accounting") or {})  # they derive from the last charge's key
    digest = hashlib.sha1(",".join([*charge_ids, str(cdr.cost)]).encode())
    return f"rerate:{cdr.cgrid}:{cdr.run_id}:{digest.hexdigest()[:12]}"


async def round_charged(
    accounts: AccountService,
    run: RunEvent,
    money: Decimal,
    rounder: Callable[[Decimal], Decimal],
    debit: Any = None,
    *,
    also: Callable[[Decimal, str], Iterable[Write]] | None = None,
) -> tuple[Decimal, str]:
    """Rounds the money a call took as its rating rounds the total (``*up`` to 4 decimals in
    the tutorial), taking or giving back the difference on the balance that paid last, as
    CGRateS's rounding increment does. Returns the rounded amount and the uuid of the balance
    the difference went to ("" when none was needed). ``also``: DataDB writes made from the
    rounded amount and that uuid that commit with the correction (none is made when no
    correction is needed: the caller writes them itself then)."""
    rounded = rounder(money)
    correction = rounded - money
    if correction == ZERO:
        return rounded, ""
    payer = "" if debit is None else debit.last_payer
    with_rounded = None if also is None else (lambda uuid: also(rounded, uuid))
    charged = await accounts.charge_money(
        run.tenant, run.account, correction, payer, also=with_rounded
    )
    return rounded, charged


def balances_taken(debits: Iterable[DebitResult]) -> dict[str, Decimal]:
    """balance uuid -> what ``debits`` took from it (units, or money for monetary ones)."""
    return charge_amounts(charge for debit in debits for charge in debit.charges)


def add_amounts(
    into: dict[str, Decimal], amounts: dict[str, Decimal], sign: int = 1
) -> dict[str, Decimal]:
    """Adds (``sign`` -1: subtracts) per-balance ``amounts`` to ``into``; returns ``into``."""
    for uuid, amount in amounts.items():
        into[uuid] = into.get(uuid, ZERO) + amount * sign
    return into
