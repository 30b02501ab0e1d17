"""Property tests: whatever a filter or RSR rule says, compiling and evaluating it raises only
``FilterError`` (a request with a bad filter fails cleanly, it never crashes a handler)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from core.filters import FilterError, compile_inline
from core.filters.rsr import compile_rule, compile_rules
from core.filters.rules import EMPTY_ENV, Rule, compile_rule_parts

from .stack import view

# Characters with meaning in filters and RSR rules, plus some ordinary ones.
SPECIAL = "*:~|<>{}[]`;/\\$^()&.!=+-_ 0123456789sSaAzZ#%?"
TYPES = [
    "*string", "*prefix", "*suffix", "*contains", "*exists", "*empty", "*gt", "*gte", "*lt",
    "*lte", "*eq", "*regex", "*timings", "*destinations", "*rsr", "*ipnet", "*ai", "*http#x",
    "*apiban", "*notstring", "*notgt", "*nistring", "*foo", "",
]  # fmt: skip
ELEMENTS = ["~*req.Account", "~*req.Usage", "~*req.Missing", "~*req.<~*req.Account>", "1001"]

text = st.text(alphabet=st.sampled_from(SPECIAL), max_size=40) | st.text(max_size=20)
EVENT = {"Account": "1001", "Usage": "1m", "AnswerTime": "2014-07-29T15:00:00Z", "IP": "10.0.0.1"}


def _evaluate(compiled_rules: list[Rule]) -> None:
    event_view = view(EVENT)
    for rule in compiled_rules:
        with contextlib.suppress(FilterError):
            rule.passes(event_view, EMPTY_ENV)


@settings(max_examples=400, deadline=None)
@given(text)
def test_inline_filter_parsing_raises_only_filter_error(source: str) -> None:
    try:
        compiled = compile_inline("*" + source)
    except FilterError:
        return
    _evaluate(list(compiled.rules))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TYPES), st.sampled_from(ELEMENTS) | text, st.lists(text, max_size=3))
def test_rule_parts_raise_only_filter_error(
    rule_type: str, element: str, values: list[str]
) -> None:
    try:
        rule = compile_rule_parts(rule_type, element, tuple(values))
    except FilterError:
        return
    _evaluate([rule])


@settings(max_examples=400, deadline=None)
@given(text)
def test_rsr_rules_raise_only_filter_error(source: str) -> None:
    for compile_ in (compile_rule, compile_rules):
        try:
            compiled = compile_(source)
        except FilterError:
            continue
        exprs = compiled if isinstance(compiled, tuple) else (compiled,)
        for expr in exprs:
            if expr is None:
                continue
            try:
                expr.string(view(EVENT))
                expr.raw(view(EVENT))
                expr.constant()
            except FilterError:
                pass
