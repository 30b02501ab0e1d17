"""Reads a CGRateS tariff-plan folder (``Rates.csv``, ``Attributes.csv`` ...) into a TariffPlan.

Pure reading: every value is parsed and checked, rows are grouped per item the way CGRateS groups
them, and every problem of the folder is reported as ``FILE:LINE:COLUMN: Field: reason``. Cross-file
references are checked by ``validate``. A plan with any problem is never returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson

from core.tariffplan import kinds as k
from core.tariffplan import values as v
from core.tariffplan.csvfmt import (
    COLUMNS,
    COMMENT,
    LEGACY_COUNTS,
    SEPARATOR,
    Position,
    decode,
    field_position,
    iter_records,
)
from core.tariffplan.errors import MAX_ISSUES, IssueList, TariffPlanError, TariffPlanIssue
from core.tariffplan.filters import check_filter_ids, check_filter_rule, split_filter_values
from core.tariffplan.models import (
    META_ANY,
    AccountAction,
    Action,
    ActionGroup,
    ActionPlan,
    ActionTiming,
    ActionTrigger,
    ActionTriggerGroup,
    ActivationInterval,
    Attribute,
    AttributeProfile,
    ChargerProfile,
    Destination,
    DestinationRate,
    DestinationRateEntry,
    FilterProfile,
    FilterRule,
    Rate,
    RateSlot,
    RatingActivation,
    RatingPlan,
    RatingPlanBinding,
    RatingProfile,
    ResourceProfile,
    Route,
    RouteProfile,
    SharedGroup,
    SharedGroupMember,
    StatMetric,
    StatProfile,
    ThresholdProfile,
    Timing,
    rating_profile_key,
    tenant_key,
)
from core.tariffplan.sources import ReadPlan, SourceFile, SourceMap
from core.types import ZERO, InvalidValue

Progress = Callable[[int, int], None]

PROGRESS_EVERY_LINES: Final = 1 << 16
BALANCE_TYPE_VOICE: Final = "*voice"
MEMO_LIMIT: Final = 4096  # distinct texts memoised per column
_LAST_DAY: Final = frozenset({v.LAST_MONTH_DAY})


def read_folder(
    path: Path,
    progress: Progress | None = None,
    *,
    timezone: str = "UTC",
    separator: str = SEPARATOR,
) -> ReadPlan:
    """Reads every known CGRateS file in ``path`` and its subfolders (missing ones are fine).

    As CGRateS's loader, files of the same kind in subfolders add to the root's. ``progress(done,
    total)`` gets bytes read over the total size of the files, for a progress bar. Naive times are
    taken in ``timezone`` (CGRateS's general timezone); ``separator`` is its ``-field_sep``.
    Raises ``TariffPlanError`` listing every problem found (the first ``MAX_ISSUES``).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise TariffPlanError([TariffPlanIssue(str(folder), 0, 0, "not a folder")])
    if len(separator) != 1 or separator in ('"', "\n", "\r", COMMENT):
        raise ValueError(f"invalid field separator: {separator!r}")
    sources = _find_files(folder)
    total = sum(source.size for files in sources.values() for source in files)
    done = 0
    if progress is not None:
        progress(0, total)
    issues = IssueList(MAX_ISSUES)
    builder = _Builder(v.time_zone(timezone))
    for kind in k.ALL_KINDS:  # referenced kinds first, as CGRateS loads them
        for source in sources.get(kind, ()):
            _read_file(kind, source, builder, issues, separator, progress, done, total)
            done += source.size
            if progress is not None:
                progress(done, total)
    issues.raise_if_any()
    plan = builder.build()
    plan.sources = SourceMap(sources, separator)
    return plan


def _find_files(folder: Path) -> dict[str, tuple[SourceFile, ...]]:
    """The plan files per kind: the folder's own first, then subfolders in name order."""
    found: dict[str, list[SourceFile]] = {}
    for directory, subdirectories, _ in os.walk(folder):
        subdirectories.sort()
        base = Path(directory)
        for kind, name in k.FILE_NAMES.items():
            file = base / name
            if file.is_file():
                display = file.relative_to(folder).as_posix()
                found.setdefault(kind, []).append(SourceFile.of(display, file))
    return {kind: tuple(files) for kind, files in found.items()}


def _read_file(
    kind: str,
    source: SourceFile,
    builder: _Builder,
    issues: IssueList,
    separator: str,
    progress: Progress | None,
    done_before: int,
    total: int,
) -> None:
    file = source.name

    def syntax(line: int, column: int, reason: str) -> None:
        issues.add(file, line, column, reason)

    try:
        data = source.path.read_bytes()
    except OSError as exc:
        issues.add(file, 0, 0, f"cannot read: {exc.strerror or exc}")
        return
    text = decode(data, syntax)
    if text is None:
        return
    columns = COLUMNS[kind]
    expected = len(columns)
    legacy = LEGACY_COUNTS.get(kind, frozenset())
    handler = builder.handlers[kind]
    row = _Row(file, columns, issues, builder.zone)
    report_at = PROGRESS_EVERY_LINES if progress is not None else 1 << 62
    line_count = text.count("\n") + 1
    for line, fields, positions in iter_records(text, syntax, separator):
        count = len(fields)
        if count != expected:
            if count not in legacy:
                issues.add(
                    file, line, 1, f"wrong number of fields: expected {expected}, got {count}"
                )
                continue
            fields.extend([""] * (expected - count))
        row.line = line
        row.fields = fields
        row.positions = positions
        row.failed = False
        handler(row)
        if line >= report_at and progress is not None:
            report_at = line + PROGRESS_EVERY_LINES
            progress(done_before + source.size * line // line_count, total)


class _Row:
    """The record being read, with value parsers that report ``FILE:LINE:COLUMN: Field: reason``.

    On a bad value a parser records the issue, marks the row ``failed`` and returns a harmless
    placeholder; handlers drop failed rows after parsing all fields, so every problem is reported.
    """

    __slots__ = (
        "columns",
        "failed",
        "fields",
        "file",
        "issues",
        "line",
        "memo",
        "positions",
        "zone",
    )

    def __init__(self, file: str, columns: tuple[str, ...], issues: IssueList, zone: Any) -> None:
        self.file = file
        self.columns = columns
        self.issues = issues
        self.zone = zone
        self.line = 0
        self.fields: list[str] = []
        self.positions: list[Position] | None = None
        self.failed = False
        # Parsed values per column: big files repeat the same few texts ("*up", "4", "60s").
        self.memo: list[dict[str, Any]] = [{} for _ in columns]

    def where(self, index: int) -> Position:
        return field_position(self.line, self.fields, self.positions, index)

    def error(self, index: int, reason: str) -> None:
        line, column = self.where(index)
        self.issues.add(self.file, line, column, f"{self.columns[index]}: {reason}")
        self.failed = True

    def required(self, index: int) -> str:
        text = self.fields[index]
        if not text:
            self.error(index, "empty")
        return text

    def parse(self, index: int, parser: Callable[[str], Any], default: Any) -> Any:
        """``parser(field)``, memoised per column (parsers are pure, results immutable)."""
        text = self.fields[index]
        memo = self.memo[index]
        if text in memo:
            return memo[text]
        try:
            value = parser(text)
        except InvalidValue as exc:
            self.error(index, str(exc))
            return default
        if len(memo) < MEMO_LIMIT:
            memo[text] = value
        return value

    def money(self, index: int) -> Decimal:
        result: Decimal = self.parse(index, v.money, ZERO)
        return result

    def integer(self, index: int) -> int:
        result: int = self.parse(index, v.integer, 0)
        return result

    def boolean(self, index: int) -> bool:
        result: bool = self.parse(index, v.boolean, False)
        return result

    def optional_boolean(self, index: int) -> bool | None:
        result: bool | None = self.parse(index, v.optional_boolean, None)
        return result

    def duration(self, index: int) -> int:
        result: int = self.parse(index, v.duration, 0)
        return result

    def time_expression(self, index: int) -> str:
        return str(self.parse(index, lambda text: v.time_expression(text, self.zone), ""))

    def ids(self, index: int) -> tuple[str, ...]:
        return v.id_list(self.fields[index])

    def filter_ids(self, index: int) -> tuple[str, ...]:
        """A FilterIDs field: ids, or inline ``*type:element:values`` filters checked here."""
        ids = v.id_list(self.fields[index])
        for problem in check_filter_ids(ids):
            self.error(index, problem)
        return ids

    def activation_interval(self, index: int) -> ActivationInterval | None:
        """``activation[;expiry]``; ``None`` when the field is empty."""
        text = self.fields[index]
        if not text:
            return None
        parts = text.split(v.MULTI_SEP)
        if len(parts) > 2:
            self.error(index, f"expected 'activation;expiry', got {text!r}")
            return None
        try:
            start = v.optional_moment(parts[0], self.zone)
            end = v.optional_moment(parts[1], self.zone) if len(parts) == 2 else None
        except InvalidValue as exc:
            self.error(index, str(exc))
            return None
        return ActivationInterval(start, end)


def _charger_attribute_ids(text: str) -> list[str]:
    """CGRateS's split of Chargers AttributeIDs: consecutive ``*``-pieces form one inline attribute
    (``*constant:*req.X:1``), and ``<...>`` dynamic parts may hold ``;``."""
    result: list[str] = []
    inline: list[str] = []
    dynamic = False
    for piece in text.split(v.MULTI_SEP):
        if not dynamic and not piece.startswith("*"):
            if inline:
                result.append(v.MULTI_SEP.join(inline))
                inline = []
            result.append(piece)
            continue
        dynamic = ">" not in piece if dynamic else "<" in piece
        inline.append(piece)
    if inline:
        result.append(v.MULTI_SEP.join(inline))
    return result


class _Profile:
    """Mutable accumulator for one tenant-scoped profile while its rows are merged."""

    __slots__ = ("fields", "lists", "sets")

    def __init__(self, **fields: Any) -> None:
        self.fields: dict[str, Any] = fields
        self.sets: dict[str, dict[str, None]] = {}  # ordered sets (CGRateS StringSet)
        self.lists: dict[str, list[Any]] = {}

    def add_all(self, name: str, items: tuple[str, ...] | list[str]) -> None:
        target = self.sets.setdefault(name, {})
        for item in items:
            target[item] = None

    def append(self, name: str, item: Any) -> None:
        self.lists.setdefault(name, []).append(item)

    def build(self, cls: Callable[..., Any], **extra: Any) -> Any:
        values = dict(self.fields)
        for name, items in self.sets.items():
            values[name] = tuple(items)
        for name, entries in self.lists.items():
            values[name] = tuple(entries)
        values.update(extra)
        return cls(**values)


class _Builder:
    """Accumulates rows per item, then builds the frozen models."""

    def __init__(self, zone: Any) -> None:
        self.zone = zone
        self.timings: dict[str, Timing] = {}
        self.timing_lines: dict[str, int] = {}
        self.destinations: dict[str, str | list[str]] = {}  # str: a single prefix
        self.rates: dict[str, list[RateSlot]] = {}
        self.destination_rates: dict[str, list[DestinationRateEntry]] = {}
        self.rating_plans: dict[str, list[RatingPlanBinding]] = {}
        self.rating_profiles: dict[str, tuple[str, str, str, list[RatingActivation]]] = {}
        self.actions: dict[str, list[Action]] = {}
        self.action_plans: dict[str, list[ActionTiming]] = {}
        self.action_triggers: dict[str, list[ActionTrigger]] = {}
        self.account_actions: dict[str, AccountAction] = {}
        self.shared_groups: dict[str, list[SharedGroupMember]] = {}
        self.profiles: dict[str, dict[str, _Profile]] = {
            kind: {}
            for kind in (
                k.KIND_ATTRIBUTES,
                k.KIND_CHARGERS,
                k.KIND_FILTERS,
                k.KIND_ROUTES,
                k.KIND_RESOURCES,
                k.KIND_STATS,
                k.KIND_THRESHOLDS,
            )
        }
        self.routes: dict[str, dict[tuple[str, frozenset[str]], _Profile]] = {}
        self.filter_rules: dict[str, dict[tuple[str, str], list[str]]] = {}
        self.stat_metrics: dict[str, dict[str, list[str]]] = {}
        self.handlers: dict[str, Callable[[_Row], None]] = {
            k.KIND_TIMINGS: self.timing,
            k.KIND_DESTINATIONS: self.destination,
            k.KIND_RATES: self.rate,
            k.KIND_DESTINATION_RATES: self.destination_rate,
            k.KIND_RATING_PLANS: self.rating_plan,
            k.KIND_RATING_PROFILES: self.rating_profile,
            k.KIND_ACTIONS: self.action,
            k.KIND_ACTION_PLANS: self.action_plan,
            k.KIND_ACTION_TRIGGERS: self.action_trigger,
            k.KIND_ACCOUNT_ACTIONS: self.account_action,
            k.KIND_SHARED_GROUPS: self.shared_group,
            k.KIND_ATTRIBUTES: self.attribute,
            k.KIND_CHARGERS: self.charger,
            k.KIND_FILTERS: self.filter,
            k.KIND_ROUTES: self.route,
            k.KIND_RESOURCES: self.resource,
            k.KIND_STATS: self.stat,
            k.KIND_THRESHOLDS: self.threshold,
        }

    # ------------------------------------------------------------------------------- rating rows
    def timing(self, row: _Row) -> None:
        timing_id = row.required(0)
        years = row.parse(1, lambda text: v.int_set(text, v.YEARS), frozenset())
        months = row.parse(2, lambda text: v.int_set(text, v.MONTHS), frozenset())
        month_days = row.parse(
            3, lambda text: v.int_set(text, v.MONTH_DAYS, _LAST_DAY), frozenset()
        )
        week_days = row.parse(4, v.week_days, frozenset())
        start, end = row.parse(5, v.timing_time, ("", ""))
        first = self.timing_lines.get(timing_id)
        if first is not None:
            row.error(0, f"duplicate timing {timing_id!r} (first at line {first})")
        if row.failed:
            return
        self.timing_lines[timing_id] = row.line
        self.timings[timing_id] = Timing(
            timing_id, years, months, month_days, week_days, start, end
        )

    def destination(self, row: _Row) -> None:
        # Hot path (a million rows): no helper calls unless something is wrong, and a lone
        # prefix is kept as a bare string (most destinations have one) to spare a list.
        fields = row.fields
        destination_id = fields[0]
        prefix = fields[1]
        if not destination_id or not prefix:
            row.required(0)
            row.required(1)
            return
        destinations = self.destinations
        prefixes = destinations.get(destination_id)
        if prefixes is None:
            destinations[destination_id] = prefix
        elif isinstance(prefixes, str):
            destinations[destination_id] = [prefixes, prefix]
        else:
            prefixes.append(prefix)

    def rate(self, row: _Row) -> None:
        rate_id = row.required(0)
        connect_fee = row.money(1)
        price = row.money(2)
        unit = row.duration(3)
        increment = row.duration(4)
        start = row.duration(5)
        if not row.failed:
            for column, problem in v.rate_slot_problems(price, unit, increment, start):
                row.error(row.columns.index(column), problem)
        if row.failed:
            return
        slot = RateSlot(connect_fee, price, unit, increment, start)
        self.rates.setdefault(rate_id, []).append(slot)

    def destination_rate(self, row: _Row) -> None:
        rate_set_id = row.required(0)
        destination_id = row.required(1)
        rate_id = row.required(2)
        method: str = row.parse(3, v.rounding_method, "")
        decimals: int = row.parse(4, v.rounding_decimals, 0)
        max_cost: Decimal = row.parse(5, v.max_cost, ZERO)
        strategy: str = row.parse(6, v.max_cost_strategy, "")
        if row.failed:
            return
        entry = DestinationRateEntry(destination_id, rate_id, method, decimals, max_cost, strategy)
        self.destination_rates.setdefault(rate_set_id, []).append(entry)

    def rating_plan(self, row: _Row) -> None:
        plan_id = row.required(0)
        destination_rates_id = row.required(1)
        timing_id = row.required(2)
        weight = row.money(3)
        if row.failed:
            return
        binding = RatingPlanBinding(destination_rates_id, timing_id, weight)
        self.rating_plans.setdefault(plan_id, []).append(binding)

    def rating_profile(self, row: _Row) -> None:
        tenant = row.required(0)
        category = row.required(1)
        subject = row.required(2)
        activation_time: datetime = row.parse(3, lambda text: v.moment(text, self.zone), None)
        plan_id = row.required(4)
        fallbacks = row.ids(5)
        if row.failed:
            return
        key = rating_profile_key(tenant, category, subject)
        entry = self.rating_profiles.get(key)
        if entry is None:
            entry = self.rating_profiles[key] = (tenant, category, subject, [])
        entry[3].append(RatingActivation(activation_time, plan_id, fallbacks))

    # -------------------------------------------------------------------------- account actions
    def action(self, row: _Row) -> None:
        group_id = row.required(0)
        action_type = row.required(1)
        filters = row.filter_ids(3)
        balance_type = _unset_any(row.fields[5])
        units = row.fields[12]
        if units not in ("", META_ANY):
            _check_units(row, 12, balance_type)
        balance_weight = str(row.parse(13, v.balance_weight, ""))
        action = Action(
            action_type=action_type,
            extra_parameters=row.fields[2],
            filters=filters,
            balance_id=_unset_any(row.fields[4]),
            balance_type=balance_type,
            categories=row.ids(6),
            destination_ids=row.ids(7),
            rating_subject=_unset_any(row.fields[8]),
            shared_groups=row.ids(9),
            expiry_time=row.time_expression(10),
            timing_ids=row.ids(11),
            units=_unset_any(units),
            balance_weight=_unset_any(balance_weight),
            balance_blocker=row.optional_boolean(14),
            balance_disabled=row.optional_boolean(15),
            weight=row.money(16),
        )
        if not row.failed:
            self.actions.setdefault(group_id, []).append(action)

    def action_plan(self, row: _Row) -> None:
        plan_id = row.required(0)
        timing = ActionTiming(row.required(1), row.required(2), row.money(3))
        if not row.failed:
            self.action_plans.setdefault(plan_id, []).append(timing)

    def action_trigger(self, row: _Row) -> None:
        group_id = row.required(0)
        balance_weight: Decimal | None = None
        if row.fields[16] not in ("", META_ANY):
            balance_weight = row.money(16)
        trigger = ActionTrigger(
            threshold_type=row.required(2),
            threshold_value=row.money(3),
            actions_id=row.required(19),
            unique_id=row.fields[1],
            recurrent=row.boolean(4),
            min_sleep=row.duration(5),
            expiry_time=row.time_expression(6),
            activation_time=row.time_expression(7),
            balance_id=_unset_any(row.fields[8]),
            balance_type=_unset_any(row.fields[9]),
            balance_categories=row.ids(10),
            balance_destination_ids=row.ids(11),
            balance_rating_subject=_unset_any(row.fields[12]),
            balance_shared_groups=row.ids(13),
            balance_expiry_time=row.time_expression(14),
            balance_timing_ids=row.ids(15),
            balance_weight=balance_weight,
            balance_blocker=row.optional_boolean(17),
            balance_disabled=row.optional_boolean(18),
            weight=row.money(20),
        )
        if not row.failed:
            self.action_triggers.setdefault(group_id, []).append(trigger)

    def account_action(self, row: _Row) -> None:
        account = AccountAction(
            tenant=row.required(0),
            account=row.required(1),
            action_plan_id=row.fields[2],
            action_triggers_id=row.fields[3],
            allow_negative=row.boolean(4),
            disabled=row.boolean(5),
        )
        if not row.failed:  # CGRateS keeps the last row of an account
            self.account_actions[account.key] = account

    def shared_group(self, row: _Row) -> None:
        group_id = row.required(0)
        member = SharedGroupMember(row.required(1), row.fields[2], row.fields[3])
        if not row.failed:
            self.shared_groups.setdefault(group_id, []).append(member)

    # ------------------------------------------------------------------- tenant-scoped profiles
    def _profile(self, kind: str, row: _Row, **first_row: Any) -> tuple[str, _Profile] | None:
        """The profile a row merges into; ``first_row`` fields are taken only from its first row."""
        tenant = row.required(0)
        profile_id = row.required(1)
        if row.failed:
            return None
        key = tenant_key(tenant, profile_id)
        profiles = self.profiles[kind]
        profile = profiles.get(key)
        if profile is None:
            profile = profiles[key] = _Profile(tenant=tenant, id=profile_id, **first_row)
        return key, profile

    def attribute(self, row: _Row) -> None:
        contexts = row.ids(2)
        filter_ids = row.filter_ids(3)
        interval = row.activation_interval(4)
        attribute_filters = row.filter_ids(5)
        path, kind_, value = row.fields[6], row.fields[7], row.fields[8]
        blocker = row.boolean(9)
        weight = row.money(10)
        found = self._profile(k.KIND_ATTRIBUTES, row, blocker=blocker)
        if found is None or row.failed:
            return
        profile = found[1]
        _merge_common(profile, filter_ids, interval, weight)
        profile.add_all("contexts", contexts)
        if path:  # CGRateS ignores the attribute part of a row without a Path
            profile.append("attributes", Attribute(path, kind_, value, attribute_filters))

    def charger(self, row: _Row) -> None:
        filter_ids = row.filter_ids(2)
        interval = row.activation_interval(3)
        run_id = row.fields[4]
        attribute_ids = _charger_attribute_ids(row.fields[5]) if row.fields[5] else []
        weight = row.money(6)
        found = self._profile(k.KIND_CHARGERS, row)
        if found is None or row.failed:
            return
        profile = found[1]
        _merge_common(profile, filter_ids, interval, weight)
        if run_id:
            profile.fields["run_id"] = run_id
        for attribute_id in attribute_ids:
            profile.append("attribute_ids", attribute_id)

    def filter(self, row: _Row) -> None:
        rule_type, element = row.fields[2], row.fields[3]
        values = tuple(split_filter_values(row.fields[4])) if row.fields[4] else ()
        if rule_type:
            problem = check_filter_rule(rule_type, element, values)
            if problem:
                row.error(2, problem)
        interval = row.activation_interval(5)
        found = self._profile(k.KIND_FILTERS, row)
        if found is None or row.failed:
            return
        key, profile = found
        if interval is not None:
            profile.fields["activation_interval"] = interval
        if not rule_type:
            return
        rules = self.filter_rules.setdefault(key, {})
        existing = rules.get((rule_type, element))
        if existing is None:  # rows with the same Type and Element extend one rule
            rules[(rule_type, element)] = list(values)
        else:
            existing.extend(values)

    def route(self, row: _Row) -> None:
        filter_ids = row.filter_ids(2)
        interval = row.activation_interval(3)
        sorting = row.fields[4]
        sorting_parameters = row.ids(5)
        route_id = row.fields[6]
        route_filters = row.filter_ids(7)
        route_weight = row.money(12)
        route_blocker = row.boolean(13)
        weight = row.money(15)
        found = self._profile(k.KIND_ROUTES, row)
        if found is None or row.failed:
            return
        key, profile = found
        _merge_common(profile, filter_ids, interval, weight)
        if sorting:
            profile.fields["sorting"] = sorting
        profile.add_all("sorting_parameters", sorting_parameters)
        if not route_id:
            return
        # CGRateS merges rows of one RouteID with the same RouteFilterIDs set into one route.
        routes = self.routes.setdefault(key, {})
        route_key = (route_id, frozenset(route_filters))
        route = routes.get(route_key)
        if route is None:
            route = routes[route_key] = _Profile(
                id=route_id,
                weight=route_weight,
                blocker=route_blocker,
                route_parameters=row.fields[14],
            )
        for name, index in (
            ("filter_ids", 7),
            ("account_ids", 8),
            ("rating_plan_ids", 9),
            ("resource_ids", 10),
            ("stat_ids", 11),
        ):
            for item in row.ids(index):
                route.append(name, item)

    def resource(self, row: _Row) -> None:
        filter_ids = row.filter_ids(2)
        interval = row.activation_interval(3)
        usage_ttl = row.duration(4)
        limit = row.money(5)
        blocker = row.boolean(7)
        stored = row.boolean(8)
        weight = row.money(9)
        threshold_ids = row.ids(10)
        found = self._profile(k.KIND_RESOURCES, row)
        if found is None or row.failed:
            return
        profile = found[1]
        _merge_common(profile, filter_ids, interval, weight)
        fields = profile.fields
        if row.fields[4]:
            fields["usage_ttl"] = usage_ttl
        if row.fields[5]:
            fields["limit"] = limit
        if row.fields[6]:
            fields["allocation_message"] = row.fields[6]
        fields["blocker"] = blocker  # CGRateS: the last row decides these two
        fields["stored"] = stored
        profile.add_all("threshold_ids", threshold_ids)

    def stat(self, row: _Row) -> None:
        filter_ids = row.filter_ids(2)
        interval = row.activation_interval(3)
        queue_length = row.integer(4)
        ttl = row.duration(5)
        min_items = row.integer(6)
        metric_ids = row.ids(7)
        metric_filters = row.filter_ids(8)
        stored = row.boolean(9)
        blocker = row.boolean(10)
        weight = row.money(11)
        threshold_ids = row.ids(12)
        found = self._profile(k.KIND_STATS, row)
        if found is None or row.failed:
            return
        key, profile = found
        _merge_common(profile, filter_ids, interval, weight)
        fields = profile.fields
        if blocker:
            fields["blocker"] = True
        if stored:
            fields["stored"] = True
        if min_items:
            fields["min_items"] = min_items
        if row.fields[5]:
            fields["ttl"] = ttl
        if queue_length:
            fields["queue_length"] = queue_length
        profile.add_all("threshold_ids", threshold_ids)
        metrics = self.stat_metrics.setdefault(key, {})
        for metric_id in metric_ids:
            metrics.setdefault(metric_id, []).extend(metric_filters)

    def threshold(self, row: _Row) -> None:
        filter_ids = row.filter_ids(2)
        interval = row.activation_interval(3)
        max_hits = row.integer(4)
        min_hits = row.integer(5)
        min_sleep = row.duration(6)
        blocker = row.boolean(7)
        weight = row.money(8)
        action_ids = row.ids(9)
        asynchronous = row.boolean(10)
        ee_ids = row.ids(11)
        found = self._profile(
            k.KIND_THRESHOLDS,
            row,
            max_hits=max_hits,
            min_hits=min_hits,
            min_sleep=min_sleep,
            blocker=blocker,
            asynchronous=asynchronous,
        )
        if found is None or row.failed:
            return
        profile = found[1]
        _merge_common(profile, filter_ids, interval, weight)
        profile.add_all("action_ids", action_ids)
        profile.add_all("ee_ids", ee_ids)

    # ------------------------------------------------------------------------------------- build
    def build(self) -> ReadPlan:
        plan = ReadPlan()
        plan.timings = self.timings
        plan.destinations = {
            destination_id: Destination(
                destination_id,
                (prefixes,) if isinstance(prefixes, str) else tuple(dict.fromkeys(prefixes)),
            )
            for destination_id, prefixes in self.destinations.items()
        }
        plan.rates = {
            rate_id: Rate(rate_id, tuple(sorted(slots, key=_slot_start)))
            for rate_id, slots in self.rates.items()
        }
        plan.destination_rates = {
            item_id: DestinationRate(item_id, tuple(entries))
            for item_id, entries in self.destination_rates.items()
        }
        plan.rating_plans = {
            item_id: RatingPlan(item_id, tuple(bindings))
            for item_id, bindings in self.rating_plans.items()
        }
        plan.rating_profiles = {
            key: RatingProfile(
                tenant,
                category,
                subject,
                tuple(sorted(activations, key=_activation_time)),
            )
            for key, (tenant, category, subject, activations) in self.rating_profiles.items()
        }
        others = plan.others
        others[k.KIND_ACTIONS] = {
            item_id: ActionGroup(item_id, tuple(items)) for item_id, items in self.actions.items()
        }
        others[k.KIND_ACTION_PLANS] = {
            item_id: ActionPlan(item_id, tuple(items))
            for item_id, items in self.action_plans.items()
        }
        others[k.KIND_ACTION_TRIGGERS] = {
            item_id: ActionTriggerGroup(item_id, tuple(items))
            for item_id, items in self.action_triggers.items()
        }
        others[k.KIND_ACCOUNT_ACTIONS] = dict(self.account_actions)
        others[k.KIND_SHARED_GROUPS] = {
            item_id: SharedGroup(item_id, tuple(items))
            for item_id, items in self.shared_groups.items()
        }
        profiles = self.profiles
        others[k.KIND_ATTRIBUTES] = _build_all(profiles[k.KIND_ATTRIBUTES], AttributeProfile)
        others[k.KIND_CHARGERS] = _build_all(profiles[k.KIND_CHARGERS], ChargerProfile)
        others[k.KIND_FILTERS] = {
            key: profile.build(
                FilterProfile,
                rules=tuple(
                    FilterRule(rule_type, element, tuple(rule_values))
                    for (rule_type, element), rule_values in self.filter_rules.get(key, {}).items()
                ),
            )
            for key, profile in profiles[k.KIND_FILTERS].items()
        }
        others[k.KIND_ROUTES] = {
            key: profile.build(
                RouteProfile,
                routes=tuple(
                    route.build(Route, **_deduplicated(route))
                    for route in self.routes.get(key, {}).values()
                ),
            )
            for key, profile in profiles[k.KIND_ROUTES].items()
        }
        others[k.KIND_RESOURCES] = _build_all(profiles[k.KIND_RESOURCES], ResourceProfile)
        others[k.KIND_STATS] = {
            key: profile.build(
                StatProfile,
                metrics=tuple(
                    StatMetric(metric_id, tuple(dict.fromkeys(metric_filters)))
                    for metric_id, metric_filters in self.stat_metrics.get(key, {}).items()
                ),
            )
            for key, profile in profiles[k.KIND_STATS].items()
        }
        others[k.KIND_THRESHOLDS] = _build_all(profiles[k.KIND_THRESHOLDS], ThresholdProfile)
        return plan


def _merge_common(
    profile: _Profile,
    filter_ids: tuple[str, ...],
    interval: ActivationInterval | None,
    weight: Decimal,
) -> None:
    """What every CGRateS profile merges alike: FilterIDs union, last non-empty interval and
    last non-zero weight."""
    profile.add_all("filter_ids", filter_ids)
    if interval is not None:
        profile.fields["activation_interval"] = interval
    if weight:
        profile.fields["weight"] = weight


def _deduplicated(route: _Profile) -> dict[str, tuple[str, ...]]:
    return {name: tuple(dict.fromkeys(items)) for name, items in route.lists.items()}


def _build_all(profiles: dict[str, _Profile], cls: Callable[..., Any]) -> dict[str, Any]:
    return {key: profile.build(cls) for key, profile in profiles.items()}


def _slot_start(slot: RateSlot) -> int:
    return slot.group_interval_start


def _activation_time(activation: RatingActivation) -> datetime:
    return activation.activation_time


def _unset_any(text: str) -> str:
    """Balance filters: ``*any`` means "not set" (CGRateS leaves the filter field nil)."""
    return "" if text == META_ANY else text


def _check_units(row: _Row, index: int, balance_type: str) -> None:
    """Action Units: a duration for *voice, else a number, or a JSON value formula object."""
    text = row.fields[index]
    try:
        if balance_type == BALANCE_TYPE_VOICE:
            v.duration(text)
        else:
            v.money(text)
        return
    except InvalidValue as exc:
        problem = str(exc)
    try:
        if isinstance(orjson.loads(text), dict):
            return
    except orjson.JSONDecodeError:
        pass
    row.error(index, problem)
