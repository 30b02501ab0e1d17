"""Every field type, through a *none processor (no engine call)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.templating import DictTree, Outcome, TemplateError, load_templates, plan

REQUEST = {
    "Session-Id": "s1",
    "CC-Request-Number": 2,
    "Used-Service-Unit": {"CC-Time": 20},
    "Answer": "2024-01-01T10:00:00Z",
    "End": "2024-01-01T10:01:30Z",
    "A": "10.1",
    "B": "2",
    "Exp": "3",
}


def run(*fields: dict[str, Any], request: dict[str, Any] | None = None) -> Outcome:
    templates = load_templates(
        {"request_processors": [{"id": "p", "flags": ["*none"], "request_fields": list(fields)}]}
    )
    return plan(templates, DictTree(request or REQUEST), {"OriginHost": "oh"})


def event(*fields: dict[str, Any]) -> dict[str, Any]:
    return run(*fields).trees["*cgreq"].to_data()


def f(path: str, kind: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"tag": path.rsplit(".", 1)[-1], "path": path, "type": kind, "value": value, **extra}


def test_constant_variable_composed_group() -> None:
    assert event(
        f("*cgreq.ToR", "*constant", "*voice"),
        f("*cgreq.OriginID", "*variable", "~*req.Session-Id"),
        f("*cgreq.Host", "*variable", "~*vars.OriginHost"),
        f("*cgreq.Composed", "*composed", "~*req.Session-Id"),
        f("*cgreq.Composed", "*composed", "-x"),
        f("*cgreq.List", "*group", "a"),
        f("*cgreq.List", "*group", "b"),
    ) == {
        "ToR": "*voice",
        "OriginID": "s1",
        "Host": "oh",
        "Composed": "s1-x",
        "List": ["a", "b"],
    }


def test_yaml_scalars_are_text_as_in_cgrates() -> None:
    fields = (
        {"tag": "N", "path": "*cgreq.N", "type": "*constant", "value": 2001},
        {"tag": "B", "path": "*cgreq.B", "type": "*constant", "value": True},
    )
    assert event(*fields) == {"N": "2001", "B": "true"}


def test_cc_usage() -> None:
    # request number 2: used 20s + one 5m interval already granted beyond the initial
    value = "~*req.CC-Request-Number;~*req.Used-Service-Unit.CC-Time:s/(.*)/${1}s/;5m"
    assert event(f("*cgreq.Usage", "*cc_usage", value)) == {"Usage": 320_000_000_000}


def test_usage_difference_and_times() -> None:
    assert event(
        f("*cgreq.Usage", "*usage_difference", "~*req.End;~*req.Answer"),
        f("*cgreq.Unix", "*unix_timestamp", "~*req.Answer"),
        f("*cgreq.Date", "*datetime", "~*req.Answer", layout="2006-01-02 15:04:05"),
        f("*cgreq.Rfc", "*datetime", "~*req.Answer", timezone="Europe/Berlin"),
    ) == {
        "Usage": "1m30s",
        "Unix": "1704103200",
        "Date": "2024-01-01 10:00:00",
        "Rfc": "2024-01-01T10:00:00Z",
    }


def test_arithmetic_is_decimal() -> None:
    assert event(
        f("*cgreq.Sum", "*sum", "~*req.A;~*req.B;0.2"),
        f("*cgreq.Diff", "*difference", "~*req.A;~*req.B"),
        f("*cgreq.Mul", "*multiply", "~*req.A;3"),
        f("*cgreq.Div", "*divide", "~*req.A;~*req.B"),
        f("*cgreq.DurSum", "*sum", "1m;30s"),
        f("*cgreq.Before", "*difference", "~*req.Answer;1h"),
        f("*cgreq.Exp", "*value_exponent", "~*req.B;~*req.Exp"),
    ) == {
        "Sum": "12.3",
        "Diff": "8.1",
        "Mul": "30.3",
        "Div": "5.05",
        "DurSum": 90_000_000_000,
        "Before": "2024-01-01T09:00:00Z",
        "Exp": "2000",
    }


def test_width_padding_filler() -> None:
    assert event(
        f("*cgreq.L", "*constant", "7", width=3, padding="*zeroleft"),
        f("*cgreq.R", "*constant", "ab", width=4, padding="*right"),
        f("*cgreq.S", "*variable", "~*req.Session-Id", width=1, strip="*right"),
        f("*cgreq.F", "*filler", "", width=2),
    ) == {"L": "007", "R": "ab  ", "S": "s", "F": "  "}


def test_remove_removeall_none_and_blocker() -> None:
    assert event(
        f("*cgreq.A", "*constant", "1"),
        f("*cgreq.B", "*constant", "2"),
        f("*cgreq.A", "*remove", ""),
        {"tag": "nothing", "type": "*none"},
        f("*cgreq.C", "*constant", "3", blocker=True),
        f("*cgreq.D", "*constant", "never"),
    ) == {"B": "2", "C": "3"}
    assert (
        event(
            f("*cgreq.A", "*constant", "1"), {"tag": "all", "path": "*cgreq", "type": "*removeall"}
        )
        == {}
    )


def test_field_filters_and_missing_optional_values() -> None:
    assert event(
        f("*cgreq.Yes", "*constant", "y", filters=["*string:~*req.Session-Id:s1"]),
        f("*cgreq.No", "*constant", "n", filters=["*string:~*req.Session-Id:other"]),
        f("*cgreq.Missing", "*variable", "~*req.Nope"),
    ) == {"Yes": "y"}


def test_mandatory_missing_names_processor_field_and_path() -> None:
    with pytest.raises(TemplateError) as raised:
        run(f("*cgreq.Account", "*variable", "~*req.Subscription-Id", mandatory=True))
    assert raised.value.processor == "p"
    assert raised.value.field == "Account"
    assert raised.value.missing == "*req.Subscription-Id"
    assert "'p'" in str(raised.value) and "'Account'" in str(raised.value)


def test_bad_runtime_value_is_template_error() -> None:
    with pytest.raises(TemplateError, match="Bad"):
        run(f("*cgreq.Bad", "*unix_timestamp", "~*req.Session-Id"))
    with pytest.raises(TemplateError) as raised:
        run(f("*cgreq.Bad", "*variable", "~*req.Session-Id{*duration_seconds}"))
    assert raised.value.field == "Bad"


def test_writes_to_rep_vars_opts_and_tmp() -> None:
    outcome = run(
        f("*tmp.X", "*constant", "t"),
        f("*opts.*context", "*variable", "~*tmp.X"),
        f("*vars.Seen", "*constant", "1"),
        f("*rep.Result-Code", "*constant", "2001"),
    )
    assert outcome.trees["*opts"].to_data() == {"*context": "t"}
    assert outcome.trees["*vars"].to_data() == {"OriginHost": "oh", "Seen": "1"}
    assert outcome.reply.to_data() == {"Result-Code": "2001"}
