"""Generates the golden Diameter messages in this directory with python-diameter's encoder.

python-diameter is an implementation independent of agents/diameter/codec.py, so decoding these
files with our codec checks it against someone else's reading of RFC 6733 / 4006 / 3GPP 32.299.
Everything is fixed (ids, timestamps), so a rerun reproduces the files byte for byte:

    .venv/bin/python tests/vectors/diameter/make_vectors.py
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from diameter.message import Message
from diameter.message import constants as C
from diameter.message.avp import Avp
from diameter.message.commands import CreditControlAnswer, CreditControlRequest

HERE = Path(__file__).resolve().parent
TGPP = C.VENDOR_TGPP
STAMP = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


def avp(code: int, value: Any, vendor: int = 0) -> Any:
    return Avp.new(code, vendor, value=value)


def base_ccr(
    session: str, request_type: int, number: int, context: str, hbh: int
) -> CreditControlRequest:
    ccr = CreditControlRequest()
    ccr.header.application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    ccr.header.hop_by_hop_identifier = hbh
    ccr.header.end_to_end_identifier = hbh + 0x10000
    ccr.session_id = session
    ccr.origin_host = b"pgw.example.net"
    ccr.origin_realm = b"example.net"
    ccr.destination_realm = b"chargeflow.test"
    ccr.auth_application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    ccr.service_context_id = context
    ccr.cc_request_type = request_type
    ccr.cc_request_number = number
    ccr.event_timestamp = STAMP
    ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164, "491701234567")
    ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI, "262011234567890")
    return ccr


def used_units(rating_group: int) -> Any:
    return avp(
        C.AVP_USED_SERVICE_UNIT,
        [
            avp(C.AVP_CC_TIME, 60 * rating_group),
            avp(C.AVP_CC_INPUT_OCTETS, 1000 * rating_group),
            avp(C.AVP_CC_OUTPUT_OCTETS, 5000 * rating_group),
            avp(C.AVP_CC_TOTAL_OCTETS, 6000 * rating_group),
        ],
    )


def ps_information() -> Any:
    return avp(
        C.AVP_TGPP_SERVICE_INFORMATION,
        [
            avp(
                C.AVP_TGPP_PS_INFORMATION,
                [
                    avp(C.AVP_TGPP_3GPP_CHARGING_ID, b"\x00\x00\x30\x39", TGPP),
                    avp(C.AVP_TGPP_3GPP_RAT_TYPE, b"\x06", TGPP),
                    avp(C.AVP_TGPP_3GPP_SGSN_MCC_MNC, "26201", TGPP),
                    avp(C.AVP_CALLED_STATION_ID, "internet"),
                ],
                TGPP,
            )
        ],
        TGPP,
    )


def data_ccr(request_type: int, number: int, hbh: int) -> Any:
    ccr = base_ccr("pgw.example.net;1714564800;42", request_type, number, "32251@3gpp.org", hbh)
    ccr.append_avp(avp(C.AVP_MULTIPLE_SERVICES_INDICATOR, 1))
    if request_type == C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST:
        ccr.termination_cause = C.E_TERMINATION_CAUSE_DIAMETER_LOGOUT
    for rating_group in (1, 2, 3):
        inner = [avp(C.AVP_RATING_GROUP, rating_group), avp(C.AVP_SERVICE_IDENTIFIER, 100)]
        if request_type != C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST:
            inner.append(avp(C.AVP_REQUESTED_SERVICE_UNIT, []))
        if request_type != C.E_CC_REQUEST_TYPE_INITIAL_REQUEST:
            inner.append(used_units(rating_group))
            reason = 2 if request_type == C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST else 3
            inner.append(avp(C.AVP_TGPP_3GPP_REPORTING_REASON, reason, TGPP))
        ccr.append_avp(avp(C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, inner))
    ccr.append_avp(ps_information())
    return ccr


def sms_ccr_event() -> Any:
    ccr = base_ccr(
        "smsc.example.net;1714564800;7",
        C.E_CC_REQUEST_TYPE_EVENT_REQUEST,
        0,
        "32274@3gpp.org",
        0x5000,
    )
    ccr.requested_action = C.E_REQUESTED_ACTION_DIRECT_DEBITING
    ccr.append_avp(
        avp(
            C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL,
            [
                avp(C.AVP_REQUESTED_SERVICE_UNIT, [avp(C.AVP_CC_SERVICE_SPECIFIC_UNITS, 1)]),
                avp(C.AVP_SERVICE_IDENTIFIER, 4),
            ],
        )
    )
    recipient = avp(
        C.AVP_TGPP_RECIPIENT_INFO,
        [
            avp(
                C.AVP_TGPP_RECIPIENT_ADDRESS,
                [
                    avp(C.AVP_TGPP_ADDRESS_TYPE, 1, TGPP),  # MSISDN
                    avp(C.AVP_TGPP_ADDRESS_DATA, "491709876543", TGPP),
                ],
                TGPP,
            )
        ],
        TGPP,
    )
    sms = avp(
        C.AVP_TGPP_SMS_INFORMATION,
        [
            avp(C.AVP_TGPP_SMS_NODE, 1, TGPP),  # SMS-SC
            avp(C.AVP_TGPP_SMSC_ADDRESS, "491700000001", TGPP),  # E.164 Address
            avp(C.AVP_TGPP_DATA_CODING_SCHEME, 0, TGPP),
            avp(C.AVP_TGPP_SM_MESSAGE_TYPE, 0, TGPP),  # SUBMISSION
            recipient,
        ],
        TGPP,
    )
    ccr.append_avp(avp(C.AVP_TGPP_SERVICE_INFORMATION, [sms], TGPP))
    return ccr


def voice_ccr_initial() -> Any:
    ccr = base_ccr(
        "scscf.example.net;1714564800;99",
        C.E_CC_REQUEST_TYPE_INITIAL_REQUEST,
        0,
        "32260@3gpp.org",
        0x6000,
    )
    ccr.append_avp(
        avp(
            C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL,
            [avp(C.AVP_REQUESTED_SERVICE_UNIT, [avp(C.AVP_CC_TIME, 300)])],
        )
    )
    ims = avp(
        C.AVP_TGPP_IMS_INFORMATION,
        [
            avp(C.AVP_TGPP_EVENT_TYPE, [avp(C.AVP_TGPP_3GPP_SIP_METHOD, "INVITE", TGPP)], TGPP),
            avp(C.AVP_TGPP_ROLE_OF_NODE, 0, TGPP),  # ORIGINATING_ROLE
            avp(C.AVP_TGPP_NODE_FUNCTIONALITY, 0, TGPP),  # S-CSCF
            avp(C.AVP_TGPP_CALLING_PARTY_ADDRESS, "sip:+491701234567@ims.example.net", TGPP),
            avp(C.AVP_TGPP_CALLED_PARTY_ADDRESS, "tel:+4930123456", TGPP),
            avp(C.AVP_TGPP_IMS_CHARGING_IDENTIFIER, "icid-0001", TGPP),
        ],
        TGPP,
    )
    ccr.append_avp(avp(C.AVP_TGPP_SERVICE_INFORMATION, [ims], TGPP))
    return ccr


def data_cca_update() -> Any:
    cca = CreditControlAnswer()
    cca.header.application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    cca.header.hop_by_hop_identifier = 0x2001
    cca.header.end_to_end_identifier = 0x12001
    cca.session_id = "pgw.example.net;1714564800;42"
    cca.result_code = C.E_RESULT_CODE_DIAMETER_SUCCESS
    cca.origin_host = b"ocs.chargeflow.test"
    cca.origin_realm = b"chargeflow.test"
    cca.auth_application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    cca.cc_request_type = C.E_CC_REQUEST_TYPE_UPDATE_REQUEST
    cca.cc_request_number = 1
    for rating_group, result in ((1, 2001), (2, 2001), (3, 4012)):
        inner = [avp(C.AVP_RATING_GROUP, rating_group), avp(C.AVP_RESULT_CODE, result)]
        if result == 2001:
            inner.append(avp(C.AVP_GRANTED_SERVICE_UNIT, [avp(C.AVP_CC_TOTAL_OCTETS, 1_048_576)]))
            inner.append(avp(C.AVP_VALIDITY_TIME, 3600))
        cca.append_avp(avp(C.AVP_MULTIPLE_SERVICES_CREDIT_CONTROL, inner))
    return cca


def vectors() -> dict[str, bytes]:
    """Every vector: file stem -> wire bytes."""
    made: dict[str, Message] = {
        "gy_data_ccr_initial": data_ccr(C.E_CC_REQUEST_TYPE_INITIAL_REQUEST, 0, 0x2000),
        "gy_data_ccr_update": data_ccr(C.E_CC_REQUEST_TYPE_UPDATE_REQUEST, 1, 0x2001),
        "gy_data_ccr_terminate": data_ccr(C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST, 2, 0x2002),
        "gy_data_cca_update": data_cca_update(),
        "sms_ccr_event": sms_ccr_event(),
        "voice_ims_ccr_initial": voice_ccr_initial(),
    }
    return {name: message.as_bytes() for name, message in made.items()}


def main() -> None:
    for name, data in vectors().items():
        (HERE / f"{name}.hex").write_text(data.hex() + "\n")
        print(f"{name}.hex: {len(data)} bytes")


if __name__ == "__main__":
    main()
