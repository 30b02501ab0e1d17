"""agents.diameter.codec against python-diameter as the independent implementation.

(Named test_diameter_codec.py: pytest's default import mode needs unique basenames and
tests/unit/rpc/test_codec.py exists.)
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from diameter.message import Message
from diameter.message import constants as C
from diameter.message.avp import Avp as PdAvp
from diameter.message.commands import (
    CapabilitiesExchangeAnswer,
    CapabilitiesExchangeRequest,
    CreditControlRequest,
)
from diameter.message.commands.credit_control import (
    RequestedServiceUnit,
    UsedServiceUnit,
)

from agents.diameter import codec
from agents.diameter.codec import (
    Avp,
    DiameterDecodeError,
    DiameterMessage,
    answer_to,
    decode,
    encode,
    error_answer,
)

OCS = {"origin_host": "ocs.chargeflow.test", "origin_realm": "chargeflow.test"}


def make_cer() -> bytes:
    cer = CapabilitiesExchangeRequest()
    cer.header.hop_by_hop_identifier = 0x1234
    cer.header.end_to_end_identifier = 0x5678
    cer.origin_host = b"pgw.test"
    cer.origin_realm = b"test"
    cer.host_ip_address = "10.1.2.3"
    cer.vendor_id = C.VENDOR_TGPP
    cer.product_name = "pgw"
    cer.auth_application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    cer.supported_vendor_id = C.VENDOR_TGPP
    data: bytes = cer.as_bytes()
    return data


def make_ccr_u() -> bytes:
    ccr = CreditControlRequest()
    ccr.header.application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    ccr.header.hop_by_hop_identifier = 7
    ccr.header.end_to_end_identifier = 9
    ccr.session_id = "pgw.test;1;2;3"
    ccr.origin_host = b"pgw.test"
    ccr.origin_realm = b"test"
    ccr.destination_realm = b"chargeflow.test"
    ccr.auth_application_id = C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    ccr.service_context_id = "32251@3gpp.org"
    ccr.cc_request_type = C.E_CC_REQUEST_TYPE_UPDATE_REQUEST
    ccr.cc_request_number = 1
    ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164, "41780000001")
    ccr.add_subscription_id(C.E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI, "228010000000001")
    for rating_group in (10, 20, 30):
        ccr.add_multiple_services_credit_control(
            requested_service_unit=RequestedServiceUnit(),
            used_service_unit=[UsedServiceUnit(cc_total_octets=1000 * rating_group)],
            rating_group=rating_group,
        )
    ccr.append_avp(PdAvp.new(C.AVP_TGPP_3GPP_CHARGING_CHARACTERISTICS, C.VENDOR_TGPP, value="0800"))
    data: bytes = ccr.as_bytes()
    return data


# ------------------------------------------------------------------------------ round trips
def test_cer_header_and_fields() -> None:
    data = make_cer()
    msg = decode(data)
    assert (msg.version, msg.code, msg.app_id) == (1, codec.CMD_CAPABILITIES_EXCHANGE, 0)
    assert msg.is_request and not msg.is_error
    assert (msg.hbh, msg.e2e) == (0x1234, 0x5678)
    assert msg.get(("Origin-Host",)) == ["pgw.test"]
    assert msg.get(("Host-IP-Address",)) == ["10.1.2.3"]
    assert msg.get(("Auth-Application-Id",)) == [4]
    assert msg.get(("Product-Name",)) == ["pgw"]
    assert encode(msg) == data


def test_cea_built_here_read_by_python_diameter() -> None:
    cer = decode(make_cer())
    cea = answer_to(
        cer,
        codec.DIAMETER_SUCCESS,
        {
            "Host-IP-Address": "127.0.0.1",
            "Vendor-Id": 0,
            "Product-Name": "chargeflow",
            "Auth-Application-Id": [4],
            "Vendor-Specific-Application-Id": {"Vendor-Id": 10415, "Auth-Application-Id": 4},
        },
        **OCS,
    )
    data = encode(cea)
    theirs = Message.from_bytes(data)
    assert isinstance(theirs, CapabilitiesExchangeAnswer)
    assert theirs.result_code == codec.DIAMETER_SUCCESS
    assert theirs.origin_host == b"ocs.chargeflow.test"
    assert theirs.host_ip_address == [(1, "127.0.0.1")]
    assert theirs.header.hop_by_hop_identifier == 0x1234
    assert not theirs.header.is_request
    assert decode(data).get(("Vendor-Specific-Application-Id", "Vendor-Id")) == [10415]


def test_ccr_mscc_paths_and_vendor_avps() -> None:
    msg = decode(make_ccr_u())
    assert msg.session_id == "pgw.test;1;2;3"
    assert msg.get(("CC-Request-Type",)) == [2]
    assert msg.get(("Multiple-Services-Credit-Control", "Rating-Group")) == [10, 20, 30]
    assert msg.get(
        ("Multiple-Services-Credit-Control", "Used-Service-Unit", "CC-Total-Octets")
    ) == [10000, 20000, 30000]
    assert msg.get(("Subscription-Id", "Subscription-Id-Data")) == [
        "41780000001",
        "228010000000001",
    ]
    assert msg.get(("3GPP-Charging-Characteristics",)) == ["0800"]
    vendor_avp = msg.find(13, codec.VENDOR_3GPP)[0]
    assert vendor_avp.vendor == codec.VENDOR_3GPP and vendor_avp.flags & codec.AVP_FLAG_VENDOR
    assert msg.get(("Nope-Not-An-AVP",)) == []
    assert msg.get(("Multiple-Services-Credit-Control", "Session-Id")) == []
    assert msg.get(()) == []
    groups = msg.get(("Multiple-Services-Credit-Control",))
    assert [g.get(("Rating-Group",)) for g in groups] == [[10], [20], [30]]
    assert msg.get(("263",)) == ["pgw.test;1;2;3"]  # numeric names reach unknown AVPs too
    assert msg.get(("Session-Id", "Rating-Group")) == []  # no descent into a leaf
    assert groups[0].get(("Used-Service-Unit", "CC-Total-Octets")) == [10000]


def test_unknown_grouped_avp_is_readable_by_numeric_path() -> None:
    inner = Avp(99001, 0, 0, codec.encode_avp(Avp(codec.AVP_RESULT_CODE, 0, 0, 2001)))
    msg = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST, 1, 1, [inner])
    back = decode(encode(msg))
    assert back.get(("99001", "Result-Code")) == [2001]
    garbage = DiameterMessage(272, 4, codec.FLAG_REQUEST, 1, 1, [Avp(99002, 0, 0, b"xyz")])
    assert decode(encode(garbage)).get(("99002", "Result-Code")) == []


def test_lazy_access() -> None:
    msg = decode(make_ccr_u())
    assert msg._avps is None  # nothing walked by decode
    groups = msg.find(456)  # Multiple-Services-Credit-Control
    assert all(g._children is None for g in groups)
    assert all(item._value is Avp._UNSET for item in msg.avps)
    assert msg.first(416) == 2  # CC-Request-Type decoded on read only
    assert sum(item._value is not Avp._UNSET for item in msg.avps) == 1


def test_untouched_message_reencodes_identically() -> None:
    data = make_ccr_u()
    msg = decode(data)
    msg.validate()
    assert encode(msg) == data
    assert encode(decode(data)) == data


def test_value_types_round_trip() -> None:
    stamp = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    tree = {
        "Session-Id": "s;1",
        "Origin-Host": "a.test",
        "Event-Timestamp": stamp,
        "Host-IP-Address": ["192.0.2.1", "2001:db8::1"],
        "CC-Input-Octets": 2**40,
        "Acct-Input-Packets": -5,  # Integer32 in python-diameter's dictionary
        "Class": b"\x00\xff",
        "Subscription-Id": [
            {"Subscription-Id-Type": 0, "Subscription-Id-Data": "4178"},
            [("Subscription-Id-Type", 1), ("Subscription-Id-Data", "2280")],
        ],
    }
    built = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST, 1, 2)
    for item in codec.build_avps(tree):
        built.append(item)
    data = encode(built)
    theirs = Message.from_bytes(data, plain_msg=True)
    by_code = {a.code: a for a in theirs.avps}
    assert by_code[C.AVP_EVENT_TIMESTAMP].value.timestamp() == stamp.timestamp()
    back = decode(data)
    assert back.get(("Event-Timestamp",)) == [stamp]
    assert back.get(("Host-IP-Address",)) == ["192.0.2.1", "2001:db8::1"]
    assert back.get(("CC-Input-Octets",)) == [2**40]
    assert back.get(("Acct-Input-Packets",)) == [-5]
    assert back.get(("Class",)) == [b"\x00\xff"]
    assert back.get(("Subscription-Id", "Subscription-Id-Data")) == ["4178", "2280"]


def test_reply_tree_nodes_shape_encodes() -> None:
    # agents.templating.ReplyTree.nodes: every element a list of instances, leaves often text.
    nodes = {
        "Result-Code": ["2001"],
        "Multiple-Services-Credit-Control": [
            {
                "Rating-Group": ["1"],
                "Granted-Service-Unit": [{"CC-Time": ["300.0"], "CC-Total-Octets": [1048576]}],
            },
            {"Rating-Group": ["2"], "Result-Code": ["4012"]},
        ],
    }
    msg = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, 0, 1, 1, codec.build_avps(nodes))
    back = decode(encode(msg))
    assert back.get(("Result-Code",)) == [2001]
    assert back.get(("Multiple-Services-Credit-Control", "Rating-Group")) == [1, 2]
    mscc_gsu = ("Multiple-Services-Credit-Control", "Granted-Service-Unit")
    assert back.get((*mscc_gsu, "CC-Time")) == [300]
    assert back.get(("Multiple-Services-Credit-Control", "Result-Code")) == [4012]
    with pytest.raises(codec.DiameterEncodeError):
        encode(DiameterMessage(272, 4, 0, 1, 1, codec.build_avps({"CC-Time": "1.5"})))
    skipped = codec.build_avps({"CC-Time": None, "Rating-Group": [None, 3], "Result-Code": 2001})
    assert [(a.code, a.value) for a in skipped] == [(432, 3), (268, 2001)]


def test_build_unknown_name_is_an_encode_error() -> None:
    with pytest.raises(codec.DiameterEncodeError):
        codec.build_avps({"No-Such-AVP": 1})


# ---------------------------------------------------------------------------------- answers
def test_answer_to_copies_ids_and_session() -> None:
    request = decode(make_ccr_u())
    answer = answer_to(
        request,
        codec.DIAMETER_SUCCESS,
        {
            "Auth-Application-Id": 4,
            "CC-Request-Type": 2,
            "CC-Request-Number": 1,
            "Multiple-Services-Credit-Control": [
                {"Rating-Group": 10, "Granted-Service-Unit": {"CC-Total-Octets": 5000}},
                {"Rating-Group": 20, "Result-Code": 4012},
            ],
        },
        **OCS,
    )
    data = encode(answer)
    theirs = Message.from_bytes(data)
    assert not theirs.header.is_request and not theirs.header.is_error
    assert theirs.header.hop_by_hop_identifier == 7 and theirs.header.end_to_end_identifier == 9
    assert theirs.header.application_id == 4
    assert theirs.session_id == "pgw.test;1;2;3"
    assert theirs.result_code == 2001
    assert theirs.avps[0].code == C.AVP_SESSION_ID  # Session-Id first (RFC 6733 §8.8)
    mine = decode(data)
    assert mine.get(
        ("Multiple-Services-Credit-Control", "Granted-Service-Unit", "CC-Total-Octets")
    ) == [5000]
    assert mine.get(("Multiple-Services-Credit-Control", "Result-Code")) == [4012]


def test_answer_tree_overrides_head_avps_in_place() -> None:
    request = decode(make_ccr_u())
    answer = answer_to(
        request, None, {"CC-Request-Number": 1, "Result-Code": "4012", "Origin-Host": "x"}, **OCS
    )
    wire = decode(encode(answer))  # a built AVP's .value is what it was given ("4012")
    assert [(a.code, a.value) for a in wire.avps] == [
        (codec.AVP_SESSION_ID, "pgw.test;1;2;3"),
        (codec.AVP_RESULT_CODE, 4012),
        (codec.AVP_ORIGIN_HOST, "x"),
        (codec.AVP_ORIGIN_REALM, "chargeflow.test"),
        (415, 1),
    ]
    plain = answer_to(request, 2001, {"Result-Code": 5030}, **OCS)
    assert plain.get(("Result-Code",)) == [5030]


def test_error_answer_protocol_error_has_e_bit_and_failed_avp() -> None:
    request = decode(make_ccr_u())
    culprit = request.find(416)[0]
    answer = error_answer(request, codec.DIAMETER_INVALID_AVP_BITS, culprit, "bad bits", **OCS)
    data = encode(answer)
    theirs = Message.from_bytes(data, plain_msg=True)
    assert theirs.header.is_error and not theirs.header.is_request
    mine = decode(data)
    assert mine.first(codec.AVP_RESULT_CODE) == 3009
    assert mine.get(("Error-Message",)) == ["bad bits"]
    assert mine.get(("Failed-AVP", "CC-Request-Type")) == [2]


def test_error_answer_permanent_failure_has_no_e_bit() -> None:
    request = decode(make_ccr_u())
    answer = error_answer(request, codec.DIAMETER_INVALID_AVP_VALUE, **OCS)
    assert not answer.is_error


# ----------------------------------------------------------------------------------- errors
def _patch(data: bytes, offset: int, raw: bytes) -> bytes:
    return data[:offset] + raw + data[offset + len(raw) :]


def _error(data: bytes) -> DiameterDecodeError:
    with pytest.raises(DiameterDecodeError) as caught:
        msg = decode(data)
        msg.validate()
        for item in codec.iter_avps(msg.avps):
            item.value  # noqa: B018 - reading is the point
    return caught.value


def test_short_and_wrong_length() -> None:
    assert _error(b"\x01\x00").result_code == codec.DIAMETER_INVALID_MESSAGE_LENGTH
    data = make_cer()
    assert _error(data + b"\0\0\0\0").result_code == codec.DIAMETER_INVALID_MESSAGE_LENGTH


def test_bad_version() -> None:
    err = _error(_patch(make_cer(), 0, b"\x02"))
    assert err.result_code == codec.DIAMETER_UNSUPPORTED_VERSION
    assert err.message is not None and err.message.hbh == 0x1234


def test_reserved_header_bits_and_e_on_request() -> None:
    data = make_cer()
    assert _error(_patch(data, 4, b"\x81")).result_code == codec.DIAMETER_INVALID_HDR_BITS
    assert _error(_patch(data, 4, b"\xa0")).result_code == codec.DIAMETER_INVALID_HDR_BITS


def test_invalid_avp_length_reports_failed_avp_header() -> None:
    data = make_cer()
    # First AVP (Origin-Host) claims to run past the end of the message.
    err = _error(_patch(data, 20 + 5, b"\x00\xff\xff"))
    assert err.result_code == codec.DIAMETER_INVALID_AVP_LENGTH
    assert err.failed_avp is not None and err.failed_avp.code == codec.AVP_ORIGIN_HOST
    answer = codec.answer_for_error(err, **OCS)
    assert answer is not None
    back = decode(encode(answer))  # the error answer itself is well formed
    back.validate()
    assert back.first(codec.AVP_RESULT_CODE) == codec.DIAMETER_INVALID_AVP_LENGTH


def test_reserved_avp_bits() -> None:
    err = _error(_patch(make_cer(), 20 + 4, b"\x41"))
    assert err.result_code == codec.DIAMETER_INVALID_AVP_BITS
    assert err.failed_avp is not None and err.failed_avp.code == codec.AVP_ORIGIN_HOST


def test_invalid_utf8_value() -> None:
    msg = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST, 1, 1)
    msg.append(Avp(codec.AVP_SESSION_ID, 0, codec.AVP_FLAG_MANDATORY, b"\xff\xfe"))
    err = _error(encode(msg))
    assert err.result_code == codec.DIAMETER_INVALID_AVP_VALUE
    assert err.failed_avp is not None and err.failed_avp.payload == b"\xff\xfe"


def test_wrong_size_unsigned32() -> None:
    msg = DiameterMessage(codec.CMD_CREDIT_CONTROL, 4, codec.FLAG_REQUEST, 1, 1)
    msg.append(Avp(codec.AVP_RESULT_CODE, 0, codec.AVP_FLAG_MANDATORY, b"\0\0\0\0\0"))
    assert _error(encode(msg)).result_code == codec.DIAMETER_INVALID_AVP_LENGTH


def test_nested_error_is_reported_inside_its_group() -> None:
    data = bytearray(make_ccr_u())
    msg = decode(bytes(data))
    group = msg.find(456)[0]
    # Corrupt the flags of the first AVP inside the first MSCC.
    data[group._start + 4] = 0x5F
    err = _error(bytes(data))
    assert err.result_code == codec.DIAMETER_INVALID_AVP_BITS
    assert err.failed_avp is not None and err.failed_avp.code == 456


def test_answer_for_error_none_for_answers() -> None:
    data = _patch(make_cer(), 4, b"\x0f")  # an answer with reserved bits
    err = _error(data)
    assert codec.answer_for_error(err, **OCS) is None


def test_padding_is_skipped() -> None:
    body = struct.pack(">II", codec.AVP_SESSION_ID, 0x40 << 24 | 11) + b"abc\0"
    head = struct.pack(">IIIII", 1 << 24 | (20 + len(body)), 0x80 << 24 | 272, 4, 1, 1)
    assert decode(head + body).get(("Session-Id",)) == ["abc"]


def test_numeric_names() -> None:
    assert codec.avp_def("10415:13").name == "3GPP-Charging-Characteristics"
    assert codec.avp_def("99999").name == "99999"  # unknown: kept as OctetString
    assert codec.avp_def("1:99999").vendor == 1
    with pytest.raises(KeyError):
        codec.avp_def("Bogus-Name")
    msg = decode(make_ccr_u())
    assert msg.get(("10415:13",)) == ["0800"]
