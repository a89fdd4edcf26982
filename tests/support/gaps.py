"""The tests' own interval sweep (an oracle kept apart from layoutd.models.ranges)."""

from __future__ import annotations


def complement(holes: list[tuple[int, int]], top: int) -> list[tuple[int, int]]:
    """[0, top] minus the holes (inclusive ends): the expected usable ranges."""
    usable = []
    cursor = 0
    for start, end in sorted(holes):
        if start > cursor:
            usable.append((cursor, min(start - 1, top)))
        cursor = max(cursor, end + 1)
        if cursor > top:
            break
    if cursor <= top:
        usable.append((cursor, top))
    return [(s, e) for s, e in usable if s <= e]
