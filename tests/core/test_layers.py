"""The layers docs/design.md draws hold at run time: every import of layoutd/, also those written
inside functions or for type checkers, points down the order the design states, and neither the
modules nor the packages form a cycle."""

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "layoutd"
START_UP = ("layoutd/cli.py", "layoutd/commands/")
"""Where an import may wait inside a function: the CLI and its commands load only what the chosen
command needs (start-up time is part of the job: the libvirt hook runs five times per VM)."""

Graph = dict[str, set[str]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str) -> str:
    """The layoutd module an import loads (`from layoutd.solver import solve_spec`: layoutd.solver)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> Iterable[tuple[ast.stmt, str]]:
    """(statement, layoutd module) for every import in the module, wherever it is written."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "layoutd":
                    yield node, _target(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*above, *([base] if base else [])])
            if base.split(".")[0] != "layoutd":
                continue
            for alias in node.names:
                yield node, _target(f"{base}.{alias.name}")


def module_graph() -> Graph:
    return {module: {target for _, target in _imports(module) if target != module}
            for module in MODULES}


def package_of(module: str) -> str:
    """layoutd.solver.solve -> solver; layoutd.checking -> checking; layoutd -> layoutd."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "layoutd"


def package_graph(modules: Mapping[str, set[str]]) -> Graph:
    graph: Graph = {}
    for module, targets in modules.items():
        graph.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(module))
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def design_layers() -> list[list[str]]:
    """docs/design.md's layer list, top first: the indented lines after "Layers, top first"."""
    text = (ROOT / "docs/design.md").read_text()
    block = re.search(r"Layers, top first.*?\n\n((?: {4}\S[^\n]*\n)+)", text, re.S)
    assert block, "docs/design.md states no layer order"
    return [[name.strip() for name in line.split(",")] for line in block.group(1).splitlines()]


def climbing(packages: Mapping[str, set[str]], layers: list[list[str]]) -> list[str]:
    """Every arrow from a package to one on its own layer or above."""
    level = {name: number for number, line in enumerate(layers) for name in line}
    return sorted(f"{source} -> {target}" for source, targets in packages.items()
                  for target in targets if level[target] <= level[source])


def has_reason(lines: list[str], node: ast.stmt) -> bool:
    """A comment on the import's line, on an import or blank line just above it, or on the line
    above those."""
    if "#" in lines[node.lineno - 1]:
        return True
    above = node.lineno - 2
    while above >= 0 and (not lines[above].strip() or lines[above].lstrip().startswith(("import ", "from "))):
        if "#" in lines[above]:
            return True
        above -= 1
    return above >= 0 and lines[above].lstrip().startswith("#")


def test_no_cycle_between_modules() -> None:
    assert cycles(module_graph()) == []


def test_no_cycle_between_packages() -> None:
    assert cycles(package_graph(module_graph())) == []


def test_every_package_imports_only_from_the_layers_below() -> None:
    layers = design_layers()
    packages = package_graph(module_graph())
    named = [name for line in layers for name in line]
    assert sorted(named) == sorted(set(named)) == sorted(packages)  # each package placed once
    assert climbing(packages, layers) == []


def test_the_checks_find_a_cycle_put_back() -> None:
    """Each check fails on the arrows this change removed (so the three tests above can fail)."""
    modules = module_graph()
    put_back = {"layoutd.checking": {"layoutd.libvirt.guard"},
                "layoutd.solver.suggest": {"layoutd.solver.explain"},
                "layoutd.firmware.board": {"layoutd.firmware"}}
    for source, targets in put_back.items():
        assert source in modules and targets <= set(modules)
        changed = {**modules, source: modules[source] | targets}
        assert any(source in cycle for cycle in cycles(changed)), source
    packages = package_graph({**modules, "layoutd.solver.build": {"layoutd.planning"}})
    assert any({"planning", "solver"} <= set(cycle) for cycle in cycles(packages))
    assert "solver -> planning" in climbing(packages, design_layers())


def test_imports_inside_functions_only_where_start_up_needs_them() -> None:
    """Outside the CLI and its commands every import is at module top (imports for type checkers
    only, `if TYPE_CHECKING:`, are arrows too: the tests above count them); LAZY names the few
    libraries a module loads only when called, each with its reason beside it."""
    found = []
    for path in MODULES.values():
        relative = str(path.relative_to(ROOT))
        if relative.startswith(START_UP):
            continue
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or "."]
                else:
                    continue
                if not (set(names) <= LAZY.get(relative, set()) and has_reason(lines, node)):
                    found.append(f"{relative}:{node.lineno}: {', '.join(names)}")
    assert sorted(set(found)) == []


LAZY = {
    "layoutd/live/session.py": {"asyncio", "qemu.qmp"},  # ~40 ms, inspect: see QmpMonitor._start
    "layoutd/kubevirt/hookapi/__init__.py": {"grpc", "grpc_tools"},  # an optional extra
    "layoutd/libvirt/hookconf.py": {"signal", "layoutd.errors"},  # the hook's no-op path
}


def test_imports_inside_functions_say_why() -> None:
    """In the CLI and its commands, an import inside a function says why it waits."""
    found = []
    for path in [PACKAGE / "cli.py", *sorted((PACKAGE / "commands").glob("*.py"))]:
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(function)
                          if isinstance(node, (ast.Import, ast.ImportFrom))
                          and not has_reason(lines, node)]
    assert sorted(set(found)) == []
