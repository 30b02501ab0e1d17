"""Processor flags and the SessionSv1 call they make, as CGRateS's agents/libagents.go."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from agents.templating.errors import TemplateError

FLAG_SEP: Final = ":"
IDS_SEP: Final = "&"
META_IDS: Final = "*ids"
FALSE: Final = "false"

DRY_RUN: Final = "*dryrun"
AUTHORIZE: Final = "*authorize"
INITIATE: Final = "*initiate"
UPDATE: Final = "*update"
TERMINATE: Final = "*terminate"
MESSAGE: Final = "*message"
CDRS: Final = "*cdrs"
EVENT: Final = "*event"
NONE: Final = "*none"
# The request type is the first of these a processor has (CGRateS's order).
REQUEST_TYPES: Final = (DRY_RUN, AUTHORIZE, INITIATE, UPDATE, TERMINATE, MESSAGE, CDRS, EVENT, NONE)

ACCOUNTS: Final = "*accounts"
ATTRIBUTES: Final = "*attributes"
ROUTES: Final = "*routes"
ROUTES_IGNORE_ERRORS: Final = "*routes_ignore_errors"
ROUTES_EVENT_COST: Final = "*routes_event_cost"
ROUTES_MAX_COST: Final = "*routes_maxcost"
RESOURCES: Final = "*resources"
THRESHOLDS: Final = "*thresholds"
STATS: Final = "*stats"
IPS: Final = "*ips"
FORCE_DURATION: Final = "*fd"
LOG: Final = "*log"
CONTINUE: Final = "*continue"
EVENT_COST: Final = "*event_cost"
RADIUS_AUTH: Final = "*radauth"
AUXILIARY_FLAGS: Final = frozenset({
    ACCOUNTS, ATTRIBUTES, ROUTES, ROUTES_IGNORE_ERRORS, ROUTES_EVENT_COST, ROUTES_MAX_COST,
    RESOURCES, THRESHOLDS, STATS, IPS, FORCE_DURATION, LOG, CONTINUE,
    # passed through to SessionSv1.ProcessEvent's Flags
    "*rals", "*chargers", "*cost", "*derived_reply", "*blocker_error", "*sessions",
    # RADIUS authentication, done by the RADIUS agent itself
    RADIUS_AUTH, "*pap", "*chap", "*mschapv2",
    # agent performance reports (CGRateS *daStats etc.)
    "*daStats", "*daThresholds", "*haStats", "*haThresholds", "*dnsStats", "*dnsThresholds",
})  # fmt: skip
KNOWN_FLAGS: Final = frozenset({*REQUEST_TYPES, *AUXILIARY_FLAGS})

SESSION_AUTHORIZE: Final = "SessionSv1.AuthorizeEvent"
SESSION_INITIATE: Final = "SessionSv1.InitiateSession"
SESSION_UPDATE: Final = "SessionSv1.UpdateSession"
SESSION_TERMINATE: Final = "SessionSv1.TerminateSession"
SESSION_MESSAGE: Final = "SessionSv1.ProcessMessage"
SESSION_EVENT: Final = "SessionSv1.ProcessEvent"
SESSION_CDR: Final = "SessionSv1.ProcessCDR"


@dataclass(frozen=True, slots=True)
class Flags:
    """Parsed flags: ``*attributes:*ids:A&B`` is flag ``*attributes`` with param
    ``*ids`` -> ``(A, B)``; ``raw`` keeps the strings as written (ProcessEvent's Flags)."""

    params: dict[str, dict[str, tuple[str, ...]]]
    raw: tuple[str, ...]
    request_type: str

    def has(self, name: str) -> bool:
        return name in self.params

    def on(self, name: str) -> bool:
        """As CGRateS's GetBool: present and not ``name:false``."""
        params = self.params.get(name)
        return params is not None and FALSE not in params

    def ids(self, name: str) -> list[str]:
        return list(self.params.get(name, {}).get(META_IDS, ()))

    def param_value(self, name: str) -> str:
        params = self.params.get(name)
        return next(iter(params), "") if params else ""


def parse_flags(values: Iterable[Any]) -> Flags:
    params: dict[str, dict[str, tuple[str, ...]]] = {}
    raw: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.startswith("*"):
            raise TemplateError(f"bad flag {value!r}")
        name, *rest = value.split(FLAG_SEP)
        if name not in KNOWN_FLAGS:
            raise TemplateError(f"unknown flag {name!r}")
        flag_params = params.setdefault(name, {})
        if rest:
            key, *items = rest
            flag_params[key] = tuple(part for item in items for part in item.split(IDS_SEP) if part)
        raw.append(value)
    request_type = next((name for name in REQUEST_TYPES if name in params), "")
    if not request_type and RADIUS_AUTH not in params:
        raise TemplateError(f"flags {raw} name no request type (one of {list(REQUEST_TYPES)})")
    return Flags(params, tuple(raw), request_type)


@dataclass(frozen=True, slots=True)
class CallPlan:
    """The main SessionSv1 call of a processor: method, its argument flags, and which of
    them asks for MaxUsage (CGRateS's SetMaxUsageNeeded)."""

    method: str
    arguments: dict[str, Any]
    max_usage_flag: str


def _ids(arguments: dict[str, Any], flags: Flags, **names: str) -> dict[str, Any]:
    for key, flag in names.items():
        ids = flags.ids(flag)
        if ids:
            arguments[key] = ids
    return arguments


def _routes_max_cost(flags: Flags) -> str:
    return EVENT_COST if flags.has(ROUTES_EVENT_COST) else flags.param_value(ROUTES_MAX_COST)


def call_plan(flags: Flags) -> CallPlan | None:
    """The main call for the flags' request type (``None`` for *none, *dryrun, *cdrs)."""
    kind = flags.request_type
    fd = flags.has(FORCE_DURATION)
    if kind == AUTHORIZE:
        args = {
            "GetAttributes": flags.on(ATTRIBUTES),
            "AuthorizeIP": flags.on(IPS),
            "AuthorizeResources": flags.on(RESOURCES),
            "GetMaxUsage": flags.has(ACCOUNTS),
            "ForceDuration": fd,
            "ProcessThresholds": flags.on(THRESHOLDS),
            "ProcessStats": flags.on(STATS),
            "GetRoutes": flags.on(ROUTES),
            "RoutesMaxCost": _routes_max_cost(flags),
            "RoutesIgnoreErrors": flags.has(ROUTES_IGNORE_ERRORS),
        }
        _ids(args, flags, AttributeIDs=ATTRIBUTES, ThresholdIDs=THRESHOLDS, StatIDs=STATS)
        return CallPlan(SESSION_AUTHORIZE, args, "GetMaxUsage")
    if kind == INITIATE:
        args = {
            "GetAttributes": flags.on(ATTRIBUTES),
            "AllocateIP": flags.on(IPS),
            "AllocateResources": flags.on(RESOURCES),
            "InitSession": flags.has(ACCOUNTS),
            "ForceDuration": fd,
            "ProcessThresholds": flags.on(THRESHOLDS),
            "ProcessStats": flags.on(STATS),
        }
        _ids(args, flags, AttributeIDs=ATTRIBUTES, ThresholdIDs=THRESHOLDS, StatIDs=STATS)
        return CallPlan(SESSION_INITIATE, args, "InitSession")
    if kind == UPDATE:
        args = {
            "GetAttributes": flags.on(ATTRIBUTES),
            "UpdateSession": flags.has(ACCOUNTS),
            "ForceDuration": fd,
            "ProcessThresholds": flags.on(THRESHOLDS),
            "ProcessStats": flags.on(STATS),
        }
        _ids(args, flags, AttributeIDs=ATTRIBUTES, ThresholdIDs=THRESHOLDS, StatIDs=STATS)
        return CallPlan(SESSION_UPDATE, args, "UpdateSession")
    if kind == TERMINATE:
        args = {
            "TerminateSession": flags.has(ACCOUNTS),
            "ForceDuration": fd,
            "ReleaseIP": flags.on(IPS),
            "ReleaseResources": flags.on(RESOURCES),
            "ProcessThresholds": flags.on(THRESHOLDS),
            "ProcessStats": flags.on(STATS),
        }
        _ids(args, flags, ThresholdIDs=THRESHOLDS, StatIDs=STATS)
        return CallPlan(SESSION_TERMINATE, args, "")
    if kind == MESSAGE:
        args = {
            "GetAttributes": flags.on(ATTRIBUTES),
            "AllocateIP": flags.on(IPS),
            "AllocateResources": flags.on(RESOURCES),
            "Debit": flags.has(ACCOUNTS),
            "ForceDuration": fd,
            "ProcessThresholds": flags.on(THRESHOLDS),
            "ProcessStats": flags.on(STATS),
            "GetRoutes": flags.on(ROUTES),
            "RoutesMaxCost": _routes_max_cost(flags),
            "RoutesIgnoreErrors": flags.has(ROUTES_IGNORE_ERRORS),
        }
        _ids(args, flags, AttributeIDs=ATTRIBUTES, ThresholdIDs=THRESHOLDS, StatIDs=STATS)
        return CallPlan(SESSION_MESSAGE, args, "Debit")
    if kind == EVENT:
        return CallPlan(SESSION_EVENT, {"Flags": list(flags.raw)}, "")
    return None
