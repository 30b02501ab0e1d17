"""ChargerS: the tutorial's forking, matching, and the AttributeS step of each run."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from filters.stack import TENANT, event, serve, tutorial

from core.chargers import ChargerSError, ChargerService
from core.tariffplan import KIND_ATTRIBUTES, KIND_CHARGERS
from core.tariffplan.models import (
    ActivationInterval,
    Attribute,
    AttributeProfile,
    ChargerProfile,
    TariffPlan,
)


@pytest.fixture(scope="module")
def tutorial_chargers() -> ChargerService:
    _, _, chargers = serve(tutorial())
    return chargers


def test_tutorial_forks_default_and_raw(tutorial_chargers: ChargerService) -> None:
    original = event({"Account": "1001", "Destination": "1002", "RequestType": "*prepaid"})
    runs = [run.to_wire() for run in tutorial_chargers.process(original)]
    assert runs == [
        {
            "ChargerSProfile": "DEFAULT",
            "AttributeSProfiles": None,  # *none: AttributeS not asked
            "AlteredFields": ["*req.RunID"],
            "CGREvent": {
                "Tenant": TENANT,
                "ID": "ev1",
                "Time": None,
                "Event": {
                    "Account": "1001",
                    "Destination": "1002",
                    "RequestType": "*prepaid",
                    "RunID": "*default",
                },
                "APIOpts": {"*subsys": "*chargers"},
            },
        },
        {
            "ChargerSProfile": "Raw",
            "AttributeSProfiles": ["*constant:*req.RequestType:*none"],
            "AlteredFields": ["*req.RunID", "*req.RequestType"],
            "CGREvent": {
                "Tenant": TENANT,
                "ID": "ev1",
                "Time": None,
                "Event": {
                    "Account": "1001",
                    "Destination": "1002",
                    "RequestType": "*none",
                    "RunID": "*raw",
                },
                "APIOpts": {"*subsys": "*chargers"},
            },
        },
    ]
    assert original.event == {"Account": "1001", "Destination": "1002", "RequestType": "*prepaid"}
    assert original.opts == {}


def test_no_charger_for_the_tenant(tutorial_chargers: ChargerService) -> None:
    with pytest.raises(ChargerSError, match=r"^NOT_FOUND$"):
        tutorial_chargers.process(event({"Account": "1001"}, tenant="cgrates.com"))


def _chargers(
    *profiles: ChargerProfile, attributes: tuple[AttributeProfile, ...] = ()
) -> ChargerService:
    plan = TariffPlan(
        others={
            KIND_CHARGERS: {p.key: p for p in profiles},
            KIND_ATTRIBUTES: {a.key: a for a in attributes},
        }
    )
    _, _, chargers = serve(plan)
    return chargers


def _charger(
    charger_id: str,
    run_id: str,
    *attribute_ids: str,
    filter_ids: tuple[str, ...] = (),
    weight: int = 0,
    interval: ActivationInterval | None = None,
) -> ChargerProfile:
    return ChargerProfile(
        TENANT, charger_id, filter_ids, interval, run_id, attribute_ids, Decimal(weight)
    )


def test_matching_filters_weights_and_activation() -> None:
    chargers = _chargers(
        _charger("CH_LOW", "low", "*none", weight=1),
        _charger("CH_HIGH", "high", "*none", weight=30),
        _charger("CH_VIP", "vip", "*none", filter_ids=("*string:~*req.Account:vip",), weight=10),
        _charger(
            "CH_2015", "y2015", "*none",
            interval=ActivationInterval(datetime(2015, 1, 1, tzinfo=UTC), None),
        ),
    )  # fmt: skip
    assert [p.id for p in chargers.chargers_for_event(event({"Account": "vip"}))] == [
        "CH_HIGH", "CH_VIP", "CH_LOW", "CH_2015",
    ]  # fmt: skip
    old = event({"Account": "x"}, time=datetime(2014, 7, 29, tzinfo=UTC))
    assert [run.profile_id for run in chargers.process(old)] == ["CH_HIGH", "CH_LOW"]


PRIVATE = AttributeProfile(
    TENANT, "ATTR_PRIVATE", ("*chargers",), ("*string:~*req.RunID:private",), None,
    (Attribute("*req.Category", "*constant", "private"),), False, Decimal(10),
)  # fmt: skip
SESSIONS_ONLY = AttributeProfile(
    TENANT, "ATTR_SESSIONS", ("*sessions",), (), None,
    (Attribute("*req.Category", "*constant", "sessions"),), False, Decimal(20),
)  # fmt: skip


def test_attributes_by_context_when_no_ids() -> None:
    chargers = _chargers(_charger("CH_PRIVATE", "private"), attributes=(PRIVATE, SESSIONS_ONLY))
    [run] = chargers.process(event({"Account": "1001"}))
    assert run.attribute_profiles == ["ATTR_PRIVATE"]
    assert run.altered_fields == ["*req.RunID", "*req.Category"]
    assert run.event.event["Category"] == "private"
    # The event may name another context for the run's attributes.
    [run] = chargers.process(event({"Account": "1001"}, opts={"*context": "*sessions"}))
    assert run.attribute_profiles == ["ATTR_SESSIONS"]


def test_attribute_ids_still_need_the_context() -> None:
    chargers = _chargers(_charger("CH", "private", "ATTR_SESSIONS"), attributes=(SESSIONS_ONLY,))
    [run] = chargers.process(event({"Account": "1001"}))
    assert run.attribute_profiles is None  # AttributeS found nothing: the run is kept as it is
    assert run.altered_fields == ["*req.RunID"]


def test_attribute_errors_fail_the_call() -> None:
    broken = AttributeProfile(
        TENANT, "ATTR_BROKEN", ("*any",), (), None,
        (Attribute("*req.X", "*sum", "~*req.A;1.5"),), False, Decimal(0),
    )  # fmt: skip
    chargers = _chargers(_charger("CH", "run", "ATTR_BROKEN"), attributes=(broken,))
    with pytest.raises(ChargerSError, match=r"^SERVER_ERROR: SERVER_ERROR: cannot convert"):
        chargers.process(event({"A": "1"}))


def test_process_runs_option_reaches_attributes() -> None:
    first = AttributeProfile(
        TENANT, "ATTR_1", ("*any",), (), None,
        (Attribute("*req.Trail", "*composed", "1"),), False, Decimal(2),
    )  # fmt: skip
    second = AttributeProfile(
        TENANT, "ATTR_2", ("*any",), (), None,
        (Attribute("*req.Trail", "*composed", "2"),), False, Decimal(1),
    )  # fmt: skip
    chargers = _chargers(_charger("CH", "run"), attributes=(first, second))
    [run] = chargers.process(event({}, opts={"*processRuns": 2}))
    assert run.attribute_profiles == ["ATTR_1", "ATTR_2"]
    assert run.event.event["Trail"] == "12"


def test_a_run_whose_attributes_read_a_missing_field_is_kept_unaltered() -> None:
    # The first attribute is set before the second finds its field missing: AttributeS found
    # nothing (NOT_FOUND), so the run's event must not show the first one's write.
    half = AttributeProfile(
        TENANT, "ATTR_HALF", ("*any",), (), None,
        (
            Attribute("*req.Category", "*constant", "half"),
            Attribute("*req.Subject", "*variable", "~*req.Missing"),
        ),
        False, Decimal(0),
    )  # fmt: skip
    chargers = _chargers(_charger("CH", "run", "ATTR_HALF"), attributes=(half,))
    original = event({"Account": "1001", "Category": "call"})
    [run] = chargers.process(original)
    assert run.attribute_profiles is None
    assert run.altered_fields == ["*req.RunID"]
    assert run.event.event == {"Account": "1001", "Category": "call", "RunID": "run"}
    assert run.event.opts == {"*subsys": "*chargers"}
    assert original.event == {"Account": "1001", "Category": "call"}
    # With the field there, the same profile alters the run.
    [run] = chargers.process(event({"Account": "1001", "Category": "call", "Missing": "x"}))
    assert run.attribute_profiles == ["ATTR_HALF"]
    assert run.event.event["Category"] == "half"
    assert run.event.event["Subject"] == "x"
