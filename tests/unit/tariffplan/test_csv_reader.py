from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.tariffplan import (
    KIND_ACCOUNT_ACTIONS,
    KIND_ACTIONS,
    KIND_ATTRIBUTES,
    KIND_CHARGERS,
    KIND_FILTERS,
    KIND_RESOURCES,
    KIND_ROUTES,
    KIND_STATS,
    KIND_THRESHOLDS,
    MAX_ISSUES,
    TariffPlanError,
    read_folder,
)
from core.tariffplan.models import (
    ActivationInterval,
    Attribute,
    FilterRule,
    RateSlot,
    Timing,
    rating_profile_key,
)
from core.types import MINUTE, SECOND

from .helpers import TUTORIAL, needs_tutorial, write_plan

D = Decimal
RATES_HEADER = "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
ATTRIBUTES_HEADER = (
    "#Tenant,ID,Contexts,FilterIDs,ActivationInterval,AttributeFilterIDs,Path,Type,Value,"
    "Blocker,Weight\n"
)


def read_error(folder: Path) -> list[str]:
    with pytest.raises(TariffPlanError) as caught:
        read_folder(folder)
    return str(caught.value).splitlines()


# ------------------------------------------------------------------------------ the tutorial
@needs_tutorial
class TestTutorial:
    plan = read_folder(TUTORIAL) if TUTORIAL.is_dir() else None

    def test_rates_have_sorted_slots_with_exact_decimals_and_ns(self) -> None:
        assert self.plan is not None
        rate = self.plan.rates["RT_20CNT"]
        assert rate.slots == (
            RateSlot(D("0.4"), D("0.2"), MINUTE, MINUTE, 0),
            RateSlot(D("0"), D("0.1"), MINUTE, SECOND, MINUTE),
        )
        # unitless durations are nanoseconds (unit counts for *sms)
        assert self.plan.rates["RT_SMS"].slots == (RateSlot(D(0), D("0.01"), 1, 1, 0),)

    def test_destinations_and_destination_rates(self) -> None:
        assert self.plan is not None
        assert self.plan.destinations["DST_FS"].prefixes == ("10",)
        entry = self.plan.destination_rates["DR_1003_MAXCOST_DISC"].entries[0]
        assert (entry.destination_id, entry.rate_id) == ("DST_1003", "RT_1CNT_PER_SEC")
        assert (entry.rounding_method, entry.rounding_decimals) == ("*up", 4)
        assert (entry.max_cost, entry.max_cost_strategy) == (D("0.12"), "*disconnect")
        assert self.plan.destination_rates["DR_SMS"].entries[0].destination_id == "*any"

    def test_rating_plans_group_rows(self) -> None:
        assert self.plan is not None
        bindings = self.plan.rating_plans["RP_1001"].bindings
        assert [b.destination_rates_id for b in bindings] == [
            "DR_1002_20CNT", "DR_1003_MAXCOST_DISC",
        ]
        assert {(b.timing_id, b.weight) for b in bindings} == {("*any", D(10))}

    def test_rating_profile_activations_sorted_by_time(self) -> None:
        assert self.plan is not None
        profile = self.plan.rating_profiles[rating_profile_key("cgrates.org", "call", "1001")]
        assert [(a.activation_time, a.rating_plan_id) for a in profile.activations] == [
            (datetime(2010, 1, 14, tzinfo=UTC), "RP_1002"),
            (datetime(2014, 1, 14, tzinfo=UTC), "RP_1001"),
        ]
        assert "*out:cgrates.com:call:*any" in self.plan.rating_profiles
        assert len(self.plan.rating_profiles) == 7  # 8 rows, 1001 has two

    def test_attributes_merge_rows_of_one_profile(self) -> None:
        assert self.plan is not None
        profile = self.plan.others[KIND_ATTRIBUTES]["cgrates.org:ATTR_1001_SESSIONAUTH"]
        assert profile.contexts == ("*sessions",)
        assert profile.filter_ids == ("*string:~*req.Account:1001",)
        assert profile.weight == D(10)
        assert profile.blocker is False
        assert profile.attributes == (
            Attribute("*req.Password", "*constant", "CGRateS.org"),
            Attribute("*req.RequestType", "*constant", "*prepaid"),
            Attribute("*req.PaypalAccount", "*constant", "cgrates@paypal.com"),
            Attribute("*req.LCRProfile", "*constant", "premium_cli"),
        )
        quoted = self.plan.others[KIND_ATTRIBUTES]["cgrates.org:ATTR_1002_SESSIONAUTH"]
        assert quoted.attributes[-1] == Attribute("ResourceAllocation", "*constant", "ResGroup1")
        # tenant is part of the id
        assert "cgrates.com:ATTR_TNT_ALIAS" in self.plan.others[KIND_ATTRIBUTES]

    def test_filters_group_rules(self) -> None:
        assert self.plan is not None
        profile = self.plan.others[KIND_FILTERS]["cgrates.org:FLTR_ACNT_1001_1002"]
        assert profile.rules == (
            FilterRule("*string", "~*req.Account", ("1001", "1002")),
            FilterRule("*string", "~*req.RunID", ("*default",)),
            FilterRule("*string", "~*req.Destination", ("1001", "1002", "1003")),
        )
        assert profile.activation_interval == ActivationInterval(
            datetime(2014, 7, 29, 15, tzinfo=UTC), None
        )

    def test_routes_group_routes(self) -> None:
        assert self.plan is not None
        profile = self.plan.others[KIND_ROUTES]["cgrates.org:ROUTE_ACNT_1002"]
        assert (profile.sorting, profile.filter_ids, profile.weight) == (
            "*lc", ("FLTR_ACNT_1002",), D(10),
        )
        assert [(r.id, r.rating_plan_ids, r.weight) for r in profile.routes] == [
            ("route1", ("RP_1002_LOW",), D(10)),
            ("route2", ("RP_1002",), D(20)),
        ]
        qos = self.plan.others[KIND_ROUTES]["cgrates.org:ROUTE_ACNT_1003"]
        assert qos.sorting_parameters == ("*tcc", "*tcd")
        assert [r.stat_ids for r in qos.routes] == [("Stats2",), ("Stats2_1",)]

    def test_other_profiles(self) -> None:
        assert self.plan is not None
        others = self.plan.others
        raw = others[KIND_CHARGERS]["cgrates.org:Raw"]
        assert (raw.run_id, raw.attribute_ids) == ("*raw", ("*constant:*req.RequestType:*none",))
        resource = others[KIND_RESOURCES]["cgrates.org:ResGroup1"]
        assert (resource.usage_ttl, resource.limit, resource.stored) == (-1, D(7), True)
        stats = others[KIND_STATS]["cgrates.org:Stats2"]
        assert [m.metric_id for m in stats.metrics] == ["*tcc", "*tcd"]
        assert (stats.queue_length, stats.ttl, stats.blocker) == (100, -1, True)
        threshold = others[KIND_THRESHOLDS]["cgrates.org:THD_ACNT_1002"]
        assert (threshold.max_hits, threshold.min_sleep) == (-1, SECOND)
        assert threshold.action_ids == ("ACT_LOG_WARNING",)
        assert threshold.asynchronous is True
        actions = others[KIND_ACTIONS]["DISABLE_AND_LOG"].actions
        assert [a.action_type for a in actions] == ["*log", "*disable_account"]
        topup = others[KIND_ACTIONS]["ACT_TOPUP_RST_10"].actions[0]
        assert (topup.balance_type, topup.units, topup.expiry_time) == (
            "*monetary", "10", "*unlimited",
        )
        assert topup.destination_ids == ()  # *any: not set
        assert set(others[KIND_ACCOUNT_ACTIONS]) == {
            "cgrates.org:1001", "cgrates.org:1002", "cgrates.org:1003",
        }

    def test_progress_reports_bytes(self) -> None:
        calls: list[tuple[int, int]] = []
        read_folder(TUTORIAL, progress=lambda done, total: calls.append((done, total)))
        total = sum(f.stat().st_size for f in TUTORIAL.glob("*.csv"))
        assert calls[0] == (0, total)
        assert calls[-1] == (total, total)
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


# ---------------------------------------------------------------------------- reader rules
def test_missing_files_and_empty_folder_are_fine(tmp_path: Path) -> None:
    plan = read_folder(tmp_path)
    assert plan.rates == {} and plan.rating_profiles == {}
    assert all(items == {} for items in plan.others.values())


def test_not_a_folder(tmp_path: Path) -> None:
    assert read_error(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a folder"]


def test_comments_blank_lines_crlf_bom_and_trailing_lines(tmp_path: Path) -> None:
    text = "\ufeff" + RATES_HEADER + "\r\n# a comment\r\nRT_1,0,1.5,60s,1s,0s\r\n\r\n"
    (tmp_path / "Rates.csv").write_bytes(text.encode())
    plan = read_folder(tmp_path)
    assert plan.rates["RT_1"].slots == (RateSlot(D(0), D("1.5"), MINUTE, SECOND, 0),)


def test_rate_slots_sorted_by_group_interval_start(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER + "RT,0,1,1m,1s,1m\nRT,0,2,1m,1s,0\n"})
    slots = read_folder(tmp_path).rates["RT"].slots
    assert [s.group_interval_start for s in slots] == [0, MINUTE]
    assert [s.rate for s in slots] == [D(2), D(1)]


def test_money_stays_exact(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER + "RT,0.1,0.0000001,1m,1s,0\n"})
    slot = read_folder(tmp_path).rates["RT"].slots[0]
    assert (slot.connect_fee, slot.rate) == (D("0.1"), D("0.0000001"))


def test_timings(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Timings.csv": (
        "#Tag,Years,Months,MonthDays,WeekDays,Time\n"
        "WEEKEND,*any,*any,*any,6;7,00:00:00\n"
        "NEW_YEAR,2020;2021,1,1,*any,08:00:00;12:00:00\n"
        "ASAP,,,,,*asap\n"
    )})
    timings = read_folder(tmp_path).timings
    assert timings["WEEKEND"].week_days == frozenset({6, 0})  # 7 is Sunday, as in CGRateS
    assert timings["NEW_YEAR"] == Timing(
        "NEW_YEAR", frozenset({2020, 2021}), frozenset({1}), frozenset({1}), frozenset(),
        "08:00:00", "12:00:00",
    )
    assert timings["ASAP"].start_time == "*asap"


def test_duplicate_timing(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Timings.csv": (
        "#Tag,Years,Months,MonthDays,WeekDays,Time\nT,*any,*any,*any,*any,00:00:00\n"
        "T,*any,*any,*any,1,00:00:00\n"
    )})
    assert read_error(tmp_path) == ["Timings.csv:3:1: ID: duplicate timing 'T' (first at line 2)"]


def test_fallback_subjects(tmp_path: Path) -> None:
    write_plan(tmp_path, {"RatingProfiles.csv": (
        "#Tenant,Category,Subject,ActivationTime,RatingPlanId,RatesFallbackSubject\n"
        "cgrates.org,call,1001,2014-01-14T00:00:00Z,RP_1,1002;*any\n"
    )})
    profile = read_folder(tmp_path).rating_profiles["*out:cgrates.org:call:1001"]
    assert profile.activations[0].fallback_subjects == ("1002", "*any")


def test_quoted_fields_columns(tmp_path: Path) -> None:
    # the bad Weight comes after a quoted field holding the separator and an escaped quote
    line = 'cgrates.org,A,*any,,,,*req.X,*constant,"a,""b""",false,x1'
    write_plan(tmp_path, {"Attributes.csv": ATTRIBUTES_HEADER + line + "\n"})
    column = line.index(",x1") + 2
    assert read_error(tmp_path) == [f"Attributes.csv:2:{column}: Weight: not a number: 'x1'"]


def test_multiline_quoted_field(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Attributes.csv": ATTRIBUTES_HEADER + (
        'cgrates.org,A,*any,,,,*req.X,*constant,"line1\n# not a comment\nline3",false,10\n'
        "cgrates.org,B,*any,,,,*req.X,*constant,1,no,10\n"
    )})
    # the row after the 3-line record is line 5, and its column count is right
    assert read_error(tmp_path) == ["Attributes.csv:5:42: Blocker: not a boolean: 'no'"]
    write_plan(tmp_path, {"Attributes.csv": ATTRIBUTES_HEADER + (
        'cgrates.org,A,*any,,,,*req.X,*constant,"line1\n# not a comment\nline3",false,10\n'
    )})
    value = read_folder(tmp_path).others[KIND_ATTRIBUTES]["cgrates.org:A"].attributes[0].value
    assert value == "line1\n# not a comment\nline3"


def test_csv_syntax_errors(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER + (
        'RT,"0"1,1,1m,1s,0\n'  # text after a closing quote
        'RT,0,1,1m,1s,"0\n'  # never closed
    )})
    assert read_error(tmp_path) == [
        'Rates.csv:2:7: extraneous or missing " in quoted field',
        'Rates.csv:3:14: quoted field not closed (missing ")',
    ]


def test_invalid_utf8(tmp_path: Path) -> None:
    (tmp_path / "Destinations.csv").write_bytes(b"#Id,Prefix\nDST_\xff,1\n")
    assert read_error(tmp_path) == ["Destinations.csv:2:5: not valid UTF-8"]


def test_legacy_thresholds_without_ee_ids(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Thresholds.csv": (
        "#Tenant,ID,FilterIDs,ActivationInterval,MaxHits,MinHits,MinSleep,Blocker,Weight,"
        "ActionIDs,Async\ncgrates.org,TH,,,1,1,1s,false,10,ACT,true\n"
    )})
    profile = read_folder(tmp_path).others[KIND_THRESHOLDS]["cgrates.org:TH"]
    assert (profile.action_ids, profile.ee_ids) == (("ACT",), ())


def test_subfolders_add_to_the_plan(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER + "RT_A,0,1,1m,1s,0\n"})
    write_plan(tmp_path / "more", {"Rates.csv": RATES_HEADER + "RT_B,0,1,1m,x,0\n"})
    assert read_error(tmp_path) == ["more/Rates.csv:2:13: RateIncrement: not a duration: 'x'"]


def test_field_separator(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER.replace(",", ";") + "RT;0;1;1m;1s;0\n"})
    assert read_folder(tmp_path, separator=";").rates["RT"].slots[0].rate == D(1)


def test_zero_rate_unit_only_for_free_slots(tmp_path: Path) -> None:
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER + "RT_FEE,0.1,0,0,1s,0\nRT_BAD,0,1,0,1s,0\n"})
    assert read_error(tmp_path) == ["Rates.csv:3:12: RateUnit: must be positive"]


def test_errors_are_capped(tmp_path: Path) -> None:
    bad_rows = "".join(f"RT_{n},0,bad,1m,1s,0\n" for n in range(MAX_ISSUES + 50))
    write_plan(tmp_path, {"Rates.csv": RATES_HEADER + bad_rows})
    with pytest.raises(TariffPlanError) as caught:
        read_folder(tmp_path)
    assert len(caught.value.errors) == MAX_ISSUES
    assert caught.value.omitted == 50
    assert str(caught.value).splitlines()[-1] == "... and 50 more"


def test_profile_values_checked(tmp_path: Path) -> None:
    write_plan(tmp_path, {
        "Filters.csv": (
            "#Tenant,ID,Type,Element,Values,ActivationInterval\n"
            "cgrates.org,F1,*nope,~*req.A,1,\n"
            "cgrates.org,F2,*string,~*req.A,,\n"
            "cgrates.org,F3,*exists,~*req.A,,2014-01-01T00:00:00Z;soon\n"
        ),
        "Chargers.csv": (
            "#Tenant,ID,FilterIDs,ActivationInterval,RunID,AttributeIDs,Weight\n"
            "cgrates.org,C1,*string:~*req.A,,*default,*none,0\n"
        ),
    })
    assert read_error(tmp_path) == [
        "Chargers.csv:2:16: FilterIDs: inline filter '*string:~*req.A': expected "
        "*type:element:values",
        "Filters.csv:2:16: Type: unsupported filter type '*nope'",
        "Filters.csv:3:16: Type: values are mandatory for filter type '*string'",
        "Filters.csv:4:33: ActivationInterval: not a time: 'soon'",
    ]
