"""The commands the README and the guide show run as shown, from the repository root."""

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_layoutd

DOCUMENTED = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
# What each command is documented to answer: `check` on the quick-start VM finds the HT hole.
EXPECTED = {"check": 1}


def documented_commands(path: Path) -> list[list[str]]:
    """Indented code lines that run layoutd, joined across trailing backslashes."""
    commands: list[list[str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if pending:
            pending += " " + line.strip()
        elif re.match(r"^ {4}(\.venv/bin/)?layoutd [a-z-]+ ", line):
            pending = line.strip()
        if pending and not pending.endswith("\\"):
            words = shlex.split(pending.replace("\\ ", " "))
            commands.append(words[1:])
            pending = ""
        elif pending:
            pending = pending[:-1]
    return commands


CASES = [(path.name, words) for path in DOCUMENTED for words in documented_commands(path)]


def test_the_docs_show_commands() -> None:
    assert len(CASES) >= 6


@pytest.mark.parametrize(("doc", "words"), CASES, ids=[" ".join(w[:2]) for _, w in CASES])
def test_documented_command_runs(doc: str, words: list[str]) -> None:
    result = run_layoutd(*words)
    assert "Traceback" not in result.stderr
    assert result.returncode == EXPECTED.get(words[0], 0), (doc, words, result.stderr)
    assert result.stdout.strip()
