"""docs/qemu-model.md shows the version table as layoutd/qemu/versions.py has it."""

from layoutd.qemu.versions import ANSWERED, markdown_table, v
from tests.conftest import ROOT


def test_the_doc_shows_the_table() -> None:
    assert markdown_table() in (ROOT / "docs/qemu-model.md").read_text()


def test_every_release_from_6_2_to_11_1() -> None:
    assert sorted(ANSWERED)[0] == v("6.2") and sorted(ANSWERED)[-1] == v("11.1")
    assert len(ANSWERED) == 15
