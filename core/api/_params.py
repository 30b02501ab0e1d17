"""Reading CGRateS argument objects: mandatory fields, defaults, typed values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from core.filters.event import CGREvent
from core.rpc import RpcError
from core.types import InvalidValue

ERR_MANDATORY_IE_MISSING = "MANDATORY_IE_MISSING"
ERR_NOT_FOUND = "NOT_FOUND"
ERR_EXISTS = "EXISTS"
ERR_SERVER_ERROR = "SERVER_ERROR"
OK = "OK"


def as_object(params: Any) -> Mapping[str, Any]:
    """The argument object; CGRateS methods take exactly one JSON object."""
    # Decoded JSON is a plain dict: the exact type check spares the ABC check per request.
    if type(params) is not dict and not isinstance(params, Mapping):
        raise RpcError(f"{ERR_SERVER_ERROR}: invalid params: expected an object")
    return params


def require(params: Mapping[str, Any], *names: str) -> None:
    """Raises CGRateS's ``MANDATORY_IE_MISSING: [A B]`` naming every missing or empty field."""
    missing = [name for name in names if params.get(name) in (None, "", [])]
    if missing:
        raise RpcError(f"{ERR_MANDATORY_IE_MISSING}: [{' '.join(missing)}]")


def text(params: Mapping[str, Any], name: str, default: str = "") -> str:
    value = params.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise RpcError(f"{ERR_SERVER_ERROR}: invalid params: {name} must be a string")
    return value


def flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise RpcError(f"{ERR_SERVER_ERROR}: invalid params: {name} must be true or false")
    return value


def server_error(problem: object) -> RpcError:
    return RpcError(f"{ERR_SERVER_ERROR}: {problem}")


def cgr_event(
    args: Mapping[str, Any], default_tenant: str, timezone: tzinfo, *, need_event: bool = False
) -> CGREvent:
    """The CGREvent of an argument object (Tenant, ID, Time, Event, APIOpts)."""
    if need_event and args.get("Event") is None:
        raise RpcError(f"{ERR_MANDATORY_IE_MISSING}: [Event]")
    try:
        return CGREvent.from_wire(args, default_tenant, timezone)
    except InvalidValue as exc:
        raise server_error(f"invalid params: {exc}") from None
