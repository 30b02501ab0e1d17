"""ActionService: action groups, action plans (scheduled) and action triggers on accounts.

A PlanListener of the tariff-plan loader: it serves the live Actions/ActionPlans/ActionTriggers
and applies AccountActions rows that are new or changed in a load (creates the account, attaches
its plan and triggers, runs the plan's ``*asap`` actions once, at attach time). Scheduled plans
run from one asyncio task that sleeps until the next due item; ``run_due(now)`` is the same step
driven by an explicit clock (tests, or an external ticker).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp

from core.accounts import Account, AccountService, AccountTrigger, init_counters
from core.storage import DataDB, Write
from core.tariffplan.kinds import (
    KIND_ACCOUNT_ACTIONS,
    KIND_ACTION_PLANS,
    KIND_ACTION_TRIGGERS,
    KIND_ACTIONS,
)
from core.tariffplan.loader import Commit
from core.tariffplan.models import (
    META_ASAP,
    AccountAction,
    Action,
    ActionGroup,
    ActionPlan,
    ActionTiming,
    ActionTriggerGroup,
    TariffPlan,
    Timing,
)
from core.types import InvalidValue, dumps, format_time, money_str, parse_time

from . import executor as ex

log = logging.getLogger("chargeflow.actions")

CdrSink = Callable[[dict[str, Any]], Awaitable[None]]
Clock = Callable[[], datetime]

EVERY_MINUTE: Final = "*every_minute"
HOURLY: Final = "*hourly"
DAILY: Final = "*daily"
WEEKLY: Final = "*weekly"
MONTHLY: Final = "*monthly"
MONTHLY_ESTIMATED: Final = "*monthly_estimated"
MONTH_END: Final = "*month_end"
LAST_MONTH_DAY: Final = -1  # a Timings MonthDays value: the month's last day (*month_end)
YEARLY: Final = "*yearly"
HTTP_ATTEMPTS: Final = 3  # *http_post tries, doubling the pause after each failure
HTTP_FIRST_BACKOFF: Final = 0.5  # seconds
HTTP_TIMEOUT: Final = 10.0  # seconds per attempt
SEARCH_DAYS: Final = 366 * 5  # an explicit timing never matching within this is never due
SEARCH_MONTHS: Final = 12 * 9  # a *yearly Feb 29 waits up to 8 years (2096 -> 2104)
IDLE_SLEEP: Final = 3600.0  # seconds the scheduler waits with nothing scheduled
# DataDB kind: "tenant:account:plan" -> {"Anchor": RFC 3339}, the attach time each periodic
# timing of that plan repeats from (CGRateS stores the timing resolved at load with the plan).
KIND_PLAN_ANCHORS: Final = "action_plan_anchors"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def next_run(
    timing_id: str, timing: Timing | None, after: datetime, anchor: datetime
) -> datetime | None:
    """The first run strictly after ``after``; None = never again.

    The built-in periodic timings are resolved from ``anchor`` (the attach time, to the second)
    as CGRateS's TpReader fills them at load time and its cron schedule reads them:
    ``*every_minute`` at the anchor's second, ``*hourly`` at its minute:second, ``*daily`` at its
    time of day, ``*weekly`` on its weekday, ``*monthly`` on its day of the month (months without
    that day are skipped), ``*monthly_estimated`` on that day or the month's last one,
    ``*month_end`` on each month's last day (the current month's included), ``*yearly`` on its
    month and day. Times of day are read in ``after``'s zone (the engine's clock gives
    ``general.default_timezone``; CGRateS: the server's)."""
    if timing_id == META_ASAP:
        return None
    base = anchor.astimezone(after.tzinfo) if after.tzinfo is not None else anchor
    base = base.replace(microsecond=0)
    if timing_id == EVERY_MINUTE:
        return _first_after(after.replace(second=base.second, microsecond=0), after, _MINUTE)
    if timing_id == HOURLY:
        start = after.replace(minute=base.minute, second=base.second, microsecond=0)
        return _first_after(start, after, _HOUR)
    at_time = after.replace(hour=base.hour, minute=base.minute, second=base.second, microsecond=0)
    if timing_id == DAILY:
        return _first_after(at_time, after, _DAY)
    if timing_id == WEEKLY:
        start = at_time + _DAY * ((base.weekday() - at_time.weekday()) % 7)
        return _first_after(start, after, _DAY * 7)
    if timing_id in (MONTHLY, MONTHLY_ESTIMATED, MONTH_END, YEARLY):
        year, month = after.year, after.month
        for _ in range(SEARCH_MONTHS):
            last = calendar.monthrange(year, month)[1]
            day = _month_day(timing_id, base, month, last)
            if day is not None:
                candidate = at_time.replace(year=year, month=month, day=day)
                if candidate > after:
                    return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return None
    if timing is None:
        return None
    return _next_explicit(timing, after)


_MINUTE: Final = timedelta(minutes=1)
_HOUR: Final = timedelta(hours=1)
_DAY: Final = timedelta(days=1)


def _first_after(start: datetime, after: datetime, step: timedelta) -> datetime:
    """``start`` moved on by whole ``step``s until it is strictly after ``after``."""
    if start <= after:
        start += step * ((after - start) // step + 1)
    return start


def _month_day(timing_id: str, base: datetime, month: int, last: int) -> int | None:
    """The day a monthly-like timing runs in a month of ``last`` days; None = not this month."""
    if timing_id == MONTH_END:
        return last
    if timing_id == MONTHLY_ESTIMATED:
        return min(base.day, last)
    if timing_id == YEARLY and month != base.month:
        return None
    return base.day if base.day <= last else None  # *monthly/*yearly: cron skips such months


def _next_explicit(timing: Timing, after: datetime) -> datetime | None:
    """A Timings.csv/SetActionPlan timing: the first matching day at its start time (CGRateS
    normalises Years without Months to January, Months without MonthDays to the 1st)."""
    try:
        hour, minute, second = (int(p) for p in (timing.start_time or "00:00:00").split(":"))
    except ValueError:
        log.warning("timing %s: start time %r not schedulable", timing.id, timing.start_time)
        return None
    months = timing.months or (frozenset({1}) if timing.years else frozenset())
    month_days = timing.month_days or (frozenset({1}) if months else frozenset())
    day = after.replace(hour=hour, minute=minute, second=second, microsecond=0)
    for _ in range(SEARCH_DAYS):
        if day > after and _day_matches(timing, months, month_days, day):
            return day
        day += _DAY
    return None


def _day_matches(
    timing: Timing, months: frozenset[int], month_days: frozenset[int], day: datetime
) -> bool:
    if timing.years and day.year not in timing.years:
        return False
    if months and day.month not in months:
        return False
    if month_days and day.day not in month_days:
        last = calendar.monthrange(day.year, day.month)[1]
        if not (LAST_MONTH_DAY in month_days and day.day == last):
            return False
    # CGRateS/Go weekdays: 0 = Sunday (7 too); Python's weekday(): 0 = Monday.
    return not timing.week_days or (day.weekday() + 1) % 7 in {d % 7 for d in timing.week_days}


def _anchor_of(doc: Any) -> datetime | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("Anchor"), str):
        return None
    try:
        return parse_time(doc["Anchor"])
    except InvalidValue:
        return None


@dataclass(order=True)
class _Job:
    due: datetime
    weight_order: Any = field(compare=True)  # -weight: heavier first at the same instant
    account_key: str = field(compare=False, default="")
    plan_id: str = field(compare=False, default="")
    timing: ActionTiming | None = field(compare=False, default=None)
    anchor: datetime = field(compare=False, default_factory=_utc_now)


class ActionService:
    def __init__(
        self,
        accounts: AccountService,
        *,
        datadb: DataDB | None = None,
        cdr_sink: CdrSink | None = None,
        clock: Clock = _utc_now,
        http_attempts: int = HTTP_ATTEMPTS,
        http_backoff: float = HTTP_FIRST_BACKOFF,
    ) -> None:
        self.accounts = accounts
        self.datadb = datadb  # where restore_schedule reads the plans' anchors
        self.cdr_sink = cdr_sink
        self.clock = clock
        self.http_attempts = http_attempts
        self.http_backoff = http_backoff
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # *http_post backoff
        self.actions: dict[str, ActionGroup] = {}
        self.plans: dict[str, ActionPlan] = {}
        self.trigger_groups: dict[str, ActionTriggerGroup] = {}
        self.account_actions: dict[str, AccountAction] = {}
        self.timings: dict[str, Timing] = {}
        self._jobs: list[_Job] = []
        self._pending: set[asyncio.Task[None]] = set()  # load applications, http posts
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        accounts.trigger_executor = self._run_trigger

    # --------------------------------------------------------------------------- plan listener
    def prepare(self, plan: TariffPlan) -> Commit:
        actions: dict[str, ActionGroup] = dict(plan.others.get(KIND_ACTIONS, {}))
        plans: dict[str, ActionPlan] = dict(plan.others.get(KIND_ACTION_PLANS, {}))
        triggers: dict[str, ActionTriggerGroup] = dict(plan.others.get(KIND_ACTION_TRIGGERS, {}))
        rows: dict[str, AccountAction] = dict(plan.others.get(KIND_ACCOUNT_ACTIONS, {}))
        timings = dict(plan.timings)

        def commit() -> None:
            changed = [row for key, row in rows.items() if self.account_actions.get(key) != row]
            self.actions, self.plans, self.trigger_groups = actions, plans, triggers
            self.account_actions, self.timings = rows, timings
            if changed:
                self._track(self._apply_account_actions(changed))

        return commit

    def _track(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Waits for the background work started so far (account actions, http posts)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _apply_account_actions(self, rows: list[AccountAction]) -> None:
        for row in rows:
            try:
                await self.set_account(
                    row.tenant,
                    row.account,
                    plan_ids=[row.action_plan_id] if row.action_plan_id else [],
                    trigger_ids=[row.action_triggers_id] if row.action_triggers_id else [],
                    allow_negative=row.allow_negative,
                    disabled=row.disabled,
                    keep_attached_triggers=True,
                )
            except Exception:
                log.exception("account actions for %s:%s", row.tenant, row.account)

    # --------------------------------------------------------------------------------- accounts
    async def set_account(
        self,
        tenant: str,
        account_id: str,
        *,
        plan_ids: list[str] = [],  # noqa: B006 - never mutated
        plans_overwrite: bool = False,
        trigger_ids: list[str] = [],  # noqa: B006 - never mutated
        triggers_overwrite: bool = False,
        allow_negative: bool | None = None,
        disabled: bool | None = None,
        keep_attached_triggers: bool = False,
    ) -> Account:
        """Creates/updates an account, attaching plans (their *asap actions run now) and
        trigger groups (their triggers replace the same group's)."""
        unknown = [p for p in plan_ids if p not in self.plans]
        unknown += [t for t in trigger_ids if t not in self.trigger_groups]
        if unknown:
            raise KeyError(unknown[0])
        now = self.clock()
        attached: list[str] = []
        detached: list[str] = []

        async def change(account: Account) -> Account:
            if allow_negative is not None:
                account.allow_negative = allow_negative
            if disabled is not None:
                account.disabled = disabled
            if plans_overwrite:
                detached.extend(account.action_plan_ids)
                account.action_plan_ids = []
            for plan_id in plan_ids:
                if plan_id not in account.action_plan_ids:
                    account.action_plan_ids.append(plan_id)
                    attached.append(plan_id)
            if triggers_overwrite:
                account.triggers = []
            for group_id in trigger_ids:
                if keep_attached_triggers and any(t.id == group_id for t in account.triggers):
                    continue  # a reload/restart keeps their Executed state
                self._attach_triggers(account, group_id, now)
            for plan_id in attached:
                for timing in self._timings_of(plan_id):
                    if timing.timing_id == META_ASAP:
                        await self.run_actions(account, timing.actions_id)
            return account.clone()

        def anchors(account: Account) -> list[Write]:
            """The attached plans' anchors commit with the account; detached ones go."""
            writes = [
                Write(KIND_PLAN_ANCHORS, f"{account.key}:{plan_id}", None)
                for plan_id in detached
                if plan_id not in attached
            ]
            doc = {"Anchor": format_time(now)}
            writes += [Write(KIND_PLAN_ANCHORS, f"{account.key}:{p}", doc) for p in attached]
            return writes

        account = await self.accounts.update(tenant, account_id, change, create=True, also=anchors)
        key = account.key
        if plans_overwrite:
            self._jobs = [j for j in self._jobs if j.account_key != key]
        for plan_id in attached:
            self._schedule_plan(key, plan_id, now)
        return account

    def _attach_triggers(self, account: Account, group_id: str, now: datetime) -> None:
        group = self.trigger_groups[group_id]
        account.triggers = [t for t in account.triggers if t.id != group_id]
        account.triggers.extend(
            ex.account_trigger(group_id, index, row, now)
            for index, row in enumerate(group.triggers)
        )
        init_counters(account)

    def attach_triggers(self, account: Account, group_id: str) -> None:
        """Public form for the APIs (caller holds the account's lock)."""
        self._attach_triggers(account, group_id, self.clock())

    async def execute(self, tenant: str, account_id: str, actions_id: str) -> None:
        """APIerSv1.ExecuteAction: runs an action group on an account (created if missing, as
        CGRateS does for topups)."""
        if actions_id not in self.actions:
            raise KeyError(actions_id)
        await self._run_group(tenant, account_id, actions_id, create=True)

    async def _run_group(self, tenant: str, account_id: str, actions_id: str, create: bool) -> None:
        """Runs a group on an account under its lock. A *transfer_balance to other accounts
        locks them too (in key order) and writes them with it, in one transaction."""
        others = self._transfer_accounts(tenant, account_id, actions_id)
        if not others:

            async def change(account: Account) -> None:
                await self.run_actions(account, actions_id)

            await self.accounts.update(tenant, account_id, change, create=create)
            return

        async def change_all(accounts: list[Account]) -> None:
            source, *rest = accounts
            await self.run_actions(source, actions_id, others={a.key: a for a in rest})

        keys = [(tenant, account_id)]
        keys += [(key.partition(":")[0], key.partition(":")[2]) for key in others]
        await self.accounts.update_many(keys, change_all, create=create)

    # ---------------------------------------------------------------------------------- running
    def _transfer_accounts(self, tenant: str, account_id: str, actions_id: str) -> list[str]:
        """The other accounts the group's *transfer_balance actions move units to."""
        group = self.actions.get(actions_id)
        probe = Account(tenant, account_id)
        found: list[str] = []
        for action in group.actions if group else ():
            if action.action_type != ex.TRANSFER_BALANCE:
                continue
            key = ex.transfer_destination(probe, action)
            if key != probe.key and key not in found:
                found.append(key)
        return found

    async def run_actions(
        self, account: Account, actions_id: str, *, others: Mapping[str, Account] | None = None
    ) -> None:
        """Runs a group on an account whose lock the caller holds (heavier actions first).
        ``others``: the locked accounts a *transfer_balance may credit."""
        group = self.actions.get(actions_id)
        if group is None:
            log.warning("actions %s not found", actions_id)
            return
        now = self.clock()
        for action in sorted(group.actions, key=lambda a: -a.weight):
            await self._run_one(account, action, now, others or {})
            if account.removed:
                return

    async def _run_one(
        self, account: Account, action: Action, now: datetime, others: Mapping[str, Account]
    ) -> None:
        kind = action.action_type
        if action.filters:
            raise InvalidValue(f"{kind}: action Filter is not supported")
        if kind in (ex.TOPUP, ex.TOPUP_RESET, ex.DEBIT, ex.DEBIT_RESET):
            ex.change_balance(account, action, now)
        elif kind == ex.RESET_ACCOUNT:
            ex.reset_account(account)
        elif kind == ex.RESET_TRIGGERS:
            ex.reset_triggers(account, action)
        elif kind == ex.TRANSFER_BALANCE:
            key = ex.transfer_destination(account, action)
            destination = None if key == account.key else others.get(key)
            if key != account.key and destination is None:
                raise InvalidValue(
                    f"*transfer_balance to {key}: across accounts only from ExecuteAction and "
                    "scheduled plans (not from triggers or *asap at attach time)"
                )
            ex.transfer_balance(account, action, now, destination)
        elif kind == ex.DISABLE_ACCOUNT:
            account.disabled = True
        elif kind == ex.ENABLE_ACCOUNT:
            account.disabled = False
        elif kind == ex.ALLOW_NEGATIVE:
            account.allow_negative = True
        elif kind == ex.DENY_NEGATIVE:
            account.allow_negative = False
        elif kind == ex.REMOVE_ACCOUNT:
            account.removed = True
        elif kind == ex.LOG:
            log.info("*log %s", dumps(account.to_wire()).decode())
        elif kind == ex.CDRLOG:
            await self._cdrlog(account, action, now)
        elif kind == ex.HTTP_POST:
            body = dumps({"Account": account.to_wire(), "ActionType": kind}).decode()
            self._track(self._http_post(action.extra_parameters, body))
        else:
            log.warning("action %s not supported", kind)

    async def _cdrlog(self, account: Account, action: Action, now: datetime) -> None:
        if self.cdr_sink is None:
            return
        cdr = {
            "Tenant": account.tenant,
            "Account": account.id,
            "Subject": account.id,
            "ToR": action.balance_type or "*monetary",
            "RequestType": "*none",
            "Source": "*cdrlog",
            "OriginHost": "127.0.0.1",
            "RunID": action.action_type,
            "SetupTime": format_time(now),
            "AnswerTime": format_time(now),
            "Usage": 0,
            "Cost": money_str(ex.action_units(action)),
            "ExtraFields": {"BalanceID": action.balance_id},
        }
        await self.cdr_sink(cdr)

    async def _http_post(self, url: str, body: str) -> None:
        """Posts with bounded retries and doubling backoff; failures are logged, never raised."""
        pause = self.http_backoff
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
        for attempt in range(1, self.http_attempts + 1):
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as reply,
                ):
                    if reply.status < 300:
                        return
                    problem = f"HTTP {reply.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            log.warning("*http_post %s attempt %d: %s", url, attempt, problem)
            if attempt < self.http_attempts:
                await self.sleep(pause)
                pause *= 2

    async def _run_trigger(self, account: Account, trigger: AccountTrigger) -> None:
        await self.run_actions(account, trigger.actions_id)

    # -------------------------------------------------------------------------------- scheduler
    def _timings_of(self, plan_id: str) -> list[ActionTiming]:
        plan = self.plans.get(plan_id)
        return sorted(plan.timings, key=lambda t: -t.weight) if plan else []

    def _schedule_plan(
        self, account_key: str, plan_id: str, anchor: datetime, *, after: datetime | None = None
    ) -> None:
        """Queues the plan's timed runs: the first ones after ``after`` (default: the anchor)."""
        start = anchor if after is None else after
        for timing in self._timings_of(plan_id):
            due = next_run(timing.timing_id, self.timings.get(timing.timing_id), start, anchor)
            if due is not None:
                self._jobs.append(_Job(due, -timing.weight, account_key, plan_id, timing, anchor))
        self._jobs.sort()
        self._wakeup.set()

    async def restore_schedule(self) -> None:
        """Schedules the plans attached to stored accounts (at start-up), each from its stored
        anchor, so a restart keeps the schedule. As CGRateS's scheduler (which computes each
        next start from the time it loads its queue), runs that fell due while the engine was
        down are not caught up: the next run is the first one after now. A plan without a
        stored anchor (attached before anchors were kept) is anchored now, and stored."""
        now = self.clock()
        self._jobs = []
        stored: dict[str, Any] = {}
        if self.datadb is not None:
            stored = await self.datadb.get_many(
                KIND_PLAN_ANCHORS, await self.datadb.keys(KIND_PLAN_ANCHORS)
            )
        used: set[str] = set()
        for tenant_key in await self.accounts.all_keys():
            tenant, _, account_id = tenant_key.partition(":")
            account = await self.accounts.get(tenant, account_id)
            if account is None:
                continue
            for plan_id in account.action_plan_ids:
                key = f"{account.key}:{plan_id}"
                used.add(key)
                anchor = _anchor_of(stored.get(key))
                if anchor is None:
                    anchor = now
                    if self.datadb is not None:
                        await self.datadb.set(KIND_PLAN_ANCHORS, key, {"Anchor": format_time(now)})
                self._schedule_plan(account.key, plan_id, anchor, after=now)
        if self.datadb is not None:
            stale = [Write(KIND_PLAN_ANCHORS, key, None) for key in stored if key not in used]
            if stale:  # plans detached, accounts removed
                await self.datadb.apply(stale)

    def next_due(self) -> datetime | None:
        return self._jobs[0].due if self._jobs else None

    async def run_due(self, now: datetime | None = None) -> int:
        """Runs every job due at ``now`` (default: the clock), reschedules it; returns how many."""
        moment = now or self.clock()
        ran = 0
        while self._jobs and self._jobs[0].due <= moment:
            job = self._jobs.pop(0)
            timing = job.timing
            assert timing is not None
            tenant, _, account_id = job.account_key.partition(":")
            account = await self.accounts.get(tenant, account_id)
            if account is not None and job.plan_id in account.action_plan_ids:
                await self._run_job(tenant, account_id, timing.actions_id)
                ran += 1
                # From now when late, as CGRateS: missed runs are not caught up.
                due = next_run(
                    timing.timing_id,
                    self.timings.get(timing.timing_id),
                    max(job.due, moment),
                    job.anchor,
                )
                if due is not None:
                    job.due = due
                    self._jobs.append(job)
                    self._jobs.sort()
        return ran

    async def _run_job(self, tenant: str, account_id: str, actions_id: str) -> None:
        try:
            await self._run_group(tenant, account_id, actions_id, create=False)
        except Exception:  # one account's failure must not stop the scheduler
            log.exception("scheduled %s on %s:%s", actions_id, tenant, account_id)

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            due = self.next_due()
            delay = IDLE_SLEEP if due is None else (due - self.clock()).total_seconds()
            if delay > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
                continue
            await self.run_due()

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        await self.settle()

    def plan_accounts(self) -> Mapping[str, list[str]]:
        """plan id -> attached account keys (from the schedule)."""
        result: dict[str, list[str]] = {}
        for job in self._jobs:
            keys = result.setdefault(job.plan_id, [])
            if job.account_key not in keys:
                keys.append(job.account_key)
        return result
