"""Interval algebra over inclusive ranges. Pure; every function is O(n log n) or better."""

from collections.abc import Iterable, Sequence

from layoutd.models.common import U64_MAX, Range


def span(start: int, end: int) -> Range:
    return Range(start=start, end=end)


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sort and join ranges that overlap or touch."""
    result: list[Range] = []
    for item in sorted(ranges, key=lambda r: (r.start, r.end)):
        if result and item.start <= result[-1].end + 1:
            if item.end > result[-1].end:
                result[-1] = span(result[-1].start, item.end)
        else:
            result.append(span(item.start, item.end))
    return result


def subtract(base: Iterable[Range], holes: Iterable[Range]) -> list[Range]:
    """What of `base` lies outside every hole."""
    cuts = merge(holes)
    result: list[Range] = []
    index = 0
    for piece in merge(base):
        while index < len(cuts) and cuts[index].end < piece.start:
            index += 1
        start = piece.start
        probe = index
        while probe < len(cuts) and cuts[probe].start <= piece.end and start <= piece.end:
            if cuts[probe].start > start:
                result.append(span(start, cuts[probe].start - 1))
            start = max(start, cuts[probe].end + 1)
            probe += 1
        if start <= piece.end:
            result.append(span(start, piece.end))
    return result


def intersect(first: Iterable[Range], second: Iterable[Range]) -> list[Range]:
    """What lies in both."""
    left, right = merge(first), merge(second)
    result: list[Range] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i].start, right[j].start)
        end = min(left[i].end, right[j].end)
        if start <= end:
            result.append(span(start, end))
        if left[i].end < right[j].end:
            i += 1
        else:
            j += 1
    return result


def complement(ranges: Iterable[Range], low: int = 0, high: int = U64_MAX) -> list[Range]:
    """What of [low, high] no range covers."""
    return subtract([span(low, high)], ranges)


def inside_one(ranges: Sequence[Range], item: Range) -> bool:
    """True if `item` lies wholly inside one of the (merged, sorted) `ranges`."""
    return any(r.contains(item) for r in ranges)


def overlapping(ranges: Iterable[Range], item: Range) -> list[Range]:
    return [r for r in ranges if r.overlaps(item)]
