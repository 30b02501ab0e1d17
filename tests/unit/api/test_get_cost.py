"""APIerSv1.GetCost through the real registry on CGRateS's tutorial plan: the argument fast path
and the checked path give the same answers and CGRateS's errors, over the wire and in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.api import register_all
from core.config import load_config
from core.engine import Engine
from core.rating.rater import _USAGE_LIMIT
from core.rpc import TRANSPORT_INTERNAL, TRANSPORT_TCP, CallContext, MethodRegistry, RpcError
from core.rpc.codec import REPLY_TAIL, encode_response, reply_lead
from core.types import dumps, loads

TUTORIAL = (
    next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()).parent
    / "shared/tariffplans/cgrates_tutorial"
)
GET_COST = "APIerSv1.GetCost"
WIRE = CallContext(TRANSPORT_TCP, "127.0.0.1:1")
INTERNAL = CallContext(TRANSPORT_INTERNAL, "")
CALL = {
    "Tenant": "cgrates.org",
    "Category": "call",
    "Subject": "1001",
    "Destination": "1002",
    "AnswerTime": "2014-08-04T13:00:00Z",
    "Usage": "120s",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry() -> AsyncIterator[MethodRegistry]:
    config = load_config()
    config = replace(
        config,
        storage=replace(config.storage, type="memory"),
        tariffplans=replace(config.tariffplans, load_on_start=()),
    )
    engine = Engine(config)
    await engine.open_storage()
    await engine.loader.load_folder(TUTORIAL)
    register_all(engine.registry, engine)
    try:
        yield engine.registry
    finally:
        await engine.stop()


def answer(registry: MethodRegistry, params: Any, ctx: CallContext = WIRE) -> Any:
    """The decoded reply, or the error text."""
    try:
        return loads(dumps(registry.dispatch(GET_COST, params, ctx)))
    except RpcError as exc:
        return exc.message


def test_known_results(registry: MethodRegistry) -> None:
    for usage, cost in (("120s", "0.7002"), ("2m10s", "0.7169"), (130 * 10**9, "0.7169")):
        for ctx in (WIRE, INTERNAL):
            reply = answer(registry, {**CALL, "Usage": usage}, ctx)
            assert Decimal(str(reply["Cost"])) == Decimal(cost)
            assert reply["StartTime"] == "2014-08-04T13:00:00Z"


def test_defaults_and_other_mappings(registry: MethodRegistry) -> None:
    expected = answer(registry, CALL)
    without_defaults = {k: v for k, v in CALL.items() if k not in ("Tenant", "Category")}
    assert answer(registry, without_defaults) == expected  # cgrates.org / call by default
    assert answer(registry, {**CALL, "Tenant": "", "Category": None}) == expected
    assert answer(registry, MappingProxyType(CALL)) == expected  # not a dict: checked path
    assert answer(registry, [CALL]) == "SERVER_ERROR: invalid params: expected an object"


def test_missing_answer_time_is_now(registry: MethodRegistry) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    reply = answer(registry, {k: v for k, v in CALL.items() if k != "AnswerTime"})
    started = datetime.fromisoformat(reply["StartTime"])
    assert before <= started.replace(microsecond=0) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"Subject": ""}, "MANDATORY_IE_MISSING: [Subject]"),
        ({"Subject": None, "Destination": ""}, "MANDATORY_IE_MISSING: [Subject Destination]"),
        ({"Subject": 1001}, "SERVER_ERROR: invalid params: Subject must be a string"),
        ({"Destination": ["1002"]}, "SERVER_ERROR: invalid params: Destination must be a string"),
        ({"Tenant": 5}, "SERVER_ERROR: invalid params: Tenant must be a string"),
        ({"Category": {"a": 1}}, "SERVER_ERROR: invalid params: Category must be a string"),
        ({"Usage": "abc"}, "SERVER_ERROR: not a duration: 'abc'"),
        ({"AnswerTime": "yesterday"}, "SERVER_ERROR: not a time: 'yesterday'"),
        ({"AnswerTime": 10**20}, "SERVER_ERROR: not a time: 100000000000000000000"),
        ({"Subject": "nobody", "Tenant": "x.org"}, "SERVER_ERROR: RATING_PLAN_NOT_FOUND"),
        ({"Destination": "999"}, "SERVER_ERROR: UNAUTHORIZED_DESTINATION"),
    ],
)
def test_errors(registry: MethodRegistry, change: dict[str, Any], error: str) -> None:
    answer(registry, CALL)  # the rater's caches know this call: bad values must still fail
    for ctx in (WIRE, INTERNAL):
        reply = answer(registry, {**CALL, **change}, ctx)
        assert isinstance(reply, str) and reply.startswith(error), reply


async def test_empty_subject_or_destination_cached_by_other_callers_still_fail() -> None:
    config = load_config()
    config = replace(config, storage=replace(config.storage, type="memory"))
    engine = Engine(config)
    await engine.open_storage()
    await engine.loader.load_folder(TUTORIAL)
    register_all(engine.registry, engine)
    try:
        moment = datetime(2014, 8, 4, 13, tzinfo=UTC)
        rater = engine.rating.rater
        # other callers (sessions, CDRs) may rate with an empty subject or destination
        rater.cost_of("cgrates.org", "sms", "", "1002", moment, 1)  # the *any profile
        rater.cost_of("cgrates.org", "sms", "1001", "", moment, 1)  # the *any destination
        sms = {**CALL, "Category": "sms", "Usage": "1"}
        assert isinstance(answer(engine.registry, sms), dict)
        no_subject = {**sms, "Subject": ""}
        assert answer(engine.registry, no_subject) == "MANDATORY_IE_MISSING: [Subject]"
        no_destination = {**sms, "Destination": ""}
        assert answer(engine.registry, no_destination) == "MANDATORY_IE_MISSING: [Destination]"
    finally:
        await engine.stop()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    subject=st.sampled_from(("1001", "1002", "1003")),
    destination=st.sampled_from(("1001", "1002", "1003", "10025550", "1003999")),
    seconds=st.integers(0, 7_200),
    style=st.sampled_from(("s", "ms", "ns")),
    moment=st.datetimes(min_value=datetime(2013, 1, 1), max_value=datetime(2026, 1, 1)),
    suffix=st.sampled_from(("Z", "+02:00", "-05:00", "", "+00:00", "-00:00", "+05:30")),
)
def test_wire_and_internal_answers_agree(
    registry: MethodRegistry,
    subject: str,
    destination: str,
    seconds: int,
    style: str,
    moment: datetime,
    suffix: str,
) -> None:
    minutes, rest = divmod(seconds, 60)
    usage: Any = {"s": f"{seconds}s", "ms": f"{minutes}m{rest}s", "ns": seconds * 10**9}[style]
    params = {
        **CALL,
        "Subject": subject,
        "Destination": destination,
        "AnswerTime": moment.strftime("%Y-%m-%dT%H:%M:%S") + suffix,
        "Usage": usage,
    }
    wire = answer(registry, params)
    assert wire == answer(registry, params, INTERNAL)
    assert answer(registry, params) == wire  # again, from what the first call cached


def written(registry: MethodRegistry, params: Any, request_id: Any) -> bytes | None:
    """The reply line GetCost's reply writer gives a connection, or None (it declined)."""
    entry = registry.lookup(GET_COST)
    assert entry is not None and entry.writer is not None
    parts = entry.writer(params, WIRE)
    return None if parts is None else b"".join((reply_lead(request_id), *parts, REPLY_TAIL))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    subject=st.sampled_from(("1001", "1002", "1003")),
    destination=st.sampled_from(("1001", "1002", "1003", "10025550", "1003999")),
    seconds=st.integers(0, 7_200),
    moment=st.datetimes(min_value=datetime(2013, 1, 1), max_value=datetime(2026, 1, 1)),
    suffix=st.sampled_from(("Z", "+02:00", "-05:00", "", "+00:00", "-00:00", "+05:30")),
    request_id=st.one_of(st.integers(0, 2**63), st.text(max_size=8), st.none()),
)
def test_the_reply_writer_gives_the_handlers_reply_byte_for_byte(
    registry: MethodRegistry,
    subject: str,
    destination: str,
    seconds: int,
    moment: datetime,
    suffix: str,
    request_id: Any,
) -> None:
    params = {
        **CALL,
        "Subject": subject,
        "Destination": destination,
        "AnswerTime": moment.isoformat() + suffix,
        "Usage": f"{seconds}s",
    }
    try:
        expected = encode_response(request_id, registry.dispatch(GET_COST, params, INTERNAL), None)
    except RpcError as exc:
        expected = encode_response(request_id, None, exc.message)
    for _ in range(2):  # the general path rated it above: the writer may answer
        line = written(registry, params, request_id)
        assert line is None or line == expected


def test_the_reply_writer_answers_the_common_call(registry: MethodRegistry) -> None:
    answer(registry, CALL)  # rated once: the rater knows the subject, number and usage
    later = {**CALL, "AnswerTime": "2024-05-06T07:08:09+02:00"}
    line = written(registry, later, 12)
    assert line == encode_response(12, registry.dispatch(GET_COST, later, INTERNAL), None)
    assert written(registry, {**CALL, "Subject": 1001}, 13) is None  # not a checked value
    assert written(registry, [CALL], 14) is None


def test_usage_strings_parsed_once_stay_exact_past_the_cache_bound(
    registry: MethodRegistry,
) -> None:
    known = {"120s": "0.7002", "2m10s": "0.7169"}
    for usage, cost in known.items():  # parsed and kept
        assert Decimal(str(answer(registry, {**CALL, "Usage": usage})["Cost"])) == Decimal(cost)
    # more distinct strings than the cache holds: it is cleared and refilled on the way
    for seconds in range(1, _USAGE_LIMIT + 50, 97):
        for usage in (f"{seconds}s", f"{seconds * 1000}ms", f"{seconds * 10**9}"):
            params = {**CALL, "Usage": usage}
            assert answer(registry, params) == answer(registry, params, INTERNAL)
    for index in range(_USAGE_LIMIT + 1):  # fills the cache past its bound
        answer(registry, {**CALL, "Usage": f"{index}ns"})
    for usage, cost in known.items():
        for _ in range(2):
            reply = answer(registry, {**CALL, "Usage": usage})
            assert Decimal(str(reply["Cost"])) == Decimal(cost)
    bad = {**CALL, "Usage": "12x"}
    for _ in range(2):  # a bad string is never kept: it fails every time
        assert answer(registry, bad) == "SERVER_ERROR: not a duration: '12x'"


def test_rfc3339_times_the_fast_path_cannot_read_take_the_checked_path(
    registry: MethodRegistry,
) -> None:
    answer(registry, CALL)
    bad = {**CALL, "AnswerTime": "2014-08-04T25:00:00Z"}
    assert answer(registry, bad) == "SERVER_ERROR: not a time: '2014-08-04T25:00:00Z'"
    naive = {**CALL, "AnswerTime": "2014-08-04T13:00:00"}  # the default zone (UTC) applies
    assert answer(registry, naive) == answer(registry, CALL)


WHOLE_SECOND_TIMES = (
    "2014-08-04T13:00:00Z",
    "2014-08-04T13:00:00+00:00",  # UTC written another way: the reply says Z
    "2014-08-04T13:00:00-00:00",
    "2014-08-04T13:00:00",  # the default zone
    "2014-08-04T21:57:59+14:00",
)


@pytest.mark.parametrize(
    "answer_time",
    [
        *WHOLE_SECOND_TIMES,
        "2014-08-04T13:00:00.5Z",  # a fraction: the general parse, every time
        "2014-08-04T13:00:00.000000+02:00",
        "2014-08-04T13:00:60Z",  # errors, every time
        "2014-08-04T24:00:00Z",
        "2014-02-30T13:00:00Z",
        "2014-08-04T13:00:00+24:00",
        "2014-08-04T13:00:00Zjunk",
        "2014-08-04t13:00:00z",
        "2014-08-04 13:00:00",
        "1407157200",
    ],
)
def test_answer_times_read_by_lookups_give_what_the_general_parse_gives(
    registry: MethodRegistry, answer_time: str
) -> None:
    for known in ("2014-08-04T09:00:00Z", "2014-08-04T09:00:00+02:00", "2014-08-04T09:00:00"):
        answer(registry, {**CALL, "AnswerTime": known})  # other hours, its zones: read before
    for usage in ("120s", "2m10s", "120s"):  # read the general way, then by lookups
        params = {**CALL, "AnswerTime": answer_time, "Usage": usage}
        try:
            expected = encode_response(8, registry.dispatch(GET_COST, params, INTERNAL), None)
        except RpcError as exc:
            expected = encode_response(8, None, exc.message)
        line = written(registry, params, 8)
        if usage == "120s" and answer_time in WHOLE_SECOND_TIMES:  # rated, its parts read
            assert line == expected
        else:
            assert line is None or line == expected
        decoded = loads(expected)
        error = decoded["error"]
        assert answer(registry, params) == (decoded["result"] if error is None else error)
