"""CGRateS-wire JSON-RPC transport: codec, method registry, TCP/HTTP server and clients
(one connection, an engine pool with failover, in-process)."""

from core.rpc.client import EngineClient, InProcessClient, RpcClient
from core.rpc.codec import (
    MAX_MESSAGE_SIZE,
    JsonStreamSplitter,
    MessageDecoder,
    Request,
    Response,
    RpcDecodeError,
    RpcFramingError,
    RpcProtocolError,
    decode_message,
    encode_request,
    encode_response,
)
from core.rpc.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REPLY_TIMEOUT,
    RpcConnection,
    RpcDisconnectedError,
    RpcStats,
    RpcTimeoutError,
)
from core.rpc.pool import (
    DEFAULT_POOL_CONNECTIONS,
    STRATEGIES,
    STRATEGY_FAILOVER,
    STRATEGY_ROUND_ROBIN,
    EnginePool,
    retry_safe,
)
from core.rpc.registry import (
    TRANSPORT_HTTP,
    TRANSPORT_INTERNAL,
    TRANSPORT_TCP,
    CallContext,
    Handler,
    MethodRegistry,
    RpcError,
)
from core.rpc.server import DEFAULT_HTTP_PORT, DEFAULT_TCP_PORT, RpcServer

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_POOL_CONNECTIONS",
    "DEFAULT_REPLY_TIMEOUT",
    "DEFAULT_TCP_PORT",
    "MAX_MESSAGE_SIZE",
    "STRATEGIES",
    "STRATEGY_FAILOVER",
    "STRATEGY_ROUND_ROBIN",
    "TRANSPORT_HTTP",
    "TRANSPORT_INTERNAL",
    "TRANSPORT_TCP",
    "CallContext",
    "EngineClient",
    "EnginePool",
    "Handler",
    "InProcessClient",
    "JsonStreamSplitter",
    "MessageDecoder",
    "MethodRegistry",
    "Request",
    "Response",
    "RpcClient",
    "RpcConnection",
    "RpcDecodeError",
    "RpcDisconnectedError",
    "RpcError",
    "RpcFramingError",
    "RpcProtocolError",
    "RpcServer",
    "RpcStats",
    "RpcTimeoutError",
    "decode_message",
    "encode_request",
    "encode_response",
    "retry_safe",
]
