"""On small random hosts and specs, the solver agrees with an exhaustive search.

Units are GiB (memory.block: 1G). The search tries every boot-RAM size, every max-ram-below-4g
and every set of 1 GiB cells for the memory devices, and keeps the best by the documented
preference: fewest memory devices, then the lowest highest address. Every plan the solver emits
is checked on the model, and every "no" must be a true no.
"""

from itertools import combinations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layoutd.collisions import find_collisions
from layoutd.errors import NoAnswer
from layoutd.models.host import Cpu, HostView
from layoutd.solver import combine, solve_spec
from layoutd.solver.problem import problem_for
from layoutd.solver.solve import solve
from layoutd.specfile import parse_spec
from layoutd.units import GiB, align_up
from tests.plan.hosts import Hole, host_view

Q35_HOLE64 = 32


def _host(holes: list[int], top: int) -> HostView:
    made = [Hole(start=g * GiB, end=(g + 1) * GiB - 1, type="reserved", group=g) for g in holes]
    return host_view("h", made, top * GiB - 1, Cpu(vendor="intel", phys_bits=46))


def _free(cell: int, holes: set[int], top: int) -> bool:
    return cell not in holes and cell < top


def _best(total: int, holes: set[int], top: int) -> tuple[int, int] | None:
    """Brute force over (boot RAM, low split, device cells): the best (devices, highest GiB)."""
    best: tuple[int, int] | None = None
    for ram in range(1, total + 1):
        for low_cap in (None, 1, 2, 3):
            low = min(ram, 2 if ram >= 2.75 else 2.75, low_cap or 4)
            if low != int(low) or any(not _free(c, holes, top) for c in range(int(low))):
                continue
            high = ram - int(low)
            if any(not _free(4 + c, holes, top) for c in range(high)):
                continue
            base = 4 + high
            left = total - ram
            cells = [c for c in range(base, top) if _free(c, holes, top)][:12]
            for chosen in combinations(cells, left):
                runs = sum(1 for i, c in enumerate(chosen) if i == 0 or chosen[i - 1] != c - 1)
                end = max([c + 1 for c in chosen], default=base)
                region_end = max(base + left + runs, end) if (left or runs) else 4 + high
                start = region_end
                hole64 = min(Q35_HOLE64, top - start)
                if hole64 < 1:
                    continue
                key = (runs, start + hole64 - 1)
                if best is None or key < best:
                    best = key
    return best


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(total=st.integers(1, 6), top=st.integers(6, 48), holes=st.sets(st.integers(0, 13), max_size=7))
def test_solver_matches_exhaustive_search(total: int, top: int, holes: set[int]) -> None:
    spec = parse_spec(f"name: t\ncpu: {{model: Skylake-Server}}\nmemory: {{size: {total}G, block: 1G}}\n")
    view = _host(sorted(holes), top)
    goal = combine([view], ["h"])
    expected = _best(total, holes, top)
    solution, _ = solve(problem_for(spec, goal))
    if expected is None:
        assert solution is None, (solution, holes, top)
        try:
            solve_spec(spec, goal, "10.0")
        except NoAnswer as error:
            assert "no layout exists" in error.message
        else:
            raise AssertionError("a plan where the exhaustive search found none")
        return
    assert solution is not None, (expected, holes, top)
    got = (len(solution.devices), (solution.highest + 1) // GiB - 1)
    assert got == expected, (holes, top)
    solved = solve_spec(spec, goal, "10.0")
    assert find_collisions(solved.layout, goal.holes) == []
    ram = sum(r.size for r in solved.layout) + 0x60000  # the VGA and ROM windows below 1 MiB
    assert ram == total * GiB
    assert all(r.end <= top * GiB - 1 for r in solved.layout)
    assert align_up(solved.highest, GiB) == solved.highest + 1
