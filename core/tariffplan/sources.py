"""Where the items of a read plan came from, found again only when a problem must be shown.

Keeping a position per row would cost hundreds of megabytes for a million-row plan that is fine, so
the reader keeps only which file each kind came from (with its size and mtime). When validation
finds a bad reference, ``locate`` re-reads that one file once and finds the row and field: a
failing load pays a second read, a good one pays nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from core.tariffplan.csvfmt import (
    COLUMNS,
    LEGACY_COUNTS,
    SEPARATOR,
    Position,
    decode,
    field_position,
    item_key,
    iter_records,
)
from core.tariffplan.kinds import FILE_NAMES
from core.tariffplan.models import TariffPlan
from core.tariffplan.values import MULTI_SEP

# (item id as keyed in the plan, column name, referenced value)
Ref = tuple[str, str, str]
SourcePosition = tuple[str, int, int]  # (file name, line, column)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file read; ``name`` is how issues name it (relative to the plan folder)."""

    name: str
    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, name: str, path: Path) -> SourceFile:
        stat = path.stat()
        return cls(name, path, stat.st_size, stat.st_mtime_ns)

    def unchanged(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


@dataclass(frozen=True, slots=True)
class SourceMap:
    """The files a plan was read from, per kind (CGRateS also reads the subfolders' files)."""

    files: dict[str, tuple[SourceFile, ...]] = field(default_factory=dict)
    separator: str = SEPARATOR

    def locate(self, kind: str, refs: Collection[Ref]) -> dict[Ref, SourcePosition]:
        """Positions of the given references (one read of the kind's files for all of them).

        A reference is matched to the first row of its item whose column holds the value (alone or
        in a ``;``-list); failing that, to the item's first row with that column non-empty, then to
        the item's first row. Files changed since they were read are not searched.
        """
        found: dict[Ref, SourcePosition] = {}
        for source in self.files.get(kind, ()):
            pending = [ref for ref in refs if ref not in found]
            if not pending:
                break
            if not source.unchanged():
                continue
            for ref, (line, column) in self._locate_in(kind, source, pending).items():
                found[ref] = (source.name, line, column)
        return found

    def default_file(self, kind: str) -> str:
        """The name issues about ``kind`` use when no row can be named."""
        sources = self.files.get(kind)
        return sources[0].name if sources else FILE_NAMES[kind]

    def _locate_in(self, kind: str, source: SourceFile, refs: list[Ref]) -> dict[Ref, Position]:
        try:
            data = source.path.read_bytes()
        except OSError:
            return {}
        text = decode(data, _ignore)
        if text is None:
            return {}
        columns = COLUMNS[kind]
        counts = {len(columns)} | LEGACY_COUNTS.get(kind, frozenset())
        wanted: dict[str, list[Ref]] = {}
        for ref in refs:
            wanted.setdefault(ref[0], []).append(ref)
        exact: dict[Ref, Position] = {}
        in_column: dict[Ref, Position] = {}  # the item's first row with that column filled
        in_item: dict[Ref, Position] = {}  # the item's first row
        for line, fields, positions in iter_records(text, _ignore, self.separator):
            if len(fields) not in counts:
                continue
            item_refs = wanted.get(item_key(kind, fields))
            if not item_refs:
                continue
            for ref in item_refs:
                if ref in exact:
                    continue
                in_item.setdefault(ref, (line, 0))
                index = columns.index(ref[1])
                raw = fields[index] if index < len(fields) else ""
                if not raw:
                    continue
                where = field_position(line, fields, positions, index)
                if raw == ref[2] or ref[2] in raw.split(MULTI_SEP):
                    exact[ref] = where
                else:
                    in_column.setdefault(ref, where)
        return {**in_item, **in_column, **exact}


@dataclass(slots=True)
class ReadPlan(TariffPlan):
    """A ``TariffPlan`` read from a folder, knowing its files so problems can be pinned to lines."""

    sources: SourceMap = field(default_factory=SourceMap)


def _ignore(line: int, column: int, reason: str) -> None:
    """Syntax problems were reported when the file was first read."""
