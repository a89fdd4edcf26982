"""Interval algebra over inclusive ranges: the one range library. Pure; O(n log n) or better.

The span functions work on plain (start, end) pairs (the solver's hot paths); the Range
functions are the same algebra on Range records.
"""

from collections.abc import Iterable, Sequence

from layoutd.models.common import U64_MAX, Range

Span = tuple[int, int]


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sort and join spans that overlap or touch."""
    result: list[Span] = []
    for start, end in sorted(spans):
        if result and start <= result[-1][1] + 1:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def intersect_spans(left: Sequence[Span], right: Sequence[Span]) -> list[Span]:
    """What lies in both (each merged and sorted)."""
    result: list[Span] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if start <= end:
            result.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def subtract_spans(base: Sequence[Span], cuts: Sequence[Span]) -> list[Span]:
    """`base` minus `cuts` (both merged and sorted)."""
    result: list[Span] = []
    index = 0
    for start, end in base:
        while index < len(cuts) and cuts[index][1] < start:
            index += 1
        probe = index
        while probe < len(cuts) and cuts[probe][0] <= end and start <= end:
            if cuts[probe][0] > start:
                result.append((start, cuts[probe][0] - 1))
            start = max(start, cuts[probe][1] + 1)
            probe += 1
        if start <= end:
            result.append((start, end))
    return result


def span(start: int, end: int) -> Range:
    return Range(start=start, end=end)


def _spans(ranges: Iterable[Range]) -> list[Span]:
    return merge_spans((r.start, r.end) for r in ranges)


def _ranges(spans: Iterable[Span]) -> list[Range]:
    return [span(start, end) for start, end in spans]


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sort and join ranges that overlap or touch."""
    return _ranges(_spans(ranges))


def subtract(base: Iterable[Range], holes: Iterable[Range]) -> list[Range]:
    """What of `base` lies outside every hole."""
    return _ranges(subtract_spans(_spans(base), _spans(holes)))


def intersect(first: Iterable[Range], second: Iterable[Range]) -> list[Range]:
    """What lies in both."""
    return _ranges(intersect_spans(_spans(first), _spans(second)))


def complement(ranges: Iterable[Range], low: int = 0, high: int = U64_MAX) -> list[Range]:
    """What of [low, high] no range covers."""
    return _ranges(subtract_spans([(low, high)], _spans(ranges)))


def inside_one(ranges: Sequence[Range], item: Range) -> bool:
    """True if `item` lies wholly inside one of the (merged, sorted) `ranges`."""
    return any(r.contains(item) for r in ranges)
