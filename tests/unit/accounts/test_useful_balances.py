"""useful_balances' shortcuts (no balance of the type, one usable balance) give what the
general ranking gives."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from core.accounts.debit import (
    NO_PRECISION,
    DebitEvent,
    balance_usable,
    destination_precision,
    useful_balances,
)
from core.accounts.models import MONETARY, Account, Balance
from core.rating import Rater

KINDS = (MONETARY, "*voice", "*generic")
START = datetime(2014, 8, 4, 13, 0, 7, tzinfo=UTC)
EVENT = DebitEvent("cgrates.org", "1001", "1002", START, 60, "*voice", "call", "1001", 0)


def ranked_in_full(account: Account, kind: str, rater: Rater) -> list[Balance]:
    """The general path: every usable balance ranked by precision, weight, position."""
    ranked = []
    for position, balance in enumerate(account.balance_map.get(kind, [])):
        if not balance_usable(balance, EVENT, lambda _id: None, need_value=kind != MONETARY):
            continue
        precision = destination_precision(balance, EVENT.destination, rater.destinations)
        if precision != NO_PRECISION:
            ranked.append((-precision, -balance.weight, position, balance))
    ranked.sort(key=lambda item: item[:3])
    return [item[3] for item in ranked]


balances = st.builds(
    Balance,
    value=st.sampled_from([Decimal(-1), Decimal(0), Decimal(5)]),
    weight=st.sampled_from([Decimal(0), Decimal(10), Decimal(20)]),
    destination_ids=st.sampled_from([{}, {"DST_1002": True}, {"DST_1002": False}, {"*any": True}]),
    categories=st.sampled_from([{}, {"call": True}, {"sms": True}]),
    disabled=st.booleans(),
)


@given(st.dictionaries(st.sampled_from(KINDS), st.lists(balances, max_size=3)))
def test_useful_balances_matches_the_full_ranking(
    rater: Rater, balance_map: dict[str, list[Balance]]
) -> None:
    account = Account("cgrates.org", "1001", balance_map)
    for kind in KINDS:
        expected = ranked_in_full(account, kind, rater)
        found = useful_balances(account, kind, EVENT, rater.destinations, lambda _id: None)
        assert [id(b) for b in found] == [id(b) for b in expected]
