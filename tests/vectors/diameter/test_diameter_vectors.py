"""Our codec reads the golden messages python-diameter wrote (see README.md)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.diameter import codec
from agents.diameter.codec import DiameterMessage

HERE = Path(__file__).resolve().parent
STAMP = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MSCC = "Multiple-Services-Credit-Control"
PS = ("Service-Information", "PS-Information")


def load(name: str) -> tuple[bytes, DiameterMessage]:
    data = bytes.fromhex((HERE / f"{name}.hex").read_text().strip())
    message = codec.decode(data)
    message.validate()
    return data, message


def one(message: DiameterMessage, *path: str) -> Any:
    values = message.get(path)
    assert len(values) == 1, (path, values)
    return values[0]


def test_vectors_are_reproducible() -> None:
    spec = importlib.util.spec_from_file_location("make_vectors", HERE / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, data in module.vectors().items():
        assert (HERE / f"{name}.hex").read_text().strip() == data.hex(), name


@pytest.mark.parametrize(
    ("name", "request_type", "number"),
    [("gy_data_ccr_initial", 1, 0), ("gy_data_ccr_update", 2, 1), ("gy_data_ccr_terminate", 3, 2)],
)
def test_gy_data_ccrs(name: str, request_type: int, number: int) -> None:
    data, msg = load(name)
    assert (msg.code, msg.app_id, msg.is_request) == (codec.CMD_CREDIT_CONTROL, 4, True)
    assert msg.hbh == 0x2000 + number and msg.e2e == 0x12000 + number
    assert msg.session_id == "pgw.example.net;1714564800;42"
    assert one(msg, "Origin-Host") == "pgw.example.net"
    assert one(msg, "Service-Context-Id") == "32251@3gpp.org"
    assert one(msg, "CC-Request-Type") == request_type
    assert one(msg, "CC-Request-Number") == number
    assert one(msg, "Event-Timestamp") == STAMP
    assert msg.get(("Subscription-Id", "Subscription-Id-Type")) == [0, 1]
    assert msg.get(("Subscription-Id", "Subscription-Id-Data")) == [
        "491701234567",
        "262011234567890",
    ]
    assert msg.get((MSCC, "Rating-Group")) == [1, 2, 3]
    assert msg.get((MSCC, "Service-Identifier")) == [100, 100, 100]
    assert one(msg, *PS, "3GPP-Charging-Id") == b"\x00\x00\x30\x39"
    assert one(msg, *PS, "3GPP-RAT-Type") == b"\x06"
    assert one(msg, *PS, "Called-Station-Id") == "internet"
    if request_type == 1:
        assert msg.get((MSCC, "Used-Service-Unit")) == []
        assert len(msg.get((MSCC, "Requested-Service-Unit"))) == 3
    else:
        assert msg.get((MSCC, "Used-Service-Unit", "CC-Total-Octets")) == [6000, 12000, 18000]
        assert msg.get((MSCC, "Used-Service-Unit", "CC-Input-Octets")) == [1000, 2000, 3000]
        assert msg.get((MSCC, "Used-Service-Unit", "CC-Time")) == [60, 120, 180]
        reason = 2 if request_type == 3 else 3
        assert msg.get((MSCC, "3GPP-Reporting-Reason")) == [reason] * 3
    if request_type == 3:
        assert one(msg, "Termination-Cause") == 1
    assert codec.encode(msg) == data


def test_gy_data_cca() -> None:
    _, msg = load("gy_data_cca_update")
    assert not msg.is_request
    assert one(msg, "Result-Code") == codec.DIAMETER_SUCCESS
    assert msg.get((MSCC, "Result-Code")) == [2001, 2001, 4012]
    assert msg.get((MSCC, "Granted-Service-Unit", "CC-Total-Octets")) == [1_048_576] * 2
    assert msg.get((MSCC, "Validity-Time")) == [3600, 3600]


def test_sms_event() -> None:
    _, msg = load("sms_ccr_event")
    sms = ("Service-Information", "SMS-Information")
    assert one(msg, "CC-Request-Type") == 4
    assert one(msg, "Requested-Action") == 0
    assert one(msg, "Service-Context-Id") == "32274@3gpp.org"
    assert one(msg, MSCC, "Requested-Service-Unit", "CC-Service-Specific-Units") == 1
    assert one(msg, *sms, "SMS-Node") == 1
    assert one(msg, *sms, "SMSC-Address") == "491700000001"
    assert one(msg, *sms, "Recipient-Info", "Recipient-Address", "Address-Data") == ("491709876543")


def test_voice_ims() -> None:
    _, msg = load("voice_ims_ccr_initial")
    ims = ("Service-Information", "IMS-Information")
    assert one(msg, "Service-Context-Id") == "32260@3gpp.org"
    assert one(msg, MSCC, "Requested-Service-Unit", "CC-Time") == 300
    assert one(msg, *ims, "Event-Type", "3GPP-SIP-Method") == "INVITE"
    assert one(msg, *ims, "Role-Of-Node") == 0
    assert one(msg, *ims, "Calling-Party-Address") == "sip:+491701234567@ims.example.net"
    assert one(msg, *ims, "Called-Party-Address") == "tel:+4930123456"
    assert one(msg, *ims, "IMS-Charging-Identifier") == "icid-0001"
    info = one(msg, "Service-Information")
    assert isinstance(info, codec.Avp) and info.vendor == codec.VENDOR_3GPP
