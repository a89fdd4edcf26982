"""`-m "not qemu"` is hermetic: every test that starts a real QEMU or firmware carries the marker
(its file's `pytestmark`, or its own decorator). Checked by reading the test files: a test whose
file or body calls one of the harness's starters must be marked."""

import ast
import re

from tests.conftest import ROOT

STARTERS = re.compile(r"\b(started|real_map|launched|booted_bars|booted_hole64|boot_all|qemu_binary"
                      r"|wrapper)\(|need_binary\(\"qemu-system|\"--verify\"")
MARKS = ("qemu", "kernel", "libvirt")  # libvirt and kernel tests start QEMU too; none is fast


def _marked(decorators: list[ast.expr]) -> bool:
    return any(isinstance(node, ast.Attribute) and node.attr in MARKS
               for decorator in decorators for node in ast.walk(decorator))


def unmarked(path: str, text: str) -> list[str]:
    tree = ast.parse(text)
    module_mark = any(isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
        and _marked([node.value]) for node in tree.body)
    if module_mark:
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            body = ast.get_source_segment(text, node) or ""
            if STARTERS.search(body) and not _marked(node.decorator_list):
                found.append(f"{path}::{node.name}")
    return found


def test_every_test_that_starts_qemu_is_marked() -> None:
    found = []
    for path in sorted(ROOT.glob("tests/**/test_*.py")):
        relative = str(path.relative_to(ROOT))
        if relative.startswith("tests/core/"):
            continue  # the fast checks of the code itself: none starts QEMU
        found += unmarked(relative, path.read_text())
    assert found == []


def test_the_check_finds_an_unmarked_start() -> None:
    text = ("import pytest\n\ndef test_boot():\n"
            "    with started(qemu_binary('10.0'), []) as q:\n        pass\n")
    assert unmarked("t.py", text) == ["t.py::test_boot"]
    assert unmarked("t.py", text.replace("def test_boot", "@pytest.mark.qemu\ndef test_boot")) == []
    assert unmarked("t.py", "import pytest\npytestmark = pytest.mark.qemu\n" + text[14:]) == []
