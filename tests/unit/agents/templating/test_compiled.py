"""The compiled hot path (filters, values, fields, per-request read memo) gives what the general
evaluators give: the general code stays the reference."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from agents.templating import DictTree, ReplyTree, RequestTree, load_templates, process
from agents.templating.fields import parse_field, write
from agents.templating.filters import parse_filter
from agents.templating.loader import READ_ONLY_TREES, WRITABLE_TREES
from agents.templating.paths import number_or_none
from agents.templating.processing import MemoTree
from agents.templating.values import parse_value

TREES: dict[str, RequestTree] = {
    "*req": DictTree(
        {
            "CC-Request-Type": 2,
            "Number": "12.50",
            "Usage": "90s",
            "Ns": 90_000_000_000,
            "Empty": "",
            "Text": "tel:+4915112345678",
            "Group": [{"A": "1"}, {"A": "2"}],
        }
    ),
    "*cgreq": ReplyTree.from_data({"Usage": "60s", "Limit": "12.5", "Name": "abc"}),
    "*cgrep": ReplyTree.from_data({"Error": "", "MaxUsage": 60_000_000_000}),
}
ELEMENTS = [
    "~*req.CC-Request-Type",
    "~*req.Number",
    "~*req.Usage",
    "~*req.Ns",
    "~*req.Empty",
    "~*req.Text",
    "~*req.Missing",
    "~*req.Group.A",
    "~*req.Group.Length",
    "~*cgrep.MaxUsage",
    "~*cgrep.Error",
]
OPERANDS = [
    "2",
    "1|2",
    "12.5",
    "90s",
    "60s",
    "tel:",
    "678",
    "+49",
    "0",
    "abc",
    "~*cgreq.Usage",
    "~*cgreq.Limit",
    "~*cgreq.Name",
    "~*cgreq.Missing",
    "1m|~*cgreq.Usage",
]
KINDS = ["*string", "*prefix", "*suffix", "*contains", "*eq", "*gt", "*gte", "*lt", "*lte"]


@pytest.mark.parametrize("negation", ["", "*not"])
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_filters_agree_with_the_general_evaluator(kind: str, negation: str) -> None:
    for element in ELEMENTS:
        for operands in OPERANDS:
            flt = parse_filter(f"{negation}{kind[1:] if negation else kind}:{element}:{operands}")
            expected = flt._positive(TREES) != flt.negated
            assert flt.passes(TREES) is expected, flt.source


@pytest.mark.parametrize("kind", ["*exists", "*notexists", "*empty", "*notempty"])
def test_compiled_unary_filters_agree(kind: str) -> None:
    for element in ELEMENTS:
        flt = parse_filter(f"{kind}:{element}:")
        assert flt.passes(TREES) is (flt._positive(TREES) != flt.negated), flt.source


@pytest.mark.parametrize(
    "text",
    ["", " ", "1", " 12.50 ", "-.5", "5.", "1e5", "1E+5", "1_000", "60s", "NaN", "Infinity",
     "inf", "-0", "0x10", "١٢", "²", "5\x00", "12a", "."],
)  # fmt: skip
def test_number_or_none_is_decimal_of_finite_numbers(text: str) -> None:
    try:
        expected: Decimal | None = Decimal(text.strip())
    except InvalidOperation:
        expected = None
    if expected is not None and not expected.is_finite():
        expected = None
    assert number_or_none(text) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", ""),
        ("abc", "abc"),
        ("a;b;`c;d`", "abc;d"),
        ("~*req.CC-Request-Type", "2"),
        ("~*req.Group.A", "1"),
        ("~*req.Group.Length", "2"),
        ("~*req.Group[1].A", "2"),
        ("~*req.Text:s/^tel:\\+?(\\d+)$/${1}/", "4915112345678"),
        ("~*req.Ns{*duration_seconds}", "90"),
        ("x;~*req.CC-Request-Type;y", "x2y"),
    ],
)
def test_compiled_values(source: str, expected: str) -> None:
    value = parse_value(source)
    assert value.text(TREES) == expected
    assert value.text_of(TREES) == expected


WRITE_PATHS = [
    "*rep.Result-Code",
    "*rep.MSCC.Granted-Service-Unit.CC-Time",
    "*rep.MSCC[1].Result-Code",
    "*rep.A.B",
]


@pytest.mark.parametrize("kind", ["*variable", "*constant", "*group", "*composed"])
@pytest.mark.parametrize("new_branch", [False, True])
def test_compiled_writers_agree_with_write(kind: str, new_branch: bool) -> None:
    start = {"Result-Code": ["1"], "MSCC": [{"Rating-Group": ["1"]}], "A": ["scalar"]}
    for path in WRITE_PATHS:
        raw = {"path": path, "type": kind, "value": "7", "new_branch": new_branch}
        field = parse_field(raw, READ_ONLY_TREES | WRITABLE_TREES, WRITABLE_TREES)
        assert not isinstance(field, tuple)
        compiled, reference = ReplyTree(_copy(start)), ReplyTree(_copy(start))
        field.writer(compiled, "7")  # type: ignore[union-attr]
        write(field, reference, "7")  # type: ignore[arg-type]
        assert compiled == reference, path


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_copy(item) for item in node]
    return node


class CountingTree:
    def __init__(self, data: dict[str, Any]) -> None:
        self.tree = DictTree(data)
        self.reads: list[tuple[str, ...]] = []

    def get(self, path: tuple[str, ...]) -> list[Any]:
        self.reads.append(path)
        if path == ("Broken",):
            raise ValueError("undecodable")
        return self.tree.get(path)


def test_memo_tree_reads_each_path_once_and_never_caches_a_failure() -> None:
    counting = CountingTree({"A": "1"})
    memo = MemoTree(counting)
    assert memo.get(("A",)) == ["1"]
    assert memo.get(("A",)) == ["1"]
    assert memo.get(("B",)) == []
    assert memo.get(("B",)) == []
    for _ in range(2):
        with pytest.raises(ValueError):
            memo.get(("Broken",))
    assert counting.reads == [("A",), ("B",), ("Broken",), ("Broken",)]


class Engine:
    async def call(self, method: str, params: Any) -> Any:
        return {"MaxUsage": 60_000_000_000}


def test_process_reads_each_request_path_once() -> None:
    templates = load_templates(
        {
            "request_processors": [
                {
                    "id": "no",
                    "filters": ["*string:~*req.Type:1"],
                    "flags": ["*none"],
                },
                {
                    "id": "yes",
                    "filters": ["*string:~*req.Type:2"],
                    "flags": ["*update", "*accounts", "*attributes:*ids:A&B"],
                    "request_fields": [
                        {"path": "*cgreq.T", "value": "~*req.Type"},
                        {"path": "*cgreq.U", "value": "~*req.Type;x"},
                    ],
                    "reply_fields": [{"path": "*rep.T", "value": "~*req.Type"}],
                },
            ]
        }
    )
    counting = CountingTree({"Type": 2})
    outcome = asyncio.run(process(templates, counting, {}, Engine(), event_id="e"))
    assert outcome.processor == "yes"
    assert outcome.reply.to_data() == {"T": "2"}
    assert counting.reads == [("Type",)]
    # The shared call plan lends no list to a request.
    params = outcome.calls[0].params
    params["AttributeIDs"].append("C")
    again = asyncio.run(process(templates, counting, {}, Engine(), event_id="e"))
    assert again.calls[0].params["AttributeIDs"] == ["A", "B"]
