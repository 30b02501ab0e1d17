"""Built-in templates: the reply/request skeletons CGRateS defines in config_defaults.go
("templates"). Users may override any of them by name."""

from __future__ import annotations

from typing import Any, Final

_V: Final = "*variable"


def _field(
    tag: str, path: str, value: str, kind: str = _V, mandatory: bool = True
) -> dict[str, Any]:
    return {"tag": tag, "path": path, "type": kind, "value": value, "mandatory": mandatory}


def _diameter_request(tree: str) -> list[dict[str, Any]]:
    """ASR/RAR towards the client: its Origin is our Destination and the other way round."""
    return [
        _field("SessionId", f"{tree}.Session-Id", "~*req.Session-Id"),
        _field("OriginHost", f"{tree}.Origin-Host", "~*req.Destination-Host"),
        _field("OriginRealm", f"{tree}.Origin-Realm", "~*req.Destination-Realm"),
        _field("DestinationRealm", f"{tree}.Destination-Realm", "~*req.Origin-Realm"),
        _field("DestinationHost", f"{tree}.Destination-Host", "~*req.Origin-Host"),
        _field("AuthApplicationId", f"{tree}.Auth-Application-Id", "~*vars.*appid"),
    ]


def _radius_request(last_tag: str, last_attribute: str, last_value: str) -> list[dict[str, Any]]:
    return [
        _field("User-Name", "*radDAReq.User-Name", "~*oreq.User-Name", mandatory=False),
        _field(
            "NAS-IP-Address", "*radDAReq.NAS-IP-Address", "~*oreq.NAS-IP-Address", mandatory=False
        ),
        _field(
            "Acct-Session-Id",
            "*radDAReq.Acct-Session-Id",
            "~*oreq.Acct-Session-Id",
            mandatory=False,
        ),
        _field(last_tag, f"*radDAReq.{last_attribute}", last_value, mandatory=False),
    ]


BUILTIN_TEMPLATES: Final[dict[str, list[dict[str, Any]]]] = {
    "*err": [
        _field("SessionId", "*rep.Session-Id", "~*req.Session-Id"),
        _field("OriginHost", "*rep.Origin-Host", "~*vars.OriginHost"),
        _field("OriginRealm", "*rep.Origin-Realm", "~*vars.OriginRealm"),
    ],
    "*cca": [
        _field("SessionId", "*rep.Session-Id", "~*req.Session-Id"),
        _field("ResultCode", "*rep.Result-Code", "2001", kind="*constant", mandatory=False),
        _field("OriginHost", "*rep.Origin-Host", "~*vars.OriginHost"),
        _field("OriginRealm", "*rep.Origin-Realm", "~*vars.OriginRealm"),
        _field("AuthApplicationId", "*rep.Auth-Application-Id", "~*vars.*appid"),
        _field("CCRequestType", "*rep.CC-Request-Type", "~*req.CC-Request-Type"),
        _field("CCRequestNumber", "*rep.CC-Request-Number", "~*req.CC-Request-Number"),
    ],
    "*asr": _diameter_request("*diamreq"),
    "*rar": [
        *_diameter_request("*diamreq"),
        _field(
            "ReAuthRequestType",
            "*diamreq.Re-Auth-Request-Type",
            "0",
            kind="*constant",
            mandatory=False,
        ),
    ],
    "*dmr": _radius_request("Reply-Message", "Reply-Message", "~*req.DisconnectCause"),
    "*coa": _radius_request("Filter-Id", "Filter-Id", "~*req.CustomFilter"),
}
