"""Method registry: maps CGRateS ``Service.Method`` names to handlers and runs them.

A handler is ``handler(params, ctx)`` (plain function or ``async def``): ``params`` is the single
argument object of the call, ``ctx`` a ``CallContext``. It returns a JSON-shaped value, or raises:

* ``RpcError(text)``: ``text`` is sent verbatim as the response's ``"error"`` (CGRateS strings
  such as ``"NOT_FOUND"`` or ``"MANDATORY_IE_MISSING: [Tenant]"``).
* ``KeyError``, ``TypeError``, ``ValueError`` (``core.types.InvalidValue`` included): taken as
  a malformed argument, sent as ``"SERVER_ERROR: invalid params: <detail>"`` (logged at DEBUG
  with the traceback, since a handler bug raising one of these looks the same).
* anything else: ``"SERVER_ERROR: <text>"``, logged at ERROR with the traceback.

Unknown names get Go's ``net/rpc`` texts: ``"rpc: can't find service X.Y"`` when no method of
service ``X`` exists, ``"rpc: can't find method X.Y"`` when ``X`` exists but not ``Y``, and
``"rpc: service/method request ill-formed: XY"`` when there is no dot.

A sync handler may come with a reply writer, ``writer(params, ctx)``, which connections call
first: it returns the result already encoded, as a tuple of bytes to write one after the other
(the connection writes the JSON-RPC line around them), or None to have the handler answer as
usual. It must give the same reply the handler's result would, and raise what the handler would.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from core.errors import CGRError

logger = logging.getLogger(__name__)

TRANSPORT_TCP: Final = "tcp"
TRANSPORT_HTTP: Final = "http"
TRANSPORT_INTERNAL: Final = "internal"

SERVER_ERROR: Final = "SERVER_ERROR"
INVALID_PARAMS_PREFIX: Final = "SERVER_ERROR: invalid params: "

# CGRateS renamed the APIer services; users still call both spellings.
DEFAULT_SERVICE_ALIASES: Final = (("ApierV1", "APIerSv1"), ("ApierV2", "APIerSv2"))


class RpcError(CGRError):
    """An RPC failed with ``message`` as the CGRateS error string (raised by handlers to send
    it, and by clients when the peer answered with it)."""


class PeerLink(Protocol):
    """The way back to whoever made a call: an ``RpcConnection`` (TCP), or an in-process
    agent's ``InProcessLink`` (``chargeflow up --single-process``)."""

    @property
    def peer(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    async def call(self, method: str, params: Any, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """Where a call comes from. One instance per connection, shared by all its calls.

    ``connection`` is the way back to the caller (for calling it back, e.g.
    ``AgentV1.DisconnectSession``): the live ``RpcConnection`` the request arrived on, or an
    in-process agent's link; ``None`` over HTTP and from in-process callers without callbacks.
    """

    transport: str
    peer: str
    connection: PeerLink | None = None


Handler = Callable[[Any, CallContext], Any]
ReplyWriter = Callable[[Any, CallContext], tuple[bytes, ...] | None]


@dataclass(frozen=True, slots=True)
class MethodEntry:
    """A registered method; ``is_async`` is decided once, at registration."""

    name: str
    handler: Handler
    is_async: bool
    writer: ReplyWriter | None = None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def error_text(exc: BaseException) -> str:
    """The wire error string for an exception raised by a handler (see module docstring)."""
    if isinstance(exc, RpcError):
        return exc.message
    if isinstance(exc, KeyError):
        missing = exc.args[0] if exc.args else "?"
        return f"{INVALID_PARAMS_PREFIX}missing {missing!r}"
    if isinstance(exc, TypeError | ValueError):
        return INVALID_PARAMS_PREFIX + _describe(exc)
    return f"{SERVER_ERROR}: {_describe(exc)}"


def handler_failure(method: str, exc: Exception) -> RpcError:
    """Maps a handler's exception to the ``RpcError`` to answer with, logging what deserves it."""
    if isinstance(exc, RpcError):
        return exc
    text = error_text(exc)
    if text.startswith(INVALID_PARAMS_PREFIX):
        logger.debug("%s: %s", method, text, exc_info=exc)
    else:
        logger.error("%s failed: %s", method, text, exc_info=exc)
    return RpcError(text)


async def _run_async(entry: MethodEntry, params: Any, ctx: CallContext) -> Any:
    try:
        return await entry.handler(params, ctx)
    except RpcError:
        raise
    except Exception as exc:
        raise handler_failure(entry.name, exc) from exc


class MethodRegistry:
    """Name -> handler table with CGRateS's service-name aliases folded in at registration, so
    a lookup is one dict access."""

    def __init__(self, service_aliases: bool = True) -> None:
        self._methods: dict[str, MethodEntry] = {}
        self._services: set[str] = set()
        self._equivalents: dict[str, set[str]] = {}  # service -> all its spellings, itself too
        if service_aliases:
            for alias, target in DEFAULT_SERVICE_ALIASES:
                self.register_alias(alias, target)

    # ------------------------------------------------------------------------ registration
    def register(
        self,
        name: str,
        handler: Handler,
        *,
        is_async: bool | None = None,
        replace: bool = False,
        writer: ReplyWriter | None = None,
    ) -> None:
        """Registers ``handler`` as ``Service.Method`` (and under every alias of ``Service``).

        ``is_async`` overrides the detection (for callable objects whose ``__call__`` is
        async). Registering a taken name raises ``ValueError`` unless ``replace`` is true.
        ``writer`` (sync handlers only) writes whole replies for connections (module docstring).
        """
        service, method = _split(name)
        if is_async is None:
            is_async = inspect.iscoroutinefunction(handler)
        if is_async and writer is not None:
            raise ValueError(f"{name}: a reply writer goes with a sync handler only")
        for spelling in self._spellings(service):
            full = f"{spelling}.{method}"
            if full in self._methods and not replace:
                raise ValueError(f"RPC method already registered: {full}")
            self._methods[full] = MethodEntry(full, handler, is_async, writer)
            self._services.add(spelling)

    def method(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``."""

        def decorate(handler: Handler) -> Handler:
            self.register(name, handler)
            return handler

        return decorate

    def register_alias(self, alias: str, target: str) -> None:
        """Makes ``alias`` call ``target``.

        With dots (``"Svc.Old"``, ``"Svc.New"``) it aliases one method, which must be
        registered already. Without (``"ApierV1"``, ``"APIerSv1"``) it aliases a whole service,
        for methods registered before and after.
        """
        if "." in alias or "." in target:
            _split(alias)
            entry = self._methods.get(target)
            if entry is None:
                raise KeyError(f"cannot alias unknown RPC method {target}")
            self._methods[alias] = MethodEntry(alias, entry.handler, entry.is_async, entry.writer)
            self._services.add(alias.rsplit(".", 1)[0])
            return
        group = self._spellings(target) | self._spellings(alias)
        for spelling in group:
            self._equivalents[spelling] = group
        for full, entry in list(self._methods.items()):
            service, method = full.rsplit(".", 1)
            if service in group:
                for spelling in group:
                    self._methods.setdefault(
                        f"{spelling}.{method}",
                        MethodEntry(
                            f"{spelling}.{method}", entry.handler, entry.is_async, entry.writer
                        ),
                    )
                    self._services.add(spelling)

    def _spellings(self, service: str) -> set[str]:
        return self._equivalents.get(service) or {service}

    # ------------------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        """Every registered method name, aliases included, sorted."""
        return sorted(self._methods)

    def lookup(self, name: str) -> MethodEntry | None:
        return self._methods.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._methods))

    def __len__(self) -> int:
        return len(self._methods)

    def missing_method_error(self, name: str) -> str:
        """Go's ``net/rpc`` error text for a name with no handler."""
        dot = name.rfind(".")
        if dot < 0:
            return f"rpc: service/method request ill-formed: {name}"
        if name[:dot] not in self._services:
            return f"rpc: can't find service {name}"
        return f"rpc: can't find method {name}"

    # ---------------------------------------------------------------------------- dispatch
    def dispatch(self, method: str, params: Any, ctx: CallContext) -> Any | Awaitable[Any]:
        """Runs ``method``: returns its result, or an awaitable for it if the handler is async.

        Only ``RpcError`` is raised (directly or by the awaitable), already carrying the wire
        error text; other handler exceptions are mapped and logged by ``handler_failure``.
        """
        entry = self._methods.get(method)
        if entry is None:
            raise RpcError(self.missing_method_error(method))
        if entry.is_async:
            return _run_async(entry, params, ctx)
        try:
            return entry.handler(params, ctx)
        except RpcError:
            raise
        except Exception as exc:
            raise handler_failure(method, exc) from exc

    async def call(self, method: str, params: Any, ctx: CallContext) -> Any:
        """``dispatch`` awaited: the result, or ``RpcError``."""
        entry = self._methods.get(method)
        if entry is None or not entry.is_async:
            return self.dispatch(method, params, ctx)
        return await _run_async(entry, params, ctx)


def _split(name: str) -> tuple[str, str]:
    service, dot, method = name.rpartition(".")
    if not dot or not service or not method:
        raise ValueError(f"RPC method name must be 'Service.Method': {name!r}")
    return service, method
