"""The action-plan scheduler: CGRateS timings, anchors kept across a restart, the live loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.accounts import MONETARY, AccountService
from core.actions import ActionService, next_run
from core.actions.service import KIND_PLAN_ANCHORS
from core.config import load_config
from core.engine import Engine
from core.rating import Rater
from core.storage import DataDB
from core.tariffplan.models import Action, ActionGroup, ActionPlan, ActionTiming, Timing

from .conftest import FakeClock, T, money


def at(month: int, day: int, hour: int = 10, minute: int = 20, second: int = 30) -> datetime:
    return datetime(2024, month, day, hour, minute, second, tzinfo=UTC)


ATTACHED = at(1, 15).replace(microsecond=500_000)  # a Monday


@pytest.mark.parametrize(
    ("timing_id", "expected"),
    [
        ("*asap", None),
        ("*every_minute", at(1, 15, 10, 21, 30)),  # at the attach second
        ("*hourly", at(1, 15, 11, 20, 30)),  # at the attach minute:second
        ("*daily", at(1, 16)),
        ("*weekly", at(1, 22)),
        ("*monthly", at(2, 15)),
        ("*monthly_estimated", at(2, 15)),
        ("*month_end", at(1, 31)),  # the current month's end first
        ("*yearly", datetime(2025, 1, 15, 10, 20, 30, tzinfo=UTC)),
    ],
)
def test_next_run_from_the_attach_time(timing_id: str, expected: datetime | None) -> None:
    assert next_run(timing_id, None, ATTACHED, ATTACHED) == expected


def test_next_run_keeps_the_grid_of_the_anchor() -> None:
    later = at(3, 7, 18, 0, 0)  # a Thursday
    assert next_run("*every_minute", None, later, ATTACHED) == at(3, 7, 18, 0, 30)
    assert next_run("*hourly", None, later, ATTACHED) == at(3, 7, 18, 20, 30)
    assert next_run("*daily", None, later, ATTACHED) == at(3, 8)
    assert next_run("*weekly", None, later, ATTACHED) == at(3, 11)  # Mondays
    assert next_run("*monthly", None, later, ATTACHED) == at(3, 15)
    assert next_run("*month_end", None, later, ATTACHED) == at(3, 31)
    assert next_run("*month_end", None, at(3, 31), ATTACHED) == at(4, 30)


def test_monthly_from_the_31st_skips_short_months_estimated_clamps() -> None:
    jan31 = at(1, 31)
    # *monthly is MonthDays{31} in CGRateS's cron: February and April have none.
    assert next_run("*monthly", None, jan31, jan31) == at(3, 31)
    assert next_run("*monthly", None, at(3, 31), jan31) == at(5, 31)
    # *monthly_estimated falls back to the month's last day.
    assert next_run("*monthly_estimated", None, jan31, jan31) == at(2, 29)
    assert next_run("*monthly_estimated", None, at(2, 29), jan31) == at(3, 31)
    assert next_run("*monthly_estimated", None, at(3, 31), jan31) == at(4, 30)
    leap = at(2, 29)
    assert next_run("*yearly", None, leap, leap) == datetime(2028, 2, 29, 10, 20, 30, tzinfo=UTC)


def test_next_run_of_explicit_timings() -> None:
    last_day = Timing("LAST", month_days=frozenset({-1}), start_time="23:00:00")
    assert next_run("LAST", last_day, ATTACHED, ATTACHED) == at(1, 31, 23, 0, 0)
    sundays = Timing("SUN", week_days=frozenset({0}), start_time="08:00:00")
    assert next_run("SUN", sundays, ATTACHED, ATTACHED) == at(1, 21, 8, 0, 0)
    # CGRateS normalises Years without Months to January 1st.
    year = Timing("Y", years=frozenset({2025}), start_time="00:00:00")
    assert next_run("Y", year, ATTACHED, ATTACHED) == datetime(2025, 1, 1, tzinfo=UTC)
    never = Timing("OLD", years=frozenset({2020}))
    assert next_run("OLD", never, ATTACHED, ATTACHED) is None
    assert next_run("MISSING", None, ATTACHED, ATTACHED) is None


def _fee_plans(service: ActionService) -> None:
    service.actions = {
        "FEE": ActionGroup(
            "FEE", (Action("*debit", balance_id="m", balance_type=MONETARY, units="1"),)
        ),
        "BIG_FEE": ActionGroup(
            "BIG_FEE", (Action("*debit", balance_id="m", balance_type=MONETARY, units="100"),)
        ),
    }
    service.plans = {
        "AP_DAILY": ActionPlan("AP_DAILY", (ActionTiming("FEE", "*daily", Decimal(10)),)),
        "AP_END": ActionPlan("AP_END", (ActionTiming("BIG_FEE", "*month_end", Decimal(10)),)),
    }


async def test_a_restart_keeps_the_schedule_and_skips_missed_runs(
    service: ActionService,
    accounts: AccountService,
    datadb: DataDB,
    clock: FakeClock,
    rater: Rater,
) -> None:
    clock.now = at(1, 15, 10, 0, 0)
    _fee_plans(service)
    await service.set_account(T, "1001", plan_ids=["AP_DAILY", "AP_END"])
    anchor = await datadb.get(KIND_PLAN_ANCHORS, f"{T}:1001:AP_DAILY")
    assert anchor == {"Anchor": "2024-01-15T10:00:00Z"}
    assert service.next_due() == at(1, 16, 10, 0, 0)
    clock.now = at(1, 16, 10, 0, 0)
    assert await service.run_due() == 1
    assert await money(accounts) == -1
    await service.close()

    # Down from Jan 16 10:00 to Jan 17 12:00: the Jan 17 10:00 run is missed.
    clock.now = at(1, 17, 12, 0, 0)
    fresh = AccountService(datadb, lambda: rater, clock=clock)
    restarted = ActionService(fresh, datadb=datadb, clock=clock)
    _fee_plans(restarted)
    await restarted.restore_schedule()
    # CGRateS does not catch up: the next run is the first after now, on the attach grid.
    assert restarted.next_due() == at(1, 18, 10, 0, 0)
    assert await restarted.run_due() == 0
    assert await money(fresh) == -1
    assert sorted(restarted.plan_accounts()) == ["AP_DAILY", "AP_END"]
    clock.now = at(1, 31, 10, 0, 0)
    assert await restarted.run_due() == 2  # Jan 31: *month_end and one *daily (missed ones not)
    assert await money(fresh) == -102
    assert restarted.next_due() == at(2, 1, 10, 0, 0)
    await restarted.close()


async def test_restore_anchors_legacy_plans_and_drops_stale_anchors(
    service: ActionService, accounts: AccountService, datadb: DataDB, clock: FakeClock
) -> None:
    _fee_plans(service)
    clock.now = at(1, 15, 10, 0, 0)
    await service.set_account(T, "1001", plan_ids=["AP_DAILY"])
    await service.set_account(T, "1002", plan_ids=["AP_DAILY"])
    # 1002 swaps its plan: the old plan's anchor goes with it, in the account's write.
    clock.now = at(1, 15, 11, 0, 0)
    await service.set_account(T, "1002", plan_ids=["AP_END"], plans_overwrite=True)
    assert await datadb.keys(KIND_PLAN_ANCHORS) == [f"{T}:1001:AP_DAILY", f"{T}:1002:AP_END"]
    # An anchor lost (a plan attached before anchors were kept) and one left by a removed account.
    await datadb.remove(KIND_PLAN_ANCHORS, f"{T}:1001:AP_DAILY")
    await datadb.set(KIND_PLAN_ANCHORS, f"{T}:gone:AP_DAILY", {"Anchor": "2024-01-01T00:00:00Z"})
    clock.now = at(1, 20, 9, 30, 0)
    await service.restore_schedule()
    assert await datadb.get(KIND_PLAN_ANCHORS, f"{T}:1001:AP_DAILY") == {
        "Anchor": "2024-01-20T09:30:00Z"
    }
    assert await datadb.keys(KIND_PLAN_ANCHORS) == [f"{T}:1001:AP_DAILY", f"{T}:1002:AP_END"]
    assert service.next_due() == at(1, 21, 9, 30, 0)
    assert [(j.plan_id, j.due) for j in service._jobs] == [
        ("AP_DAILY", at(1, 21, 9, 30, 0)),
        ("AP_END", at(1, 31, 11, 0, 0)),
    ]


class RunningClock:
    """Real time from ``start`` on: the loop's sleeps are real, and short."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.origin = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)


async def test_the_scheduler_loop_runs_a_due_plan_on_time(accounts: AccountService) -> None:
    clock = RunningClock(datetime(2024, 3, 4, 10, 0, 29, 600_000, tzinfo=UTC))
    accounts.clock = clock
    service = ActionService(accounts, clock=clock)
    _fee_plans(service)
    service.timings = {"AT_1030": Timing("AT_1030", start_time="10:00:30")}
    service.plans["AP_1030"] = ActionPlan("AP_1030", (ActionTiming("FEE", "AT_1030", Decimal(0)),))
    service.start()
    try:
        await asyncio.sleep(0.05)  # the loop idles: nothing scheduled
        await service.set_account(T, "1001", plan_ids=["AP_1030"])  # wakes it up
        async with asyncio.timeout(5):
            while await money(accounts) == 0:
                await asyncio.sleep(0.02)
        ran_at = clock()
        assert datetime(2024, 3, 4, 10, 0, 30, tzinfo=UTC) <= ran_at
        assert ran_at < datetime(2024, 3, 4, 10, 0, 35, tzinfo=UTC)  # within the timeout
        assert service.next_due() == datetime(2024, 3, 5, 10, 0, 30, tzinfo=UTC)
        await asyncio.sleep(0.2)
        assert await money(accounts) == -1  # once
    finally:
        await service.close()
    assert service._runner is None


async def test_the_engine_schedules_in_its_configured_zone() -> None:
    """Times of day in action plans (a Timings.csv StartTime, *daily's attach time) are read in
    ``general.default_timezone``, as CGRateS reads them in the server's zone."""
    config = load_config()
    general = replace(config.general, default_timezone="Etc/GMT-2")  # UTC+02:00, no DST
    memory = replace(config.storage, type="memory")
    engine = Engine(replace(config, general=general, storage=memory))
    await engine.open_storage()
    now = engine.actions.clock()
    assert now.utcoffset() == timedelta(hours=2)
    daily_at_eight = next_run(
        "*daily", None, now, datetime(2024, 1, 15, 8, 0, tzinfo=now.tzinfo)
    )
    assert daily_at_eight is not None
    assert daily_at_eight.astimezone(UTC).hour == 6
    await engine.stop()
