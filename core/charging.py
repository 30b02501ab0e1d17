"""What SessionS and CDRs share: CGRateS event field names, request types, and one run's
chargeable view of an event (who pays, for what, from when, how much)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any, Final

from core.accounts.debit import DebitEvent
from core.errors import CGRError
from core.rating import CostQuery
from core.storage.cdr import Cdr
from core.types import InvalidValue, parse_duration, parse_time

# utils/consts.go field names.
TOR: Final = "ToR"
ORIGIN_ID: Final = "OriginID"
ORIGIN_HOST: Final = "OriginHost"
SOURCE: Final = "Source"
REQUEST_TYPE: Final = "RequestType"
TENANT: Final = "Tenant"
CATEGORY: Final = "Category"
ACCOUNT: Final = "Account"
SUBJECT: Final = "Subject"
DESTINATION: Final = "Destination"
SETUP_TIME: Final = "SetupTime"
ANSWER_TIME: Final = "AnswerTime"
USAGE: Final = "Usage"
LAST_USED: Final = "LastUsed"
TOTAL_USAGE: Final = "TotalUsage"
RUN_ID: Final = "RunID"
CGRID: Final = "CGRID"
COST: Final = "Cost"
PRE_RATED: Final = "PreRated"
STANDARD_FIELDS: Final = frozenset(
    {TOR, ORIGIN_ID, ORIGIN_HOST, SOURCE, REQUEST_TYPE, TENANT, CATEGORY, ACCOUNT, SUBJECT,
     DESTINATION, SETUP_TIME, ANSWER_TIME, USAGE, RUN_ID, CGRID, COST, LAST_USED, TOTAL_USAGE,
     PRE_RATED, "CostDetails", "CostSource", "ExtraInfo", "OrderID", "Partial"}
)  # fmt: skip

# Request types.
PREPAID: Final = "*prepaid"
PSEUDOPREPAID: Final = "*pseudoprepaid"
POSTPAID: Final = "*postpaid"
RATED: Final = "*rated"
NONE: Final = "*none"
BALANCE_CHECKED: Final = frozenset({PREPAID, PSEUDOPREPAID})
ACCOUNT_CHARGED: Final = frozenset({PREPAID, PSEUDOPREPAID, POSTPAID})

DEFAULT_RUN_ID: Final = "*default"
VOICE: Final = "*voice"
CGRID_CACHE_SIZE: Final = 4096  # ids of the calls in progress (a few each per request)


class ChargingError(CGRError):
    """A session or CDR request failed; the text is the CGRateS error string."""


@lru_cache(maxsize=CGRID_CACHE_SIZE)  # a call asks for its id about seven times
def cgrid(origin_id: str, origin_host: str) -> str:
    """CGRateS's session/CDR id: sha1(OriginID + OriginHost), hex."""
    return hashlib.sha1((origin_id + origin_host).encode()).hexdigest()


def _text(event: Mapping[str, Any], name: str, default: str = "") -> str:
    value = event.get(name)
    if type(value) is str:  # what clients send: no further checks
        return value or default
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise InvalidValue(f"{name}: not a string: {value!r}")
    return str(value)


@dataclass(slots=True)
class RunEvent:
    """One charger run's event, read once: everything charging needs, with defaults applied.

    Read-only by convention, not ``frozen``: a frozen dataclass's ``__init__`` costs ~2 µs
    more, and a dozen are built per call. (Never hashable either way: ``fields`` is a dict.)
    """

    tenant: str
    run_id: str
    request_type: str
    tor: str
    category: str
    account: str
    subject: str
    destination: str
    origin_id: str
    origin_host: str
    source: str
    setup_time: datetime | None
    answer_time: datetime | None
    usage: int | None  # None: the event named no Usage
    fields: Mapping[str, Any]

    def __init__(
        self,
        tenant: str,
        run_id: str,
        request_type: str,
        tor: str,
        category: str,
        account: str,
        subject: str,
        destination: str,
        origin_id: str,
        origin_host: str,
        source: str,
        setup_time: datetime | None,
        answer_time: datetime | None,
        usage: int | None,
        fields: Mapping[str, Any],
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.tenant = tenant
        self.run_id = run_id
        self.request_type = request_type
        self.tor = tor
        self.category = category
        self.account = account
        self.subject = subject
        self.destination = destination
        self.origin_id = origin_id
        self.origin_host = origin_host
        self.source = source
        self.setup_time = setup_time
        self.answer_time = answer_time
        self.usage = usage
        self.fields = fields

    @property
    def cgrid(self) -> str:
        return cgrid(self.origin_id, self.origin_host)

    @property
    def start_time(self) -> datetime | None:
        return self.answer_time or self.setup_time

    def debit_event(self, usage: int, now: datetime, elapsed: int = 0) -> DebitEvent:
        """Charges [elapsed, elapsed + usage) of this call."""
        return DebitEvent(
            self.tenant,
            self.account,
            self.destination,
            self.start_time or now,
            usage,
            self.tor,
            self.category,
            self.subject,
            elapsed,
        )

    def cost_query(self, usage: int, now: datetime) -> CostQuery:
        return CostQuery(
            self.tenant,
            self.category,
            self.subject or self.account,
            self.destination,
            self.start_time or now,
            usage,
            self.tor,
            self.account,
        )

    def to_cdr(self, usage: int) -> Cdr:
        extra = {
            name: value if isinstance(value, str) else str(value)
            for name, value in self.fields.items()
            if name not in STANDARD_FIELDS
        }
        return Cdr(
            cgrid=self.cgrid,
            run_id=self.run_id,
            origin_host=self.origin_host,
            source=self.source,
            origin_id=self.origin_id,
            tor=self.tor,
            request_type=self.request_type,
            tenant=self.tenant,
            category=self.category,
            account=self.account,
            subject=self.subject or self.account,
            destination=self.destination,
            setup_time=self.setup_time,
            answer_time=self.answer_time,
            usage=usage,
            extra_fields=extra,
        )


def _moment(fields: Mapping[str, Any], name: str, timezone: tzinfo) -> datetime | None:
    raw = fields.get(name)
    if raw in (None, ""):
        return None
    try:
        return parse_time(raw, timezone)  # RFC 3339 texts come from its cache
    except InvalidValue as exc:
        raise InvalidValue(f"{name}: {exc}") from None


# The plain text fields of a run event, in RunEvent's order; "" when missing.
_TEXT_FIELDS: Final = (
    RUN_ID, REQUEST_TYPE, TOR, CATEGORY, ACCOUNT, SUBJECT, DESTINATION, ORIGIN_ID, ORIGIN_HOST,
    SOURCE,
)  # fmt: skip


def read_run_event(
    tenant: str,
    fields: Mapping[str, Any],
    *,
    default_category: str,
    default_request_type: str,
    timezone: tzinfo,
    like: RunEvent | None = None,
) -> RunEvent:
    """Reads the standard fields of an event; raises InvalidValue naming a bad one.

    ``like``: the reading of an event ``fields`` was copied from (a charger run of a request,
    another run of it). Then only the text fields whose values are not the very objects ``like``
    read are read again, in the same order: the same result and the same first error. Anything
    else (another tenant, a Usage or time that is not shared) is read anew. A shared relative
    time (``*now``) keeps the instant of ``like``: one instant per request."""
    if like is not None and tenant == like.tenant:
        if fields is like.fields:
            return like
        if _shares_values(fields, like.fields):
            return _reread_texts(like, fields, default_category, default_request_type)
    raw_usage = fields.get(USAGE)
    try:
        usage = None if raw_usage in (None, "") else parse_duration(raw_usage)
    except InvalidValue as exc:
        raise InvalidValue(f"{USAGE}: {exc}") from None
    if usage is not None and usage < 0:
        raise InvalidValue(f"{USAGE}: negative: {raw_usage!r}")
    texts = _texts(fields)
    setup_time = _moment(fields, SETUP_TIME, timezone)
    answer_time = _moment(fields, ANSWER_TIME, timezone)
    return _run_event(
        tenant, texts, default_category, default_request_type, setup_time, answer_time, usage,
        fields,
    )  # fmt: skip


def _run_event(
    tenant: str,
    texts: list[str],
    default_category: str,
    default_request_type: str,
    setup_time: datetime | None,
    answer_time: datetime | None,
    usage: int | None,
    fields: Mapping[str, Any],
) -> RunEvent:
    """The RunEvent of ``texts`` (read in ``_TEXT_FIELDS`` order; "" takes the default)."""
    return RunEvent(
        tenant, texts[0] or DEFAULT_RUN_ID, texts[1] or default_request_type, texts[2] or VOICE,
        texts[3] or default_category, texts[4], texts[5], texts[6], texts[7], texts[8],
        texts[9], setup_time, answer_time, usage, fields,
    )  # fmt: skip


def _texts(fields: Mapping[str, Any]) -> list[str]:
    """The text fields of ``fields`` in ``_TEXT_FIELDS`` order ("" when missing). What clients
    send: each a string or missing; anything else takes the checked read of every field, so
    the first bad one is named. (A plain loop: compiled by mypyc, cheaper than map tricks.)"""
    texts: list[str] = []
    for name in _TEXT_FIELDS:
        value = fields.get(name, "")
        if type(value) is not str:
            return [_text(fields, each) for each in _TEXT_FIELDS]
        texts.append(value)
    return texts


def _shares_values(fields: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether ``fields`` holds the very Usage and time objects ``old`` holds."""
    for name in _VALUE_FIELDS:  # noqa: SIM110 (a loop: no generator object per read)
        if fields.get(name) is not old.get(name):
            return False
    return True


# The fields read_run_event reads besides the texts: a copy must share them to be read "like".
_VALUE_FIELDS: Final = (USAGE, SETUP_TIME, ANSWER_TIME)


def _reread_texts(
    read: RunEvent, fields: Mapping[str, Any], default_category: str, default_request_type: str
) -> RunEvent:
    """``read`` for ``fields``, which share its Usage and times: the text fields whose values
    are other objects read again, in order."""
    old = read.fields
    texts = [
        read.run_id, read.request_type, read.tor, read.category, read.account, read.subject,
        read.destination, read.origin_id, read.origin_host, read.source,
    ]  # fmt: skip
    for index, name in enumerate(_TEXT_FIELDS):
        value = fields.get(name)
        if value is not old.get(name):
            if type(value) is not str:  # what clients send is a string; else the checked read
                value = _text(fields, name)
            texts[index] = value
    return _run_event(
        read.tenant, texts, default_category, default_request_type, read.setup_time,
        read.answer_time, read.usage, fields,
    )  # fmt: skip


def cdr_event_fields(cdr: Cdr) -> dict[str, Any]:
    """The standard fields of a stored CDR as event fields (re-rating, CDRsV1.ProcessCDR)."""
    fields: dict[str, Any] = {
        CGRID: cdr.cgrid,
        RUN_ID: cdr.run_id,
        ORIGIN_HOST: cdr.origin_host,
        SOURCE: cdr.source,
        ORIGIN_ID: cdr.origin_id,
        TOR: cdr.tor,
        REQUEST_TYPE: cdr.request_type,
        CATEGORY: cdr.category,
        ACCOUNT: cdr.account,
        SUBJECT: cdr.subject,
        DESTINATION: cdr.destination,
        SETUP_TIME: cdr.setup_time,
        ANSWER_TIME: cdr.answer_time,
        USAGE: cdr.usage,
    }
    return {key: value for key, value in fields.items() if value not in ("", None)}
