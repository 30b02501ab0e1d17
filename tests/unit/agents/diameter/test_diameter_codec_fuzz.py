"""Fuzzing the Diameter codec: whatever the bytes, only DiameterDecodeError, and quickly.

(Named test_diameter_codec_fuzz.py: tests/unit/rpc/test_codec_fuzz.py already holds the basename.)
"""

from __future__ import annotations

import time

from diameter.message import constants as C
from diameter.message.commands import CreditControlRequest
from diameter.message.commands.credit_control import RequestedServiceUnit, UsedServiceUnit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.diameter import codec
from agents.diameter.codec import DiameterDecodeError

OCS = {"origin_host": "ocs.test", "origin_realm": "test"}


def _valid_ccr() -> bytes:
    ccr = CreditControlRequest()
    ccr.header.application_id = 4
    ccr.session_id = "pgw;1"
    ccr.origin_host = b"pgw.test"
    ccr.origin_realm = b"test"
    ccr.destination_realm = b"ocs"
    ccr.auth_application_id = 4
    ccr.service_context_id = "32251@3gpp.org"
    ccr.cc_request_type = C.E_CC_REQUEST_TYPE_UPDATE_REQUEST
    ccr.cc_request_number = 1
    ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164, "41780000001")
    for rating_group in (1, 2):
        ccr.add_multiple_services_credit_control(
            requested_service_unit=RequestedServiceUnit(),
            used_service_unit=[UsedServiceUnit(cc_total_octets=1000)],
            rating_group=rating_group,
        )
    data: bytes = ccr.as_bytes()
    return data


VALID = _valid_ccr()


def _exercise(data: bytes) -> None:
    """Decodes and reads everything; answers the error if there is one."""
    started = time.perf_counter()
    try:
        msg = codec.decode(data)
        msg.validate()
        for item in codec.iter_avps(msg.avps):
            _ = item.value
        msg.get(("Multiple-Services-Credit-Control", "Used-Service-Unit", "CC-Total-Octets"))
        codec.encode(msg)
    except DiameterDecodeError as exc:
        assert 3000 <= exc.result_code < 6000
        answer = codec.answer_for_error(exc, **OCS)
        if answer is not None:
            codec.decode(codec.encode(answer)).validate()  # the answer itself is well formed
    assert time.perf_counter() - started < 0.5


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=20, max_size=200))
def test_arbitrary_bytes_with_consistent_header(body: bytes) -> None:
    # Make the header length agree with the data, so the AVP walker gets exercised.
    body = body[: len(body) - len(body) % 4]
    data = bytes([1]) + len(body).to_bytes(3, "big") + body[4:]
    _exercise(data)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_mutated_valid_ccr(mutations: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for offset, byte in mutations:
        data[offset] = byte
    _exercise(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(VALID)))
def test_truncated_valid_ccr(cut: int) -> None:
    data = VALID[:cut]
    if len(data) >= 4:  # keep the header consistent with the truncation
        data = data[:1] + len(data).to_bytes(3, "big") + data[4:]
    _exercise(data)
