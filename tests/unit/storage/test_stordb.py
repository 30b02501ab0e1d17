"""StorDB behaviour (TP staging and CDRs), run against every back end."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.storage import (
    COST_NOT_RATED,
    Cdr,
    CdrFilter,
    DuplicateError,
    StorageClosedError,
    StorDB,
)
from core.types import SECOND, dumps, loads

from .conftest import Backend

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def make_cdr(n: int, **changes: Any) -> Cdr:
    base = Cdr(
        cgrid=f"cgrid{n}",
        run_id="*default",
        origin_host="10.0.0.1",
        source="test",
        origin_id=f"sess{n}",
        tor="*voice",
        request_type="*prepaid",
        tenant="cgrates.org",
        category="call",
        account="1001",
        subject="1001",
        destination="+4986517174963",
        setup_time=T0 + timedelta(minutes=n),
        answer_time=T0 + timedelta(minutes=n, seconds=5),
        usage=60 * SECOND,
        extra_fields={"Hdr": "v"},
        cost=Decimal("0.1"),
        cost_source="*sessions",
    )
    return replace(base, **changes)


# -------------------------------------------------------------------------------- TP staging
async def test_tp_round_trip(stordb: StorDB) -> None:
    rate = {"ID": "RT_1", "RateSlots": [{"Rate": "0.01", "RateUnit": "60s"}]}
    await stordb.set_tp("TP1", "rates", "RT_1", rate)
    await stordb.set_tp_many(
        "TP1", "destinations", {"DST_2": {"Prefixes": ["2"]}, "DST_1": {"Prefixes": ["1"]}}
    )
    await stordb.set_tp_many("TP2", "rates", {"RT_9": {"x": 1}})
    assert await stordb.get_tp("TP1", "rates", "RT_1") == rate
    assert await stordb.get_tp("TP1", "rates", "RT_2") is None
    assert await stordb.get_tp("TP2", "rates", "RT_1") is None
    assert await stordb.get_tp_ids("TP1", "destinations") == ["DST_1", "DST_2"]
    assert await stordb.get_tp_kind("TP1", "destinations") == {
        "DST_1": {"Prefixes": ["1"]},
        "DST_2": {"Prefixes": ["2"]},
    }
    assert await stordb.get_tp_all("TP1") == {
        "destinations": {"DST_1": {"Prefixes": ["1"]}, "DST_2": {"Prefixes": ["2"]}},
        "rates": {"RT_1": rate},
    }
    assert await stordb.get_tp_all("nope") == {}
    assert await stordb.get_tpids() == ["TP1", "TP2"]


async def test_set_tp_many_replaces_same_ids_only(stordb: StorDB) -> None:
    await stordb.set_tp_many("TP1", "rates", {"A": 1, "B": 2})
    await stordb.set_tp_many("TP1", "rates", {"B": 20, "C": 30})
    await stordb.set_tp_many("TP1", "rates", {})
    assert await stordb.get_tp_kind("TP1", "rates") == {"A": 1, "B": 20, "C": 30}


@pytest.mark.parametrize("bad", [object(), None])
async def test_set_tp_many_is_atomic(stordb: StorDB, bad: Any) -> None:
    await stordb.set_tp("TP1", "rates", "A", 1)
    items = {f"R{i}": i for i in range(3000)} | {"BAD": bad} | {f"S{i}": i for i in range(10)}
    with pytest.raises((TypeError, ValueError)):
        await stordb.set_tp_many("TP1", "rates", items)
    assert await stordb.get_tp_kind("TP1", "rates") == {"A": 1}


async def test_remove_tp(stordb: StorDB) -> None:
    await stordb.set_tp_many("TP1", "rates", {"A": 1, "B": 2})
    await stordb.set_tp_many("TP1", "timings", {"T": 1})
    await stordb.set_tp_many("TP2", "rates", {"A": 1})
    assert await stordb.remove_tp("TP1", "rates", "A") == 1
    assert await stordb.remove_tp("TP1", "rates", "A") == 0
    assert await stordb.get_tp_ids("TP1", "rates") == ["B"]
    assert await stordb.remove_tp("TP1", "rates") == 1
    assert await stordb.get_tp_all("TP1") == {"timings": {"T": 1}}
    assert await stordb.remove_tp("TP1") == 1
    assert await stordb.get_tpids() == ["TP2"]
    with pytest.raises(ValueError, match="needs its kind"):
        await stordb.remove_tp("TP2", None, "A")
    assert await stordb.get_tp_kind("TP2", "rates") == {"A": 1}


# --------------------------------------------------------------------------------- CDR writes
async def test_cdr_round_trip_keeps_every_stored_field(stordb: StorDB) -> None:
    cdr = make_cdr(
        1,
        setup_time=datetime(2024, 1, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        answer_time=None,
        usage=1,
        cost=Decimal("0.0123456789012345678"),
        cost_details={"Charges": [{"Increments": [{"Cost": 0.1}]}]},
        extra_fields={"a": "1", "ü": "ß"},
        extra_info="ok",
        pre_rated=True,
        partial=True,
    )
    order_id = await stordb.store_cdr(cdr)
    (got,) = await stordb.get_cdrs(CdrFilter())
    assert got.order_id == order_id
    assert got.setup_time == datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert got.setup_time.tzinfo is not None and got.setup_time.utcoffset() == timedelta(0)
    assert got.cost == Decimal("0.0123456789012345678")
    assert got.created_at is not None and got.created_at == got.updated_at
    # partial is not stored (as CGRateS's SQL StorDB); everything else is
    expected = replace(
        cdr,
        order_id=order_id,
        setup_time=got.setup_time,
        partial=False,
        created_at=got.created_at,
        updated_at=got.updated_at,
    )
    assert got == expected
    assert cdr.order_id == 0  # the caller's object is untouched


async def test_unrated_cost_is_minus_one(stordb: StorDB) -> None:
    await stordb.store_cdr(Cdr(cgrid="c1", run_id="*raw"))
    (got,) = await stordb.get_cdrs(CdrFilter())
    assert got.cost == COST_NOT_RATED and not got.rated
    assert got.setup_time is None and got.answer_time is None


async def test_order_ids_are_monotonic_and_never_reused(stordb: StorDB) -> None:
    first = await stordb.store_cdr(make_cdr(1))
    batch = await stordb.store_cdrs([make_cdr(2), make_cdr(3)])
    last = await stordb.store_cdr(make_cdr(4))
    assert batch[0] is not None and batch[1] is not None
    ids = [first, batch[0], batch[1], last]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert await stordb.remove_cdrs(CdrFilter(cgrids=["cgrid4"])) == 1
    assert await stordb.store_cdr(make_cdr(5)) > last


async def test_duplicate_is_refused(stordb: StorDB) -> None:
    order_id = await stordb.store_cdr(make_cdr(1))
    with pytest.raises(DuplicateError) as caught:
        await stordb.store_cdr(make_cdr(1, cost=Decimal(5)))
    assert (caught.value.cgrid, caught.value.run_id) == ("cgrid1", "*default")
    # same cgrid, other run: not a duplicate
    assert await stordb.store_cdr(make_cdr(1, run_id="*raw")) > order_id
    (stored,) = await stordb.get_cdrs(CdrFilter(run_ids=["*default"]))
    assert stored.cost == Decimal("0.1")


async def test_allow_update_rewrites_in_place(stordb: StorDB) -> None:
    order_id = await stordb.store_cdr(make_cdr(1))
    other = await stordb.store_cdr(make_cdr(2))
    (before,) = await stordb.get_cdrs(CdrFilter(cgrids=["cgrid1"]))
    rerated = make_cdr(1, cost=Decimal("0.25"), cost_source="*cdrs", extra_fields={})
    assert await stordb.store_cdr(rerated, allow_update=True) == order_id
    (after,) = await stordb.get_cdrs(CdrFilter(cgrids=["cgrid1"]))
    assert (after.cost, after.cost_source, after.extra_fields) == (Decimal("0.25"), "*cdrs", {})
    assert after.order_id == order_id and after.created_at == before.created_at
    assert after.updated_at is not None and before.updated_at is not None
    assert after.updated_at >= before.updated_at
    assert await stordb.count_cdrs(CdrFilter()) == 2
    assert [c.order_id for c in await stordb.get_cdrs(CdrFilter())] == [order_id, other]


async def test_store_cdrs_reports_duplicates(stordb: StorDB) -> None:
    existing = await stordb.store_cdr(make_cdr(1))
    results = await stordb.store_cdrs([make_cdr(2), make_cdr(1), make_cdr(3), make_cdr(2)])
    assert results[1] is None and results[3] is None
    assert results[0] is not None and results[2] is not None
    assert existing < results[0] < results[2]
    assert await stordb.count_cdrs(CdrFilter()) == 3
    assert await stordb.store_cdrs([]) == []


async def test_store_cdrs_with_update(stordb: StorDB) -> None:
    existing = await stordb.store_cdr(make_cdr(1))
    results = await stordb.store_cdrs(
        [make_cdr(1, cost=Decimal(2)), make_cdr(2), make_cdr(2, cost=Decimal(3))],
        allow_update=True,
    )
    assert results[0] == existing and results[1] == results[2] and results[1] is not None
    costs = {c.cgrid: c.cost for c in await stordb.get_cdrs(CdrFilter())}
    assert costs == {"cgrid1": Decimal(2), "cgrid2": Decimal(3)}


@pytest.mark.parametrize(
    "bad",
    [
        make_cdr(9, cgrid=""),
        make_cdr(9, cost_details={"x": object()}),
        make_cdr(9, cost=Decimal("NaN")),
        make_cdr(9, usage="60s"),
        make_cdr(9, tenant=None),
        make_cdr(9, extra_fields=[("a", "b")]),
    ],
)
async def test_store_cdrs_with_a_bad_cdr_stores_nothing(stordb: StorDB, bad: Cdr) -> None:
    with pytest.raises((TypeError, ValueError)):
        await stordb.store_cdrs([make_cdr(1), bad, make_cdr(2)])
    assert await stordb.count_cdrs(CdrFilter()) == 0


async def test_large_batch(stordb: StorDB) -> None:
    count = 2500  # past the SQLite back end's worker-thread threshold
    results = await stordb.store_cdrs([make_cdr(i) for i in range(count)] + [make_cdr(0)])
    assert results[-1] is None
    assert len(set(results[:-1])) == count
    assert await stordb.count_cdrs(CdrFilter()) == count
    assert len(await stordb.get_cdrs(CdrFilter(accounts=["1001"]))) == count


# -------------------------------------------------------------------------------- CDR filters
DATASET = [
    make_cdr(0),
    make_cdr(1, run_id="*raw", cost=COST_NOT_RATED),
    make_cdr(2, tenant="itsyscom.com", account="2001", subject="2001", destination="1002"),
    make_cdr(3, destination="1%02", tor="*sms", usage=1, category="sms"),
    make_cdr(4, destination="1_02", origin_host="10.0.0.2", request_type="*postpaid"),
    make_cdr(5, answer_time=None, usage=0, cost=Decimal(0)),
    make_cdr(6, cost=Decimal("12.5"), usage=120 * SECOND, subject="1001_alt"),
    make_cdr(7, setup_time=None, answer_time=None, cost=Decimal("-0.5")),
]


async def _load(stordb: StorDB) -> list[Cdr]:
    await stordb.store_cdrs(DATASET)
    return await stordb.get_cdrs(CdrFilter())


def _numbers(cdrs: list[Cdr]) -> list[int]:
    return [int(cdr.cgrid.removeprefix("cgrid")) for cdr in cdrs]


FILTER_CASES: list[tuple[CdrFilter, list[int]]] = [
    (CdrFilter(), [0, 1, 2, 3, 4, 5, 6, 7]),
    (CdrFilter(cgrids=["cgrid2", "cgrid4", "nope"]), [2, 4]),
    (CdrFilter(run_ids=["*raw"]), [1]),
    (CdrFilter(not_run_ids=["*raw"]), [0, 2, 3, 4, 5, 6, 7]),
    (CdrFilter(origin_ids=["sess3"]), [3]),
    (CdrFilter(origin_hosts=["10.0.0.2"]), [4]),
    (CdrFilter(tenants=["itsyscom.com"]), [2]),
    (CdrFilter(categories=["sms"]), [3]),
    (CdrFilter(accounts=["2001", "3001"]), [2]),
    (CdrFilter(subjects=["1001_alt"]), [6]),
    (CdrFilter(request_types=["*postpaid"]), [4]),
    (CdrFilter(tors=["*sms"]), [3]),
    # prefixes are literal: LIKE wildcards in them or in the data mean nothing
    (CdrFilter(destination_prefixes=["1%"]), [3]),
    (CdrFilter(destination_prefixes=["1_"]), [4]),
    (CdrFilter(destination_prefixes=["10", "+49"]), [0, 1, 2, 5, 6, 7]),
    (CdrFilter(destination_prefixes=["1"]), [2, 3, 4]),
    (CdrFilter(setup_time_start=T0 + timedelta(minutes=2)), [2, 3, 4, 5, 6]),
    (CdrFilter(setup_time_end=T0 + timedelta(minutes=2)), [0, 1]),
    (
        CdrFilter(
            setup_time_start=T0 + timedelta(minutes=1), setup_time_end=T0 + timedelta(minutes=3)
        ),
        [1, 2],
    ),
    # naive datetimes are UTC; other offsets compare by instant
    (CdrFilter(setup_time_start=datetime(2024, 1, 1, 12, 6)), [6]),
    (
        CdrFilter(setup_time_end=datetime(2024, 1, 1, 14, 1, tzinfo=timezone(timedelta(hours=2)))),
        [0],
    ),
    (CdrFilter(answer_time_start=T0 + timedelta(minutes=4, seconds=5)), [4, 6]),
    (CdrFilter(answer_time_end=T0 + timedelta(minutes=1, seconds=5)), [0]),
    (CdrFilter(min_usage=60 * SECOND), [0, 1, 2, 4, 6, 7]),
    (CdrFilter(max_usage=60 * SECOND), [3, 5]),
    (CdrFilter(min_usage=1, max_usage=60 * SECOND), [3]),
    (CdrFilter(min_cost=Decimal("0.1")), [0, 2, 3, 4, 6]),
    (CdrFilter(min_cost=Decimal(0), max_cost=Decimal("0.1")), [5]),
    (CdrFilter(max_cost=Decimal("0.1")), [1, 5, 7]),
    (CdrFilter(min_cost=Decimal("12.5"), max_cost=Decimal(100)), [6]),
    # CGRateS's special cases: rated only, and not rated only
    (CdrFilter(min_cost=Decimal(0), max_cost=Decimal(-1)), [0, 2, 3, 4, 5, 6]),
    (CdrFilter(max_cost=Decimal(-1)), [1, 7]),
    (CdrFilter(tenants=["cgrates.org"], run_ids=["*default"], max_usage=60 * SECOND), [3, 5]),
]


@pytest.mark.parametrize(("flt", "expected"), FILTER_CASES)
async def test_filters(stordb: StorDB, flt: CdrFilter, expected: list[int]) -> None:
    await _load(stordb)
    assert _numbers(await stordb.get_cdrs(flt)) == expected
    assert await stordb.count_cdrs(flt) == len(expected)


async def test_order_id_range(stordb: StorDB) -> None:
    ids = [cdr.order_id for cdr in await _load(stordb)]
    flt = CdrFilter(order_id_start=ids[2], order_id_end=ids[5])
    assert _numbers(await stordb.get_cdrs(flt)) == [2, 3, 4]


async def test_pagination_and_order(stordb: StorDB) -> None:
    await _load(stordb)
    assert _numbers(await stordb.get_cdrs(CdrFilter(limit=3))) == [0, 1, 2]
    assert _numbers(await stordb.get_cdrs(CdrFilter(limit=3, offset=3))) == [3, 4, 5]
    assert _numbers(await stordb.get_cdrs(CdrFilter(limit=3, offset=6))) == [6, 7]
    assert _numbers(await stordb.get_cdrs(CdrFilter(offset=6))) == [6, 7]
    assert _numbers(await stordb.get_cdrs(CdrFilter(limit=0))) == []
    assert _numbers(await stordb.get_cdrs(CdrFilter(limit=2, descending=True))) == [7, 6]
    page = CdrFilter(run_ids=["*default"], limit=2, offset=1)
    assert _numbers(await stordb.get_cdrs(page)) == [2, 3]
    assert await stordb.count_cdrs(page) == 7  # count ignores pagination


async def test_remove_cdrs(stordb: StorDB) -> None:
    await _load(stordb)
    assert await stordb.remove_cdrs(CdrFilter(run_ids=["*default"], limit=2, offset=1)) == 2
    assert _numbers(await stordb.get_cdrs(CdrFilter())) == [0, 1, 4, 5, 6, 7]
    assert await stordb.remove_cdrs(CdrFilter(tenants=["nope"])) == 0
    assert await stordb.remove_cdrs(CdrFilter(max_cost=Decimal(-1))) == 2
    assert _numbers(await stordb.get_cdrs(CdrFilter())) == [0, 4, 5, 6]
    # a removed (cgrid, run_id) may be stored again
    assert await stordb.store_cdr(DATASET[1]) > 0


def test_filter_validation() -> None:
    with pytest.raises(TypeError, match="not a string"):
        CdrFilter(cgrids="cgrid1")
    with pytest.raises(ValueError):
        CdrFilter(limit=-1)
    with pytest.raises(ValueError):
        CdrFilter(offset=-1)
    assert CdrFilter(accounts=["a"]) == CdrFilter(accounts=("a",))
    assert CdrFilter(min_cost="0.5").min_cost == Decimal("0.5")  # type: ignore[arg-type]


_names = st.lists(
    st.sampled_from(
        [
            "cgrid1",
            "cgrid2",
            "*raw",
            "*default",
            "1001",
            "2001",
            "cgrates.org",
            "*sms",
            "*voice",
            "sess3",
            "x",
        ]
    ),
    max_size=3,
)
_times = st.none() | st.integers(-2, 10).map(lambda m: T0 + timedelta(minutes=m, seconds=3))
_costs = st.none() | st.sampled_from(["-1", "-0.5", "0", "0.1", "0.2", "12.5"]).map(Decimal)
_filters = st.builds(
    CdrFilter,
    cgrids=_names,
    run_ids=_names,
    not_run_ids=_names,
    accounts=_names,
    tenants=_names,
    tors=_names,
    origin_ids=_names,
    destination_prefixes=st.lists(st.sampled_from(["1", "10", "+49", "1%", "1_", ""]), max_size=2),
    setup_time_start=_times,
    setup_time_end=_times,
    answer_time_start=_times,
    answer_time_end=_times,
    min_usage=st.none() | st.sampled_from([0, 1, 60 * SECOND, 61 * SECOND]),
    max_usage=st.none() | st.sampled_from([0, 1, 60 * SECOND, 121 * SECOND]),
    min_cost=_costs,
    max_cost=_costs,
    limit=st.none() | st.integers(0, 9),
    offset=st.integers(0, 9),
    descending=st.booleans(),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flt=_filters)
async def test_filters_match_the_reference_predicate(stordb: StorDB, flt: CdrFilter) -> None:
    if await stordb.count_cdrs(CdrFilter()) == 0:  # examples share the store
        await _load(stordb)
    stored = await stordb.get_cdrs(CdrFilter(descending=flt.descending))
    matching = [cdr for cdr in stored if flt.matches(cdr)]
    end = None if flt.limit is None else flt.offset + flt.limit
    assert await stordb.get_cdrs(flt) == matching[flt.offset : end]
    assert await stordb.count_cdrs(flt) == len(matching)


# ------------------------------------------------------------------------------ lifecycle
async def test_closed_stordb_refuses_calls(stordb: StorDB) -> None:
    await stordb.close()
    with pytest.raises(StorageClosedError):
        await stordb.store_cdr(make_cdr(1))
    with pytest.raises(StorageClosedError):
        await stordb.get_tpids()


async def test_stordb_survives_reopen(persistent_backend: Backend) -> None:
    datadb, stordb = await persistent_backend.open()
    await stordb.set_tp_many("TP1", "rates", {"RT_1": {"r": "0.1"}})
    last = (await stordb.store_cdrs([make_cdr(1), make_cdr(2)]))[-1]
    assert last is not None
    await stordb.remove_cdrs(CdrFilter(cgrids=["cgrid2"]))
    await stordb.close()
    await datadb.close()
    _, reopened = await persistent_backend.open()
    assert await reopened.get_tp_all("TP1") == {"rates": {"RT_1": {"r": "0.1"}}}
    (cdr,) = await reopened.get_cdrs(CdrFilter())
    assert cdr == replace(
        make_cdr(1), order_id=cdr.order_id, created_at=cdr.created_at, updated_at=cdr.updated_at
    )
    with pytest.raises(DuplicateError):
        await reopened.store_cdr(make_cdr(1))
    assert await reopened.store_cdr(make_cdr(3)) > last  # ids keep growing across restarts


# ------------------------------------------------------------------------------- wire shape
WIRE_KEYS = [
    "CGRID",
    "RunID",
    "OrderID",
    "OriginHost",
    "Source",
    "OriginID",
    "ToR",
    "RequestType",
    "Tenant",
    "Category",
    "Account",
    "Subject",
    "Destination",
    "SetupTime",
    "AnswerTime",
    "Usage",
    "ExtraFields",
    "ExtraInfo",
    "Partial",
    "PreRated",
    "CostSource",
    "Cost",
    "CostDetails",
]


def test_to_dict_is_cgrates_wire_shape() -> None:
    cdr = make_cdr(1, order_id=7, answer_time=None, cost=Decimal("0.70020"))
    wire = cdr.to_dict()
    assert list(wire) == WIRE_KEYS
    text = dumps(wire)
    assert b'"Cost":0.7002,' in text
    assert b'"SetupTime":"2024-01-01T12:01:00Z"' in text
    assert b'"AnswerTime":"0001-01-01T00:00:00Z"' in text
    assert b'"Usage":60000000000' in text
    assert Cdr.from_dict(loads(text)) == cdr


def test_from_dict_accepts_cgrates_variants() -> None:
    cdr = Cdr.from_dict(
        {
            "CGRID": "abc",
            "Usage": "1m30s",
            "Cost": "1.25",
            "SetupTime": "2024-01-01T14:00:00+02:00",
            "AnswerTime": "0001-01-01T00:00:00Z",
        }
    )
    assert cdr.usage == 90 * SECOND and cdr.cost == Decimal("1.25")
    assert cdr.setup_time == T0 and cdr.answer_time is None
    assert Cdr.from_dict({}).cost == COST_NOT_RATED


@pytest.mark.parametrize(
    "bad",
    [
        {"ExtraFields": {"a": 1}},
        {"Account": 5},
        {"Cost": "x"},
        {"PreRated": "yes"},
        {"OrderID": "1"},
    ],
)
def test_from_dict_refuses_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Cdr.from_dict(bad)
