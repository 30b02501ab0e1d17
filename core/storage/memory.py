"""In-process back end for tests: nothing persists, semantics match the SQLite back end.

Documents are kept JSON-encoded and decoded on every read, so callers see exactly what a real
back end would give them (Decimal back as float, tuples as lists, no shared mutable objects).
Every method runs without awaiting, so each call is atomic with respect to other coroutines.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.storage.base import (
    DataDB,
    DropKind,
    DuplicateError,
    Mutation,
    StorageClosedError,
    StorDB,
    Write,
    check_name,
    check_value,
)
from core.storage.cdr import Cdr, CdrFilter, CdrRow, decode_cdr, encode_cdr
from core.types import dumps, loads


class _MemoryStore:
    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosedError(f"{type(self).__name__} is closed")

    async def close(self) -> None:
        self._closed = True


class MemoryDataDB(_MemoryStore, DataDB):
    """DataDB in dictionaries: kind -> key -> encoded JSON."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, bytes]] = {}

    async def get(self, kind: str, key: str) -> Any | None:
        self._check_open()
        raw = self._kinds.get(check_name("kind", kind), {}).get(
            check_name("key", key, allow_empty=True)
        )
        return None if raw is None else loads(raw)

    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Any]:
        self._check_open()
        documents = self._kinds.get(check_name("kind", kind), {})
        found: dict[str, Any] = {}
        for key in keys:
            raw = documents.get(check_name("key", key, allow_empty=True))
            if raw is not None:
                found[key] = loads(raw)
        return found

    async def get_all(self, kind: str) -> dict[str, Any]:
        self._check_open()
        documents = self._kinds.get(check_name("kind", kind), {})
        return {key: loads(raw) for key, raw in documents.items()}

    def _sorted_keys(self, kind: str, prefix: str) -> list[str]:
        check_name("prefix", prefix, allow_empty=True)
        keys = sorted(self._kinds.get(check_name("kind", kind), {}))
        start = bisect_left(keys, prefix)
        end = start
        while end < len(keys) and keys[end].startswith(prefix):
            end += 1
        return keys[start:end]

    async def keys(self, kind: str, prefix: str = "") -> list[str]:
        self._check_open()
        return self._sorted_keys(kind, prefix)

    async def count(self, kind: str, prefix: str = "") -> int:
        self._check_open()
        return len(self._sorted_keys(kind, prefix))

    async def set(self, kind: str, key: str, value: Any) -> None:
        self._check_open()
        check_name("kind", kind)
        check_name("key", key, allow_empty=True)
        self._kinds.setdefault(kind, {})[key] = dumps(check_value(value))

    async def remove(self, kind: str, key: str) -> bool:
        self._check_open()
        documents = self._kinds.get(check_name("kind", kind), {})
        return documents.pop(check_name("key", key, allow_empty=True), None) is not None

    async def remove_kind(self, kind: str) -> int:
        self._check_open()
        return len(self._kinds.pop(check_name("kind", kind), {}))

    async def apply(self, mutations: Iterable[Mutation], *, deferrable: bool = False) -> None:
        self._check_open()
        # Validate and encode everything first; after that nothing can fail half-way.
        prepared: list[tuple[str, str | None, bytes | None]] = []
        for mutation in mutations:
            if type(mutation) is Write:
                raw = None if mutation.value is None else dumps(mutation.value)
                prepared.append(
                    (
                        check_name("kind", mutation.kind),
                        check_name("key", mutation.key, allow_empty=True),
                        raw,
                    )
                )
            elif type(mutation) is DropKind:
                prepared.append((check_name("kind", mutation.kind), None, None))
            else:
                raise TypeError(f"not a Write or DropKind: {mutation!r}")
        for kind, key, raw in prepared:
            if key is None:
                self._kinds.pop(kind, None)
            elif raw is None:
                self._kinds.get(kind, {}).pop(key, None)
            else:
                self._kinds.setdefault(kind, {})[key] = raw


class MemoryStorDB(_MemoryStore, StorDB):
    """StorDB in dictionaries; CDRs kept encoded, keyed by order id."""

    def __init__(self) -> None:
        self._tp: dict[str, dict[str, dict[str, bytes]]] = {}
        # order_id -> (row, created_at, updated_at); dicts keep insertion = order id order.
        self._cdrs: dict[int, tuple[CdrRow, int, int]] = {}
        self._by_run: dict[tuple[str, str], int] = {}
        self._last_order_id = 0

    # -------------------------------------------------------------------------- TP staging
    async def set_tp(self, tpid: str, kind: str, id: str, value: Any) -> None:
        self._check_open()
        check_name("tpid", tpid)
        check_name("kind", kind)
        check_name("id", id, allow_empty=True)
        self._tp.setdefault(tpid, {}).setdefault(kind, {})[id] = dumps(check_value(value))

    async def set_tp_many(self, tpid: str, kind: str, items: Mapping[str, Any]) -> None:
        self._check_open()
        check_name("tpid", tpid)
        check_name("kind", kind)
        encoded = {
            check_name("id", item_id, allow_empty=True): dumps(check_value(value))
            for item_id, value in items.items()
        }
        if encoded:
            self._tp.setdefault(tpid, {}).setdefault(kind, {}).update(encoded)

    async def get_tp(self, tpid: str, kind: str, id: str) -> Any | None:
        self._check_open()
        raw = self._tp_kind(tpid, kind).get(check_name("id", id, allow_empty=True))
        return None if raw is None else loads(raw)

    def _tp_kind(self, tpid: str, kind: str) -> dict[str, bytes]:
        return self._tp.get(check_name("tpid", tpid), {}).get(check_name("kind", kind), {})

    async def get_tp_ids(self, tpid: str, kind: str) -> list[str]:
        self._check_open()
        return sorted(self._tp_kind(tpid, kind))

    async def get_tp_kind(self, tpid: str, kind: str) -> dict[str, Any]:
        self._check_open()
        items = self._tp_kind(tpid, kind)
        return {item_id: loads(items[item_id]) for item_id in sorted(items)}

    async def get_tp_all(self, tpid: str) -> dict[str, dict[str, Any]]:
        self._check_open()
        kinds = self._tp.get(check_name("tpid", tpid), {})
        return {
            kind: {item_id: loads(items[item_id]) for item_id in sorted(items)}
            for kind, items in sorted(kinds.items())
            if items
        }

    async def get_tpids(self) -> list[str]:
        self._check_open()
        return sorted(tpid for tpid, kinds in self._tp.items() if any(kinds.values()))

    async def remove_tp(self, tpid: str, kind: str | None = None, id: str | None = None) -> int:
        self._check_open()
        check_name("tpid", tpid)
        if id is not None and kind is None:
            raise ValueError("remove_tp: an id needs its kind")
        kinds = self._tp.get(tpid, {})
        if kind is None:
            removed = sum(len(items) for items in kinds.values())
            self._tp.pop(tpid, None)
            return removed
        check_name("kind", kind)
        if id is None:
            return len(kinds.pop(kind, {}))
        return int(
            kinds.get(kind, {}).pop(check_name("id", id, allow_empty=True), None) is not None
        )

    # -------------------------------------------------------------------------------- CDRs
    def _store(self, row: CdrRow, now: int, allow_update: bool) -> int | None:
        run = (row[0], row[1])  # (cgrid, run_id), the first two encoded columns
        existing = self._by_run.get(run)
        if existing is not None:
            if not allow_update:
                return None
            _, created_at, _ = self._cdrs[existing]
            self._cdrs[existing] = (row, created_at, now)
            return existing
        self._last_order_id += 1  # never reused, as SQLite's AUTOINCREMENT
        self._cdrs[self._last_order_id] = (row, now, now)
        self._by_run[run] = self._last_order_id
        return self._last_order_id

    async def store_cdr(self, cdr: Cdr, allow_update: bool = False) -> int:
        self._check_open()
        order_id = self._store(encode_cdr(cdr), time.time_ns() // 1_000, allow_update)
        if order_id is None:
            raise DuplicateError(cdr.cgrid, cdr.run_id)
        return order_id

    async def store_cdrs(self, cdrs: Sequence[Cdr], allow_update: bool = False) -> list[int | None]:
        self._check_open()
        rows = [encode_cdr(cdr) for cdr in cdrs]  # encode first: errors store nothing
        now = time.time_ns() // 1_000
        return [self._store(row, now, allow_update) for row in rows]

    def _select(self, flt: CdrFilter) -> list[Cdr]:
        order_ids = sorted(self._cdrs, reverse=flt.descending)
        selected = []
        for order_id in order_ids:
            row, created_at, updated_at = self._cdrs[order_id]
            cdr = decode_cdr(row, order_id, created_at, updated_at)
            if flt.matches(cdr):
                selected.append(cdr)
        return selected

    def _page(self, flt: CdrFilter) -> list[Cdr]:
        selected = self._select(flt)
        end = None if flt.limit is None else flt.offset + flt.limit
        return selected[flt.offset : end]

    async def get_cdrs(self, flt: CdrFilter) -> list[Cdr]:
        self._check_open()
        return self._page(flt)

    async def count_cdrs(self, flt: CdrFilter) -> int:
        self._check_open()
        return len(self._select(flt))

    async def remove_cdrs(self, flt: CdrFilter) -> int:
        self._check_open()
        removed = self._page(flt)
        for cdr in removed:
            del self._cdrs[cdr.order_id]
            del self._by_run[(cdr.cgrid, cdr.run_id)]
        return len(removed)


__all__ = ["MemoryDataDB", "MemoryStorDB"]
