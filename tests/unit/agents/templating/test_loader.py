"""Loading: validation errors name file, processor and field; templates and overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.templating import (
    DictTree,
    ReplyTree,
    RequestTree,
    TemplateError,
    apply_fields,
    load_templates,
    plan,
)


def one(**field: Any) -> dict[str, Any]:
    base = {"tag": "F", "path": "*cgreq.X", "type": "*variable", "value": "~*req.X"}
    return {
        "request_processors": [
            {"id": "P1", "flags": ["*none"], "request_fields": [{**base, **field}]}
        ]
    }


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ({"type": "*nosuch"}, "unknown field type"),
        ({"path": "cgreq.X"}, "must start with a tree name"),
        ({"path": "*req.X"}, "cannot write to *req"),
        ({"path": "*nosuch.X"}, "cannot write to *nosuch"),
        ({"value": "~*nosuch.X"}, "unknown tree *nosuch"),
        ({"value": "~*req.X:s/(/y/"}, "bad regex"),
        ({"value": "~*req.X{*nosuch}"}, "unknown converter"),
        ({"type": "*template", "value": "nosuch"}, "unknown template 'nosuch'"),
        ({"type": "*constant", "value": "~*req.X"}, "cannot reference"),
        ({"type": "*cc_usage", "value": "~*req.X;5m"}, "needs 3"),
        ({"filters": ["*nosuch:~*req.X:1"]}, "unknown filter type"),
        ({"mandatory": "yes"}, "true or false"),
        ({"colour": "red"}, "unknown field keys"),
        ({"timezone": "Mars/Base"}, "unknown timezone"),
    ],
)
def test_field_errors_name_processor_and_field(field: dict[str, Any], reason: str) -> None:
    with pytest.raises(TemplateError) as raised:
        load_templates(one(**field))
    error = raised.value
    assert reason in error.reason
    assert (error.file, error.processor, error.field) == ("<dict>", "P1", "F")


@pytest.mark.parametrize(
    ("processor", "reason"),
    [
        ({"flags": ["*nosuch"]}, "unknown flag"),
        ({"flags": ["*accounts"]}, "no request type"),
        ({"flags": ["*accounts", "*pap"]}, "no request type"),
        ({"filters": ["FLTR_1"]}, "only inline filters"),
        ({"colour": 1}, "unknown processor keys"),
        ({"timezone": "Nowhere/Town"}, "unknown timezone"),
    ],
)
def test_processor_errors(processor: dict[str, Any], reason: str) -> None:
    with pytest.raises(TemplateError) as raised:
        load_templates({"request_processors": [{"id": "P1", "flags": ["*none"], **processor}]})
    assert reason in raised.value.reason and raised.value.processor == "P1"


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text('request_processors:\n  - id: ok\n    flags: ["*none"]\n')
    bad = tmp_path / "b.yaml"
    bad.write_text(
        "request_processors:\n"
        "  - id: gy_init\n"
        '    flags: ["*initiate", "*accounts"]\n'
        "    request_fields:\n"
        '      - {tag: Usage, path: "*cgreq.Usage", type: "*variable",'
        ' value: "~*req.X{*bad}"}\n'
    )
    with pytest.raises(TemplateError) as raised:
        load_templates(tmp_path)
    assert (raised.value.file, raised.value.processor, raised.value.field) == (
        str(bad),
        "gy_init",
        "Usage",
    )
    assert str(bad) in str(raised.value)
    (tmp_path / "c.yaml").write_text("- not a mapping\n")
    with pytest.raises(TemplateError, match=r"c\.yaml"):
        load_templates([good, tmp_path / "c.yaml"])


def test_duplicate_ids_and_template_cycles() -> None:
    with pytest.raises(TemplateError, match="duplicate"):
        load_templates({"request_processors": [{"id": "a", "flags": ["*none"]}] * 2})
    cyclic = {
        "templates": {
            "x": [{"tag": "t", "type": "*template", "value": "y"}],
            "y": [{"tag": "t", "type": "*template", "value": "x"}],
        }
    }
    with pytest.raises(TemplateError, match="cycle"):
        load_templates(cyclic)


def test_builtin_templates_exist() -> None:
    templates = load_templates({})
    for name in ("*cca", "*err", "*asr", "*rar", "*dmr", "*coa"):
        assert templates.template(name)
    assert [f.path.text for f in templates.template("*asr") if f.path][:2] == [
        "*diamreq.Session-Id",
        "*diamreq.Origin-Host",
    ]


def test_user_template_overrides_builtin_and_template_filters_apply() -> None:
    document = {
        "templates": {
            "*cca": [
                {"tag": "RC", "path": "*rep.Result-Code", "type": "*constant", "value": "2001"}
            ],
            "extra": [{"tag": "A", "path": "*rep.A", "type": "*constant", "value": "a"}],
        },
        "request_processors": [
            {
                "id": "p",
                "flags": ["*none"],
                "reply_fields": [
                    {"tag": "cca", "type": "*template", "value": "*cca"},
                    {
                        "tag": "x",
                        "type": "*template",
                        "value": "extra",
                        "filters": ["*string:~*req.K:no"],
                    },
                ],
            }
        ],
    }
    outcome = plan(load_templates(document), DictTree({"K": "yes"}), {})
    assert outcome.reply.to_data() == {"Result-Code": "2001"}


def test_builtin_cca_with_missing_session_id_is_mandatory() -> None:
    document = {
        "request_processors": [
            {
                "id": "gy",
                "flags": ["*none"],
                "reply_fields": [{"tag": "cca", "type": "*template", "value": "*cca"}],
            }
        ]
    }
    with pytest.raises(TemplateError) as raised:
        plan(load_templates(document), DictTree({}), {"OriginHost": "h"})
    assert (raised.value.processor, raised.value.field) == ("gy", "SessionId")
    assert raised.value.missing == "*req.Session-Id"


def test_extra_trees_are_readable() -> None:
    document = one(value="~*diamreq.X")
    load_templates(document)  # a standard tree
    with pytest.raises(TemplateError):
        load_templates(one(value="~*sipreq.X"))
    templates = load_templates(one(value="~*sipreq.X"), extra_trees=["*sipreq"])
    outcome = plan(templates, DictTree({}), {}, trees={"*sipreq": DictTree({"X": "v"})})
    assert outcome.trees["*cgreq"].to_data() == {"X": "v"}


def test_radius_auth_processor_needs_no_request_type() -> None:
    templates = load_templates({"request_processors": [{"id": "a", "flags": ["*radauth", "*pap"]}]})
    assert templates.processors[0].flags.request_type == ""
    assert plan(templates, DictTree({}), {}).calls == []


def test_builtin_asr_filled_outside_a_request() -> None:
    templates = load_templates({})
    diamreq = ReplyTree()
    trees: dict[str, RequestTree] = {
        "*req": DictTree(
            {
                "Session-Id": "s1",
                "Origin-Host": "client",
                "Origin-Realm": "cr",
                "Destination-Host": "cgr",
                "Destination-Realm": "cgrr",
            }
        ),
        "*vars": DictTree({"*appid": 4}),
        "*diamreq": diamreq,
    }
    apply_fields(templates.template("*asr"), trees)
    assert diamreq.to_data() == {
        "Session-Id": "s1",
        "Origin-Host": "cgr",
        "Origin-Realm": "cgrr",
        "Destination-Realm": "cr",
        "Destination-Host": "client",
        "Auth-Application-Id": "4",
    }
