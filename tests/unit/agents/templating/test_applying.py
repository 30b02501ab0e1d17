"""The compiled field lists and processor filters (agents.templating.applying) do what the
general evaluator does: same trees written, same errors, for every processor and template the
agents ship and for field shapes the compiler handles specially or hands back."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path as FilePath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.templating import DictTree, ReplyTree, RequestTree, TemplateError, load_templates
from agents.templating.applying import (
    apply_fields,
    compile_fields,
    compile_filters,
    passes_filters,
)
from agents.templating.fields import Field
from agents.templating.filters import Filter
from agents.templating.loader import Processor, Templates
from agents.templating.paths import Path
from agents.templating.trees import MemoTree

TEMPLATE_FOLDERS = ("diameter", "radius", "dns", "sip")
ROOT = FilePath(__file__).resolve().parents[4] / "templates"
WRITABLE = ("*cgreq", "*cgrep", "*rep", "*opts", "*tmp", "*diamreq", "*radDAReq")
# Values a template may meet: request types, numbers, durations, texts, engine errors.
POOL = st.sampled_from(
    [
        "",
        "0",
        "1",
        "2",
        "3",
        "4",
        "60",
        "60s",
        "abc",
        "tel:+4930123456",
        "32260@3gpp.org",
        "32251@3gpp.org",
        "INSUFFICIENT_CREDIT",
        "ACCOUNT_NOT_FOUND",
        0,
        2,
        60,
        60_000_000_000,
        None,
    ]
)


def _all_templates() -> list[Templates]:
    return [load_templates(ROOT / folder) for folder in TEMPLATE_FOLDERS]


TEMPLATES = _all_templates()
PROCESSORS = [processor for templates in TEMPLATES for processor in templates.processors]
FIELD_LISTS: list[tuple[str, Processor | None, tuple[Field, ...]]] = [
    *((f"{p.id} request", p, p.request_fields) for p in PROCESSORS),
    *((f"{p.id} reply", p, p.reply_fields) for p in PROCESSORS),
    *(
        (f"template {name}", None, fields)
        for templates in TEMPLATES
        for name, fields in templates.templates.items()
    ),
]


def _paths(fields: Sequence[Field], filters: Sequence[Filter]) -> list[Path]:
    paths: list[Path] = []
    for flt in [*filters, *(flt for item in fields for flt in item.filters)]:
        if flt.element.path is not None:
            paths.append(flt.element.path)
        paths.extend(o.reference.path for o in flt.operands if o.reference and o.reference.path)
    for item in fields:
        paths.extend(item.value.paths())
    return paths


def _nest(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for names, value in values.items():
        node = data
        for name in names[:-1]:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            if names and not isinstance(node.get(names[-1]), dict):
                node[names[-1]] = value
    return data


def _trees_strategy(paths: list[Path]) -> st.SearchStrategy[dict[str, RequestTree]]:
    by_root: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        if path.names:
            by_root.setdefault(path.root, []).append(path.names)

    def build(chosen: dict[str, dict[tuple[str, ...], Any]], memo: bool) -> dict[str, RequestTree]:
        trees: dict[str, RequestTree] = {name: ReplyTree() for name in WRITABLE}
        for root, values in chosen.items():
            data = _nest({names: value for names, value in values.items() if value is not None})
            trees[root] = DictTree(data) if root in ("*req", "*oreq") else ReplyTree.from_data(data)
        trees.setdefault("*vars", ReplyTree())
        trees.setdefault("*req", DictTree({}))
        if memo:  # as process() hands the request to the templates
            trees["*req"] = MemoTree(trees["*req"])
        return trees

    per_root = {
        root: st.fixed_dictionaries({names: POOL for names in names_list})
        for root, names_list in by_root.items()
    }
    return st.builds(build, st.fixed_dictionaries(per_root), st.booleans())


Outcome = tuple[str, Any]


def _outcome(run: Callable[[], Any], trees: dict[str, RequestTree]) -> Outcome:
    try:
        result = run()
    except TemplateError as exc:
        return "error", (str(exc), exc.reason, exc.missing, exc.field, exc.processor)
    written = {
        name: copy.deepcopy(tree.nodes)
        for name, tree in trees.items()
        if isinstance(tree, ReplyTree)
    }
    return "ok", (result, written)


def _both(
    general: Callable[[dict[str, RequestTree]], Any],
    compiled: Callable[[dict[str, RequestTree]], Any],
    trees: dict[str, RequestTree],
) -> tuple[Outcome, Outcome]:
    first, second = copy.deepcopy(trees), copy.deepcopy(trees)
    return (
        _outcome(lambda: general(first), first),
        _outcome(lambda: compiled(second), second),
    )


@pytest.mark.parametrize(
    ("label", "processor", "fields"), FIELD_LISTS, ids=[label for label, _, _ in FIELD_LISTS]
)
@settings(max_examples=60)
@given(data=st.data())
def test_compiled_field_lists_write_what_apply_fields_writes(
    label: str, processor: Processor | None, fields: tuple[Field, ...], data: st.DataObject
) -> None:
    trees = data.draw(_trees_strategy(_paths(fields, ())))
    compiled = compile_fields(fields, label)
    general, fast = _both(
        lambda t: apply_fields(fields, t, processor, "UTC"),
        lambda t: compiled(t, processor, "UTC"),
        trees,
    )
    assert fast == general


@pytest.mark.parametrize("processor", PROCESSORS, ids=lambda p: p.id)
@settings(max_examples=60)
@given(data=st.data())
def test_compiled_processor_filters_pass_as_passes_filters(
    processor: Processor, data: st.DataObject
) -> None:
    trees = data.draw(_trees_strategy(_paths((), processor.filters)))
    general, fast = _both(
        lambda t: passes_filters(processor.filters, t, processor),
        lambda t: processor.passes(t, processor),
        trees,
    )
    assert fast == general


def _processor(**lists: Any) -> Processor:
    templates = load_templates({"request_processors": [{"id": "p", "flags": ["*none"], **lists}]})
    return templates.processors[0]


# Field shapes: inlined reads, constants, filters of every inlined kind and the fallbacks.
SHAPES: list[dict[str, Any]] = [
    {"path": "*cgreq.A", "type": "*variable", "value": "~*req.A"},
    {"path": "*cgreq.A", "type": "*variable", "value": "~*req.A", "mandatory": True},
    {"path": "*cgreq.A", "type": "*variable", "value": "~*req.A", "blocker": True},
    {"path": "*cgreq.B", "type": "*constant", "value": "x"},
    {"path": "*cgreq.B", "type": "*constant", "value": "toolong", "width": 3},
    {"path": "*cgreq.B", "type": "*constant", "value": "ab", "width": 4, "padding": "*left"},
    {"path": "*cgreq.C.D", "type": "*variable", "value": "~*req.G.D"},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A:s/^(\\d+)$/${1}s/"},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A{*duration}"},
    # One reference with rules and converters, chained: each step feeds the next.
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A:s/^(\\d+)$/${1}0/:s/0$/0s/"},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A:s/^(\\d+)$/${1}s/{*duration}"},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A{*duration&*duration_seconds}"},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.B:s/b/x/", "mandatory": True},
    # Selector paths: the path's own read.
    {"path": "*cgreq.S", "type": "*variable", "value": "~*req.G.D[~D(^6)]"},
    {"path": "*cgreq.S", "type": "*variable", "value": "~*req.G.D[~D(^6)]:s/^(.*)$/${1}s/"},
    {"path": "*cgreq.S", "type": "*variable", "value": "~*req.G.D[~E(^6)]", "mandatory": True},
    {"path": "*cgreq.S", "type": "*variable", "value": "~*req.G.D[~E(6&!^60s$)]"},
    {"path": "*cgreq.S", "type": "*variable", "value": "~*req.G.D[~E()]"},
    {"path": "*cgreq.S", "type": "*variable", "value": "~*req.G.D[1]", "mandatory": True},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A;-;~*req.B"},
    {"path": "*cgreq.C", "type": "*composed", "value": "~*req.A"},
    {"path": "*cgreq.C", "type": "*group", "value": "~*req.B"},
    {"path": "*cgreq.C", "type": "*variable", "value": "~*req.A", "new_branch": True},
    {"path": "*cgreq.C[1]", "type": "*variable", "value": "~*req.A"},
    {"path": "*cgreq.E", "type": "*sum", "value": "~*req.A;~*req.B"},
    {"path": "*cgreq.E", "type": "*usage_difference", "value": "~*req.A;~*req.B"},
    {"path": "*cgreq.F", "type": "*variable", "value": "~*req.G.Length"},
    {"path": "*cgreq.A", "type": "*remove"},
    {"path": "*cgreq", "type": "*removeall"},
    {"type": "*none", "blocker": True},
    {"path": "*tmp.T", "type": "*variable", "value": "~*req.A"},
    {"path": "*cgreq.T", "type": "*variable", "value": "~*tmp.T"},
    {"path": "*diamreq.Z", "type": "*variable", "value": "~*req.A"},
    {"path": "*cgreq.V", "type": "*variable", "value": "~*vars.V", "mandatory": True},
    {"path": "*cgreq.W", "type": "*variable", "value": "~*cgreq.A"},
]
FILTERS = [
    "*string:~*req.A:1|2",
    "*notstring:~*req.A:1",
    "*prefix:~*req.B:ab|1",
    "*suffix:~*req.B:c",
    "*notsuffix:~*req.B:c",
    "*contains:~*req.B:b",
    "*exists:~*req.A:",
    "*notexists:~*req.A:",
    "*empty:~*req.B:",
    "*notempty:~*req.B:",
    "*gt:~*req.A:1",
    "*notgt:~*req.A:1",
    "*gte:~*req.A:60s",
    "*lte:~*req.A:1.5",
    "*lt:~*req.A:2|60",
    "*eq:~*req.A:60",
    "*noteq:~*req.A:0",
    "*contains:~*req.B:x|b",
    "*notcontains:~*req.B:b",
    "*eq:~*req.A:~*req.B",
    # Comparisons with a path operand (compiled in line): numbers, durations, missing sides.
    "*lt:~*req.A:~*req.B",
    "*notgt:~*req.B:~*req.A",
    "*gte:~*req.A:~*cgreq.A",
    "*lte:~*req.A:~*req.G.D",
    "*regex:~*req.B:^a",
    "*string:~*req.A{*duration}:60000000000",
    "*gt:~*req.A{*duration}:0",
    "*string:~*req.G.D:1",
    "*string:~*req.G.Length:1",
    "*string:~*vars.V:1",
]
REQUEST_VALUES = st.sampled_from(
    ["", "1", "2", "60", "60s", "abc", "2026-01-02T03:04:05Z", 0, 1, 7, 60, True]
)


@st.composite
def shaped_cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, RequestTree]]:
    fields = []
    for _ in range(draw(st.integers(1, 6))):
        shape = dict(draw(st.sampled_from(SHAPES)))
        shape["filters"] = draw(st.lists(st.sampled_from(FILTERS), max_size=3))
        fields.append(shape)
    request: dict[str, Any] = {}
    for name in ("A", "B"):
        if draw(st.booleans()):
            request[name] = draw(REQUEST_VALUES)
    groups = draw(
        st.lists(st.dictionaries(st.sampled_from(["D", "E"]), REQUEST_VALUES), max_size=3)
    )
    if groups:
        request["G"] = groups
    trees: dict[str, RequestTree] = {name: ReplyTree() for name in WRITABLE if name != "*diamreq"}
    trees["*req"] = MemoTree(DictTree(request)) if draw(st.booleans()) else DictTree(request)
    trees["*vars"] = ReplyTree.from_data({"V": "1"} if draw(st.booleans()) else {})
    trees["*tmp"] = ReplyTree.from_data({"Old": "x"})
    return fields, trees


@settings(max_examples=400)
@given(case=shaped_cases())
def test_compiled_shapes_agree_with_apply_fields(
    case: tuple[list[dict[str, Any]], dict[str, RequestTree]],
) -> None:
    raw_fields, trees = case
    try:
        processor = _processor(request_fields=raw_fields, filters=FILTERS[:1])
    except TemplateError:
        return  # a combination the loader refuses (e.g. *none with filters only is fine)
    general, fast = _both(
        lambda t: apply_fields(processor.request_fields, t, processor, "UTC"),
        lambda t: processor.apply_request(t, processor, "UTC"),
        trees,
    )
    assert fast == general
    general, fast = _both(
        lambda t: passes_filters(processor.filters, t, processor),
        lambda t: processor.passes(t, processor),
        trees,
    )
    assert fast == general


def test_the_compiled_forms_report_as_the_general_path() -> None:
    """Errors, blockers and absent optional values, checked explicitly."""
    processor = _processor(
        request_fields=[
            {"tag": "Opt", "path": "*cgreq.A", "value": "~*req.Missing"},
            {"tag": "Stop", "path": "*cgreq.B", "value": "~*req.Missing", "blocker": True},
            {"tag": "Never", "path": "*cgreq.C", "type": "*constant", "value": "c"},
        ]
    )
    trees: dict[str, RequestTree] = {"*req": DictTree({}), "*cgreq": ReplyTree()}
    processor.apply_request(trees, processor, "")
    assert trees["*cgreq"].nodes == {}  # type: ignore[attr-defined]

    mandatory = _processor(
        request_fields=[{"tag": "M", "path": "*cgreq.A", "value": "~*req.X", "mandatory": True}]
    )
    with pytest.raises(TemplateError) as raised:
        mandatory.apply_request({"*req": DictTree({}), "*cgreq": ReplyTree()}, mandatory, "")
    error = raised.value
    assert (error.missing, error.field, error.processor) == ("*req.X", "M", "p")

    unwritable = _processor(request_fields=[{"tag": "D", "path": "*diamreq.A", "value": "1"}])
    with pytest.raises(TemplateError, match="no writable tree \\*diamreq"):
        unwritable.apply_request({"*req": DictTree({})}, unwritable, "")

    failing = _processor(filters=["*gt:~*req.A{*duration}:0"])
    with pytest.raises(TemplateError, match="filter failed"):
        failing.passes({"*req": DictTree({"A": "abc"})}, failing)
    assert compile_filters((), "none")({}, None) is True
