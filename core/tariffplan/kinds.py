"""Names of the tariff-plan item kinds, shared by the CSV reader, TP staging and storage documents.

A kind names one CGRateS tariff-plan file (and the items it defines). The rating kinds are also the
attribute names of ``TariffPlan``; the others are the keys of ``TariffPlan.others``.
"""

from __future__ import annotations

from typing import Final

KIND_TIMINGS: Final = "timings"
KIND_DESTINATIONS: Final = "destinations"
KIND_RATES: Final = "rates"
KIND_DESTINATION_RATES: Final = "destination_rates"
KIND_RATING_PLANS: Final = "rating_plans"
KIND_RATING_PROFILES: Final = "rating_profiles"
KIND_ACTIONS: Final = "actions"
KIND_ACTION_PLANS: Final = "action_plans"
KIND_ACTION_TRIGGERS: Final = "action_triggers"
KIND_ACCOUNT_ACTIONS: Final = "account_actions"
KIND_SHARED_GROUPS: Final = "shared_groups"
KIND_ATTRIBUTES: Final = "attributes"
KIND_CHARGERS: Final = "chargers"
KIND_FILTERS: Final = "filters"
KIND_ROUTES: Final = "routes"
KIND_RESOURCES: Final = "resources"
KIND_STATS: Final = "stats"
KIND_THRESHOLDS: Final = "thresholds"

RATING_KINDS: Final = (
    KIND_TIMINGS,
    KIND_DESTINATIONS,
    KIND_RATES,
    KIND_DESTINATION_RATES,
    KIND_RATING_PLANS,
    KIND_RATING_PROFILES,
)
OTHER_KINDS: Final = (
    KIND_ACTIONS,
    KIND_ACTION_PLANS,
    KIND_ACTION_TRIGGERS,
    KIND_ACCOUNT_ACTIONS,
    KIND_SHARED_GROUPS,
    KIND_ATTRIBUTES,
    KIND_CHARGERS,
    KIND_FILTERS,
    KIND_ROUTES,
    KIND_RESOURCES,
    KIND_STATS,
    KIND_THRESHOLDS,
)
# Reading order: referenced kinds before the kinds referring to them (as CGRateS loads them).
ALL_KINDS: Final = RATING_KINDS + OTHER_KINDS

FILE_NAMES: Final[dict[str, str]] = {
    KIND_TIMINGS: "Timings.csv",
    KIND_DESTINATIONS: "Destinations.csv",
    KIND_RATES: "Rates.csv",
    KIND_DESTINATION_RATES: "DestinationRates.csv",
    KIND_RATING_PLANS: "RatingPlans.csv",
    KIND_RATING_PROFILES: "RatingProfiles.csv",
    KIND_ACTIONS: "Actions.csv",
    KIND_ACTION_PLANS: "ActionPlans.csv",
    KIND_ACTION_TRIGGERS: "ActionTriggers.csv",
    KIND_ACCOUNT_ACTIONS: "AccountActions.csv",
    KIND_SHARED_GROUPS: "SharedGroups.csv",
    KIND_ATTRIBUTES: "Attributes.csv",
    KIND_CHARGERS: "Chargers.csv",
    KIND_FILTERS: "Filters.csv",
    KIND_ROUTES: "Routes.csv",
    KIND_RESOURCES: "Resources.csv",
    KIND_STATS: "Stats.csv",
    KIND_THRESHOLDS: "Thresholds.csv",
}
