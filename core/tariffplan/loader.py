"""Atomic tariff-plan loads: read → validate → prepare every subsystem → store → switch.

A load adds or replaces items by id (CGRateS semantics: items it does not name stay). It is all or
nothing: a bad row, an unknown reference, a subsystem that cannot build from the merged plan or a
storage failure leaves the engine and its storage exactly as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.storage import DataDB, Write
from core.tariffplan import documents
from core.tariffplan.csv_reader import read_folder
from core.tariffplan.errors import TariffPlanError, TariffPlanIssue
from core.tariffplan.kinds import ALL_KINDS, RATING_KINDS
from core.tariffplan.models import TariffPlan
from core.tariffplan.validate import check

Commit = Callable[[], None]
Progress = Callable[[int, int], None]


class PlanListener(Protocol):
    """A subsystem that serves from the tariff plan (rating, filters, attributes, ...)."""

    def prepare(self, plan: TariffPlan) -> Commit:
        """Builds everything from ``plan`` without touching live state (may be slow, runs in a
        worker thread) and returns the function that switches to it (must be instant)."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    counts: dict[str, int]
    dry_run: bool


def items_of(plan: TariffPlan, kind: str) -> dict[str, Any]:
    """The ``id -> item`` mapping of one kind in a plan."""
    if kind in RATING_KINDS:
        items: dict[str, Any] = getattr(plan, kind)
        return items
    return plan.others.setdefault(kind, {})


def merge(current: TariffPlan, update: TariffPlan) -> TariffPlan:
    """A new plan: ``current`` with every item of ``update`` added or replacing by id."""
    merged = TariffPlan()
    for kind in ALL_KINDS:
        combined = dict(items_of(current, kind))
        combined.update(items_of(update, kind))
        if kind in RATING_KINDS:
            setattr(merged, kind, combined)
        elif combined:
            merged.others[kind] = combined
    return merged


def without(current: TariffPlan, kind: str, ids: Iterable[str]) -> TariffPlan:
    """A new plan: ``current`` less the named items of one kind."""
    shrunk = merge(current, TariffPlan())
    items = items_of(shrunk, kind)
    for item_id in ids:
        items.pop(item_id, None)
    return shrunk


class _Lookup:
    """What validation may resolve against: the items already live in the engine."""

    def __init__(self, plan: TariffPlan) -> None:
        self._plan = plan

    def has(self, kind: str, item_id: str) -> bool:
        return item_id in items_of(self._plan, kind)


class TariffPlanLoader:
    def __init__(self, datadb: DataDB, listeners: Iterable[PlanListener] = ()) -> None:
        self._datadb = datadb
        self._listeners = list(listeners)
        self._lock = asyncio.Lock()  # loads are serialized: each merges over the last
        self.current = TariffPlan()

    def add_listener(self, listener: PlanListener) -> None:
        self._listeners.append(listener)

    async def restore(self) -> TariffPlan:
        """Loads the stored plan at start-up and activates it."""
        plan = TariffPlan()
        for kind in ALL_KINDS:
            docs = await self._datadb.get_all(kind)
            if not docs:
                continue
            items = {key: documents.from_doc(kind, doc) for key, doc in docs.items()}
            if kind in RATING_KINDS:
                setattr(plan, kind, items)
            else:
                plan.others[kind] = items
        async with self._lock:
            await self._switch(plan, writes=())
        return plan

    async def load_folder(
        self, folder: Path, dry_run: bool = False, progress: Progress | None = None
    ) -> LoadReport:
        if not folder.is_dir():
            raise TariffPlanError([TariffPlanIssue(str(folder), 0, 0, "not a folder")])
        plan = await asyncio.to_thread(read_folder, folder, progress)
        return await self.load_plan(plan, dry_run=dry_run)

    async def load_plan(self, update: TariffPlan, dry_run: bool = False) -> LoadReport:
        """Validates ``update`` against the live plan and, unless ``dry_run``, applies it whole."""
        async with self._lock:
            check(update, _Lookup(self.current))
            counts = {kind: len(items_of(update, kind)) for kind in ALL_KINDS}
            counts = {kind: count for kind, count in counts.items() if count}
            merged = merge(self.current, update)
            if dry_run:
                # Still build the subsystems: a plan they cannot serve must fail the dry run too.
                await asyncio.to_thread(self._prepare_all, merged)
                return LoadReport(counts, dry_run=True)
            writes = [
                Write(kind, item_id, documents.to_doc(kind, item))
                for kind in ALL_KINDS
                for item_id, item in items_of(update, kind).items()
            ]
            await self._switch(merged, writes)
            return LoadReport(counts, dry_run=False)

    async def remove(self, kind: str, ids: Iterable[str]) -> int:
        """Removes items by id; returns how many existed."""
        async with self._lock:
            present = [item_id for item_id in ids if item_id in items_of(self.current, kind)]
            if not present:
                return 0
            shrunk = without(self.current, kind, present)
            await self._switch(shrunk, [Write(kind, item_id, None) for item_id in present])
            return len(present)

    def _prepare_all(self, plan: TariffPlan) -> list[Commit]:
        return [listener.prepare(plan) for listener in self._listeners]

    async def _switch(self, plan: TariffPlan, writes: Iterable[Write]) -> None:
        commits = await asyncio.to_thread(self._prepare_all, plan)
        batch = list(writes)
        if batch:
            await self._datadb.apply(batch)
        for commit in commits:
            commit()
        self.current = plan
