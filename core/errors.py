"""The one shape of a failure whose text is a CGRateS error string (``NOT_FOUND``,
``SERVER_ERROR: ...``): subsystems raise subclasses, the API sends ``message`` as it is."""

from __future__ import annotations


class CGRError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
