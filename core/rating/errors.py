"""Rating errors, with CGRateS's error strings (``utils/errors.go``) as their text."""

from __future__ import annotations

from typing import Final

# CGRateS error codes that rating can raise.
ERR_RATING_PLAN_NOT_FOUND: Final = "RATING_PLAN_NOT_FOUND"  # no profile for the subject nor *any
ERR_UNAUTHORIZED_DESTINATION: Final = "UNAUTHORIZED_DESTINATION"  # profile found, no rate fits
ERR_MAX_USAGE_EXCEEDED: Final = "MAX_USAGE_EXCEEDED"  # rals max_computed_usage
ERR_MAX_RECURSION_DEPTH: Final = "MAX_RECURSION_DEPTH"  # fallback subjects nested too deep

# APIerSv1.GetCost wraps any rating error as ``utils.NewErrServerError(err)``.
SERVER_ERROR: Final = "SERVER_ERROR"


class RatingError(Exception):
    """A call cannot be rated. ``str(error)`` is the bare CGRateS code (``RATING_PLAN_NOT_FOUND``).

    ``detail`` says which subject/destination failed, for logs only (never on the wire).
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail

    @property
    def server_error(self) -> str:
        """The text APIerSv1.GetCost answers with: ``SERVER_ERROR: RATING_PLAN_NOT_FOUND``."""
        return f"{SERVER_ERROR}: {self.code}"
