"""Only cli.py imports layoutd.commands: every service lives outside the command modules."""

import ast

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
