from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from core.tariffplan import (
    BUILTIN_TIMINGS,
    KIND_FILTERS,
    KIND_RATING_PLANS,
    TariffPlanError,
    TariffPlanIssue,
    check,
    read_folder,
    validate,
)
from core.tariffplan.models import (
    DestinationRate,
    DestinationRateEntry,
    RatingPlan,
    RatingPlanBinding,
    TariffPlan,
)

from .helpers import TUTORIAL, VECTORS, needs_tutorial, problems, write_plan

CASES = sorted(path.name for path in VECTORS.iterdir() if (path / "expected.txt").is_file())


@pytest.mark.parametrize("case", CASES)
def test_vectors(case: str) -> None:
    """Each vector folder holds defective files and the exact problems a load must report."""
    expected = (VECTORS / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    assert problems(VECTORS / case) == expected


@needs_tutorial
def test_tutorial_is_consistent() -> None:
    plan = read_folder(TUTORIAL)
    assert validate(plan) == []
    check(plan)


def test_builtin_timings_include_action_plan_metas() -> None:
    assert {
        "*any", "*asap", "*every_minute", "*hourly", "*daily", "*weekly", "*monthly",
        "*month_end", "*yearly",
    } <= BUILTIN_TIMINGS


PROFILES_ONLY = {
    "RatingProfiles.csv": (
        "#Tenant,Category,Subject,ActivationTime,RatingPlanId,RatesFallbackSubject\n"
        "cgrates.org,call,1001,2014-01-14T00:00:00Z,RP_LOADED,\n"
        "cgrates.org,call,1002,2014-01-14T00:00:00Z,RP_UNKNOWN,\n"
    ),
    "Attributes.csv": (
        "#Tenant,ID,Contexts,FilterIDs,ActivationInterval,AttributeFilterIDs,Path,Type,Value,"
        "Blocker,Weight\ncgrates.org,A,*any,FLTR_LOADED,,,*req.X,*constant,1,false,10\n"
    ),
}


class Engine:
    """What a running engine already holds."""

    def has(self, kind: str, item_id: str) -> bool:
        return (kind, item_id) in {
            (KIND_RATING_PLANS, "RP_LOADED"),
            (KIND_FILTERS, "cgrates.org:FLTR_LOADED"),
        }


def test_partial_load_refers_to_existing_items(tmp_path: Path) -> None:
    plan = read_folder(write_plan(tmp_path, PROFILES_ONLY))
    expected = [
        "RatingProfiles.csv:3:44: RatingPlanID: unknown rating plan 'RP_UNKNOWN'",
    ]
    assert [str(issue) for issue in validate(plan, Engine())] == expected
    assert [str(issue) for issue in validate(plan, Engine().has)] == expected  # a callable too
    assert len(validate(plan)) == 3


def test_builtin_timings_need_no_timings_file(tmp_path: Path) -> None:
    write_plan(tmp_path, {
        "Actions.csv": (
            "#ActionsId,Action,ExtraParameters,Filter,BalanceId,BalanceType,Categories,"
            "DestinationIds,RatingSubject,SharedGroup,ExpiryTime,TimingIds,Units,BalanceWeight,"
            "BalanceBlocker,BalanceDisabled,Weight\n"
            "ACT,*topup,,,,*monetary,,,,,*month_end,!*monthly;PEAK,10,,,,10\n"
        ),
        "ActionPlans.csv": "#Id,ActionsId,TimingId,Weight\nAP,ACT,*monthly,10\nAP,ACT,*hourly,10\n",
    })
    plan = read_folder(tmp_path)
    assert [str(issue) for issue in validate(plan)] == [
        "Actions.csv:2:40: TimingIDs: unknown timing 'PEAK'",
    ]


def test_lenient_mode_keeps_only_what_cgrates_enforces() -> None:
    plan = read_folder(VECTORS / "profile_references")
    assert [str(issue) for issue in validate(plan, strict=False)] == [
        "Attributes.csv:2:38: FilterIDs: unknown filter 'FLTR_MISSING'",
        "Attributes.csv:3:23: AttributeFilterIDs: unknown filter 'FLTR_OTHER_TENANT'",
    ]


def test_plan_without_sources_names_the_item() -> None:
    """Items from TP JSON have no file position: the issue names the item instead."""
    plan = TariffPlan(
        destination_rates={
            "DR": DestinationRate(
                "DR", (DestinationRateEntry("*any", "RT_NOPE", "*up", 4, Decimal(0), ""),)
            )
        },
        rating_plans={
            "RP": RatingPlan("RP", (RatingPlanBinding("DR", "PEAK", Decimal(10)),))
        },
    )
    assert validate(plan) == [
        TariffPlanIssue("DestinationRates.csv", 0, 0, "DR: RateID: unknown rate 'RT_NOPE'"),
        TariffPlanIssue("RatingPlans.csv", 0, 0, "RP: TimingID: unknown timing 'PEAK'"),
    ]
    assert str(validate(plan)[0]) == "DestinationRates.csv: DR: RateID: unknown rate 'RT_NOPE'"
    with pytest.raises(TariffPlanError):
        check(plan)


def test_changed_file_still_reports_without_position(tmp_path: Path) -> None:
    shutil.copytree(VECTORS / "missing_reference", tmp_path / "plan")
    plan = read_folder(tmp_path / "plan")
    with (tmp_path / "plan" / "DestinationRates.csv").open("a") as file:
        file.write("\n")
    assert [str(issue) for issue in validate(plan)] == [
        "DestinationRates.csv: DR_BROKEN: RateID: unknown rate 'RT_MISSING'"
    ]
