"""Only cli.py imports layoutd.commands: every service lives outside the command modules."""

import ast

import yaml

from tests.conftest import ROOT


def _imports(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_cli_imports_the_commands() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("layoutd/**/*.py"), *ROOT.glob("tests/**/*.py"),
                        *ROOT.glob("benchmarks/**/*.py")]):
        relative = str(path.relative_to(ROOT))
        if relative == "layoutd/cli.py" or relative.startswith("layoutd/commands/"):
            continue
        if any(name == "layoutd.commands" or name.startswith("layoutd.commands.")
               for name in _imports(relative)):
            offenders.append(relative)
    assert offenders == []


def test_emit_neither_prints_nor_decides_exit_codes() -> None:
    """emit/ returns documents; the commands print them and set the exit status."""
    found = [str(path.relative_to(ROOT)) for path in ROOT.glob("layoutd/emit/*.py")
             if any(word in path.read_text() for word in ("print(", "sys.std", "return 1 if"))]
    assert found == []


# ---- start-up: what plan, check and probe load (a structural test; timing is in benchmarks/) -----

HEAVY = ("pydantic", "pydantic_core", "annotated_types", "dataclasses", "inspect", "networkx",
         "importlib.metadata", "shutil", "pathlib")
"""Never on a command's path: pydantic is the models' reference (layoutd/models/reference.py),
for the published schemas and the tests' oracle only; records (layoutd/record.py) stand in for
dataclasses, which import inspect, ast and dis; networkx answers graph questions no command
asks; importlib.metadata, shutil (argparse's terminal width) and pathlib (urllib.parse,
ipaddress) cost a start milliseconds: os.path does."""

_LOADED = """
import sys
before = set(sys.modules)
from layoutd.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(sorted(set(sys.modules) - before), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    """What a command loads beyond a bare start, as a regular install runs it: without the
    site module's .pth files (an editable install's finder imports pathlib at every start)."""
    import os
    import site
    import subprocess
    import sys

    path = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    result = subprocess.run([sys.executable, "-S", "-c", _LOADED, *args], capture_output=True,
                            text=True, cwd=ROOT, check=False, env={**os.environ, "PYTHONPATH": path})
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("["), result.stderr
    return set(ast.literal_eval(last))


def test_plan_check_and_probe_load_nothing_heavy() -> None:
    host = str(ROOT / "examples/hosts/amd-4gpu-1100g")
    spec = str(ROOT / "examples/specs/amd-gpu-1100g.yaml")
    vm = ["-machine", "q35", "-m", "4G", "-device", "vfio-pci,host=0000:41:00.0"]
    runs = {
        "plan": ["plan", spec, "--host", host, "--format", "json"],
        "probe": ["probe", "--host", host, "--format", "json"],
        "check": ["check", "--host", host, "--format", "json", "--qemu-version", "7.2", "--",
                  "qemu-system-x86_64", *vm],
    }
    for command, args in runs.items():
        loaded = _loaded(*args)
        assert "layoutd.solver" in loaded or command != "plan"  # the command did run
        assert loaded.isdisjoint(HEAVY), (command, sorted(loaded & set(HEAVY)))
        assert ("yaml" in loaded) == (command == "plan"), command  # only a spec is YAML
        assert "yaml._yaml" in loaded or command != "plan" or not yaml.__with_libyaml__  # C loader


def test_pydantic_is_a_development_dependency() -> None:
    """pydantic writes schemas/ and is the models' oracle in the tests: no command needs it, so
    an install does not pull it in, and only the reference view imports it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("pydantic")]
    assert [d for d in project["optional-dependencies"]["test"] if d.startswith("pydantic")]
    importers = sorted(str(path.relative_to(ROOT)) for path in ROOT.glob("layoutd/**/*.py")
                       if {"pydantic", "pydantic_core"} & {name.split(".")[0]
                                                           for name in _imports(str(path.relative_to(ROOT)))})
    assert importers == ["layoutd/models/reference.py"]
