from layoutd.collisions import find_collisions
from layoutd.models.common import GuestRegion, Hole
from layoutd.models.validate import to_json


def region(start: int, end: int, name: str = "pc.ram") -> GuestRegion:
    return GuestRegion(start=start, end=end, kind="ram", id=name)


def test_overlap_is_the_intersection() -> None:
    ht = Hole(start=0xFD00000000, end=0xFFFFFFFFFF, type="reserved", group=28)
    found = find_collisions([region(0x100000000, 0x1137FFFFFFF)], [ht])
    assert len(found) == 1
    assert (found[0].start, found[0].end) == (0xFD00000000, 0xFFFFFFFFFF)
    assert found[0].hole.group == 28
    assert "reserved hole 0xfd00000000-0xffffffffff of IOMMU group 28" in found[0].describe()


def test_touching_is_not_overlapping() -> None:
    hole = Hole(start=0x1000, end=0x1FFF, type="msi")
    assert find_collisions([region(0, 0xFFF), region(0x2000, 0x2FFF)], [hole]) == []
    assert len(find_collisions([region(0, 0x1000)], [hole])) == 1


def test_every_pair_is_reported_in_order() -> None:
    holes = [Hole(start=50, end=60, type="msi"), Hole(start=5, end=6, type="direct")]
    found = find_collisions([region(100, 200, "b"), region(0, 55, "a")], holes)
    assert [(c.id, c.start, c.end) for c in found] == [("a", 5, 6), ("a", 50, 55)]


def test_json_uses_hex() -> None:
    hole = Hole(start=0x1000, end=0x1FFF, type="msi", group=3)
    (collision,) = find_collisions([region(0, 0x1FFF)], [hole])
    data = to_json(collision)
    assert data["start"] == "0x1000" and data["hole"]["end"] == "0x1fff"
