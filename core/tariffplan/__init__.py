"""Tariff plans: CGRateS CSV folders and TP JSON in, typed models out, references checked.

plan = read_folder(Path("tariffplans/tutorial"))   # raises TariffPlanError (FILE:LINE:COL)
check(plan, existing=engine_lookup)                # or validate(...) -> list of issues
doc = to_doc(KIND_RATES, plan.rates["RT_20CNT"])   # storage; to_tp_json for staging APIs
"""

from core.tariffplan.csv_reader import read_folder
from core.tariffplan.documents import (
    from_doc,
    from_tp_json,
    model_key,
    to_doc,
    to_tp_json,
)
from core.tariffplan.errors import MAX_ISSUES, TariffPlanError, TariffPlanIssue
from core.tariffplan.kinds import (
    ALL_KINDS,
    FILE_NAMES,
    KIND_ACCOUNT_ACTIONS,
    KIND_ACTION_PLANS,
    KIND_ACTION_TRIGGERS,
    KIND_ACTIONS,
    KIND_ATTRIBUTES,
    KIND_CHARGERS,
    KIND_DESTINATION_RATES,
    KIND_DESTINATIONS,
    KIND_FILTERS,
    KIND_RATES,
    KIND_RATING_PLANS,
    KIND_RATING_PROFILES,
    KIND_RESOURCES,
    KIND_ROUTES,
    KIND_SHARED_GROUPS,
    KIND_STATS,
    KIND_THRESHOLDS,
    KIND_TIMINGS,
    OTHER_KINDS,
    RATING_KINDS,
)
from core.tariffplan.sources import ReadPlan, SourceMap
from core.tariffplan.validate import BUILTIN_TIMINGS, ExistingLookup, check, validate

__all__ = [
    "ALL_KINDS",
    "BUILTIN_TIMINGS",
    "FILE_NAMES",
    "KIND_ACCOUNT_ACTIONS",
    "KIND_ACTIONS",
    "KIND_ACTION_PLANS",
    "KIND_ACTION_TRIGGERS",
    "KIND_ATTRIBUTES",
    "KIND_CHARGERS",
    "KIND_DESTINATIONS",
    "KIND_DESTINATION_RATES",
    "KIND_FILTERS",
    "KIND_RATES",
    "KIND_RATING_PLANS",
    "KIND_RATING_PROFILES",
    "KIND_RESOURCES",
    "KIND_ROUTES",
    "KIND_SHARED_GROUPS",
    "KIND_STATS",
    "KIND_THRESHOLDS",
    "KIND_TIMINGS",
    "MAX_ISSUES",
    "OTHER_KINDS",
    "RATING_KINDS",
    "ExistingLookup",
    "ReadPlan",
    "SourceMap",
    "TariffPlanError",
    "TariffPlanIssue",
    "check",
    "from_doc",
    "from_tp_json",
    "model_key",
    "read_folder",
    "to_doc",
    "to_tp_json",
    "validate",
]
