"""The shape of the code the issue asked for: checked by reading the source."""

import re

from tests.conftest import ROOT

PACKAGE = ROOT / "layoutd"


def _lines(folder: str, pattern: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(pattern, line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_the_qemu_model_does_no_io() -> None:
    """layoutd/qemu reads nothing of the machine it runs on: host facts come in as data."""
    assert _lines("qemu", r"open\(|platform\.|statvfs|subprocess|import os\b|os\.path") == []


def test_no_version_number_outside_the_table() -> None:
    """Which QEMU version does what is said once, in qemu/versions.py (firmware/ names
    firmware versions, __init__ layoutd's own, emit/fleet.py Nova's provider.yaml schema)."""
    own = ("layoutd/qemu/versions.py:", "layoutd/__init__.py:", "layoutd/firmware/",
           "layoutd/emit/fleet.py:")
    version = r"(?<![=\w])[\"'][0-9]+\.[0-9]+(\.[0-9]+)?[\"']"  # not an XML attribute's value
    found = [line for line in _lines(".", version)
             if not line.startswith(own)]
    assert found == []
