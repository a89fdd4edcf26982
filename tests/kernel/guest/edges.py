"""The witnesses' map probes at every range edge (vfio_iova.py, iommufd_iova.py): standard library.

`try_map(iova)` maps one page at iova and returns 0 or the errno. A page at the first and last page
of every usable range must map; a page just outside (in a hole, or past the aperture) must not.
"""

from __future__ import annotations

from collections.abc import Callable

PAGE = 4096


def edge_probes(ranges: list[tuple[int, int]], try_map: Callable[[int], int]) -> list[dict[str, object]]:
    probes: list[dict[str, object]] = []
    for start, end in ranges:
        for iova in sorted({start, end + 1 - PAGE}):
            probes.append({"iova": hex(iova), "inside": True, "errno": try_map(iova)})
        if start >= PAGE and not any(s <= start - PAGE <= e for s, e in ranges):
            probes.append({"iova": hex(start - PAGE), "inside": False, "errno": try_map(start - PAGE)})
        if end < 2**64 - 1 and not any(s <= end + 1 <= e for s, e in ranges):
            probes.append({"iova": hex(end + 1), "inside": False, "errno": try_map(end + 1)})
    return probes
