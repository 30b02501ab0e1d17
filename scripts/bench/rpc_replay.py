"""A minimal JSON-RPC responder for agent benchmarks: it answers every call with a reply
recorded from the real engine, so an agent's own throughput and overhead can be measured
without the engine's limit.

It is **not** an engine: it charges nothing and keeps no state. It answers each request line
``{"method":M,"params":[...],"id":N}`` with ``{"id":N,"result":R,"error":null}``, where ``R``
is the recorded result for ``M``. Recordings come from ``--replies`` (a JSON object
``{method: result}``) and, with ``--record HOST:PORT``, from a real engine: the first request of
each method not recorded yet is forwarded there as it is, its result becomes the recording (calls
of that method arriving meanwhile wait for it), and ``--save`` writes the recordings at exit. A
method with no recording and no engine to ask gets ``"OK"``. The results are encoded once; per
request only the method and id are read (orjson) and the id is spliced into the stored reply.

It expects one request per line, as ``core.rpc`` clients write them (Go's jsonrpc client too).
Anything else closes the connection: this is a bench tool, not a server to expose.

Usage::

    python scripts/bench/rpc_replay.py --port 0 --record 127.0.0.1:2012 --save replies.json
    python scripts/bench/rpc_replay.py --port 0 --replies replies.json
    # prints "ready PORT" on stdout once listening; stops on SIGTERM/SIGINT or at EOF on stdin
    # (run it with stdin a pipe the parent holds: the parent's exit stops it)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

import orjson

HOST: Final = "127.0.0.1"
UNKNOWN_METHOD_RESULT: Final = b'"OK"'
_LINE_END: Final = b"\n"
_HEAD: Final = b'{"id":'
_RESULT: Final = b',"result":'
_TAIL: Final = b',"error":null}\n'


class Recorder:
    """The recorded results by method, filled from a real engine on first use (``--record``)."""

    def __init__(self, results: dict[str, bytes], engine: tuple[str, int] | None) -> None:
        self.results = results
        self.engine = engine
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def record(self, method: str, line: bytes) -> bytes:
        """The result for ``method``, asking the engine with ``line`` if nobody did yet."""
        known = self.results.get(method)
        if known is not None:
            return known
        if self.engine is None:
            return UNKNOWN_METHOD_RESULT
        waiting = self._waiting.get(method)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[method] = future
        try:
            async with self._lock:  # one call at a time on the one engine connection
                if self._connection is None:
                    self._connection = await asyncio.open_connection(*self.engine)
                reader, writer = self._connection
                writer.write(line + _LINE_END)
                reply = orjson.loads(await reader.readline())
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) get it too
            raise
        finally:
            del self._waiting[method]
        if reply.get("error") is not None:
            raise RuntimeError(f"{method}: the engine answered {reply['error']!r}")
        result = self.results[method] = orjson.dumps(reply.get("result"))
        future.set_result(result)
        return result

    def recorded(self) -> dict[str, Any]:
        return {method: orjson.loads(result) for method, result in self.results.items()}


class Replay(asyncio.Protocol):
    """One client connection: every request line gets the recorded reply for its method."""

    def __init__(self, recorder: Recorder, counter: list[int]) -> None:
        self.recorder = recorder
        self.results = recorder.results
        self.counter = counter
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buffer = self.pending + data if self.pending else data
        lines = buffer.split(_LINE_END)
        self.pending = lines.pop()  # an incomplete last line waits for the next read
        out: list[bytes] = []
        for line in lines:
            if not line:
                continue
            try:
                request = orjson.loads(line)
                method = request["method"]
                request_id = orjson.dumps(request["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self.transport.close()
                return
            result = self.results.get(method)
            if result is None:
                task = asyncio.get_running_loop().create_task(
                    self._recorded(method, request_id, line)
                )
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                continue
            out.append(_HEAD + request_id + _RESULT + result + _TAIL)
        if out:
            self.counter[0] += len(out)
            self.transport.write(b"".join(out))

    async def _recorded(self, method: str, request_id: bytes, line: bytes) -> None:
        try:
            result = await self.recorder.record(method, line)
            reply = _HEAD + request_id + _RESULT + result + _TAIL
        except (OSError, RuntimeError, ValueError) as exc:
            error = orjson.dumps(f"rpc_replay: cannot record {method}: {exc}")
            reply = _HEAD + request_id + b',"result":null,"error":' + error + b"}\n"
        assert self.transport is not None
        self.counter[0] += 1
        self.transport.write(reply)


async def serve(port: int, recorder: Recorder, save: Path | None) -> None:
    loop = asyncio.get_running_loop()
    counter = [0]
    server = await loop.create_server(lambda: Replay(recorder, counter), HOST, port)
    bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)  # the parent closed our stdin or died
    print(f"ready {bound}", flush=True)
    await stop.wait()
    loop.remove_reader(sys.stdin.fileno())
    server.close()
    if save is not None:
        save.write_bytes(orjson.dumps(recorder.recorded(), option=orjson.OPT_INDENT_2))
    print(f"answered {counter[0]}", flush=True)


def load_results(path: Path | None) -> dict[str, bytes]:
    if path is None:
        return {}
    recorded: Any = orjson.loads(path.read_bytes())
    if not isinstance(recorded, dict):
        raise SystemExit(f"{path}: want a JSON object {{method: result}}")
    return {str(method): orjson.dumps(result) for method, result in recorded.items()}


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--replies", type=Path, help="JSON {method: result} to answer with")
    parser.add_argument("--record", type=parse_address, help="engine HOST:PORT to record from")
    parser.add_argument("--save", type=Path, help="write the recordings here at exit")
    args = parser.parse_args(argv)
    recorder = Recorder(load_results(args.replies), args.record)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.port, recorder, args.save))


if __name__ == "__main__":
    main()
