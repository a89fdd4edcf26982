"""A pure address-space allocator: sized, aligned blocks placed into free ranges.

Ranges here are plain (start, end) int pairs with inclusive ends; no policy lives here.
"""

import heapq
from bisect import bisect_right
from collections.abc import Sequence

from layoutd.models.ranges import Span
from layoutd.units import align_down, align_up


def containing(free: Sequence[Span], starts: Sequence[int], address: int) -> Span | None:
    """The free range holding `address` (`starts` = the ranges' starts, for bisection)."""
    index = bisect_right(starts, address) - 1
    if index >= 0 and free[index][1] >= address:
        return free[index]
    return None


def clip(free: Sequence[Span], starts: Sequence[int], low: int, high: int) -> list[Span]:
    """The parts of `free` inside [low, high]."""
    if low > high:
        return []
    index = max(bisect_right(starts, low) - 1, 0)
    result: list[Span] = []
    while index < len(free) and free[index][0] <= high:
        start, end = max(free[index][0], low), min(free[index][1], high)
        if start <= end:
            result.append((start, end))
        index += 1
    return result


def aligned(spans: Sequence[Span], alignment: int) -> list[Span]:
    """Shrink each span to aligned boundaries; drop what holds no whole aligned block."""
    result: list[Span] = []
    for start, end in spans:
        low, high = align_up(start, alignment), align_down(end + 1, alignment)
        if high > low:
            result.append((low, high - 1))
    return result


def take(spans: list[Span], used: Span) -> list[Span]:
    """`spans` (sorted) without `used`, which lies inside one of them. Changes `spans` in place."""
    index = bisect_right(spans, (used[0], 1 << 70)) - 1
    start, end = spans[index]
    rest: list[Span] = []
    if start < used[0]:
        rest.append((start, used[0] - 1))
    if used[1] < end:
        rest.append((used[1] + 1, end))
    spans[index : index + 1] = rest
    return spans


def fewest_pieces(spans: Sequence[Span], size: int) -> list[Span] | None:
    """Place `size` bytes in the fewest pieces, then with the lowest highest address.

    Each piece fills a free span from its start; `spans` are sorted and aligned. None: no room.
    """
    if size <= 0:
        return []
    for start, end in spans:  # one piece when any span holds it all: the lowest such span
        if end - start + 1 >= size:
            return [(start, start + size - 1)]
    capacities = sorted((end - start + 1 for start, end in spans), reverse=True)
    total, count = 0, 0
    for capacity in capacities:
        total += capacity
        count += 1
        if total >= size:
            break
    else:
        return None
    return _lowest_top(spans, size, count)


def _lowest_top(spans: Sequence[Span], size: int, count: int) -> list[Span]:
    """With `count` pieces: the choice whose last piece ends lowest."""
    best: tuple[int, int] | None = None  # (highest address, index of the last span)
    smaller: list[int] = []  # min-heap of the count-1 largest capacities before the current span
    kept = 0
    for index, (start, end) in enumerate(spans):
        need = size - kept
        capacity = end - start + 1
        if len(smaller) == count - 1 and 0 < need <= capacity:
            top = start + need - 1
            if best is None or top < best[0]:
                best = (top, index)
            break  # later spans start higher, and `kept` only grows: this is the lowest top
        if count > 1:
            if len(smaller) < count - 1:
                heapq.heappush(smaller, capacity)
                kept += capacity
            elif capacity > smaller[0]:
                kept += capacity - heapq.heapreplace(smaller, capacity)
    assert best is not None
    return _rebuild(spans, size, count, best[1])


def _rebuild(spans: Sequence[Span], size: int, count: int, last: int) -> list[Span]:
    before = sorted(range(last), key=lambda i: (-(spans[i][1] - spans[i][0]), i))[: count - 1]
    pieces = [spans[i] for i in sorted(before)]
    need = size - sum(end - start + 1 for start, end in pieces)
    pieces.append((spans[last][0], spans[last][0] + need - 1))
    return pieces


def first_fit(spans: Sequence[Span], size: int, max_pieces: int) -> list[Span] | None:
    """`size` bytes in address order, at most `max_pieces` pieces, lowest first; None: no room."""
    pieces: list[Span] = []
    left = size
    for start, end in spans:
        if left <= 0:
            break
        if len(pieces) == max_pieces:
            return None
        piece = min(end - start + 1, left)
        pieces.append((start, start + piece - 1))
        left -= piece
    return pieces if left <= 0 else None
