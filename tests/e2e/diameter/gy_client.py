"""A Gy client (PCEF/CTF) for the end-to-end tests, built on python-diameter's own message
classes: an implementation independent of agents/diameter/codec.py and transport.py.

It speaks plain RFC 6733 over one TCP connection: CER first, requests matched to answers by
hop-by-hop id, DWR answered, and ASR/RAR from the server answered with success and recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
from typing import Any

from diameter.message import Message  # type: ignore[import-untyped]
from diameter.message import constants as C
from diameter.message.avp import Avp  # type: ignore[import-untyped]
from diameter.message.commands import (  # type: ignore[import-untyped]
    AbortSessionAnswer,
    AbortSessionRequest,
    CapabilitiesExchangeRequest,
    CreditControlRequest,
    DeviceWatchdogAnswer,
    DeviceWatchdogRequest,
    ReAuthAnswer,
    ReAuthRequest,
)

HEADER_LEN = 20
FLAG_RETRANSMIT = 0x10
TGPP = C.VENDOR_TGPP
IO_TIMEOUT = 10.0
VOICE_CONTEXT = "32260@3gpp.org"
DATA_CONTEXT = "32251@3gpp.org"
SMS_CONTEXT = "32274@3gpp.org"


def avp(code: int, value: Any, vendor: int = 0) -> Any:
    return Avp.new(code, vendor, value=value)


class GyClient:
    def __init__(self, host: str, port: int, origin_host: str = "pcef.test.net") -> None:
        self.host, self.port = host, port
        self.origin_host = origin_host.encode()
        self.origin_realm = b"test.net"
        self._ids = itertools.count(0x1000)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.server_requests: asyncio.Queue[Message] = asyncio.Queue()

    # ------------------------------------------------------------------------- connection
    async def connect(self, *, check: bool = True) -> Message:
        """Opens the connection and exchanges CER/CEA; ``check``: the CEA must be 2001."""
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.create_task(self._read_loop())
        cer = CapabilitiesExchangeRequest()
        cer.origin_host = self.origin_host
        cer.origin_realm = self.origin_realm
        cer.host_ip_address = "127.0.0.1"
        cer.vendor_id = 0
        cer.product_name = "gy-test-client"
        cer.origin_state_id = 1
        cer.auth_application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
        cea = await self.request(cer)
        assert not check or cea.result_code == C.E_RESULT_CODE_DIAMETER_SUCCESS, cea
        return cea

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # The peer may have closed first (a refused CER): the read loop ended on EOF.
            with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def request(self, message: Message) -> Any:
        hbh = next(self._ids)
        message.header.hop_by_hop_identifier = hbh
        message.header.end_to_end_identifier = hbh
        return await self.send_bytes(message.as_bytes())

    async def send_bytes(self, data: bytes, *, retransmit: bool = False) -> Any:
        """Sends an encoded request again (its end-to-end id kept, RFC 6733 §6.1.3) with a new
        hop-by-hop id, and returns the answer."""
        if retransmit:
            data = data[:4] + bytes([data[4] | FLAG_RETRANSMIT]) + data[5:]
        data = data[:12] + next(self._ids).to_bytes(4, "big") + data[16:]
        hbh = int.from_bytes(data[12:16], "big")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[hbh] = future
        assert self._writer is not None
        self._writer.write(data)
        try:
            return await asyncio.wait_for(future, IO_TIMEOUT)
        finally:
            self._pending.pop(hbh, None)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        while True:
            head = await self._reader.readexactly(HEADER_LEN)
            length = int.from_bytes(head[1:4], "big")
            data = head + await self._reader.readexactly(length - HEADER_LEN)
            message = Message.from_bytes(data)
            if message.header.is_request:
                self._answer_server(message)
                continue
            future = self._pending.get(message.header.hop_by_hop_identifier)
            if future is not None and not future.done():
                future.set_result(message)

    def _answer_server(self, message: Any) -> None:
        answer: Any
        if isinstance(message, DeviceWatchdogRequest):
            answer = message.to_answer()
            assert isinstance(answer, DeviceWatchdogAnswer)
        elif isinstance(message, (AbortSessionRequest, ReAuthRequest)):
            answer = message.to_answer()
            assert isinstance(answer, (AbortSessionAnswer, ReAuthAnswer))
            answer.session_id = message.session_id
            self.server_requests.put_nowait(message)
        else:
            return
        answer.origin_host = self.origin_host
        answer.origin_realm = self.origin_realm
        answer.result_code = C.E_RESULT_CODE_DIAMETER_SUCCESS
        assert self._writer is not None
        self._writer.write(answer.as_bytes())

    # ----------------------------------------------------------------------------- CCRs
    def ccr(
        self,
        session_id: str,
        request_type: int,
        number: int,
        context: str,
        *,
        account: str | None = "1001",
    ) -> CreditControlRequest:
        ccr = CreditControlRequest()
        ccr.header.application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
        ccr.session_id = session_id
        ccr.origin_host = self.origin_host
        ccr.origin_realm = self.origin_realm
        ccr.destination_realm = b"localdomain"
        ccr.auth_application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
        ccr.service_context_id = context
        ccr.cc_request_type = request_type
        ccr.cc_request_number = number
        ccr.event_timestamp = datetime.datetime.now(datetime.UTC)
        if account is not None:
            ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164, account)
            ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI, "262010000000001")
        return ccr

    def voice_ccr(
        self,
        session_id: str,
        request_type: int,
        number: int,
        *,
        requested: int | None = None,
        used: int | None = None,
        called: str = "tel:+1002",
        account: str | None = "1001",
    ) -> CreditControlRequest:
        ccr = self.ccr(session_id, request_type, number, VOICE_CONTEXT, account=account)
        inner = []
        if requested is not None:
            inner.append(avp(C.AVP_REQUESTED_SERVICE_UNIT, [avp(C.AVP_CC_TIME, requested)]))
        if used is not None:
            inner.append(avp(C.AVP_USED_SERVICE_UNIT, [avp(C.AVP_CC_TIME, used)]))
        if inner:
            ccr.append_avp(avp(C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, inner))
        ims = avp(
            C.AVP_TGPP_IMS_INFORMATION,
            [
                avp(C.AVP_TGPP_ROLE_OF_NODE, 0, TGPP),
                avp(C.AVP_TGPP_NODE_FUNCTIONALITY, 0, TGPP),
                avp(C.AVP_TGPP_CALLING_PARTY_ADDRESS, "sip:1001@ims.test.net", TGPP),
                avp(C.AVP_TGPP_CALLED_PARTY_ADDRESS, called, TGPP),
            ],
            TGPP,
        )
        ccr.append_avp(avp(C.AVP_TGPP_SERVICE_INFORMATION, [ims], TGPP))
        return ccr

    def data_ccr(
        self,
        session_id: str,
        request_type: int,
        number: int,
        groups: list[tuple[int, int | None, int | None]],
    ) -> CreditControlRequest:
        """``groups``: (Rating-Group, requested octets or None, used octets or None)."""
        ccr = self.ccr(session_id, request_type, number, DATA_CONTEXT)
        ccr.append_avp(avp(C.AVP_MULTIPLE_SERVICES_INDICATOR, 1))
        for rating_group, requested, used in groups:
            inner = [avp(C.AVP_RATING_GROUP, rating_group)]
            if requested is not None:
                inner.append(
                    avp(C.AVP_REQUESTED_SERVICE_UNIT, [avp(C.AVP_CC_TOTAL_OCTETS, requested)])
                )
            if used is not None:
                inner.append(avp(C.AVP_USED_SERVICE_UNIT, [avp(C.AVP_CC_TOTAL_OCTETS, used)]))
            ccr.append_avp(avp(C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, inner))
        return ccr

    def sms_ccr(self, session_id: str, recipient: str) -> CreditControlRequest:
        ccr = self.ccr(session_id, C.E_CC_REQUEST_TYPE_EVENT_REQUEST, 0, SMS_CONTEXT)
        ccr.requested_action = C.E_REQUESTED_ACTION_DIRECT_DEBITING
        ccr.append_avp(
            avp(
                C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL,
                [avp(C.AVP_REQUESTED_SERVICE_UNIT, [avp(C.AVP_CC_SERVICE_SPECIFIC_UNITS, 1)])],
            )
        )
        address = avp(
            C.AVP_TGPP_RECIPIENT_ADDRESS,
            [avp(C.AVP_TGPP_ADDRESS_TYPE, 1, TGPP), avp(C.AVP_TGPP_ADDRESS_DATA, recipient, TGPP)],
            TGPP,
        )
        sms = avp(
            C.AVP_TGPP_SMS_INFORMATION,
            [avp(C.AVP_TGPP_RECIPIENT_INFO, [address], TGPP)],
            TGPP,
        )
        ccr.append_avp(avp(C.AVP_TGPP_SERVICE_INFORMATION, [sms], TGPP))
        return ccr


def avp_values(message: Any, *path: int) -> list[Any]:
    """Values at a path of AVP codes (python-diameter's generic AVP objects)."""
    current = list(message.avps)
    for depth, code in enumerate(path):
        found = [item for item in current if item.code == code]
        if depth == len(path) - 1:
            return [item.value for item in found]
        current = [child for item in found for child in item.value]
    return []
