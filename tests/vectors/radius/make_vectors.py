"""Generates the golden RADIUS packets in this directory with pyrad's own packet classes.

pyrad's ``AuthPacket`` / ``AcctPacket`` / ``CoAPacket`` encoders (authenticators, User-Password
hiding, Message-Authenticator) are independent of agents/radius/codec.py's hand-written ones, so
decoding and verifying these files with our codec checks it against another reading of RFC 2865
/ 2866 / 2869 / 5176. Everything is fixed (ids, authenticators), so a rerun reproduces the files
byte for byte:

    .venv/bin/python tests/vectors/radius/make_vectors.py
"""

from __future__ import annotations

from pathlib import Path

from pyrad import packet  # type: ignore[import-untyped]
from pyrad.dictionary import Dictionary  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
DICTIONARY = HERE.parents[2] / "agents" / "radius" / "dictionary" / "dictionary"
SECRET = b"testing123"
AUTHENTICATOR = bytes(range(16))


def _dictionary() -> Dictionary:
    return Dictionary(str(DICTIONARY))


def access_request_pap() -> bytes:
    pkt = packet.AuthPacket(id=1, secret=SECRET, authenticator=AUTHENTICATOR, dict=_dictionary())
    pkt.add_message_authenticator()
    pkt["User-Name"] = "1001"
    pkt["User-Password"] = pkt.PwCrypt("CGRateS.org")
    pkt["NAS-IP-Address"] = "192.0.2.1"
    pkt["NAS-Port-Type"] = "Wireless-802.11"
    pkt["Called-Station-Id"] = "1002"
    pkt["Proxy-State"] = b"\x01\x02"
    return bytes(pkt.RequestPacket())


def accounting(status: str, session_time: int | None, ident: int) -> bytes:
    pkt = packet.AcctPacket(id=ident, secret=SECRET, dict=_dictionary())
    pkt["User-Name"] = "1001"
    pkt["Acct-Status-Type"] = status
    pkt["Acct-Session-Id"] = "5f3a-0001"
    pkt["NAS-IP-Address"] = "192.0.2.1"
    pkt["NAS-IPv6-Address"] = "2001:db8::1"
    pkt["Framed-IPv6-Prefix"] = "2001:db8:1::/48"
    pkt["Event-Timestamp"] = 1714564800  # 2024-05-01T12:00:00Z
    pkt["Called-Station-Id"] = "1002"
    if session_time is not None:
        pkt["Acct-Session-Time"] = session_time
        pkt["Acct-Input-Octets"] = 1000
        pkt["Acct-Output-Octets"] = 2000
        pkt["Acct-Input-Gigawords"] = 1
    return bytes(pkt.RequestPacket())


def access_accept() -> bytes:
    request = packet.AuthPacket(packet=access_request_pap(), secret=SECRET, dict=_dictionary())
    reply = request.CreateReply()
    reply.code = packet.AccessAccept
    reply.add_message_authenticator()
    reply["Session-Timeout"] = 3600
    reply["Reply-Message"] = "Welcome"
    return bytes(reply.ReplyPacket())


def disconnect_request() -> bytes:
    pkt = packet.CoAPacket(code=packet.DisconnectRequest, id=9, secret=SECRET, dict=_dictionary())
    pkt.add_message_authenticator()
    pkt["User-Name"] = "1001"
    pkt["Acct-Session-Id"] = "5f3a-0001"
    pkt["Error-Cause"] = "Session-Context-Not-Found"
    return bytes(pkt.RequestPacket())


def vectors() -> dict[str, bytes]:
    return {
        "access_request_pap": access_request_pap(),
        "access_accept": access_accept(),
        "accounting_start": accounting("Start", None, 2),
        "accounting_interim": accounting("Interim-Update", 120, 3),
        "accounting_stop": accounting("Stop", 150, 4),
        "disconnect_request": disconnect_request(),
    }


if __name__ == "__main__":
    for name, data in vectors().items():
        (HERE / f"{name}.hex").write_text(data.hex() + "\n")
        print(name, len(data))
