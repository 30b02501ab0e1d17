"""Destination prefix index: prefix -> destination ids, longest prefix first.

CGRateS keeps a reverse index (``GetReverseDestination``) and walks
``utils.SplitPrefix(number, 1)``: ``number[:n]`` for ``n`` from ``len(number)`` down to 1, on
the number *as given* (no normalisation: ``+4915...`` only matches prefixes starting with
``+``). We do the same with one dict lookup per candidate length, so the cost of a match does
not grow with the number of prefixes, and we skip lengths no prefix has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from core.tariffplan.models import Destination


class DestinationIndex:
    """Immutable prefix -> destination ids index (ids sorted, for determinism)."""

    __slots__ = ("_by_prefix", "_lengths")

    def __init__(self, by_prefix: Mapping[str, tuple[str, ...]]) -> None:
        self._by_prefix: dict[str, tuple[str, ...]] = dict(by_prefix)
        # Candidate lengths, longest first: a number is only cut at lengths some prefix has.
        self._lengths: tuple[int, ...] = tuple(
            sorted({len(prefix) for prefix in self._by_prefix}, reverse=True)
        )

    @classmethod
    def from_destinations(cls, destinations: Iterable[Destination]) -> DestinationIndex:
        """Builds the reverse index; several destinations may share a prefix."""
        by_prefix: dict[str, tuple[str, ...]] = {}
        shared: set[str] = set()  # prefixes with more than one id: sorted once at the end
        for destination in destinations:
            dest_id = destination.id
            for prefix in destination.prefixes:
                if not prefix:
                    continue  # SplitPrefix never yields "": an empty prefix can never match
                ids = by_prefix.get(prefix)
                if ids is None:
                    by_prefix[prefix] = (dest_id,)
                elif dest_id not in ids:
                    by_prefix[prefix] = (*ids, dest_id)
                    shared.add(prefix)
        for prefix in shared:
            by_prefix[prefix] = tuple(sorted(by_prefix[prefix]))
        return cls(by_prefix)

    def __len__(self) -> int:
        return len(self._by_prefix)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._by_prefix

    def ids(self, prefix: str) -> tuple[str, ...]:
        """Destination ids having exactly this prefix (``()`` if none)."""
        return self._by_prefix.get(prefix, ())

    @property
    def mapping(self) -> Mapping[str, tuple[str, ...]]:
        """The prefix -> ids mapping itself (read-only by contract; the rater reads it directly)."""
        return self._by_prefix

    @property
    def lengths(self) -> tuple[int, ...]:
        """Prefix lengths present in the index, longest first."""
        return self._lengths

    def longest_matches(self, number: str) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Yields ``(prefix, destination_ids)`` for every prefix of ``number``, longest first."""
        by_prefix = self._by_prefix
        size = len(number)
        for length in self._lengths:
            if length > size:
                continue
            prefix = number[:length]
            ids = by_prefix.get(prefix)
            if ids is not None:
                yield prefix, ids

    def longest_match(self, number: str) -> tuple[str, tuple[str, ...]] | None:
        """The longest matching ``(prefix, destination_ids)``, or None."""
        return next(self.longest_matches(number), None)
