"""RpcServer, RpcConnection and RpcClient over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from core.rpc import (
    CallContext,
    MethodRegistry,
    RpcClient,
    RpcConnection,
    RpcDisconnectedError,
    RpcError,
    RpcServer,
    RpcTimeoutError,
    encode_request,
    encode_response,
)
from core.types import dumps, loads

IO_TIMEOUT = 5.0


def build_registry() -> MethodRegistry:
    registry = MethodRegistry()

    def echo(params: Any, ctx: CallContext) -> Any:
        return params

    async def async_echo(params: Any, ctx: CallContext) -> Any:
        await asyncio.sleep(params.get("sleep", 0) if isinstance(params, dict) else 0)
        return params

    def not_found(params: Any, ctx: CallContext) -> Any:
        raise RpcError("NOT_FOUND")

    def boom(params: Any, ctx: CallContext) -> Any:
        raise RuntimeError("boom")

    def peer(params: Any, ctx: CallContext) -> Any:
        return {"transport": ctx.transport, "peer": ctx.peer}

    def unencodable(params: Any, ctx: CallContext) -> Any:
        return object()

    async def register_agent(params: Any, ctx: CallContext) -> Any:
        # The engine calling the agent back on the connection the request came in on.
        assert ctx.connection is not None
        return await ctx.connection.call("AgentV1.DisconnectSession", {"OriginID": params["ID"]})

    registry.register("Bench.Echo", echo)
    registry.register("Test.AsyncEcho", async_echo)
    registry.register("Test.NotFound", not_found)
    registry.register("Test.Boom", boom)
    registry.register("Test.Peer", peer)
    registry.register("Test.Unencodable", unencodable)
    registry.register("SessionSv1.RegisterAgent", register_agent)
    return registry


@pytest.fixture
async def server() -> AsyncIterator[tuple[RpcServer, int]]:
    rpc_server = RpcServer(build_registry())
    _, port = await rpc_server.start_tcp("127.0.0.1", 0)
    yield rpc_server, port
    await rpc_server.close(grace=1.0)


class RawPeer:
    """A bare socket speaking the wire format by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def replies(self, count: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            line = await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)
            assert line.endswith(b"\n"), line
            out.append(loads(line))
        return out

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_pipelined_requests_on_one_connection(server: tuple[RpcServer, int]) -> None:
    peer = await RawPeer.open(server[1])
    count = 200
    await peer.send(b"".join(encode_request("Bench.Echo", {"n": i}, i) for i in range(count)))
    replies = await peer.replies(count)
    assert replies == [{"id": i, "result": {"n": i}, "error": None} for i in range(count)]
    await peer.close()


async def test_request_split_byte_by_byte(server: tuple[RpcServer, int]) -> None:
    peer = await RawPeer.open(server[1])
    body = encode_request("Bench.Echo", {"s": 'a}{"b'}, "id-1")
    for index in range(len(body)):
        await peer.send(body[index : index + 1])
        await asyncio.sleep(0.001)
    assert await peer.replies(1) == [{"id": "id-1", "result": {"s": 'a}{"b'}, "error": None}]
    await peer.close()


async def test_malformed_input_then_valid_request_on_same_connection(
    server: tuple[RpcServer, int],
) -> None:
    peer = await RawPeer.open(server[1])
    await peer.send(b'{"method": bad}\ngarbage\n{"method":"Bench.Echo","params":"x","id":3}\n')
    await peer.send(encode_request("Bench.Echo", {"ok": True}, 4))
    first, second, third, fourth = await peer.replies(4)
    assert first["id"] is None and first["error"].startswith("jsonrpc: invalid JSON: ")
    assert second == {
        "id": None,
        "result": None,
        "error": "jsonrpc: unexpected data outside a JSON object",
    }
    assert third == {
        "id": 3,
        "result": None,
        "error": "jsonrpc: params must be an array or an object",
    }
    assert fourth == {"id": 4, "result": {"ok": True}, "error": None}
    await peer.close()


async def test_errors_from_handlers_and_unknown_methods(server: tuple[RpcServer, int]) -> None:
    peer = await RawPeer.open(server[1])
    await peer.send(
        encode_request("Nope.Method", {}, 1)
        + encode_request("Bench.Nope", {}, 2)
        + encode_request("Test.NotFound", {}, 3)
        + encode_request("Test.Boom", {}, 4)
        + encode_request("Test.Unencodable", {}, 5)
    )
    replies = await peer.replies(5)
    assert [reply["error"] for reply in replies] == [
        "rpc: can't find service Nope.Method",
        "rpc: can't find method Bench.Nope",
        "NOT_FOUND",
        "SERVER_ERROR: boom",
        replies[4]["error"],
    ]
    assert replies[4]["error"].startswith("SERVER_ERROR: cannot encode result")
    assert all(reply["result"] is None for reply in replies)
    rpc_server = server[0]
    assert rpc_server.stats.requests == 5
    assert rpc_server.stats.errors == 5
    await peer.close()


async def test_async_replies_can_overtake(server: tuple[RpcServer, int]) -> None:
    peer = await RawPeer.open(server[1])
    await peer.send(
        encode_request("Test.AsyncEcho", {"sleep": 0.2}, "slow")
        + encode_request("Test.AsyncEcho", {}, "fast")
        + encode_request("Bench.Echo", {}, "sync")
    )
    replies = await peer.replies(3)
    assert [reply["id"] for reply in replies] == ["sync", "fast", "slow"]
    assert replies[2]["result"] == {"sleep": 0.2}
    await peer.close()


async def test_half_close_still_answers_running_requests(server: tuple[RpcServer, int]) -> None:
    peer = await RawPeer.open(server[1])
    await peer.send(
        encode_request("Test.AsyncEcho", {"sleep": 0.1}, 1) + encode_request("Bench.Echo", 2, 2)
    )
    peer.writer.write_eof()  # as `printf ... | nc` does
    replies = await peer.replies(2)
    assert sorted(reply["id"] for reply in replies) == [1, 2]
    assert await asyncio.wait_for(peer.reader.read(), IO_TIMEOUT) == b""  # then the server closes
    await peer.close()


async def test_client_calls_pipeline_and_raise_rpc_errors(server: tuple[RpcServer, int]) -> None:
    async with await RpcClient.connect("127.0.0.1", server[1]) as client:
        results = await asyncio.gather(
            *(client.call("Bench.Echo", {"n": i}) for i in range(300)),
            *(client.call("Test.AsyncEcho", {"m": i}) for i in range(300)),
        )
        assert results[:300] == [{"n": i} for i in range(300)]
        assert results[300:] == [{"m": i} for i in range(300)]
        with pytest.raises(RpcError) as caught:
            await client.call("Test.NotFound", {})
        assert caught.value.message == "NOT_FOUND"
        info = await client.call("Test.Peer", {})
        assert info["transport"] == "tcp"
        assert info["peer"].startswith("127.0.0.1:")
    assert client.closed


async def test_server_calls_client_back_on_same_connection(server: tuple[RpcServer, int]) -> None:
    agent = MethodRegistry()
    seen: list[tuple[Any, str]] = []

    def disconnect_session(params: Any, ctx: CallContext) -> Any:
        seen.append((params, ctx.transport))
        return "OK"

    agent.register("AgentV1.DisconnectSession", disconnect_session)
    async with await RpcClient.connect("127.0.0.1", server[1], agent) as client:
        # A request whose handler calls the agent back before answering.
        assert await client.call("SessionSv1.RegisterAgent", {"ID": "abc"}) == "OK"
        assert seen == [({"OriginID": "abc"}, "tcp")]
        # The engine initiating a call on its own, finding the agent's live connection.
        [connection] = server[0].connections
        assert server[0].find_connection(connection.peer) is connection
        assert await connection.call("AgentV1.DisconnectSession", {"OriginID": "x"}) == "OK"
        with pytest.raises(RpcError, match=r"can't find method AgentV1\.Missing"):
            await connection.call("AgentV1.Missing", {})


async def test_call_timeout(server: tuple[RpcServer, int]) -> None:
    client = await RpcClient.connect("127.0.0.1", server[1], timeout=0.05)
    with pytest.raises(RpcTimeoutError):
        await client.call("Test.AsyncEcho", {"sleep": 0.5})
    assert client.connection.pending_calls == 0
    assert await client.call("Bench.Echo", 1) == 1
    await client.close()


async def test_server_close_disconnects_clients(server: tuple[RpcServer, int]) -> None:
    client = await RpcClient.connect("127.0.0.1", server[1], timeout=None)
    closed: list[RpcConnection] = []
    client.connection.add_close_callback(closed.append)
    assert await client.call("Bench.Echo", 1) == 1
    pending = asyncio.ensure_future(client.call("Test.AsyncEcho", {"sleep": 30}))
    await asyncio.sleep(0.05)
    await server[0].close(grace=0.05)
    with pytest.raises(RpcDisconnectedError):
        await asyncio.wait_for(pending, IO_TIMEOUT)
    await asyncio.wait_for(client.connection.wait_closed(), IO_TIMEOUT)
    assert closed == [client.connection]
    assert server[0].connections == []
    with pytest.raises(RpcDisconnectedError):
        await client.call("Bench.Echo", 1)


async def test_http_post_jsonrpc() -> None:
    rpc_server = RpcServer(build_registry())
    _, port = await rpc_server.start_http("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/jsonrpc"
    try:
        async with aiohttp.ClientSession() as session:

            async def post(body: bytes) -> tuple[int, Any]:
                async with session.post(url, data=body) as response:
                    assert response.content_type == "application/json"
                    return response.status, loads(await response.read())

            assert await post(encode_request("Bench.Echo", {"a": 1}, 1)) == (
                200,
                {"id": 1, "result": {"a": 1}, "error": None},
            )
            assert await post(encode_request("Test.AsyncEcho", {"b": 2}, 2)) == (
                200,
                {"id": 2, "result": {"b": 2}, "error": None},
            )
            assert await post(encode_request("Test.NotFound", {}, 3)) == (
                200,
                {"id": 3, "result": None, "error": "NOT_FOUND"},
            )
            status, reply = await post(b"{not json")
            assert status == 200
            assert reply["id"] is None and reply["error"].startswith("jsonrpc: invalid JSON")
            status, reply = await post(encode_request("Test.Peer", {}, 4))
            assert reply["result"]["transport"] == "http"
            async with session.get(url) as response:
                assert response.status == 405
        assert rpc_server.stats.requests == 5
        assert rpc_server.stats.errors == 2
    finally:
        await rpc_server.close()


async def test_status_counters(server: tuple[RpcServer, int]) -> None:
    async with await RpcClient.connect("127.0.0.1", server[1]) as client:
        await client.call("Bench.Echo", {})
        status = server[0].status()
        assert status["requests"] == 1
        assert status["errors"] == 0
        assert status["live_connections"] == 1


# ------------------------------------------------------------------------------ backpressure
class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.reading = True
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 9) if name == "peername" else default


async def test_backpressure_pauses_reading_and_calls() -> None:
    connection = RpcConnection(build_registry())
    transport = FakeTransport()
    connection.connection_made(transport)
    connection.data_received(
        encode_request("Bench.Echo", 1, 1) + encode_request("Bench.Echo", 2, 2)
    )
    assert transport.written == [
        b'{"id":1,"result":1,"error":null}\n{"id":2,"result":2,"error":null}\n'
    ]  # one write for everything one read produced
    connection.pause_writing()
    assert not transport.reading
    call = asyncio.ensure_future(connection.call("Peer.Method", {}, timeout=None))
    await asyncio.sleep(0.01)
    assert len(transport.written) == 1  # the call waits for the buffer to drain
    connection.resume_writing()
    assert transport.reading
    await asyncio.sleep(0.01)
    assert transport.written[-1] == b'{"method":"Peer.Method","params":[{}],"id":1}\n'
    connection.data_received(b'{"id":1,"result":"done","error":null}\n')
    assert await call == "done"
    connection.connection_lost(None)


# ------------------------------------------------------------------------------------ uvloop
async def uvloop_scenario() -> None:
    rpc_server = RpcServer(build_registry())
    _, port = await rpc_server.start_tcp("127.0.0.1", 0)
    agent = MethodRegistry()
    agent.register("AgentV1.DisconnectSession", lambda params, ctx: params["OriginID"])
    try:
        async with await RpcClient.connect("127.0.0.1", port, agent) as client:
            calls = [client.call("Bench.Echo", i) for i in range(100)]
            calls += [client.call("Test.AsyncEcho", {"i": i}) for i in range(100)]
            results = await asyncio.gather(*calls)
            assert results == [*range(100), *({"i": i} for i in range(100))]
            assert await client.call("SessionSv1.RegisterAgent", {"ID": "u"}) == "u"
            with pytest.raises(RpcError, match="NOT_FOUND"):
                await client.call("Test.NotFound", {})
            peer = await RawPeer.open(port)
            await peer.send(b"junk" + encode_request("Bench.Echo", 7, 7)[:10])
            await peer.send(encode_request("Bench.Echo", 7, 7)[10:])
            assert [reply["id"] for reply in await peer.replies(2)] == [None, 7]
            await peer.close()
    finally:
        await rpc_server.close()


def test_round_trip_under_uvloop() -> None:
    """uvloop transports are not asyncio.Transport subclasses: run the main paths on them."""
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(uvloop_scenario(), IO_TIMEOUT))


async def test_too_many_running_handlers_pause_reading() -> None:
    release = asyncio.Event()
    registry = MethodRegistry()

    async def wait(params: Any, ctx: CallContext) -> Any:
        await release.wait()
        return params

    registry.register("Test.Wait", wait)
    connection = RpcConnection(registry, max_running=2)
    transport = FakeTransport()
    connection.connection_made(transport)
    connection.data_received(encode_request("Test.Wait", 1, 1))
    assert transport.reading
    connection.data_received(encode_request("Test.Wait", 2, 2) + encode_request("Test.Wait", 3, 3))
    assert not transport.reading
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert transport.reading
    assert b"".join(transport.written).count(b'"error":null') == 3
    connection.connection_lost(None)


async def test_a_reply_writer_answers_first_and_the_handler_when_it_declines() -> None:
    registry = MethodRegistry()
    answered_by: list[str] = []

    def handler(params: Any, ctx: CallContext) -> Any:
        answered_by.append("handler")
        if params["n"] < 0:
            raise RpcError("NOT_FOUND")
        return {"n": params["n"]}

    def writer(params: Any, ctx: CallContext) -> tuple[bytes, ...] | None:
        if params["n"] == 0:
            raise RuntimeError("boom")
        if params["n"] % 2:
            return None  # odd or negative: the handler answers
        answered_by.append("writer")
        return (b'{"n":', b"%d" % params["n"], b"}")

    registry.register("Test.Written", handler, writer=writer)
    connection = RpcConnection(registry)
    transport = FakeTransport()
    connection.connection_made(transport)
    requests = [(2, 1), (3, "a"), (-1, None), (0, 4)]  # (n, request id)
    connection.data_received(
        b"".join(encode_request("Test.Written", {"n": n}, i) for n, i in requests)
    )
    assert answered_by == ["writer", "handler", "handler"]
    # The writer's parts join into what encode_response makes of the same result.
    assert transport.written == [
        encode_response(1, {"n": 2}, None)
        + encode_response("a", {"n": 3}, None)
        + encode_response(None, None, "NOT_FOUND")
        + encode_response(4, None, "SERVER_ERROR: boom")
    ]
    connection.connection_lost(None)


@pytest.mark.parametrize(
    "request_id",
    [0, 7, 2**63, -1, 1.5, "a", 'ü"\\', None, True, [1, "x"], {"k": None}],
)
async def test_a_written_reply_carries_any_json_id_as_encode_response_does(request_id: Any) -> None:
    registry = MethodRegistry()
    registry.register("Test.Written", lambda params, ctx: [1], writer=lambda params, ctx: (b"[1]",))
    connection = RpcConnection(registry)
    transport = FakeTransport()
    connection.connection_made(transport)
    raw = b'{"method":"Test.Written","params":[{}],"id":%b}\n' % dumps(request_id)
    connection.data_received(raw)
    assert transport.written == [encode_response(request_id, [1], None)]
    connection.connection_lost(None)


async def test_a_lone_call_is_written_at_once_and_calls_in_flight_share_a_write() -> None:
    connection = RpcConnection(build_registry())
    transport = FakeTransport()
    connection.connection_made(transport)
    first = asyncio.ensure_future(connection.call("Peer.Method", 1, timeout=None))
    await asyncio.sleep(0)  # the call ran up to its await: nothing else was in flight
    assert transport.written == [b'{"method":"Peer.Method","params":[1],"id":1}\n']
    others = [
        asyncio.ensure_future(connection.call("Peer.Method", n, timeout=None)) for n in (2, 3)
    ]
    await asyncio.sleep(0)  # both queued behind the first call's reply: one write at turn end
    await asyncio.sleep(0)
    assert transport.written[1:] == [
        b'{"method":"Peer.Method","params":[2],"id":2}\n'
        b'{"method":"Peer.Method","params":[3],"id":3}\n'
    ]
    connection.data_received(
        b'{"id":1,"result":"a","error":null}{"id":2,"result":"b","error":null}'
        b'{"id":3,"result":"c","error":null}'
    )
    assert await first == "a"
    assert [await call for call in others] == ["b", "c"]
