"""The interval algebra against a brute-force model over small integer sets."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from layoutd.models.ranges import complement, inside_one, intersect, merge, span, subtract

LIMIT = 80


@st.composite
def range_lists(draw: st.DrawFn) -> list[tuple[int, int]]:
    pairs = draw(st.lists(st.tuples(st.integers(0, LIMIT), st.integers(0, LIMIT)), max_size=6))
    return [(min(a, b), max(a, b)) for a, b in pairs]


def as_set(pairs: list[tuple[int, int]]) -> set[int]:
    return {x for start, end in pairs for x in range(start, end + 1)}


def pairs_of(ranges: list) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(r.start, r.end) for r in ranges]


def ranges_of(pairs: list[tuple[int, int]]) -> list:  # type: ignore[type-arg]
    return [span(a, b) for a, b in pairs]


def is_normal(pairs: list[tuple[int, int]]) -> bool:
    """Sorted, disjoint and not touching: the one canonical form."""
    return all(prev[1] + 1 < cur[0] for prev, cur in itertools.pairwise(pairs))


@given(range_lists())
def test_merge_keeps_the_set_and_normalises(pairs: list[tuple[int, int]]) -> None:
    merged = pairs_of(merge(ranges_of(pairs)))
    assert as_set(merged) == as_set(pairs)
    assert is_normal(merged)


@given(range_lists(), range_lists())
def test_subtract_is_set_difference(base: list[tuple[int, int]], holes: list[tuple[int, int]]) -> None:
    result = pairs_of(subtract(ranges_of(base), ranges_of(holes)))
    assert as_set(result) == as_set(base) - as_set(holes)
    assert is_normal(result)


@given(range_lists(), range_lists())
def test_intersect_is_set_intersection(first: list[tuple[int, int]], second: list[tuple[int, int]]) -> None:
    result = pairs_of(intersect(ranges_of(first), ranges_of(second)))
    assert as_set(result) == as_set(first) & as_set(second)


@given(range_lists())
def test_complement_within_bounds(pairs: list[tuple[int, int]]) -> None:
    result = pairs_of(complement(ranges_of(pairs), 0, LIMIT))
    assert as_set(result) == set(range(LIMIT + 1)) - as_set(pairs)


def test_inside_one_needs_a_single_range() -> None:
    usable = merge([span(0, 9), span(11, 20)])
    assert inside_one(usable, span(2, 9))
    assert not inside_one(usable, span(5, 15))  # straddles the gap at 10
    assert inside_one(merge([span(0, 9), span(10, 20)]), span(5, 15))  # touching ranges join


def test_full_64_bit_space() -> None:
    top = (1 << 64) - 1
    holes = [span(0xFEE00000, 0xFEEFFFFF)]
    result = complement(holes)
    assert pairs_of(result) == [(0, 0xFEDFFFFF), (0xFEF00000, top)]
