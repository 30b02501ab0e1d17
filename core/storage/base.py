"""The storage interface of the engine: ``DataDB`` (live data) and ``StorDB`` (staging and CDRs).

As in CGRateS, DataDB holds what the engine runs on (tariff plan items, accounts, profiles) and
StorDB holds tariff plans staged by TPid plus the CDRs. Every back end (SQLite, memory, and later
Redis and PostgreSQL) implements these two abstract classes and passes the same test suite.

Values are JSON documents encoded with :func:`core.types.dumps` and decoded with
:func:`core.types.loads`. ``Decimal`` is written as an exact JSON number but read back as
``float``: callers that store money must store it as strings (``money_str``) and convert on
read (``to_money``). Integers must fit in 64 bits (signed, or unsigned when positive).
``None`` is never a stored value: it is how a missing document reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeAlias

from core.storage.cdr import Cdr, CdrFilter

# Bump when a back end's layout changes incompatibly; a store written with another version is
# refused at open rather than misread (migrations are a later, explicit step).
DATADB_SCHEMA_VERSION: Final = 1
STORDB_SCHEMA_VERSION: Final = 1
SCHEMA_VERSION_KEY: Final = "schema_version"


class StorageError(Exception):
    """A back end failed (I/O, corruption, lock timeout); the message says which store and why."""


class StorageClosedError(StorageError):
    """The store was used after ``close()``."""


class SchemaVersionError(StorageError):
    """The store on disk was written by an incompatible schema version."""


class DuplicateError(StorageError):
    """A CDR with the same (cgrid, run_id) is already stored."""

    def __init__(self, cgrid: str, run_id: str) -> None:
        super().__init__(f"duplicate CDR cgrid={cgrid!r} run_id={run_id!r}")
        self.cgrid = cgrid
        self.run_id = run_id


@dataclass(frozen=True, slots=True)
class Write:
    """Sets ``kind``/``key`` to ``value`` in :meth:`DataDB.apply`; ``value=None`` deletes it."""

    kind: str
    key: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class DropKind:
    """Removes every document of ``kind`` in :meth:`DataDB.apply`.

    Mutations apply in order, so ``[DropKind("rates"), Write("rates", ...), ...]`` replaces a
    whole kind atomically: readers see either the old set or the new one.
    """

    kind: str


Mutation: TypeAlias = Write | DropKind


def check_name(what: str, name: object, *, allow_empty: bool = False) -> str:
    """Validates a kind/key/tpid/id: a string (empty only where allowed)."""
    if type(name) is not str:
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    if not name and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    return name


def check_value(value: Any) -> Any:
    """Refuses ``None`` as a stored value (it is how a missing document reads)."""
    if value is None:
        raise ValueError("None cannot be stored; use remove() or Write(kind, key, None)")
    return value


def check_schema_version(what: str, found: int, expected: int) -> None:
    """Raises :class:`SchemaVersionError` unless ``found == expected``."""
    if found != expected:
        raise SchemaVersionError(
            f"{what} has schema version {found}, this engine needs {expected}; "
            "migrate it or point the engine at a new data directory"
        )


class _Closeable(ABC):
    """``async with store:`` closes the store on exit."""

    @abstractmethod
    async def close(self) -> None:
        """Releases the store; idempotent. Later calls raise :class:`StorageClosedError`."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class DataDB(_Closeable):
    """Live data: JSON documents addressed by ``(kind, key)``.

    ``kind`` is a non-empty string naming a collection (``"rates"``, ``"accounts"``); ``key`` a
    string within it (may be empty). Keys listed by :meth:`keys` are sorted by code point.
    """

    schema_version: int = DATADB_SCHEMA_VERSION

    @abstractmethod
    async def get(self, kind: str, key: str) -> Any | None:
        """The document, or None when missing."""

    @abstractmethod
    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Any]:
        """The documents found among ``keys``; missing keys are left out."""

    @abstractmethod
    async def get_all(self, kind: str) -> dict[str, Any]:
        """Every document of ``kind`` (made for bulk loads at start-up; no order promised)."""

    @abstractmethod
    async def keys(self, kind: str, prefix: str = "") -> list[str]:
        """Sorted keys of ``kind`` starting with ``prefix``."""

    @abstractmethod
    async def count(self, kind: str, prefix: str = "") -> int:
        """Number of documents of ``kind`` whose key starts with ``prefix``."""

    @abstractmethod
    async def set(self, kind: str, key: str, value: Any) -> None:
        """Stores ``value`` (not None; see the module docstring about money)."""

    @abstractmethod
    async def remove(self, kind: str, key: str) -> bool:
        """Deletes the document; True when it existed."""

    @abstractmethod
    async def remove_kind(self, kind: str) -> int:
        """Deletes every document of ``kind``; returns how many there were."""

    @abstractmethod
    async def apply(self, mutations: Iterable[Mutation], *, deferrable: bool = False) -> None:
        """Applies ``mutations`` in order, atomically: all of them or, on any error, none.

        A value that cannot be encoded, a bad kind or key, or a back-end failure leaves the store
        as it was and raises. Made for bulk loads: pass a list, or a generator to save memory.
        Cancelling the caller does not stop a write the back end has started: it still
        completes or fails as a whole.

        ``deferrable``: nobody waits on the reply path for this write (a clean-up), so a back end
        may hold it back a bounded time to join the next commit instead of starting one; it
        still returns only once durable, and a read issued after it still sees it.
        """


class StorDB(_Closeable):
    """Staged tariff plans (by TPid) and CDRs."""

    schema_version: int = STORDB_SCHEMA_VERSION

    # -------------------------------------------------------------------------- TP staging
    @abstractmethod
    async def set_tp(self, tpid: str, kind: str, id: str, value: Any) -> None:
        """Stages one tariff plan item (not None; money as strings, see the module docstring)."""

    @abstractmethod
    async def set_tp_many(self, tpid: str, kind: str, items: Mapping[str, Any]) -> None:
        """Stages ``items`` (id -> value) atomically, replacing items with the same ids."""

    @abstractmethod
    async def get_tp(self, tpid: str, kind: str, id: str) -> Any | None:
        """One staged item, or None."""

    @abstractmethod
    async def get_tp_ids(self, tpid: str, kind: str) -> list[str]:
        """Sorted ids of the staged items of ``kind``."""

    @abstractmethod
    async def get_tp_kind(self, tpid: str, kind: str) -> dict[str, Any]:
        """The staged items of ``kind``: id -> value."""

    @abstractmethod
    async def get_tp_all(self, tpid: str) -> dict[str, dict[str, Any]]:
        """Every staged item of ``tpid``: kind -> id -> value."""

    @abstractmethod
    async def get_tpids(self) -> list[str]:
        """Sorted TPids that have at least one staged item."""

    @abstractmethod
    async def remove_tp(self, tpid: str, kind: str | None = None, id: str | None = None) -> int:
        """Removes a whole TP, one kind of it, or one item; returns how many items went.

        ``id`` without ``kind`` is a ValueError.
        """

    # -------------------------------------------------------------------------------- CDRs
    @abstractmethod
    async def store_cdr(self, cdr: Cdr, allow_update: bool = False) -> int:
        """Stores ``cdr`` and returns its order id (``cdr`` itself is not changed).

        A CDR with the same (cgrid, run_id) raises :class:`DuplicateError`, unless
        ``allow_update``: then the stored one is overwritten in place (re-rating) and keeps its
        order id and created_at.
        """

    @abstractmethod
    async def store_cdrs(self, cdrs: Sequence[Cdr], allow_update: bool = False) -> list[int | None]:
        """Stores a batch in one transaction (group commit).

        Returns, per CDR and in order, its order id, or None when it was a duplicate and was
        skipped (never None with ``allow_update``). Duplicates inside the batch count too.
        Any other error stores nothing.
        """

    @abstractmethod
    async def get_cdrs(self, flt: CdrFilter) -> list[Cdr]:
        """CDRs matching ``flt``, sorted by order id, paginated by its limit/offset."""

    @abstractmethod
    async def count_cdrs(self, flt: CdrFilter) -> int:
        """Number of CDRs matching ``flt``; limit and offset are ignored."""

    @abstractmethod
    async def remove_cdrs(self, flt: CdrFilter) -> int:
        """Removes exactly the CDRs ``get_cdrs(flt)`` would return; returns how many."""


__all__ = [
    "DATADB_SCHEMA_VERSION",
    "STORDB_SCHEMA_VERSION",
    "DataDB",
    "DropKind",
    "DuplicateError",
    "Mutation",
    "SchemaVersionError",
    "StorDB",
    "StorageClosedError",
    "StorageError",
    "Write",
    "check_name",
    "check_schema_version",
    "check_value",
]
