"""Destination prefix index."""

from __future__ import annotations

from core.rating.destinations import DestinationIndex
from core.tariffplan.models import Destination


def build(*destinations: tuple[str, tuple[str, ...]]) -> DestinationIndex:
    return DestinationIndex.from_destinations(Destination(i, p) for i, p in destinations)


def test_longest_prefix_first() -> None:
    index = build(("DST_FS", ("10",)), ("DST_1002", ("1002",)), ("DST_1", ("1",)))
    assert list(index.longest_matches("10025")) == [
        ("1002", ("DST_1002",)),
        ("10", ("DST_FS",)),
        ("1", ("DST_1",)),
    ]
    assert index.longest_match("10025") == ("1002", ("DST_1002",))


def test_exact_number_is_its_own_longest_prefix() -> None:
    index = build(("DST_1002", ("1002",)), ("DST_FS", ("10",)))
    assert index.longest_match("1002") == ("1002", ("DST_1002",))


def test_shared_prefix_lists_every_destination_sorted() -> None:
    index = build(("ZED", ("49",)), ("ALPHA", ("49", "33")), ("MID", ("49",)))
    assert index.ids("49") == ("ALPHA", "MID", "ZED")
    assert index.ids("33") == ("ALPHA",)
    assert index.ids("44") == ()


def test_duplicate_prefix_in_one_destination_counts_once() -> None:
    index = build(("DST", ("49", "49")))
    assert index.ids("49") == ("DST",)
    assert len(index) == 1


def test_number_is_matched_as_given() -> None:
    # CGRateS runs SplitPrefix over the destination string as is: a "+" is part of it.
    index = build(("DE", ("49",)), ("DE_PLUS", ("+49",)))
    assert index.longest_match("+4915112345") == ("+49", ("DE_PLUS",))
    assert index.longest_match("4915112345") == ("49", ("DE",))
    assert index.longest_match("004915112345") is None


def test_no_match_and_empty_number() -> None:
    index = build(("DST", ("49",)))
    assert list(index.longest_matches("33")) == []
    assert list(index.longest_matches("")) == []
    assert index.longest_match("4") is None


def test_empty_prefixes_are_ignored() -> None:
    index = build(("DST", ("", "49")))
    assert "" not in index
    assert index.longest_match("x") is None


def test_only_lengths_present_are_tried() -> None:
    index = build(("A", ("1234",)), ("B", ("12",)))
    assert index.lengths == (4, 2)
    assert list(index.longest_matches("123456789")) == [("1234", ("A",)), ("12", ("B",))]
    assert list(index.longest_matches("123")) == [("12", ("B",))]


def test_large_index() -> None:
    prefixes = [f"49{n:06d}" for n in range(100_000)]
    index = build(*((f"D{n}", (prefix,)) for n, prefix in enumerate(prefixes)), ("DE", ("49",)))
    assert len(index) == 100_001
    assert index.longest_match("4900004217") == ("49000042", ("D42",))
    assert [prefix for prefix, _ in index.longest_matches("4900004217")] == ["49000042", "49"]
