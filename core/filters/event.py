"""CGRateS's CGREvent and the data provider filters and attributes read it through.

An ``EventView`` is CGRateS's ``utils.MapStorage`` over one event: ``*req`` is the event's fields,
``*opts`` its APIOpts, ``*vars`` per-request variables (``*processRuns``), ``*tenant`` the tenant.
Paths (``~*req.Account``, ``~*req.CostDetails.Charges[0]``) are parsed once into ``Path`` tuples by
``parse_path``; reading one is a few dict lookups. The view is live: AttributeS writes through it
into the event it wraps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

from core.types import UTC_ZONE, InvalidValue, format_time, parse_time

from .errors import FilterError

META_REQ: Final = "*req"
META_OPTS: Final = "*opts"
META_VARS: Final = "*vars"
META_TENANT: Final = "*tenant"
META_PROCESS_RUNS: Final = "*processRuns"
DYNAMIC_PREFIX: Final = "~"
NESTING_SEP: Final = "."
INDEX_START: Final = "["
INDEX_END: Final = "]"
ERR_WRONG_PATH: Final = "WRONG_PATH"

# Wire names of a CGREvent (CGRateS renamed Opts to APIOpts in v0.11; both are read).
WIRE_TENANT: Final = "Tenant"
WIRE_ID: Final = "ID"
WIRE_TIME: Final = "Time"
WIRE_EVENT: Final = "Event"
WIRE_OPTS: Final = "APIOpts"
WIRE_OPTS_V10: Final = "Opts"


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()  # what a lookup of an absent field returns (None is a value)

Step = tuple[str, str | None]  # (key, index inside [...] or None)
Path = tuple[Step, ...]


def split_path(text: str) -> list[str]:
    """``a.b[x.y].c`` -> ``["a", "b[x.y]", "c"]``: dots inside ``[...]`` do not split."""
    if INDEX_START not in text:
        return text.split(NESTING_SEP)
    parts: list[str] = []
    depth = 0
    start = 0
    for position, char in enumerate(text):
        if char == INDEX_START:
            depth += 1
        elif char == INDEX_END and depth:
            depth -= 1
        elif char == NESTING_SEP and depth == 0:
            parts.append(text[start:position])
            start = position + 1
    parts.append(text[start:])
    return parts


def _step(segment: str) -> Step:
    """``Field[0]`` -> ``("Field", "0")`` as CGRateS's ``GetPathIndexString``."""
    opening = segment.find(INDEX_START)
    if opening > 0 and segment.endswith(INDEX_END):
        return segment[:opening], segment[opening + 1 : -1]
    return segment, None


def parse_path(text: str) -> Path:
    """A field path without its ``~``: ``*req.A.B[0]``."""
    return tuple(_step(segment) for segment in split_path(text))


def lookup(root: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path``, or ``MISSING`` (also when a step goes through a non-map)."""
    node: Any = root
    for key, index in path:
        if not isinstance(node, Mapping):
            return MISSING
        node = node.get(key, MISSING)
        if node is MISSING:
            return MISSING
        if index is not None:
            if isinstance(node, Mapping):
                node = node.get(index, MISSING)
            elif isinstance(node, list | tuple):
                if not index.isdigit() or int(index) >= len(node):
                    return MISSING
                node = node[int(index)]
            else:
                return MISSING
            if node is MISSING:
                return MISSING
    return node


class EventView:
    """The data provider of one event (``~*req.``, ``~*opts.``, ``~*vars.``, ``~*tenant``)."""

    __slots__ = ("root",)

    def __init__(
        self,
        event: dict[str, Any],
        opts: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        tenant: str | None = None,
    ) -> None:
        self.root: dict[str, Any] = {
            META_REQ: event,
            META_OPTS: opts if opts is not None else {},
            META_VARS: variables if variables is not None else {},
        }
        if tenant is not None:
            self.root[META_TENANT] = tenant

    def get(self, path: Path) -> Any:
        return lookup(self.root, path)

    def set(self, segments: list[str], value: Any) -> None:
        """Writes ``value`` at ``segments``, creating maps on the way (``MapStorage.Set``)."""
        node = self.root
        for key in segments[:-1]:
            child = node.get(key, MISSING)
            if child is MISSING:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise FilterError(ERR_WRONG_PATH)  # as MapStorage.Set through a non-map
            node = child
        node[segments[-1]] = value

    def remove(self, segments: list[str]) -> None:
        node: Any = self.root
        for key in segments[:-1]:
            node = node.get(key)
            if not isinstance(node, dict):
                return
        node.pop(segments[-1], None)

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = self.root[META_REQ]
        return event


_CONTAINERS: Final = (dict, list)
# Immutable leaf types that events are made of (exact types: a subclass takes the checked path).
_SCALARS: Final = frozenset({str, int, float, bool, type(None), Decimal, datetime})


def copy_value(value: Any) -> Any:
    """A copy deep enough that writing into nested maps/lists never reaches the original."""
    if isinstance(value, dict):
        # Events are mostly flat maps of scalars: a C-level copy then, no per-item recursion.
        # (A plain loop over the value types: compiled by mypyc, cheaper than map tricks.)
        for item in value.values():
            if type(item) not in _SCALARS and isinstance(item, _CONTAINERS):
                return {key: copy_value(item) for key, item in value.items()}
        return dict(value)
    if isinstance(value, list):
        return [copy_value(item) for item in value]
    return value


def _copied(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy of any mapping (a dict's copy is made once, not twice)."""
    copied: dict[str, Any] = copy_value(mapping if isinstance(mapping, dict) else dict(mapping))
    return copied


@dataclass(slots=True)
class CGREvent:
    """``utils.CGREvent``: Tenant, ID, Time (optional), Event fields and APIOpts."""

    tenant: str
    id: str = ""
    time: datetime | None = None
    event: dict[str, Any] = field(default_factory=dict)
    opts: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        tenant: str,
        id: str = "",
        time: datetime | None = None,
        event: dict[str, Any] | None = None,
        opts: dict[str, Any] | None = None,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.tenant = tenant
        self.id = id
        self.time = time
        self.event = {} if event is None else event
        self.opts = {} if opts is None else opts

    @classmethod
    def from_wire(
        cls, params: Mapping[str, Any], default_tenant: str, timezone: tzinfo = UTC_ZONE
    ) -> CGREvent:
        """Reads the CGREvent fields of an argument object (extra fields are the caller's).

        The event and options are copied, so processing never alters the caller's objects.
        Raises ``InvalidValue`` naming the bad field.
        """
        tenant = params.get(WIRE_TENANT) or default_tenant
        event_id = params.get(WIRE_ID) or ""
        if not isinstance(tenant, str) or not isinstance(event_id, str):
            raise InvalidValue("Tenant and ID must be strings")
        raw_time = params.get(WIRE_TIME)
        moment = None
        if raw_time not in (None, ""):
            try:
                moment = parse_time(raw_time, timezone)
            except (InvalidValue, ValueError, OverflowError) as exc:
                raise InvalidValue(f"Time: {exc}") from None
        event = params.get(WIRE_EVENT)
        opts = params.get(WIRE_OPTS)
        if opts is None:
            opts = params.get(WIRE_OPTS_V10)
        if event is not None and not isinstance(event, Mapping):
            raise InvalidValue("Event must be an object")
        if opts is not None and not isinstance(opts, Mapping):
            raise InvalidValue("APIOpts must be an object")
        return cls(
            tenant,
            event_id,
            moment,
            _copied(event) if event else {},
            _copied(opts) if opts else {},
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            WIRE_TENANT: self.tenant,
            WIRE_ID: self.id,
            WIRE_TIME: format_time(self.time) if self.time is not None else None,
            WIRE_EVENT: self.event,
            WIRE_OPTS: self.opts,
        }

    def clone(self) -> CGREvent:
        return CGREvent(
            self.tenant, self.id, self.time, copy_value(self.event), copy_value(self.opts)
        )

    def view(self, variables: dict[str, Any] | None = None, *, tenant: bool = False) -> EventView:
        """A data provider over this event (live: writes through it change the event)."""
        return EventView(self.event, self.opts, variables, self.tenant if tenant else None)
