"""Server transactions (RFC 3261 §17.2) with a fake clock: timer G doubling up to T2 until the
ACK or timer H, timer I/J clean-up, retransmitted requests answered without a second handler
call, 100 Trying for slow answers, CANCEL, TCP without retransmissions, 400 or drop for
malformed requests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

import pytest

from agents.sip import codec, transport
from agents.sip.codec import SipMessage
from agents.sip.transport import Answer, Peer, Timers, TransactionLayer

SOURCE = ("127.0.0.1", 40000)
TIMERS = Timers(t1=0.5, t2=4.0, t4=5.0, trying_delay=0.2)


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Timers that fire only when the test advances time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, FakeTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        heapq.heappush(self._queue, (self.now + delay, next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._queue and self._queue[0][0] <= until:
            when, _, timer, callback = heapq.heappop(self._queue)
            self.now = when
            if not timer.cancelled:
                callback()
        self.now = until


class Wire:
    """The peer's side: what was sent back, when (fake time) and where."""

    def __init__(self, clock: FakeClock, kind: str = "UDP") -> None:
        self.clock = clock
        self.sent: list[tuple[float, SipMessage, tuple[str, int]]] = []
        self.peer = Peer(kind, SOURCE, self.send)

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        self.sent.append((self.clock.now, codec.decode(data), destination))

    def statuses(self) -> list[int]:
        return [message.status for _, message, _ in self.sent]


class Handler:
    def __init__(self, answer: Answer | None = None) -> None:
        self.calls = 0
        self.answer = answer or Answer(302, headers=[("Contact", "<sip:1002@gw>;q=1.0")])
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: SipMessage, peer: Peer) -> Answer:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.answer


def request(method: str = "INVITE", branch: str = "z9hG4bKabc", cseq_method: str = "",
            via_extra: str = ";rport", to_tag: str = "") -> bytes:  # fmt: skip
    lines = [
        f"{method} sip:1002@chargeflow.test SIP/2.0",
        f"Via: SIP/2.0/UDP 10.1.1.1:5070;branch={branch}{via_extra}",
        "Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKfirsthop",
        "From: <sip:1001@example.net>;tag=from1",
        f"To: <sip:1002@chargeflow.test>{';tag=' + to_tag if to_tag else ''}",
        "Call-ID: call-1",
        f"CSeq: 1 {cseq_method or ('INVITE' if method in ('ACK', 'CANCEL') else method)}",
        "Content-Length: 0",
    ]
    if method in ("ACK", "CANCEL"):
        lines[6] = f"CSeq: 1 {method}"
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_final_answer_retransmitted_with_timer_g_until_timer_h(clock: FakeClock) -> None:
    handler = Handler()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    clock.advance(40)  # H = 64 * T1 = 32 s
    times = [when for when, message, _ in wire.sent]
    # 0, then G at 0.5, 1.5, 3.5, 7.5 (interval capped at T2 = 4 s), 11.5 ... < 32
    assert times == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert set(wire.statuses()) == {302}
    assert len({message.first("To") for _, message, _ in wire.sent}) == 1
    assert layer.counters[transport.TIMED_OUT] == 1 and not layer.transactions
    assert handler.calls == 1


async def test_ack_stops_retransmissions_and_is_absorbed(clock: FakeClock) -> None:
    handler = Handler()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    clock.advance(1.0)  # the 302 and one retransmission
    to_tag = codec.NameAddr.parse(wire.sent[0][1].first("To") or "").params["tag"]
    layer.receive(request("ACK", to_tag=to_tag), wire.peer)
    clock.advance(3.0)
    assert len(wire.sent) == 2
    layer.receive(request("ACK", to_tag=to_tag), wire.peer)  # a repeated ACK: absorbed (timer I)
    layer.receive(request(), wire.peer)  # a late INVITE copy: absorbed, no answer
    assert len(wire.sent) == 2 and handler.calls == 1
    clock.advance(TIMERS.t4)
    assert not layer.transactions
    layer.receive(request("ACK", to_tag=to_tag), wire.peer)
    assert layer.counters[transport.DROPPED_ACK] == 1


async def test_retransmitted_invite_gets_the_same_answer_without_handler(
    clock: FakeClock,
) -> None:
    handler = Handler()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    layer.receive(request(), wire.peer)
    layer.receive(request(), wire.peer)
    await settle()
    assert handler.calls == 1
    assert wire.statuses() == [302, 302, 302]
    assert len({codec.encode(message) for _, message, _ in wire.sent}) == 1
    assert layer.counters[transport.REPEATED] == 2
    layer.receive(request(branch="z9hG4bKother"), wire.peer)  # a new transaction
    await settle()
    assert handler.calls == 2


async def test_slow_answer_gets_100_trying_and_repeats_it(clock: FakeClock) -> None:
    handler = Handler()
    handler.gate = asyncio.Event()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    assert wire.sent == []
    clock.advance(TIMERS.trying_delay)
    assert wire.statuses() == [100]
    assert ";tag=" not in (wire.sent[0][1].first("To") or "")  # no To tag on 100
    layer.receive(request(), wire.peer)  # retransmission while pending: the 100 again
    assert wire.statuses() == [100, 100]
    handler.gate.set()
    await settle()
    assert wire.statuses() == [100, 100, 302] and handler.calls == 1


async def test_cancel_pending_invite(clock: FakeClock) -> None:
    handler = Handler()
    handler.gate = asyncio.Event()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    layer.receive(request("CANCEL"), wire.peer)
    assert wire.statuses() == [200, 487]
    assert wire.sent[0][1].first("CSeq") == "1 CANCEL"
    assert wire.sent[1][1].first("CSeq") == "1 INVITE"
    handler.gate.set()
    await settle()
    assert wire.statuses() == [200, 487]  # the handler's late 302 is dropped
    assert layer.counters[transport.DROPPED_LATE] == 1
    layer.receive(request("CANCEL", branch="z9hG4bKnone"), wire.peer)
    assert wire.statuses()[-1] == 481


async def test_non_invite_kept_for_timer_j(clock: FakeClock) -> None:
    handler = Handler(Answer(200, headers=[("Allow", "INVITE")]))
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request("OPTIONS"), wire.peer)
    await settle()
    clock.advance(10)
    assert wire.statuses() == [200]  # never retransmitted on its own
    layer.receive(request("OPTIONS"), wire.peer)
    assert wire.statuses() == [200, 200] and handler.calls == 1
    clock.advance(64 * TIMERS.t1)
    assert not layer.transactions


async def test_tcp_no_retransmission(clock: FakeClock) -> None:
    layer = TransactionLayer(Handler(), timers=TIMERS, clock=clock)
    wire = Wire(clock, "TCP")
    layer.receive(request(), wire.peer)
    await settle()
    clock.advance(31)
    assert wire.statuses() == [302]
    assert wire.sent[0][2] == SOURCE


async def test_response_headers_and_destination(clock: FakeClock) -> None:
    layer = TransactionLayer(Handler(), timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    _, response, destination = wire.sent[0]
    assert destination == SOURCE  # rport: back to the source port
    vias = response.values("Via")
    assert vias == [
        "SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKabc;received=127.0.0.1;rport=40000",
        "SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKfirsthop",
    ]
    assert response.first("From") == "<sip:1001@example.net>;tag=from1"
    assert (response.first("To") or "").startswith("<sip:1002@chargeflow.test>;tag=")
    assert response.first("Call-ID") == "call-1" and response.first("CSeq") == "1 INVITE"
    assert response.values("Contact") == ["<sip:1002@gw>;q=1.0"]
    # without rport: the source address, the sent-by port
    layer.receive(request(branch="z9hG4bKnorport", via_extra=""), wire.peer)
    await settle()
    assert wire.sent[-1][2] == ("127.0.0.1", 5070)


async def test_malformed_answered_400_or_dropped(clock: FakeClock) -> None:
    handler = Handler()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(cseq_method="BYE"), wire.peer)  # CSeq method mismatch: replyable
    layer.receive(request().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"), wire.peer)
    assert wire.statuses() == [400, 400]
    assert wire.sent[0][1].reason.startswith("Bad Request")
    no_call_id = request().replace(b"Call-ID: call-1\r\n", b"")
    layer.receive(no_call_id, wire.peer)
    layer.receive(b"\x00\xff garbage", wire.peer)
    layer.receive(b"SIP/2.0 200 OK\r\n\r\n", wire.peer)  # a response: we send no requests
    assert wire.statuses() == [400, 400]
    assert layer.counters[transport.DROPPED_MALFORMED] == 2
    assert layer.counters[transport.DROPPED_RESPONSE] == 1
    assert handler.calls == 0


async def test_handler_failure_answers_500(clock: FakeClock) -> None:
    async def broken(request: SipMessage, peer: Peer) -> Answer:
        raise RuntimeError("boom")

    layer = TransactionLayer(broken, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(), wire.peer)
    await settle()
    assert wire.statuses() == [500]
    assert layer.counters[transport.HANDLER_FAILED] == 1


async def test_rfc2543_client_without_magic_cookie(clock: FakeClock) -> None:
    handler = Handler()
    layer = TransactionLayer(handler, timers=TIMERS, clock=clock)
    wire = Wire(clock)
    layer.receive(request(branch="old1"), wire.peer)
    await settle()
    layer.receive(request(branch="old1"), wire.peer)
    assert handler.calls == 1 and wire.statuses() == [302, 302]
    to_tag = codec.NameAddr.parse(wire.sent[0][1].first("To") or "").params["tag"]
    layer.receive(request("ACK", branch="old1", to_tag=to_tag), wire.peer)
    clock.advance(5)
    assert wire.statuses() == [302, 302]  # the ACK matched: no timer G
