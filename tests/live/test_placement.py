"""The pure placement rules: lowest aligned fit, holes, slots, maxmem, virtio-mem block size."""

from __future__ import annotations

from layoutd.live.placement import BlockChoice, Placement, Refusal, Room, choose_block_size, place
from layoutd.models.common import U64_MAX, Hole, Range

GiB, MiB = 1 << 30, 1 << 20
REGION = Range(start=4 * GiB, end=16 * GiB - 1)
HOLE = Hole(start=5 * GiB, end=6 * GiB - 1, type="reserved", group=3)


def room(**changes: object) -> Room:
    values: dict[str, object] = {"region": REGION, "top": U64_MAX, "taken": (), "holes": (HOLE,),
                                 "budget": 12 * GiB, "free_slots": 4}
    values.update(changes)
    return Room(**values)  # type: ignore[arg-type]


def test_lowest_fit_below_the_hole() -> None:
    found = place(512 * MiB, 2 * MiB, room(), need_slot=True)
    assert isinstance(found, Placement) and (found.start, found.end) == (4 * GiB, 4.5 * GiB - 1)


def test_a_size_that_does_not_fit_below_jumps_the_hole() -> None:
    found = place(2 * GiB, 2 * MiB, room(), need_slot=True)
    assert isinstance(found, Placement) and found.start == 6 * GiB
    assert found.avoided == (HOLE,)


def test_existing_devices_and_alignment_are_respected() -> None:
    taken = (Range(start=4 * GiB, end=4 * GiB + 3 * MiB - 1),)
    found = place(256 * MiB, 2 * MiB, room(taken=taken), need_slot=True)
    assert isinstance(found, Placement) and found.start == 4 * GiB + 4 * MiB


def test_the_aperture_and_phys_bits_bound_the_region() -> None:
    aperture = Hole(start=8 * GiB, end=U64_MAX, type="aperture")
    refused = place(4 * GiB, 2 * MiB, room(holes=(HOLE, aperture)), need_slot=True)
    assert isinstance(refused, Refusal) and refused.largest == 2 * GiB
    assert "above the IOMMU's top" in refused.reason and "maps 33 bits" in refused.reason
    below = place(4 * GiB, 2 * MiB, room(top=9 * GiB - 1), need_slot=True)
    assert isinstance(below, Refusal) and "phys-bits" in below.reason


def test_refusals_say_what_would_make_room() -> None:
    no_slot = place(GiB, 2 * MiB, room(free_slots=0), need_slot=True)
    assert isinstance(no_slot, Refusal) and "slots" in no_slot.message()
    assert isinstance(place(GiB, 2 * MiB, room(free_slots=0), need_slot=False), Placement)
    over = place(4 * GiB, 2 * MiB, room(budget=3 * GiB), need_slot=True)
    assert isinstance(over, Refusal) and "raise maxmem by at least 1G" in over.message()
    assert over.largest == 3 * GiB
    blocked = place(11 * GiB, 2 * MiB, room(), need_slot=True)
    assert isinstance(blocked, Refusal) and "10G" in blocked.message()


def test_block_size_keeps_dma_mappings_under_the_limit() -> None:
    fits = choose_block_size(64 * GiB, 2 * MiB, 10, 65535, None)
    assert isinstance(fits, BlockChoice) and fits.block_size == 2 * MiB and fits.mappings == 32768
    bigger = choose_block_size(256 * GiB, 2 * MiB, 10, 65535, None)
    assert isinstance(bigger, BlockChoice) and bigger.block_size == 8 * MiB
    assert bigger.used + bigger.mappings <= 65535
    given = choose_block_size(256 * GiB, 2 * MiB, 10, 65535, 2 * MiB)
    assert isinstance(given, Refusal) and "--block-size 8M" in given.message()
    host_limit = choose_block_size(GiB, 2 * MiB, 100, 200, None)
    assert isinstance(host_limit, BlockChoice) and host_limit.block_size == 16 * MiB
