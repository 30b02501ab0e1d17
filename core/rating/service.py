"""The live rater: rebuilt off to the side on every tariff-plan load, switched in at once."""

from __future__ import annotations

from core.tariffplan.loader import Commit
from core.tariffplan.models import TariffPlan

from .rater import DEFAULT_ROUNDING_DECIMALS, Rater


class RatingService:
    """Holds the Rater that answers for the live plan; a PlanListener of the loader."""

    def __init__(self, rounding_decimals: int = DEFAULT_ROUNDING_DECIMALS) -> None:
        self._rounding_decimals = rounding_decimals
        self.rater = Rater.from_plan(TariffPlan(), rounding_decimals=rounding_decimals)

    def prepare(self, plan: TariffPlan) -> Commit:
        rater = Rater.from_plan(plan, rounding_decimals=self._rounding_decimals)

        def commit() -> None:
            self.rater = rater

        return commit
