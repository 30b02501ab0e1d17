"""Processors: order, first match, *continue, flags -> SessionSv1 calls, engine replies."""

from __future__ import annotations

from typing import Any

import pytest

from agents.templating import DictTree, ReplyTree, load_templates, plan, process
from agents.templating.applying import passes_filters
from agents.templating.errors import TemplateError
from agents.templating.loader import ProcessorGate
from core.rpc import RpcError

CCR = DictTree(
    {
        "Session-Id": "gy;1",
        "CC-Request-Type": 1,
        "CC-Request-Number": 0,
        "Subscription-Id": [{"Subscription-Id-Type": 0, "Subscription-Id-Data": "4915"}],
    }
)
VARS = {"OriginHost": "cgr.local", "OriginRealm": "local", "*appid": 4}


class FakeEngine:
    """Records calls; answers from ``replies`` by method (an RpcError instance is raised)."""

    def __init__(self, **replies: Any) -> None:
        self.replies = replies
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, params: Any) -> Any:
        self.calls.append((method, params))
        reply = self.replies.get(method.split(".")[1], "OK")
        if isinstance(reply, Exception):
            raise reply
        return reply


def processor(pid: str, flags: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "flags": flags,
        "request_fields": [
            {
                "tag": "Account",
                "path": "*cgreq.Account",
                "type": "*variable",
                "value": "~*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(0)]",
            },
            {
                "tag": "OriginID",
                "path": "*cgreq.OriginID",
                "type": "*variable",
                "value": "~*req.Session-Id",
            },
        ],
        **extra,
    }


def templates(*processors: dict[str, Any]) -> Any:
    return load_templates({"request_processors": list(processors)})


ARGS: dict[str, tuple[str, dict[str, Any]]] = {
    "*authorize": (
        "SessionSv1.AuthorizeEvent",
        {
            "GetAttributes": True,
            "AuthorizeIP": False,
            "AuthorizeResources": False,
            "GetMaxUsage": True,
            "ForceDuration": False,
            "ProcessThresholds": False,
            "ProcessStats": False,
            "GetRoutes": True,
            "RoutesMaxCost": "",
            "RoutesIgnoreErrors": False,
        },
    ),
    "*initiate": (
        "SessionSv1.InitiateSession",
        {
            "GetAttributes": True,
            "AllocateIP": False,
            "AllocateResources": False,
            "InitSession": True,
            "ForceDuration": False,
            "ProcessThresholds": False,
            "ProcessStats": False,
        },
    ),
    "*update": (
        "SessionSv1.UpdateSession",
        {
            "GetAttributes": True,
            "UpdateSession": True,
            "ForceDuration": False,
            "ProcessThresholds": False,
            "ProcessStats": False,
        },
    ),
    "*terminate": (
        "SessionSv1.TerminateSession",
        {
            "TerminateSession": True,
            "ForceDuration": False,
            "ReleaseIP": False,
            "ReleaseResources": False,
            "ProcessThresholds": False,
            "ProcessStats": False,
        },
    ),
    "*message": (
        "SessionSv1.ProcessMessage",
        {
            "GetAttributes": True,
            "AllocateIP": False,
            "AllocateResources": False,
            "Debit": True,
            "ForceDuration": False,
            "ProcessThresholds": False,
            "ProcessStats": False,
            "GetRoutes": True,
            "RoutesMaxCost": "",
            "RoutesIgnoreErrors": False,
        },
    ),
}


@pytest.mark.parametrize("kind", sorted(ARGS))
async def test_flags_map_to_session_method_and_arguments(kind: str) -> None:
    engine = FakeEngine(
        AuthorizeEvent={"MaxUsage": 1},
        InitiateSession={"MaxUsage": 1},
        UpdateSession={"MaxUsage": 1},
        ProcessMessage={"MaxUsage": 1},
    )
    flags = [kind, "*accounts", "*attributes", "*routes"]
    await process(templates(processor("p", flags)), CCR, VARS, engine, event_id="gy;1;0")
    method, expected = ARGS[kind]
    assert [call[0] for call in engine.calls] == [method]
    params = engine.calls[0][1]
    event = {key: params.pop(key) for key in ("Tenant", "ID", "Time", "Event", "APIOpts")}
    assert params == expected
    assert event["Tenant"] == "cgrates.org" and event["ID"] == "gy;1;0"
    assert event["Event"] == {"Account": "4915", "OriginID": "gy;1"}
    assert event["APIOpts"] == {}


async def test_auxiliary_flags_with_ids_and_force_duration() -> None:
    engine = FakeEngine(InitiateSession={"MaxUsage": 1})
    flags = [
        "*initiate",
        "*accounts",
        "*fd",
        "*attributes:*ids:ATTR_A&ATTR_B",
        "*resources",
        "*thresholds",
        "*stats:*ids:ST1",
    ]
    await process(templates(processor("p", flags)), CCR, VARS, engine)
    params = engine.calls[0][1]
    assert params["ForceDuration"] is True
    assert params["AttributeIDs"] == ["ATTR_A", "ATTR_B"]
    assert params["StatIDs"] == ["ST1"]
    assert params["AllocateResources"] is params["ProcessThresholds"] is True
    assert "ThresholdIDs" not in params


async def test_event_passes_the_flags_through() -> None:
    engine = FakeEngine(ProcessEvent={"MaxUsage": {"*default": 5}})
    flags = ["*event", "*accounts", "*rals:*authorize"]
    outcome = await process(templates(processor("p", flags)), CCR, VARS, engine)
    method, params = engine.calls[0]
    assert method == "SessionSv1.ProcessEvent"
    assert params["Flags"] == flags
    assert outcome.cgrep.to_data() == {"MaxUsage": {"*default": 5}, "Error": ""}


async def test_terminate_then_cdrs() -> None:
    engine = FakeEngine()
    outcome = await process(
        templates(processor("p", ["*terminate", "*accounts", "*cdrs"])), CCR, VARS, engine
    )
    assert [call[0] for call in engine.calls] == [
        "SessionSv1.TerminateSession",
        "SessionSv1.ProcessCDR",
    ]
    cdr = engine.calls[1][1]
    assert set(cdr) == {"Tenant", "ID", "Time", "Event", "APIOpts"}  # a plain CGREvent
    assert outcome.cgrep.to_data() == {"Error": ""}


async def test_cdrs_alone_and_none_and_dryrun() -> None:
    engine = FakeEngine()
    await process(templates(processor("p", ["*cdrs"])), CCR, VARS, engine)
    assert [call[0] for call in engine.calls] == ["SessionSv1.ProcessCDR"]
    for flags in (["*none"], ["*dryrun", "*cdrs"], ["*dryrun", "*initiate", "*accounts"]):
        engine = FakeEngine()
        outcome = await process(templates(processor("p", flags)), CCR, VARS, engine)
        assert engine.calls == [] and outcome.matched


async def test_message_debit_sets_usage_for_the_cdr() -> None:
    engine = FakeEngine(ProcessMessage={"MaxUsage": 1})
    await process(templates(processor("p", ["*message", "*accounts", "*cdrs"])), CCR, VARS, engine)
    assert engine.calls[1][1]["Event"]["Usage"] == 1


async def test_engine_error_lands_in_cgrep_error() -> None:
    engine = FakeEngine(InitiateSession=RpcError("INSUFFICIENT_CREDIT"))
    proc = processor(
        "p",
        ["*initiate", "*accounts"],
        reply_fields=[
            {
                "tag": "RC",
                "path": "*rep.Result-Code",
                "type": "*constant",
                "value": "4012",
                "filters": ["*string:~*cgrep.Error:INSUFFICIENT_CREDIT"],
            },
            {
                "tag": "Err",
                "path": "*rep.Error-Message",
                "type": "*variable",
                "value": "~*cgrep.Error",
            },
        ],
    )
    reply = ReplyTree()
    outcome = await process(templates(proc), CCR, VARS, engine, reply)
    assert outcome.cgrep.to_data() == {"Error": "INSUFFICIENT_CREDIT"}
    assert reply.to_data() == {"Result-Code": "4012", "Error-Message": "INSUFFICIENT_CREDIT"}
    assert outcome.calls[0].error == "INSUFFICIENT_CREDIT"


async def test_cdr_error_overwrites_error() -> None:
    engine = FakeEngine(ProcessCDR=RpcError("SERVER_ERROR: boom"))
    outcome = await process(
        templates(processor("p", ["*terminate", "*accounts", "*cdrs"])), CCR, VARS, engine
    )
    assert outcome.cgrep.to_data() == {"Error": "SERVER_ERROR: boom"}


async def test_connection_failures_are_engine_errors_too() -> None:
    engine = FakeEngine(AuthorizeEvent=TimeoutError("timed out"))
    outcome = await process(
        templates(processor("p", ["*authorize", "*accounts"])), CCR, VARS, engine
    )
    assert outcome.cgrep.to_data() == {"Error": "timed out"}


async def test_max_usage_only_when_asked_for() -> None:
    reply = {"MaxUsage": None, "Attributes": None}
    engine = FakeEngine(AuthorizeEvent=reply)
    outcome = await process(
        templates(processor("p", ["*authorize", "*accounts"])), CCR, VARS, engine
    )
    assert outcome.cgrep.to_data() == {"MaxUsage": 0, "Error": ""}
    engine = FakeEngine(AuthorizeEvent={"MaxUsage": 7, "ThresholdIDs": ["T1"]})
    outcome = await process(
        templates(processor("p", ["*authorize", "*attributes"])), CCR, VARS, engine
    )
    assert outcome.cgrep.to_data() == {"Thresholds": "T1", "Error": ""}


async def test_attributes_reply_shows_the_altered_fields() -> None:
    attributes = {
        "MatchedProfiles": ["cgrates.org:ATTR"],
        "AlteredFields": ["*req.Account", "*req.Password"],
        "CGREvent": {"Event": {"Account": "1001", "Password": "secret", "Other": "x"}},
    }
    engine = FakeEngine(AuthorizeEvent={"Attributes": attributes})
    proc = processor(
        "p",
        ["*authorize", "*attributes"],
        reply_fields=[
            {
                "tag": "pw",
                "path": "*rep.Password",
                "type": "*variable",
                "value": "~*cgrep.Attributes.Password",
            }
        ],
    )
    outcome = await process(templates(proc), CCR, VARS, engine)
    assert outcome.cgrep.to_data() == {
        "Attributes": {"Account": "1001", "Password": "secret"},
        "Error": "",
    }
    assert outcome.reply.to_data() == {"Password": "secret"}
    engine = FakeEngine(ProcessEvent={"Attributes": {"*default": attributes}})
    outcome = await process(templates(processor("p", ["*event", "*attributes"])), CCR, VARS, engine)
    assert outcome.cgrep.to_data()["Attributes"] == {
        "*default": {"Account": "1001", "Password": "secret"}
    }


async def test_first_match_and_continue() -> None:
    procs = [
        processor("never", ["*none"], filters=["*string:~*req.CC-Request-Type:3"]),
        processor(
            "first",
            ["*initiate", "*accounts", "*continue"],
            filters=["*string:~*req.CC-Request-Type:1"],
        ),
        processor("second", ["*none"], filters=["*gte:~*cgrep.MaxUsage:10"]),
        processor("stop", ["*none"]),
        processor("unreached", ["*none"]),
    ]
    engine = FakeEngine(InitiateSession={"MaxUsage": 10})
    outcome = await process(templates(*procs), CCR, VARS, engine)
    assert outcome.processors == ["first", "second"]
    assert outcome.processor == "first"


async def test_no_match() -> None:
    proc = processor("p", ["*none"], filters=["*string:~*vars.OriginHost:other"])
    outcome = await process(templates(proc), CCR, VARS, FakeEngine())
    assert not outcome.matched and outcome.processors == [] and outcome.calls == []


async def test_tenant_and_opts() -> None:
    proc = processor("p", ["*authorize", "*accounts"], tenant="~*vars.Tenant;.net")
    proc["request_fields"].append(
        {"tag": "ctx", "path": "*opts.*context", "type": "*constant", "value": "gy"}
    )
    engine = FakeEngine(AuthorizeEvent={"MaxUsage": 1})
    await process(templates(proc), CCR, {"Tenant": "acme"}, engine)
    params = engine.calls[0][1]
    assert params["Tenant"] == "acme.net"
    assert params["APIOpts"] == {"*context": "gy"}


def test_plan_uses_the_given_reply_without_an_engine() -> None:
    proc = processor(
        "p",
        ["*initiate", "*accounts"],
        reply_fields=[
            {"tag": "cca", "type": "*template", "value": "*cca"},
            {
                "tag": "GSU",
                "path": "*rep.Granted-Service-Unit.CC-Time",
                "type": "*variable",
                "value": "~*cgrep.MaxUsage{*duration_seconds}",
            },
        ],
    )
    outcome = plan(templates(proc), CCR, VARS, engine_reply={"MaxUsage": 300_000_000_000})
    assert [call.method for call in outcome.calls] == ["SessionSv1.InitiateSession"]
    assert outcome.reply.to_data() == {
        "Session-Id": "gy;1",
        "Result-Code": "2001",
        "Origin-Host": "cgr.local",
        "Origin-Realm": "local",
        "Auth-Application-Id": "4",
        "CC-Request-Type": "1",
        "CC-Request-Number": "0",
        "Granted-Service-Unit": {"CC-Time": "300"},
    }
    failed = plan(templates(proc), CCR, VARS, engine_error="NOT_FOUND")
    assert failed.cgrep.to_data() == {"Error": "NOT_FOUND"}


GATED = [
    processor("data_update", ["*none", "*continue"], filters=["*string:~*req.CC-Request-Type:2"]),
    processor("any_vars", ["*none", "*continue"], filters=["*string:~*vars.OriginHost:cgr.local"]),
    processor(
        "init_or_update", ["*none", "*continue"], filters=["*string:~*req.CC-Request-Type:1|2"]
    ),
    processor("not_init", ["*none", "*continue"], filters=["*notstring:~*req.CC-Request-Type:1"]),
    processor(
        "terminate_late",
        ["*none", "*continue"],
        filters=["*string:~*vars.OriginHost:cgr.local", "*string:~*req.CC-Request-Type:3"],
    ),
    processor("unfiltered", ["*none", "*continue"]),
    # Gated, and checked further once the gate passes it: the second filter fails or passes.
    processor(
        "update_elsewhere",
        ["*none", "*continue"],
        filters=["*string:~*req.CC-Request-Type:2", "*string:~*vars.OriginHost:other"],
    ),
    processor(
        "update_here",
        ["*none", "*continue"],
        filters=["*string:~*req.CC-Request-Type:2|3", "*string:~*vars.OriginHost:cgr.local"],
    ),
    processor("terminate", ["*none", "*continue"], filters=["*string:~*req.CC-Request-Type:3"]),
]


@pytest.mark.parametrize("request_type", [1, 2, 3, 4, "2", None])
async def test_gated_processors_run_as_every_processor_tried_in_order(request_type: Any) -> None:
    ccr = dict(CCR.data)
    if request_type is None:
        del ccr["CC-Request-Type"]
    else:
        ccr["CC-Request-Type"] = request_type
    loaded = templates(*GATED)
    assert loaded.gate is not None  # three processors begin with the CC-Request-Type filter
    trees = {"*req": DictTree(ccr), "*vars": DictTree(VARS)}
    expected = [p.id for p in loaded.processors if passes_filters(p.filters, trees, p)]
    outcome = await process(loaded, DictTree(ccr), VARS, FakeEngine())
    assert outcome.processors == expected
    # Only processors whose first filter fails are left out.
    kept = {p.id for p, _ in loaded.candidates(trees)}
    assert {p.id for p in loaded.processors if p.id not in kept} <= {
        "data_update",
        "init_or_update",
        "terminate",
        "update_elsewhere",
        "update_here",
    }


def test_no_gate_on_a_writable_tree_or_a_negated_filter() -> None:
    on_reply = processor("a", ["*none"], filters=["*string:~*cgreq.Category:call"])
    negated = processor("b", ["*none"], filters=["*notstring:~*req.CC-Request-Type:1"])
    assert templates(on_reply, {**on_reply, "id": "a2"}).gate is None
    assert templates(negated, {**negated, "id": "b2"}).gate is None


def test_a_gate_read_failing_otherwise_than_not_found_tries_every_processor() -> None:
    def unreadable(trees: Any) -> Any:
        raise TemplateError("malformed")

    assert ProcessorGate(unreadable, {}, ()).candidates({}) is None
