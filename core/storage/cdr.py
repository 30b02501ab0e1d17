"""CDRs as CGRateS stores and sends them, the filter that selects them, and their row encoding.

``Cdr`` is the in-engine record (``Decimal`` cost, aware ``datetime`` times, integer nanosecond
usage); :meth:`Cdr.to_dict`/:meth:`Cdr.from_dict` give CGRateS's JSON wire shape. The row codec
(:func:`encode_cdr`/:func:`decode_cdr`) is the back-end-neutral column form every StorDB stores:
times as integer microseconds since the Unix epoch in UTC (exact, and range-comparable in SQL),
cost as a decimal string, JSON columns as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from core.types import (
    InvalidValue,
    dumps,
    format_time,
    loads,
    money_str,
    parse_duration,
    parse_time,
    to_money,
)

# CGRateS marks a CDR that was not rated (or failed rating) with Cost -1.
COST_NOT_RATED: Final = Decimal(-1)
# Go's zero time.Time, which CGRateS sends for an unset SetupTime/AnswerTime.
GO_ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)
GO_ZERO_TIME_TEXT: Final = "0001-01-01T00:00:00Z"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

# Column order of an encoded CDR (order_id, created_at and updated_at are the store's own).
CDR_COLUMNS: Final = (
    "cgrid",
    "run_id",
    "origin_host",
    "source",
    "origin_id",
    "tor",
    "request_type",
    "tenant",
    "category",
    "account",
    "subject",
    "destination",
    "setup_time",
    "answer_time",
    "usage",
    "cost",
    "cost_source",
    "cost_details",
    "extra_fields",
    "extra_info",
    "pre_rated",
)
CdrRow = tuple[Any, ...]
"""An encoded CDR: values in :data:`CDR_COLUMNS` order."""


# ---------------------------------------------------------------------------------------- times
def time_to_micros(moment: datetime | None) -> int | None:
    """Microseconds since the Unix epoch (naive times are taken as UTC); None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def micros_to_time(micros: int | None) -> datetime | None:
    """Inverse of :func:`time_to_micros`, as an aware UTC datetime."""
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _wire_time(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = parse_time(value)
    return None if moment == GO_ZERO_TIME else moment


# ------------------------------------------------------------------------------------------ CDR
@dataclass(slots=True)
class Cdr:
    """One CDR (CGRateS ``engine.CDR``).

    ``setup_time``/``answer_time`` None is Go's zero time (unset); naive times are taken as UTC
    and stored times read back in UTC (same instant). ``cost`` -1 means not rated.
    ``cost_details`` (CGRateS's EventCost) is JSON: Decimals in it come back as floats, so
    callers needing exact money inside must store strings. ``partial`` travels on the wire but,
    as in CGRateS's SQL StorDB, is not stored (reads give False). ``order_id``, ``created_at``
    and ``updated_at`` are assigned by the store.
    """

    cgrid: str = ""
    run_id: str = ""
    order_id: int = 0
    origin_host: str = ""
    source: str = ""
    origin_id: str = ""
    tor: str = ""
    request_type: str = ""
    tenant: str = ""
    category: str = ""
    account: str = ""
    subject: str = ""
    destination: str = ""
    setup_time: datetime | None = None
    answer_time: datetime | None = None
    usage: int = 0
    extra_fields: dict[str, str] = field(default_factory=dict)
    extra_info: str = ""
    partial: bool = False
    pre_rated: bool = False
    cost_source: str = ""
    cost: Decimal = COST_NOT_RATED
    cost_details: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def rated(self) -> bool:
        """True once a cost was computed (CGRateS leaves -1 otherwise)."""
        return self.cost >= 0

    def to_dict(self) -> dict[str, Any]:
        """CGRateS's wire shape; encode with ``core.types.dumps`` (Cost stays exact)."""
        return {
            "CGRID": self.cgrid,
            "RunID": self.run_id,
            "OrderID": self.order_id,
            "OriginHost": self.origin_host,
            "Source": self.source,
            "OriginID": self.origin_id,
            "ToR": self.tor,
            "RequestType": self.request_type,
            "Tenant": self.tenant,
            "Category": self.category,
            "Account": self.account,
            "Subject": self.subject,
            "Destination": self.destination,
            "SetupTime": _format_wire_time(self.setup_time),
            "AnswerTime": _format_wire_time(self.answer_time),
            "Usage": self.usage,
            "ExtraFields": dict(self.extra_fields),
            "ExtraInfo": self.extra_info,
            "Partial": self.partial,
            "PreRated": self.pre_rated,
            "CostSource": self.cost_source,
            "Cost": self.cost,
            "CostDetails": self.cost_details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cdr:
        """Parses the wire shape; missing keys take defaults, bad values raise InvalidValue.

        Usage may be integer nanoseconds or a duration string; times anything
        ``core.types.parse_time`` reads; Cost a number or decimal string.
        """
        extra = data.get("ExtraFields") or {}
        if not isinstance(extra, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in extra.items()
        ):
            raise InvalidValue(f"ExtraFields must map strings to strings: {extra!r}")
        cost = data.get("Cost")
        return cls(
            cgrid=_wire_str(data, "CGRID"),
            run_id=_wire_str(data, "RunID"),
            order_id=_wire_int(data, "OrderID"),
            origin_host=_wire_str(data, "OriginHost"),
            source=_wire_str(data, "Source"),
            origin_id=_wire_str(data, "OriginID"),
            tor=_wire_str(data, "ToR"),
            request_type=_wire_str(data, "RequestType"),
            tenant=_wire_str(data, "Tenant"),
            category=_wire_str(data, "Category"),
            account=_wire_str(data, "Account"),
            subject=_wire_str(data, "Subject"),
            destination=_wire_str(data, "Destination"),
            setup_time=_wire_time(data.get("SetupTime")),
            answer_time=_wire_time(data.get("AnswerTime")),
            usage=parse_duration(data.get("Usage") or 0),
            extra_fields=dict(extra),
            extra_info=_wire_str(data, "ExtraInfo"),
            partial=_wire_bool(data, "Partial"),
            pre_rated=_wire_bool(data, "PreRated"),
            cost_source=_wire_str(data, "CostSource"),
            cost=COST_NOT_RATED if cost is None else to_money(cost),
            cost_details=data.get("CostDetails"),
        )


def _format_wire_time(moment: datetime | None) -> str:
    return GO_ZERO_TIME_TEXT if moment is None else format_time(moment)


def _wire_str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"{name} must be a string: {value!r}")
    return value


def _wire_int(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{name} must be an integer: {value!r}")
    return value


def _wire_bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidValue(f"{name} must be true or false: {value!r}")
    return value


# ------------------------------------------------------------------------------------ row codec
_TEXT_FIELDS: Final = (
    "cgrid",
    "run_id",
    "origin_host",
    "source",
    "origin_id",
    "tor",
    "request_type",
    "tenant",
    "category",
    "account",
    "subject",
    "destination",
    "cost_source",
    "extra_info",
)


def encode_cdr(cdr: Cdr) -> CdrRow:
    """The column values of ``cdr`` in :data:`CDR_COLUMNS` order (validates it on the way)."""
    if not cdr.cgrid:
        raise ValueError("a stored CDR needs a non-empty cgrid")
    for name in _TEXT_FIELDS:
        if type(getattr(cdr, name)) is not str:
            raise TypeError(f"Cdr.{name} must be str, not {getattr(cdr, name)!r}")
    if not isinstance(cdr.extra_fields, dict):
        raise TypeError(f"Cdr.extra_fields must be a dict, not {cdr.extra_fields!r}")
    cost = to_money(cdr.cost)
    if not cost.is_finite():
        raise InvalidValue(f"cost is not finite: {cdr.cost!r}")
    if isinstance(cdr.usage, bool) or not isinstance(cdr.usage, int):
        raise TypeError(f"usage must be integer nanoseconds, not {cdr.usage!r}")
    return (
        cdr.cgrid,
        cdr.run_id,
        cdr.origin_host,
        cdr.source,
        cdr.origin_id,
        cdr.tor,
        cdr.request_type,
        cdr.tenant,
        cdr.category,
        cdr.account,
        cdr.subject,
        cdr.destination,
        time_to_micros(cdr.setup_time),
        time_to_micros(cdr.answer_time),
        cdr.usage,
        money_str(cost),
        cdr.cost_source,
        None if cdr.cost_details is None else dumps(cdr.cost_details).decode(),
        dumps(cdr.extra_fields).decode(),
        cdr.extra_info,
        1 if cdr.pre_rated else 0,
    )


def decode_cdr(row: CdrRow, order_id: int, created_at: int | None, updated_at: int | None) -> Cdr:
    """Inverse of :func:`encode_cdr`, plus the store's own columns."""
    (
        cgrid,
        run_id,
        origin_host,
        source,
        origin_id,
        tor,
        request_type,
        tenant,
        category,
        account,
        subject,
        destination,
        setup_time,
        answer_time,
        usage,
        cost,
        cost_source,
        cost_details,
        extra_fields,
        extra_info,
        pre_rated,
    ) = row
    return Cdr(
        cgrid=cgrid,
        run_id=run_id,
        order_id=order_id,
        origin_host=origin_host,
        source=source,
        origin_id=origin_id,
        tor=tor,
        request_type=request_type,
        tenant=tenant,
        category=category,
        account=account,
        subject=subject,
        destination=destination,
        setup_time=micros_to_time(setup_time),
        answer_time=micros_to_time(answer_time),
        usage=usage,
        extra_fields=loads(extra_fields) if extra_fields else {},
        extra_info=extra_info,
        pre_rated=bool(pre_rated),
        cost_source=cost_source,
        cost=Decimal(cost),
        cost_details=None if cost_details is None else loads(cost_details),
        created_at=micros_to_time(created_at),
        updated_at=micros_to_time(updated_at),
    )


# --------------------------------------------------------------------------------------- filter
_LIST_FIELDS: Final = (
    "cgrids",
    "run_ids",
    "not_run_ids",
    "origin_ids",
    "origin_hosts",
    "tenants",
    "categories",
    "accounts",
    "subjects",
    "destination_prefixes",
    "request_types",
    "tors",
)
_TIME_FIELDS: Final = ("setup_time_start", "setup_time_end", "answer_time_start", "answer_time_end")


@dataclass(frozen=True, slots=True)
class CdrFilter:
    """Selects CDRs like CGRateS's ``utils.CDRsFilter`` (the subset the engine uses).

    Empty lists do not filter. ``*_start``/``min_*`` bounds are inclusive, ``*_end``/``max_*``
    exclusive. CDRs with an unset (None) time never match a bound on that time. Naive datetimes
    are UTC. Costs compare numerically, with CGRateS's two special cases (see
    :meth:`cost_bounds`). Results are sorted by order id (``descending`` reverses), then
    ``offset`` and ``limit`` apply.
    """

    cgrids: Sequence[str] = ()
    run_ids: Sequence[str] = ()
    not_run_ids: Sequence[str] = ()
    origin_ids: Sequence[str] = ()
    origin_hosts: Sequence[str] = ()
    tenants: Sequence[str] = ()
    categories: Sequence[str] = ()
    accounts: Sequence[str] = ()
    subjects: Sequence[str] = ()
    destination_prefixes: Sequence[str] = ()
    request_types: Sequence[str] = ()
    tors: Sequence[str] = ()
    setup_time_start: datetime | None = None
    setup_time_end: datetime | None = None
    answer_time_start: datetime | None = None
    answer_time_end: datetime | None = None
    order_id_start: int | None = None
    order_id_end: int | None = None
    min_usage: int | None = None
    max_usage: int | None = None
    min_cost: Decimal | None = None
    max_cost: Decimal | None = None
    limit: int | None = None
    offset: int = 0
    descending: bool = False

    def __post_init__(self) -> None:
        # Normalised once here so every back end reads the same, hashable values.
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):  # a bare string would filter by its characters
                raise TypeError(f"CdrFilter.{name} must be a list of strings, not a string")
            object.__setattr__(self, name, tuple(value))
        for name in _TIME_FIELDS:
            object.__setattr__(self, name, _aware(getattr(self, name)))
        for name in ("min_cost", "max_cost"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_money(value))
        if self.limit is not None and self.limit < 0:
            raise ValueError("CdrFilter.limit must be >= 0")
        if self.offset < 0:
            raise ValueError("CdrFilter.offset must be >= 0")

    def cost_bounds(self) -> tuple[Decimal | None, Decimal | None]:
        """(inclusive lower, exclusive upper) cost bounds, None meaning unbounded.

        As CGRateS: ``min_cost=0, max_cost=-1`` means "rated ones only" (cost >= 0), and
        ``max_cost=-1`` alone means "not rated ones only" (cost < 0).
        """
        low, high = self.min_cost, self.max_cost
        if high == COST_NOT_RATED:
            if low is None:
                return None, Decimal(0)
            if low == 0:
                return Decimal(0), None
        return low, high

    def matches(self, cdr: Cdr) -> bool:
        """True when ``cdr`` passes every condition (pagination aside); reference semantics."""
        if not (
            _in(self.cgrids, cdr.cgrid)
            and _in(self.run_ids, cdr.run_id)
            and cdr.run_id not in self.not_run_ids
            and _in(self.origin_ids, cdr.origin_id)
            and _in(self.origin_hosts, cdr.origin_host)
            and _in(self.tenants, cdr.tenant)
            and _in(self.categories, cdr.category)
            and _in(self.accounts, cdr.account)
            and _in(self.subjects, cdr.subject)
            and _in(self.request_types, cdr.request_type)
            and _in(self.tors, cdr.tor)
        ):
            return False
        if self.destination_prefixes and not cdr.destination.startswith(
            tuple(self.destination_prefixes)
        ):
            return False
        if not (
            _within(_aware(cdr.setup_time), self.setup_time_start, self.setup_time_end)
            and _within(_aware(cdr.answer_time), self.answer_time_start, self.answer_time_end)
            and _within(cdr.order_id, self.order_id_start, self.order_id_end)
            and _within(cdr.usage, self.min_usage, self.max_usage)
        ):
            return False
        low, high = self.cost_bounds()
        return _within(to_money(cdr.cost), low, high)


def _in(allowed: Sequence[str], value: str) -> bool:
    return not allowed or value in allowed


def _within(value: Any, low: Any, high: Any) -> bool:
    if value is None:
        return low is None and high is None
    return (low is None or value >= low) and (high is None or value < high)


__all__ = [
    "CDR_COLUMNS",
    "COST_NOT_RATED",
    "GO_ZERO_TIME",
    "Cdr",
    "CdrFilter",
    "CdrRow",
    "decode_cdr",
    "encode_cdr",
    "micros_to_time",
    "time_to_micros",
]
