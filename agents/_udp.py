"""The UDP listener every datagram agent uses (DNS, RADIUS): decodes nothing itself, hands each
datagram with its peer and a reply callable to the agent's server.

``receive(data, peer, tag, send)`` is called for every datagram; ``tag`` is what the server gave
this listener (the transport name, the codes a port accepts ...) and ``send(reply)`` answers the
peer from the port the datagram came to, unless the listener was closed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

log = logging.getLogger("chargeflow.agents.udp")

Tag = TypeVar("Tag")
Peer = tuple[str, int]
Send = Callable[[bytes], None]


class DatagramListener(asyncio.DatagramProtocol, Generic[Tag]):
    def __init__(self, receive: Callable[[bytes, Peer, Tag, Send], object], tag: Tag, name: str):
        self._receive = receive
        self._tag = tag
        self._name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport: no isinstance
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        transport = self.transport
        if transport is None:
            return
        peer = (str(addr[0]), int(addr[1]))

        def send(reply: bytes) -> None:
            if not transport.is_closing():
                transport.sendto(reply, peer)

        self._receive(data, peer, self._tag, send)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s udp socket error: %s", self._name, exc)
