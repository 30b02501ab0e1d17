"""Typed tariff-plan models <-> CGRateS TP JSON (staging APIs) and storage documents.

``to_tp_json`` gives CGRateS's TP shapes (``TPRate``, ``TPRatingProfile`` ...) with money as
``Decimal``, which ``core.types.dumps`` writes as exact JSON numbers (CGRateS's clients expect
numbers); durations are Go duration strings, as CGRateS keeps them in TP objects. ``to_doc`` is the
same shape without ``TPid``/``LoadId`` and with money as strings, for storage. The non-rating kinds
have no TP JSON shape here yet; their documents mirror the row models field by field.

``from_tp_json``/``from_doc`` accept JSON numbers or strings for money and ints (ns) or strings for
durations, and raise ``TariffPlanError`` naming every bad field (``RateSlots[1].Rate: ...``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from core.tariffplan import kinds as k
from core.tariffplan import values as v
from core.tariffplan.errors import TariffPlanError, TariffPlanIssue
from core.tariffplan.models import (
    AccountAction,
    ActionGroup,
    ActionPlan,
    ActionTriggerGroup,
    AttributeProfile,
    ChargerProfile,
    Destination,
    DestinationRate,
    DestinationRateEntry,
    FilterProfile,
    Rate,
    RateSlot,
    RatingActivation,
    RatingPlan,
    RatingPlanBinding,
    RatingProfile,
    ResourceProfile,
    RouteProfile,
    SharedGroup,
    StatProfile,
    ThresholdProfile,
    Timing,
)
from core.types import ZERO, InvalidValue, format_duration, format_time, money_str

TPID: Final = "TPid"
LOAD_ID: Final = "LoadId"
ANY_SET: Final = v.META_ANY  # how CGRateS serialises an empty Timings set

# Row-model classes of the non-rating kinds (their documents are generic).
OTHER_MODELS: Final[dict[str, type[Any]]] = {
    k.KIND_ACTIONS: ActionGroup,
    k.KIND_ACTION_PLANS: ActionPlan,
    k.KIND_ACTION_TRIGGERS: ActionTriggerGroup,
    k.KIND_ACCOUNT_ACTIONS: AccountAction,
    k.KIND_SHARED_GROUPS: SharedGroup,
    k.KIND_ATTRIBUTES: AttributeProfile,
    k.KIND_CHARGERS: ChargerProfile,
    k.KIND_FILTERS: FilterProfile,
    k.KIND_ROUTES: RouteProfile,
    k.KIND_RESOURCES: ResourceProfile,
    k.KIND_STATS: StatProfile,
    k.KIND_THRESHOLDS: ThresholdProfile,
}

Money = Callable[[Decimal], Any]


def model_key(kind: str, model: Any) -> str:
    """The id ``model`` is keyed by in a ``TariffPlan`` (``tenant:ID`` for tenant-scoped items)."""
    key = getattr(model, "key", None)
    if isinstance(key, str):
        return key
    item_id: str = model.id
    return item_id


# ------------------------------------------------------------------------------------- public
def to_tp_json(kind: str, model: Any, tpid: str, *, load_id: str = "") -> dict[str, Any]:
    """CGRateS's TP JSON of a rating item (``TPid`` first, as CGRateS marshals it)."""
    body = _to_rating(kind, model, _exact)
    if kind == k.KIND_RATING_PROFILES:
        return {TPID: tpid, LOAD_ID: load_id, **body}
    return {TPID: tpid, **body}


def from_tp_json(kind: str, doc: Mapping[str, Any], *, timezone: str = "UTC") -> Any:
    """The model of a TP JSON (``TPid``/``LoadId`` ignored); naive times are in ``timezone``."""
    if kind in OTHER_MODELS:
        raise _unsupported(kind)
    return _from_rating(kind, doc, v.time_zone(timezone))


def to_doc(kind: str, model: Any) -> dict[str, Any]:
    """A JSON-safe storage document (money as strings); ``from_doc`` rebuilds ``model`` from it."""
    if kind in OTHER_MODELS:
        encoded: dict[str, Any] = _encode(model)
        return encoded
    return _to_rating(kind, model, money_str)


def from_doc(kind: str, doc: Mapping[str, Any]) -> Any:
    if kind in OTHER_MODELS:
        fields = _Fields(doc)
        model = fields.decode_dataclass(OTHER_MODELS[kind], doc, "")
        fields.raise_if_any()
        return model
    return _from_rating(kind, doc, UTC)


def _unsupported(kind: str) -> InvalidValue:
    if kind in OTHER_MODELS:
        return InvalidValue(f"no TP JSON shape for {kind!r} yet (use to_doc/from_doc)")
    return InvalidValue(f"unknown tariff plan kind {kind!r}")


# ----------------------------------------------------------------------------- rating: encode
def _exact(amount: Decimal) -> Decimal:
    return amount


def _int_set(numbers: frozenset[int]) -> str:
    return v.MULTI_SEP.join(str(n) for n in sorted(numbers)) if numbers else ANY_SET


def _to_rating(kind: str, model: Any, money: Money) -> dict[str, Any]:
    if kind == k.KIND_TIMINGS:
        timing: Timing = model
        time = timing.start_time + (v.MULTI_SEP + timing.end_time if timing.end_time else "")
        return {
            "ID": timing.id,
            "Years": _int_set(timing.years),
            "Months": _int_set(timing.months),
            "MonthDays": _int_set(timing.month_days),
            "WeekDays": _int_set(timing.week_days),
            "Time": time,
        }
    if kind == k.KIND_DESTINATIONS:
        destination: Destination = model
        return {"ID": destination.id, "Prefixes": list(destination.prefixes)}
    if kind == k.KIND_RATES:
        rate: Rate = model
        return {
            "ID": rate.id,
            "RateSlots": [
                {
                    "ConnectFee": money(slot.connect_fee),
                    "Rate": money(slot.rate),
                    "RateUnit": format_duration(slot.rate_unit),
                    "RateIncrement": format_duration(slot.rate_increment),
                    "GroupIntervalStart": format_duration(slot.group_interval_start),
                }
                for slot in rate.slots
            ],
        }
    if kind == k.KIND_DESTINATION_RATES:
        rate_set: DestinationRate = model
        return {
            "ID": rate_set.id,
            "DestinationRates": [
                {
                    "DestinationId": entry.destination_id,
                    "RateId": entry.rate_id,
                    "Rate": None,  # CGRateS's embedded *TPRateRALs, only filled internally
                    "RoundingMethod": entry.rounding_method,
                    "RoundingDecimals": entry.rounding_decimals,
                    "MaxCost": money(entry.max_cost),
                    "MaxCostStrategy": entry.max_cost_strategy,
                }
                for entry in rate_set.entries
            ],
        }
    if kind == k.KIND_RATING_PLANS:
        plan: RatingPlan = model
        return {
            "ID": plan.id,
            "RatingPlanBindings": [
                {
                    "DestinationRatesId": binding.destination_rates_id,
                    "TimingId": binding.timing_id,
                    "Weight": money(binding.weight),
                }
                for binding in plan.bindings
            ],
        }
    if kind == k.KIND_RATING_PROFILES:
        profile: RatingProfile = model
        return {
            "Tenant": profile.tenant,
            "Category": profile.category,
            "Subject": profile.subject,
            "RatingPlanActivations": [
                {
                    "ActivationTime": format_time(activation.activation_time),
                    "RatingPlanId": activation.rating_plan_id,
                    "FallbackSubjects": v.MULTI_SEP.join(activation.fallback_subjects),
                }
                for activation in profile.activations
            ],
        }
    raise _unsupported(kind)


# ----------------------------------------------------------------------------- rating: decode
# ``_Fields.get`` default meaning "a missing field is parsed as CGRateS's zero value, ``""``".
_EMPTY_MEANS_ZERO: Final = object()


class _Fields:
    """Reads JSON fields, collecting ``path: reason`` problems instead of stopping at the first."""

    def __init__(self, doc: Any) -> None:
        self.problems: list[str] = []
        if not isinstance(doc, Mapping):
            self.problems.append("document: expected an object")

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")

    def get(
        self, doc: Any, name: str, path: str, parser: Callable[[Any], Any], default: Any
    ) -> Any:
        """``parser(doc[name])``; a missing/null field gives ``default`` (or, with
        ``_EMPTY_MEANS_ZERO``, is parsed as ``""``, CGRateS's zero value, so it may be refused)."""
        if not isinstance(doc, Mapping):
            return None
        if doc.get(name) is not None:
            value = doc[name]
        elif default is _EMPTY_MEANS_ZERO:
            value = ""
        else:
            return default
        full = f"{path}.{name}" if path else name
        try:
            return parser(value)
        except InvalidValue as exc:
            self.fail(full, str(exc))
        except (TypeError, AttributeError):
            self.fail(full, f"unexpected value {value!r}")
        return None if default is _EMPTY_MEANS_ZERO else default

    def text(self, doc: Any, name: str, path: str, required: bool = False) -> str:
        value: str = self.get(doc, name, path, _string, "")
        if required and not value and isinstance(doc, Mapping):
            self.fail(f"{path}.{name}" if path else name, "empty")
        return value

    def items(self, doc: Any, name: str) -> list[tuple[str, Any]]:
        """``(path, element)`` of a JSON list field (missing/null = empty)."""
        if not isinstance(doc, Mapping) or doc.get(name) is None:
            return []
        value = doc[name]
        if not isinstance(value, list):
            self.fail(name, "expected a list")
            return []
        result: list[tuple[str, Any]] = []
        for index, element in enumerate(value):
            path = f"{name}[{index}]"
            if not isinstance(element, Mapping):
                self.fail(path, "expected an object")
                continue
            result.append((path, element))
        return result

    def raise_if_any(self) -> None:
        if self.problems:
            raise TariffPlanError([TariffPlanIssue("", 0, 0, problem) for problem in self.problems])

    # ------------------------------------------------------------------- generic dataclasses
    def decode_dataclass(self, cls: type[Any], doc: Any, path: str) -> Any:
        if not isinstance(doc, Mapping):
            self.fail(path or "document", "expected an object")
            return None
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            full = f"{path}.{spec.name}" if path else spec.name
            if spec.name not in doc:
                if spec.default is dataclasses.MISSING:
                    self.fail(full, "missing")
                continue
            values[spec.name] = self.decode_value(hints[spec.name], doc[spec.name], full)
        if len(self.problems):
            return None
        return cls(**values)

    def decode_value(self, hint: Any, value: Any, path: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            if value is None:
                return None
            (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            return self.decode_value(inner, value, path)
        if origin is tuple:
            if not isinstance(value, list | tuple):
                self.fail(path, "expected a list")
                return ()
            item_hint = typing.get_args(hint)[0]
            return tuple(
                self.decode_value(item_hint, item, f"{path}[{index}]")
                for index, item in enumerate(value)
            )
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.decode_dataclass(hint, value, path)
        parser = _SCALARS.get(hint)
        if parser is None:
            raise TypeError(f"no document decoding for {hint!r}")
        try:
            return parser(value)
        except InvalidValue as exc:
            self.fail(path, str(exc))
        except (TypeError, AttributeError):
            self.fail(path, f"unexpected value {value!r}")
        return None


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {value!r}")
    return value


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        return v.boolean(_string(value))
    return value


def _utc_moment(value: Any) -> datetime:
    return v.moment(_string(value), UTC)


_SCALARS: Final[dict[Any, Callable[[Any], Any]]] = {
    str: _string,
    int: v.integer,
    bool: _strict_bool,
    Decimal: v.money,
    datetime: _utc_moment,
}


def _from_rating(kind: str, doc: Mapping[str, Any], zone: Any) -> Any:
    fields = _Fields(doc)
    model = _decode_rating(kind, doc, fields, zone)
    fields.raise_if_any()
    return model


def _decode_rating(kind: str, doc: Mapping[str, Any], f: _Fields, zone: Any) -> Any:
    if kind == k.KIND_TIMINGS:
        time = f.get(doc, "Time", "", lambda text: v.timing_time(_string(text)), ("", ""))
        return Timing(
            f.text(doc, "ID", "", required=True),
            f.get(doc, "Years", "", lambda t: v.int_set(_string(t), v.YEARS), frozenset()),
            f.get(doc, "Months", "", lambda t: v.int_set(_string(t), v.MONTHS), frozenset()),
            f.get(
                doc,
                "MonthDays",
                "",
                lambda t: v.int_set(_string(t), v.MONTH_DAYS, frozenset({v.LAST_MONTH_DAY})),
                frozenset(),
            ),
            f.get(doc, "WeekDays", "", lambda t: v.week_days(_string(t)), frozenset()),
            time[0],
            time[1],
        )
    if kind == k.KIND_DESTINATIONS:
        prefixes = f.get(doc, "Prefixes", "", _string_list, [])
        return Destination(f.text(doc, "ID", "", required=True), tuple(prefixes))
    if kind == k.KIND_RATES:
        slots = []
        for path, item in f.items(doc, "RateSlots"):
            known_problems = len(f.problems)
            slot = RateSlot(
                f.get(item, "ConnectFee", path, v.money, ZERO),
                f.get(item, "Rate", path, v.money, ZERO),
                f.get(item, "RateUnit", path, v.duration, 0),
                f.get(item, "RateIncrement", path, v.duration, 0),
                f.get(item, "GroupIntervalStart", path, v.duration, 0),
            )
            if len(f.problems) == known_problems:
                for name, problem in v.rate_slot_problems(
                    slot.rate, slot.rate_unit, slot.rate_increment, slot.group_interval_start
                ):
                    f.fail(f"{path}.{name}", problem)
            slots.append(slot)
        if not f.problems:
            slots.sort(key=lambda slot: slot.group_interval_start)
        return Rate(f.text(doc, "ID", "", required=True), tuple(slots))
    if kind == k.KIND_DESTINATION_RATES:
        entries = [
            DestinationRateEntry(
                f.text(item, "DestinationId", path, required=True),
                f.text(item, "RateId", path, required=True),
                f.get(
                    item,
                    "RoundingMethod",
                    path,
                    lambda text: v.rounding_method(_string(text)),
                    _EMPTY_MEANS_ZERO,
                ),
                f.get(item, "RoundingDecimals", path, v.rounding_decimals, 0),
                f.get(item, "MaxCost", path, v.max_cost, ZERO),
                f.get(
                    item,
                    "MaxCostStrategy",
                    path,
                    lambda text: v.max_cost_strategy(_string(text)),
                    "",
                ),
            )
            for path, item in f.items(doc, "DestinationRates")
        ]
        return DestinationRate(f.text(doc, "ID", "", required=True), tuple(entries))
    if kind == k.KIND_RATING_PLANS:
        bindings = [
            RatingPlanBinding(
                f.text(item, "DestinationRatesId", path, required=True),
                f.text(item, "TimingId", path, required=True),
                f.get(item, "Weight", path, v.money, ZERO),
            )
            for path, item in f.items(doc, "RatingPlanBindings")
        ]
        return RatingPlan(f.text(doc, "ID", "", required=True), tuple(bindings))
    if kind == k.KIND_RATING_PROFILES:
        activations = [
            RatingActivation(
                f.get(
                    item,
                    "ActivationTime",
                    path,
                    lambda text: v.moment(_string(text), zone),
                    _EMPTY_MEANS_ZERO,
                ),
                f.text(item, "RatingPlanId", path, required=True),
                f.get(item, "FallbackSubjects", path, _fallbacks, ()),
            )
            for path, item in f.items(doc, "RatingPlanActivations")
        ]
        if not f.problems:
            activations.sort(key=lambda activation: activation.activation_time)
        return RatingProfile(
            f.text(doc, "Tenant", "", required=True),
            f.text(doc, "Category", "", required=True),
            f.text(doc, "Subject", "", required=True),
            tuple(activations),
        )
    raise _unsupported(kind)


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidValue("expected a list of strings")
    for item in value:
        if not isinstance(item, str) or not item:
            raise InvalidValue(f"expected non-empty strings, got {item!r}")
    return value


def _fallbacks(value: Any) -> tuple[str, ...]:
    """``FallbackSubjects``: a ``;``-string in CGRateS; a list of strings is accepted too."""
    if isinstance(value, list):
        return tuple(_string_list(value))
    return v.id_list(_string(value))


# --------------------------------------------------------------------- non-rating: documents
def _encode(value: Any) -> Any:
    """Dataclass -> JSON-safe dict: Decimal as string, datetime RFC 3339, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {spec.name: _encode(getattr(value, spec.name)) for spec in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, tuple | list | frozenset):
        return [_encode(item) for item in value]
    return value
