"""Rating: what a call costs under a tariff plan (CGRateS's RALs rating, GetCost)."""

from .callcost import CallCost, IncrementGroup, TimeSpan
from .destinations import DestinationIndex
from .errors import (
    ERR_MAX_USAGE_EXCEEDED,
    ERR_RATING_PLAN_NOT_FOUND,
    ERR_UNAUTHORIZED_DESTINATION,
    RatingError,
)
from .plan_index import RateInterval, RatingMatch
from .rater import DEFAULT_ROUNDING_DECIMALS, CostQuery, Rater
from .timings import next_boundary, timing_covers

__all__ = [
    "DEFAULT_ROUNDING_DECIMALS",
    "ERR_MAX_USAGE_EXCEEDED",
    "ERR_RATING_PLAN_NOT_FOUND",
    "ERR_UNAUTHORIZED_DESTINATION",
    "CallCost",
    "CostQuery",
    "DestinationIndex",
    "IncrementGroup",
    "RateInterval",
    "Rater",
    "RatingError",
    "RatingMatch",
    "TimeSpan",
    "next_boundary",
    "timing_covers",
]
