"""FilterService: stored profiles from the plan, tenants, activation intervals, load errors,
the tutorial's Filters.csv."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.filters import FilterError, FilterService
from core.tariffplan import KIND_FILTERS, TariffPlanError
from core.tariffplan.models import ActivationInterval, FilterProfile, FilterRule, TariffPlan

from .stack import TENANT, serve, tutorial, view

NOW = datetime(2020, 1, 1, tzinfo=UTC)


def _filter(
    filter_id: str,
    *rules: tuple[str, str, tuple[str, ...]],
    tenant: str = TENANT,
    interval: ActivationInterval | None = None,
) -> FilterProfile:
    return FilterProfile(tenant, filter_id, tuple(FilterRule(*rule) for rule in rules), interval)


def _service(*profiles: FilterProfile) -> FilterService:
    plan = TariffPlan(others={KIND_FILTERS: {profile.key: profile for profile in profiles}})
    filters, _, _ = serve(plan, clock=lambda: NOW)
    return filters


ACCOUNT_1001 = ("*string", "~*req.Account", ("1001",))
PREFIX_49 = ("*prefix", "~*req.Destination", ("49",))


def test_stored_profile_rules_are_and_ed() -> None:
    filters = _service(_filter("FLTR_1", ACCOUNT_1001, PREFIX_49))
    assert filters.passes(TENANT, ("FLTR_1",), view({"Account": "1001", "Destination": "4930"}))
    assert not filters.passes(TENANT, ("FLTR_1",), view({"Account": "1001", "Destination": "3330"}))


def test_stored_and_inline_give_the_same_answers() -> None:
    filters = _service(_filter("FLTR_1", ACCOUNT_1001))
    for account in ("1001", "1002"):
        event_view = view({"Account": account})
        assert filters.passes(TENANT, ("FLTR_1",), event_view) == filters.passes(
            TENANT, ("*string:~*req.Account:1001",), event_view
        )


def test_stored_and_inline_mixed() -> None:
    filters = _service(_filter("FLTR_1", ACCOUNT_1001))
    ids = ("FLTR_1", "*prefix:~*req.Destination:49")
    assert filters.passes(TENANT, ids, view({"Account": "1001", "Destination": "4930"}))
    assert not filters.passes(TENANT, ids, view({"Account": "1001", "Destination": "3330"}))


def test_unknown_filter_id_is_not_found_with_its_id() -> None:
    filters = _service()
    with pytest.raises(FilterError) as raised:
        filters.passes(TENANT, ("FLTR_MISSING",), view({}))
    assert str(raised.value) == "NOT_FOUND:FLTR_MISSING"


def test_profiles_are_tenant_scoped() -> None:
    filters = _service(_filter("FLTR_1", ACCOUNT_1001, tenant="cgrates.com"))
    assert filters.passes("cgrates.com", ("FLTR_1",), view({"Account": "1001"}))
    with pytest.raises(FilterError, match="NOT_FOUND:FLTR_1"):
        filters.passes(TENANT, ("FLTR_1",), view({"Account": "1001"}))


def test_inactive_profile_is_skipped_but_alone_does_not_pass() -> None:
    future = ActivationInterval(datetime(2030, 1, 1, tzinfo=UTC), None)
    expired = ActivationInterval(None, datetime(2019, 1, 1, tzinfo=UTC))
    filters = _service(
        _filter("FLTR_FUTURE", ("*string", "~*req.Account", ("nobody",)), interval=future),
        _filter("FLTR_EXPIRED", ("*string", "~*req.Account", ("nobody",)), interval=expired),
        _filter("FLTR_1", ACCOUNT_1001),
    )
    event_view = view({"Account": "1001"})
    # An inactive filter is ignored (its rules would fail) ...
    assert filters.passes(TENANT, ("FLTR_FUTURE", "FLTR_1"), event_view)
    # ... but an event passing only inactive filters does not pass (CGRateS FilterS.Pass).
    assert not filters.passes(TENANT, ("FLTR_FUTURE",), event_view)
    assert not filters.passes(TENANT, ("FLTR_EXPIRED", "FLTR_FUTURE"), event_view)


def test_activation_is_checked_against_the_clock() -> None:
    starts = ActivationInterval(NOW, None)  # strictly after activation, as CGRateS
    filters = _service(_filter("FLTR_1", ACCOUNT_1001, interval=starts))
    assert not filters.passes(TENANT, ("FLTR_1",), view({"Account": "1001"}))


def test_a_bad_profile_fails_the_load_naming_it() -> None:
    plan = TariffPlan(
        others={
            KIND_FILTERS: {
                "cgrates.org:FLTR_BAD": _filter("FLTR_BAD", ("*regex", "~*req.A", ("(",))),
                "cgrates.org:FLTR_OK": _filter("FLTR_OK", ACCOUNT_1001),
            }
        }
    )
    filters = FilterService()
    with pytest.raises(TariffPlanError) as raised:
        filters.prepare(plan)
    assert "Filters.csv: cgrates.org:FLTR_BAD: Rules[0]: error parsing regexp" in str(raised.value)
    with pytest.raises(FilterError, match="NOT_FOUND:FLTR_OK"):  # nothing was switched in
        filters.passes(TENANT, ("FLTR_OK",), view({"Account": "1001"}))


# ------------------------------------------------------------------------------------- tutorial
@pytest.fixture(scope="module")
def tutorial_filters() -> FilterService:
    filters, _, _ = serve(tutorial())
    return filters


@pytest.mark.parametrize(
    ("filter_id", "fields", "expected"),
    [
        ("FLTR_RES", {"Account": "1003"}, True),
        ("FLTR_RES", {"Account": "1004"}, False),
        ("FLTR_ACNT_1001", {"Account": "1001"}, True),
        (
            "FLTR_ACNT_1001_1002",
            {"Account": "1002", "RunID": "*default", "Destination": "1003"},
            True,
        ),
        ("FLTR_ACNT_1001_1002", {"Account": "1002", "RunID": "*raw", "Destination": "1003"}, False),
        (
            "FLTR_ACNT_1001_1002",
            {"Account": "1001", "RunID": "*default", "Destination": "2000"},
            False,
        ),
        (
            "FLTR_ACNT_1003_1001",
            {"Account": "1003", "RunID": "*default", "Destination": "1001"},
            True,
        ),
        # *destinations through the rater's destination index: DST_FS holds the prefix "10".
        ("FLTR_DST_FS", {"Account": "1001", "Destination": "1002"}, True),
        ("FLTR_DST_FS", {"Account": "1001", "Destination": "2002"}, False),
        ("FLTR_DST_FS", {"Account": "1002", "Destination": "1002"}, False),
    ],
)
def test_tutorial_filters(
    tutorial_filters: FilterService, filter_id: str, fields: dict[str, str], expected: bool
) -> None:
    assert tutorial_filters.passes(TENANT, (filter_id,), view(fields)) is expected
