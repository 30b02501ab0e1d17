"""Tariff-plan problems, each pinned to ``FILE:LINE:COLUMN`` so an operator can go to it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from core.types import InvalidValue

MAX_ISSUES: Final = 100  # kept per error; the rest are only counted ("... and N more")


@dataclass(frozen=True, slots=True)
class TariffPlanIssue:
    """One problem. ``line``/``column`` are 1-based; 0 means unknown (e.g. an item from TP JSON)."""

    file: str
    line: int
    column: int
    reason: str

    def __str__(self) -> str:
        if not self.file:  # e.g. a TP JSON document: the reason names the JSON field
            return self.reason
        if self.line <= 0:
            return f"{self.file}: {self.reason}"
        if self.column <= 0:
            return f"{self.file}:{self.line}: {self.reason}"
        return f"{self.file}:{self.line}:{self.column}: {self.reason}"


class TariffPlanError(InvalidValue):
    """A tariff plan cannot be used; ``errors`` says why (``omitted`` counts those not listed)."""

    def __init__(self, errors: Iterable[TariffPlanIssue], omitted: int = 0) -> None:
        self.errors: list[TariffPlanIssue] = list(errors)
        self.omitted = omitted
        super().__init__(self._text())

    def _text(self) -> str:
        lines = [str(issue) for issue in self.errors]
        if self.omitted:
            lines.append(f"... and {self.omitted} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()


class IssueList:
    """Collects issues up to ``limit``, counting the overflow instead of keeping it."""

    __slots__ = ("issues", "limit", "omitted")

    def __init__(self, limit: int = MAX_ISSUES) -> None:
        self.issues: list[TariffPlanIssue] = []
        self.limit = limit
        self.omitted = 0

    def add(self, file: str, line: int, column: int, reason: str) -> None:
        if len(self.issues) < self.limit:
            self.issues.append(TariffPlanIssue(file, line, column, reason))
        else:
            self.omitted += 1

    def __bool__(self) -> bool:
        return bool(self.issues) or self.omitted > 0

    def __len__(self) -> int:
        return len(self.issues) + self.omitted

    def raise_if_any(self) -> None:
        """Raises the issues ordered by file (as first seen), line and column."""
        if self:
            files: dict[str, int] = {}
            for issue in self.issues:
                files.setdefault(issue.file, len(files))
            ordered = sorted(
                self.issues, key=lambda issue: (files[issue.file], issue.line, issue.column)
            )
            raise TariffPlanError(ordered, self.omitted)
