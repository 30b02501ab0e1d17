"""AttributeS: the typical uses, process runs, attribute types, matching rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from filters.stack import TENANT, event, serve, services, tutorial

from core.attributes import AttributeSError, AttributeService
from core.tariffplan import KIND_ATTRIBUTES, KIND_FILTERS, TariffPlanError
from core.tariffplan.models import (
    ActivationInterval,
    Attribute,
    AttributeProfile,
    FilterProfile,
    FilterRule,
    TariffPlan,
)


def profile(
    profile_id: str,
    *attributes: Attribute,
    contexts: tuple[str, ...] = ("*any",),
    filter_ids: tuple[str, ...] = (),
    weight: int = 0,
    blocker: bool = False,
    interval: ActivationInterval | None = None,
    tenant: str = TENANT,
) -> AttributeProfile:
    return AttributeProfile(
        tenant, profile_id, contexts, filter_ids, interval, attributes, blocker, Decimal(weight)
    )


def service_for(
    *profiles: AttributeProfile, filters: tuple[FilterProfile, ...] = ()
) -> AttributeService:
    plan = TariffPlan(
        others={
            KIND_ATTRIBUTES: {p.key: p for p in profiles},
            KIND_FILTERS: {f.key: f for f in filters},
        }
    )
    _, attributes, _ = serve(plan)
    return attributes


def process(service: AttributeService, fields: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    options = {k: v for k, v in kwargs.items() if k in ("context", "process_runs", "attribute_ids")}
    ev = event(fields, tenant=kwargs.get("tenant", TENANT), time=kwargs.get("time"))
    return service.process_event(ev, **options).to_wire()


@pytest.fixture(scope="module")
def tutorial_attributes() -> AttributeService:
    _, attributes, _ = serve(tutorial())
    return attributes


# ---------------------------------------------------------------------------------- typical uses
def test_did_to_account_in_the_cdrs_context() -> None:
    did = profile(
        "ATTR_DID_12340003",
        Attribute("*req.Account", "*constant", "Nick_Test_123"),
        Attribute("*req.Subject", "*constant", "Nick_Test_123"),
        contexts=("*cdrs",),
        filter_ids=("*string:~*req.Destination:12340003",),
    )
    attributes = service_for(did)
    reply = process(attributes, {"Account": "1001", "Destination": "12340003"}, context="*cdrs")
    assert reply == {
        "MatchedProfiles": ["ATTR_DID_12340003"],
        "AlteredFields": ["*req.Account", "*req.Subject"],
        "CGREvent": {
            "Tenant": TENANT,
            "ID": "ev1",
            "Time": None,
            "Event": {
                "Account": "Nick_Test_123",
                "Destination": "12340003",
                "Subject": "Nick_Test_123",
            },
            "APIOpts": {},
        },
    }
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):  # only in its context
        process(attributes, {"Destination": "12340003"}, context="*sessions")
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):  # only for its DID
        process(attributes, {"Destination": "12340004"}, context="*cdrs")


E164 = profile(
    "ATTR_E164",
    Attribute("*req.Destination", "*variable", r"~*req.Destination:s/^00(\d+)/${1}/"),
    filter_ids=("*prefix:~*req.Destination:00",),
    weight=20,
)
NATIONAL = profile(
    "ATTR_NATIONAL_DE",
    Attribute("*req.Destination", "*variable", r"~*req.Destination:s/^0(\d+)/49${1}/"),
    filter_ids=("*prefix:~*req.Destination:0", "*notprefix:~*req.Destination:00"),
    weight=10,
)


@pytest.mark.parametrize(
    ("number", "normalised", "matched"),
    [
        ("00498765432", "498765432", "ATTR_E164"),
        ("0301234567", "49301234567", "ATTR_NATIONAL_DE"),
        ("00331234", "331234", "ATTR_E164"),
    ],
)
def test_normalise_numbers_to_e164(number: str, normalised: str, matched: str) -> None:
    reply = process(service_for(E164, NATIONAL), {"Destination": number}, context="*sessions")
    assert reply["CGREvent"]["Event"]["Destination"] == normalised
    assert reply["MatchedProfiles"] == [matched]
    assert reply["AlteredFields"] == ["*req.Destination"]


def test_tutorial_simpleauth_returns_the_sip_password(
    tutorial_attributes: AttributeService,
) -> None:
    reply = process(tutorial_attributes, {"Account": "1001"}, context="simpleauth")
    assert reply["MatchedProfiles"] == ["ATTR_1001_SIMPLEAUTH"]
    assert reply["AlteredFields"] == ["*req.Password"]
    assert reply["CGREvent"]["Event"] == {"Account": "1001", "Password": "CGRateS.org"}
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        process(tutorial_attributes, {"Account": "1009"}, context="simpleauth")


def test_tutorial_account_alias(tutorial_attributes: AttributeService) -> None:
    # ATTR_ACC_ALIAS is bound to *any context: it applies in every context.
    for context in ("*sessions", "*cdrs", None):
        reply = process(tutorial_attributes, {"SubscriberId": "1006"}, context=context)
        assert reply["MatchedProfiles"] == ["ATTR_ACC_ALIAS"]
        assert reply["AlteredFields"] == ["*req.Account", "*req.RequestType"]
        assert reply["CGREvent"]["Event"] == {
            "SubscriberId": "1006",
            "Account": "1001",
            "RequestType": "*prepaid",
        }


def test_process_runs_apply_profiles_to_the_altered_event(
    tutorial_attributes: AttributeService,
) -> None:
    # Run 1 aliases the subscriber to account 1001; run 2 then matches 1001's session profile.
    reply = process(
        tutorial_attributes, {"SubscriberId": "1006"}, context="*sessions", process_runs=2
    )
    assert reply["MatchedProfiles"] == ["ATTR_ACC_ALIAS", "ATTR_1001_SESSIONAUTH"]
    assert reply["AlteredFields"] == [
        "*req.Account", "*req.RequestType", "*req.Password", "*req.PaypalAccount",
        "*req.LCRProfile",
    ]  # fmt: skip
    assert reply["CGREvent"]["Event"]["Password"] == "CGRateS.org"
    one_run = process(tutorial_attributes, {"SubscriberId": "1006"}, context="*sessions")
    assert one_run["MatchedProfiles"] == ["ATTR_ACC_ALIAS"]


def test_tenant_alias_switches_tenant_between_runs(tutorial_attributes: AttributeService) -> None:
    reply = process(
        tutorial_attributes, {"SubscriberId": "1006"}, tenant="cgrates.com",
        context="*sessions", process_runs=2,
    )  # fmt: skip
    assert reply["MatchedProfiles"] == ["ATTR_TNT_ALIAS", "ATTR_1001_SESSIONAUTH"]
    assert reply["CGREvent"]["Tenant"] == "cgrates.org"
    assert "*tenant" in reply["AlteredFields"]


def test_process_runs_never_repeat_the_previous_profile() -> None:
    counter = profile("ATTR_COUNT", Attribute("*req.Hits", "*composed", "x"))
    reply = process(service_for(counter), {}, process_runs=5)
    assert reply["MatchedProfiles"] == ["ATTR_COUNT"]  # run 2 finds nothing else: stop quietly
    assert reply["CGREvent"]["Event"] == {"Hits": "x"}
    other = profile("ATTR_OTHER", Attribute("*req.Hits", "*composed", "y"), weight=-1)
    reply = process(service_for(counter, other), {}, process_runs=3)
    assert reply["MatchedProfiles"] == ["ATTR_COUNT", "ATTR_OTHER", "ATTR_COUNT"]  # as v0.11
    assert reply["CGREvent"]["Event"] == {"Hits": "xyx"}


def test_blocker_stops_the_runs() -> None:
    first = profile("ATTR_A", Attribute("*req.A", "*constant", "1"), weight=20, blocker=True)
    second = profile("ATTR_B", Attribute("*req.B", "*constant", "1"), weight=10)
    reply = process(service_for(first, second), {}, process_runs=3)
    assert reply["MatchedProfiles"] == ["ATTR_A"]


def test_highest_weight_wins() -> None:
    low = profile("ATTR_LOW", Attribute("*req.Plan", "*constant", "low"), weight=5)
    high = profile("ATTR_HIGH", Attribute("*req.Plan", "*constant", "high"), weight=50)
    reply = process(service_for(low, high), {})
    assert reply["MatchedProfiles"] == ["ATTR_HIGH"]


# ------------------------------------------------------------------------------------- types
@pytest.mark.parametrize(
    ("attr_type", "value", "fields", "expected"),
    [
        ("*constant", "*prepaid", {}, "*prepaid"),
        ("*constant", "~*req.Account", {"Account": "1"}, ""),  # constants do not read fields
        ("*variable", "~*req.Account", {"Account": "1001"}, "1001"),
        ("", "~*req.Account", {"Account": "1001"}, "1001"),  # no Type: *variable
        ("*variable", "sip:;~*req.Account;@host", {"Account": "1001"}, "sip:1001@host"),
        ("*composed", "-suffix", {"Out": "base"}, "base-suffix"),
        ("*composed", "new", {}, "new"),
        (
            "*usage_difference",
            "~*req.End;~*req.Start",
            {"End": "2014-07-29T15:01:30Z", "Start": "2014-07-29T15:00:00Z"},
            "1m30s",
        ),
        ("*sum", "~*req.A;~*req.B;5", {"A": "1", "B": "2"}, "8"),
        ("*sum", "~*req.A;~*req.B", {"A": "1.5", "B": "2"}, "3.5"),
        ("*sum", "~*req.A;30s", {"A": "1m"}, "1m30s"),
        ("*difference", "~*req.A;~*req.B", {"A": "10", "B": "3"}, "7"),
        ("*difference", "~*req.A;~*req.B", {"A": "1m", "B": "20s"}, "40s"),
        (
            "*difference",
            "~*req.A;~*req.B",
            {"A": "2014-07-29T15:01:00Z", "B": "2014-07-29T15:00:00Z"},
            "1m0s",
        ),
        ("*multiply", "~*req.A;3", {"A": "1.5"}, "4.5"),
        ("*divide", "~*req.A;4", {"A": "10"}, "2"),  # integers divide as Go's do
        ("*divide", "~*req.A;4", {"A": "10.0"}, "2.5"),
        ("*value_exponent", "~*req.A;~*req.E", {"A": "1.2345", "E": "2"}, "123.45"),
        ("*unix_timestamp", "~*req.T", {"T": "2014-07-29T15:00:00Z"}, "1406646000"),
        ("*prefix", "+", {"Out": "4930"}, "+4930"),
        ("*suffix", "@example.com", {"Out": "1001"}, "1001@example.com"),
        ("*none", "", {"Out": "x"}, ""),
        ("*cc_usage", "~*req.N;~*req.Used;5m", {"N": "3", "Used": "1m"}, "11m0s"),
        ("*sipcid", "~*req.Id;~*req.To;~*req.From", {"Id": "c1", "To": "b", "From": "a"}, "c1;a;b"),
    ],
)
def test_attribute_types(attr_type: str, value: str, fields: dict[str, Any], expected: str) -> None:
    attributes = service_for(profile("ATTR", Attribute("*req.Out", attr_type, value)))
    reply = process(attributes, fields)
    assert reply["CGREvent"]["Event"]["Out"] == expected


def test_remove_deletes_the_field() -> None:
    attributes = service_for(profile("ATTR", Attribute("*req.Secret", "*constant", "*remove")))
    reply = process(attributes, {"Secret": "x", "Keep": "y"})
    assert reply["CGREvent"]["Event"] == {"Keep": "y"}
    assert reply["AlteredFields"] == ["*req.Secret"]


def test_options_and_nested_paths_can_be_set() -> None:
    attributes = service_for(
        profile(
            "ATTR",
            Attribute("*opts.*context", "*constant", "*cdrs"),
            Attribute("*req.Extra.Level", "*variable", "~*req.Account"),
        )
    )
    ev = event({"Account": "1001"})
    reply = attributes.process_event(ev)
    assert reply.event.opts == {"*context": "*cdrs"}
    assert reply.event.event["Extra"] == {"Level": "1001"}
    assert ev.event == {"Account": "1001"} and ev.opts == {}  # the request is left alone


def test_attribute_filters_select_attributes() -> None:
    attributes = service_for(
        profile(
            "ATTR",
            Attribute("*req.Class", "*constant", "gold", ("*gte:~*req.Spent:100",)),
            Attribute("*req.Class", "*constant", "basic", ("*lt:~*req.Spent:100",)),
            # later attributes see earlier changes
            Attribute("*req.Bonus", "*constant", "yes", ("*string:~*req.Class:gold",)),
        )
    )
    assert process(attributes, {"Spent": "150"})["CGREvent"]["Event"] == {
        "Spent": "150", "Class": "gold", "Bonus": "yes",
    }  # fmt: skip
    reply = process(attributes, {"Spent": "50"})
    assert reply["CGREvent"]["Event"] == {"Spent": "50", "Class": "basic"}
    assert reply["AlteredFields"] == ["*req.Class"]


# ---------------------------------------------------------------------------------- matching
def test_activation_interval_against_the_event_time() -> None:
    summer = ActivationInterval(datetime(2014, 6, 1, tzinfo=UTC), datetime(2014, 9, 1, tzinfo=UTC))
    attributes = service_for(
        profile("ATTR_SUMMER", Attribute("*req.Promo", "*constant", "summer"), interval=summer)
    )
    july = datetime(2014, 7, 29, tzinfo=UTC)
    assert process(attributes, {}, time=july)["MatchedProfiles"] == ["ATTR_SUMMER"]
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        process(attributes, {}, time=datetime(2014, 12, 1, tzinfo=UTC))
    # An event without a Time is not checked against intervals (CGRateS).
    assert process(attributes, {})["MatchedProfiles"] == ["ATTR_SUMMER"]


def test_default_context_is_default() -> None:
    only_default = profile("ATTR", Attribute("*req.A", "*constant", "1"), contexts=("*default",))
    attributes = service_for(only_default)
    assert process(attributes, {})["MatchedProfiles"] == ["ATTR"]
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        process(attributes, {}, context="*sessions")


def test_contexts_with_any_among_others_need_the_context() -> None:
    # CGRateS: a profile applies in any context only when Contexts is exactly [*any].
    mixed = profile("ATTR", Attribute("*req.A", "*constant", "1"), contexts=("*sessions", "*any"))
    attributes = service_for(mixed)
    assert process(attributes, {}, context="*sessions")["MatchedProfiles"] == ["ATTR"]
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        process(attributes, {}, context="*cdrs")


def test_errors() -> None:
    attributes = service_for(
        profile("ATTR_VAR", Attribute("*req.A", "*variable", "~*req.Missing"),
                filter_ids=("*string:~*req.Kind:var",)),
        profile("ATTR_BAD", Attribute("*req.A", "*sum", "~*req.X;1.5"),
                filter_ids=("*string:~*req.Kind:bad",)),
        profile("ATTR_REF", Attribute("*req.A", "*constant", "1"),
                filter_ids=("*string:~*req.Kind:ref", "FLTR_GONE")),
    )  # fmt: skip
    # A value reading a missing field in the first run: NOT_FOUND, as CGRateS.
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        process(attributes, {"Kind": "var"})
    with pytest.raises(AttributeSError, match=r"^SERVER_ERROR: cannot convert field"):
        process(attributes, {"Kind": "bad", "X": "1"})
    # Filter profiles resolve at match time: a missing one is a server error naming it.
    with pytest.raises(AttributeSError, match=r"^SERVER_ERROR: NOT_FOUND:FLTR_GONE$"):
        process(attributes, {"Kind": "ref"})


def test_unfilled_attribute_requests_are_mandatory() -> None:
    attributes = service_for(profile("ATTR", Attribute("*req.A", "*constant", "1")))
    with pytest.raises(AttributeSError, match=r"^MANDATORY_IE_MISSING: \[Password\]$"):
        process(attributes, {"Password": "*attributes"})


def test_attribute_ids_and_inline_attributes() -> None:
    low = profile("ATTR_LOW", Attribute("*req.A", "*constant", "low"), weight=1)
    high = profile("ATTR_HIGH", Attribute("*req.A", "*constant", "high"), weight=9,
                   filter_ids=("*string:~*req.Go:yes",))  # fmt: skip
    attributes = service_for(low, high)
    reply = process(attributes, {"Go": "no"}, attribute_ids=["ATTR_HIGH", "ATTR_LOW", "ATTR_NONE"])
    assert reply["MatchedProfiles"] == ["ATTR_LOW"]  # filters still apply to given IDs
    inline = "*constant:*req.RequestType:*none;*variable:*req.Copy:~*req.Go&-x"
    reply = process(attributes, {"Go": "yes"}, attribute_ids=[inline], context="*chargers")
    assert reply["MatchedProfiles"] == [inline]
    assert reply["CGREvent"]["Event"] == {"Go": "yes", "RequestType": "*none", "Copy": "yes-x"}


def test_get_attribute_for_event(tutorial_attributes: AttributeService) -> None:
    found = tutorial_attributes.attribute_for_event(
        event({"Account": "1002"}), context="simpleauth"
    )
    assert found.model.id == "ATTR_1002_SIMPLEAUTH"
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        tutorial_attributes.attribute_for_event(event({"Account": "1002"}), context="*cdrs")


def test_index_keeps_matching_exact_with_many_profiles() -> None:
    dids = [
        profile(f"ATTR_DID_{n}", Attribute("*req.Account", "*constant", f"acc{n}"),
                filter_ids=(f"*string:~*req.Destination:{n}",), weight=10)
        for n in range(1000, 3000)
    ]  # fmt: skip
    stored = FilterProfile(TENANT, "FLTR_VIP", (FilterRule("*string", "~*req.Account", ("vip",)),))
    vip = profile("ATTR_VIP", Attribute("*req.Class", "*constant", "vip"),
                  filter_ids=("FLTR_VIP",), weight=50)  # fmt: skip
    fallback = profile("ATTR_ANY", Attribute("*req.Class", "*constant", "any"),
                       filter_ids=("*prefix:~*req.Destination:9",), weight=1)  # fmt: skip
    attributes = service_for(*dids, vip, fallback, filters=(stored,))
    assert process(attributes, {"Destination": "2345"})["MatchedProfiles"] == ["ATTR_DID_2345"]
    assert process(attributes, {"Destination": "2345", "Account": "vip"})["MatchedProfiles"] == [
        "ATTR_VIP"
    ]
    assert process(attributes, {"Destination": "9999"})["MatchedProfiles"] == ["ATTR_ANY"]
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        process(attributes, {"Destination": "5555"})


def test_bad_profiles_fail_the_load() -> None:
    _, _, attributes, _ = services()
    bad = profile("ATTR_BAD", Attribute("*req.A", "*frobnicate", "1"))
    plan = TariffPlan(others={KIND_ATTRIBUTES: {bad.key: bad}})
    with pytest.raises(
        TariffPlanError,
        match=r"Attributes.csv: cgrates.org:ATTR_BAD: Attributes\[0\]: unsupported type: "
        r"<\*frobnicate>",
    ):
        attributes.prepare(plan)


def test_the_callers_event_is_never_altered_nor_handed_back(
    tutorial_attributes: AttributeService,
) -> None:
    # The copy is made only once a profile matches: the reply must still own its event, and
    # an event that matched nothing (NOT_FOUND) must come out as it went in.
    original = event({"SubscriberId": "1006"})
    reply = tutorial_attributes.process_event(original, context="*sessions", process_runs=2)
    assert reply.event is not original
    assert reply.event.event is not original.event
    assert reply.event.opts is not original.opts
    assert original.event == {"SubscriberId": "1006"}
    unmatched = event({"SubscriberId": "none"})
    with pytest.raises(AttributeSError, match=r"^NOT_FOUND$"):
        tutorial_attributes.process_event(unmatched, context="*cdrs")
    assert unmatched.event == {"SubscriberId": "none"}
