"""The one error FilterS raises: a filter that cannot be compiled or evaluated."""

from __future__ import annotations

from typing import Final

from core.errors import CGRError
from core.tariffplan.errors import MAX_ISSUES, TariffPlanError, TariffPlanIssue
from core.tariffplan.kinds import FILE_NAMES

ERR_NOT_FOUND: Final = "NOT_FOUND"
ERR_NOT_IMPLEMENTED: Final = "NOT_IMPLEMENTED"


class FilterError(CGRError):
    """``str(error)`` is CGRateS's text for it, e.g. ``NOT_FOUND:FLTR_1`` for an unknown filter
    ID (``utils.ErrPrefixNotFound``) or ``Unsupported filter Type: *foo`` for a bad rule."""


def not_found(item_id: str) -> FilterError:
    return FilterError(f"{ERR_NOT_FOUND}:{item_id}")


def not_implemented(what: str) -> FilterError:
    return FilterError(f"{ERR_NOT_IMPLEMENTED}:{what}")


def plan_error(kind: str, problems: list[tuple[str, str]]) -> TariffPlanError:
    """A load failure naming each item (``key``) a subsystem could not build, and why."""
    file = FILE_NAMES.get(kind, kind)
    issues = [TariffPlanIssue(file, 0, 0, f"{key}: {problem}") for key, problem in problems]
    return TariffPlanError(issues[:MAX_ISSUES], max(0, len(issues) - MAX_ISSUES))
