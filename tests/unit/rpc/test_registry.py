"""MethodRegistry: registration, aliases, dispatch and error mapping; InProcessClient."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import pytest

from core.rpc import CallContext, InProcessClient, MethodRegistry, RpcError
from core.rpc.registry import error_text
from core.types import InvalidValue

CTX = CallContext("tcp", "127.0.0.1:1")


def echo(params: Any, ctx: CallContext) -> Any:
    return params


async def async_echo(params: Any, ctx: CallContext) -> Any:
    await asyncio.sleep(0)
    return {"echo": params, "transport": ctx.transport}


def make_registry() -> MethodRegistry:
    registry = MethodRegistry()
    registry.register("Test.Echo", echo)
    registry.register("Test.AsyncEcho", async_echo)
    return registry


def test_sync_dispatch_returns_value() -> None:
    assert make_registry().dispatch("Test.Echo", {"a": 1}, CTX) == {"a": 1}


async def test_async_dispatch_returns_awaitable() -> None:
    result = make_registry().dispatch("Test.AsyncEcho", {"a": 1}, CTX)
    assert inspect.isawaitable(result)
    assert await result == {"echo": {"a": 1}, "transport": "tcp"}


def test_async_detected_at_registration() -> None:
    registry = make_registry()
    entry, async_entry = registry.lookup("Test.Echo"), registry.lookup("Test.AsyncEcho")
    assert entry is not None and not entry.is_async
    assert async_entry is not None and async_entry.is_async


async def test_is_async_override_for_callable_objects() -> None:
    class Handler:
        async def __call__(self, params: Any, ctx: CallContext) -> Any:
            return "called"

    registry = MethodRegistry()
    registry.register("Obj.Call", Handler(), is_async=True)
    assert await registry.call("Obj.Call", {}, CTX) == "called"


@pytest.mark.parametrize(
    ("registered", "called"),
    [
        ("ApierV1.GetAccount", "APIerSv1.GetAccount"),
        ("APIerSv1.GetAccount", "ApierV1.GetAccount"),
        ("ApierV2.GetAccount", "APIerSv2.GetAccount"),
        ("APIerSv2.GetAccount", "ApierV2.GetAccount"),
    ],
)
def test_apier_service_aliases(registered: str, called: str) -> None:
    registry = MethodRegistry()
    registry.register(registered, echo)
    assert registry.dispatch(called, {"x": 1}, CTX) == {"x": 1}
    assert registry.dispatch(registered, {"x": 1}, CTX) == {"x": 1}


def test_alias_spellings_conflict() -> None:
    registry = MethodRegistry()
    registry.register("ApierV1.GetAccount", echo)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("APIerSv1.GetAccount", echo)
    registry.register("APIerSv1.GetAccount", async_echo, replace=True)
    entry = registry.lookup("ApierV1.GetAccount")
    assert entry is not None and entry.is_async


def test_register_alias_for_a_method() -> None:
    registry = make_registry()
    registry.register_alias("Old.Name", "Test.Echo")
    assert registry.dispatch("Old.Name", 5, CTX) == 5
    with pytest.raises(KeyError):
        registry.register_alias("Old.Other", "Test.Missing")


def test_register_alias_for_a_service_covers_later_methods() -> None:
    registry = make_registry()
    registry.register_alias("Legacy", "Test")
    registry.register("Test.Later", echo)
    assert registry.dispatch("Legacy.Echo", 1, CTX) == 1
    assert registry.dispatch("Legacy.Later", 2, CTX) == 2


def test_decorator_registration() -> None:
    registry = MethodRegistry()

    @registry.method("Deco.Ping")
    def ping(params: Any, ctx: CallContext) -> str:
        return "Pong"

    assert registry.dispatch("Deco.Ping", {}, CTX) == "Pong"
    assert "Deco.Ping" in registry


@pytest.mark.parametrize("name", ["NoDot", ".Method", "Service.", ""])
def test_invalid_names_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"Service\.Method"):
        MethodRegistry().register(name, echo)


@pytest.mark.parametrize(
    ("method", "text"),
    [
        ("Nope.Method", "rpc: can't find service Nope.Method"),
        ("Test.Nope", "rpc: can't find method Test.Nope"),
        ("NoDot", "rpc: service/method request ill-formed: NoDot"),
    ],
)
def test_unknown_method_errors_use_go_wording(method: str, text: str) -> None:
    with pytest.raises(RpcError) as caught:
        make_registry().dispatch(method, {}, CTX)
    assert caught.value.message == text


def failing(exc: Exception) -> Any:
    def handler(params: Any, ctx: CallContext) -> Any:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (RpcError("MANDATORY_IE_MISSING: [Tenant]"), "MANDATORY_IE_MISSING: [Tenant]"),
        (RpcError("NOT_FOUND"), "NOT_FOUND"),
        (KeyError("Tenant"), "SERVER_ERROR: invalid params: missing 'Tenant'"),
        (InvalidValue("not a number: 'x'"), "SERVER_ERROR: invalid params: not a number: 'x'"),
        (TypeError("bad type"), "SERVER_ERROR: invalid params: bad type"),
        (RuntimeError("boom"), "SERVER_ERROR: boom"),
        (RuntimeError(), "SERVER_ERROR: RuntimeError"),
    ],
)
async def test_handler_exceptions_map_to_error_strings(exc: Exception, text: str) -> None:
    assert error_text(exc) == text
    registry = MethodRegistry()
    registry.register("Test.Sync", failing(exc))

    async def async_failing(params: Any, ctx: CallContext) -> Any:
        raise exc

    registry.register("Test.Async", async_failing)
    with pytest.raises(RpcError) as caught:
        registry.dispatch("Test.Sync", {}, CTX)
    assert caught.value.message == text
    with pytest.raises(RpcError) as caught:
        await registry.call("Test.Async", {}, CTX)
    assert caught.value.message == text


def test_unexpected_exception_logged_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    registry = MethodRegistry()
    registry.register("Test.Boom", failing(RuntimeError("boom")))
    with caplog.at_level(logging.ERROR, logger="core.rpc"), pytest.raises(RpcError):
        registry.dispatch("Test.Boom", {}, CTX)
    [record] = caplog.records
    assert record.exc_info is not None
    assert "Test.Boom" in record.getMessage()


def test_rpc_error_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    registry = MethodRegistry()
    registry.register("Test.NotFound", failing(RpcError("NOT_FOUND")))
    with caplog.at_level(logging.DEBUG, logger="core.rpc"), pytest.raises(RpcError):
        registry.dispatch("Test.NotFound", {}, CTX)
    assert caplog.records == []


async def test_in_process_client() -> None:
    client = InProcessClient(make_registry())
    assert await client.call("Test.Echo", {"a": 1}) == {"a": 1}
    assert await client.call("Test.AsyncEcho", 2) == {"echo": 2, "transport": "internal"}
    with pytest.raises(RpcError, match="can't find service"):
        await client.call("Missing.Method", {})


def test_a_reply_writer_goes_with_every_spelling_and_sync_handlers_only() -> None:
    def writer(params: Any, ctx: CallContext) -> tuple[bytes, ...] | None:
        return None

    registry = MethodRegistry()
    registry.register("APIerSv1.GetCost", echo, writer=writer)
    registry.register_alias("Old.Cost", "APIerSv1.GetCost")
    for name in ("APIerSv1.GetCost", "ApierV1.GetCost", "Old.Cost"):
        entry = registry.lookup(name)
        assert entry is not None and entry.writer is writer
    registry.register("Test.Echo", echo)
    entry = registry.lookup("Test.Echo")
    assert entry is not None and entry.writer is None
    with pytest.raises(ValueError, match="sync handler only"):
        registry.register("Test.AsyncEcho", async_echo, writer=writer)
