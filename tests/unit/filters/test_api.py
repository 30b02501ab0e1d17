"""APIerSv1 filter methods through a registry, on a real loader over memory storage."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.rpc import RpcError
from core.tariffplan import KIND_FILTERS

from .stack import TENANT, Stack, build_stack, view


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = await build_stack(load_tutorial=False)
    yield built
    await built.datadb.close()


FILTER = {
    "Tenant": TENANT,
    "ID": "FLTR_1",
    "Rules": [
        {"Type": "*string", "Element": "~*req.Account", "Values": ["1001", "1002"]},
        {"Type": "*prefix", "Element": "~*req.Destination", "Values": ["49"]},
    ],
    "ActivationInterval": {
        "ActivationTime": "2014-07-29T15:00:00Z",
        "ExpiryTime": "0001-01-01T00:00:00Z",
    },
}


async def test_set_get_ids_remove(stack: Stack) -> None:
    assert await stack.call("APIerSv1.SetFilter", FILTER) == "OK"
    assert await stack.call("APIerSv1.GetFilter", {"Tenant": TENANT, "ID": "FLTR_1"}) == FILTER
    assert await stack.call("APIerSv1.GetFilter", {"ID": "FLTR_1"}) == FILTER  # default tenant
    assert await stack.call("APIerSv1.GetFilterIDs", {"Tenant": TENANT}) == ["FLTR_1"]
    # stored (documents) and live (FilterS) at once
    assert await stack.datadb.get_all(KIND_FILTERS)
    assert stack.filters.passes(TENANT, ("FLTR_1",), view({"Account": "1002", "Destination": "49"}))

    assert await stack.call("APIerSv1.RemoveFilter", {"ID": "FLTR_1"}) == "OK"
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.GetFilter", {"ID": "FLTR_1"})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.GetFilterIDs", {})
    with pytest.raises(RpcError, match=r"^NOT_FOUND$"):
        await stack.call("APIerSv1.RemoveFilter", {"ID": "FLTR_1"})
    assert not await stack.datadb.get_all(KIND_FILTERS)


async def test_set_replaces(stack: Stack) -> None:
    await stack.call("APIerSv1.SetFilter", FILTER)
    replaced = {
        **FILTER,
        "Rules": [{"Type": "*string", "Element": "~*req.Account", "Values": ["7"]}],
    }
    await stack.call("APIerSv1.SetFilter", replaced)
    assert not stack.filters.passes(TENANT, ("FLTR_1",), view({"Account": "1001"}))
    assert stack.filters.passes(TENANT, ("FLTR_1",), view({"Account": "7"}))


async def test_ids_paginate(stack: Stack) -> None:
    for name in ("FLTR_C", "FLTR_A", "FLTR_B"):
        await stack.call("APIerSv1.SetFilter", {**FILTER, "ID": name})
    assert await stack.call("APIerSv1.GetFilterIDs", {}) == ["FLTR_A", "FLTR_B", "FLTR_C"]
    assert await stack.call("APIerSv1.GetFilterIDs", {"Offset": 1, "Limit": 1}) == ["FLTR_B"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"Rules": []}, "MANDATORY_IE_MISSING: [ID]"),
        (
            {"ID": "F", "Rules": [{"Type": "*foo", "Element": "~*req.A", "Values": ["1"]}]},
            "SERVER_ERROR: Rules[0]: Unsupported filter Type: *foo",
        ),
        (
            {"ID": "F", "Rules": [{"Type": "*string", "Element": "", "Values": ["1"]}]},
            "SERVER_ERROR: Rules[0]: Element is mandatory for Type: *string",
        ),
        (
            {"ID": "F", "Rules": [{"Type": "*regex", "Element": "~*req.A", "Values": ["("]}]},
            "SERVER_ERROR: Rules[0]: error parsing regexp",
        ),
    ],
)
async def test_set_refuses_bad_filters(stack: Stack, params: dict[str, object], error: str) -> None:
    with pytest.raises(RpcError) as raised:
        await stack.call("APIerSv1.SetFilter", params)
    assert raised.value.message.startswith(error)
    assert not await stack.datadb.get_all(KIND_FILTERS)


async def test_remove_refuses_a_filter_in_use(stack: Stack) -> None:
    await stack.call("APIerSv1.SetFilter", FILTER)
    await stack.call(
        "APIerSv1.SetAttributeProfile",
        {
            "ID": "ATTR_1",
            "Contexts": ["*any"],
            "FilterIDs": ["FLTR_1"],
            "Attributes": [{"Path": "*req.X", "Type": "*constant", "Value": "1"}],
        },
    )
    with pytest.raises(RpcError) as raised:
        await stack.call("APIerSv1.RemoveFilter", {"ID": "FLTR_1"})
    assert raised.value.message == (
        "SERVER_ERROR: cannot remove filter <cgrates.org:FLTR_1> because will broken the "
        'reference to following items: {"*attribute_filter_indexes":{"ATTR_1":{}}}'
    )
