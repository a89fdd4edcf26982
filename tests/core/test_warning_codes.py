"""Warnings in JSON carry a stable code beside their text (models/warning_codes.py), and
docs/contract.md lists exactly the codes the code knows."""

import json
import re

from layoutd.models.warning_codes import CODES, UNCLASSIFIED, code_of, coded
from tests.conftest import ROOT


def test_docs_table_lists_exactly_the_codes() -> None:
    text = (ROOT / "docs/contract.md").read_text()
    section = text[text.index("### Warning codes (JSON)"):]
    documented = re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE)
    assert documented == [code for code, _ in CODES] + [UNCLASSIFIED]


def test_codes_are_unique_and_plain() -> None:
    names = [code for code, _ in CODES]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names)


def test_every_warning_in_the_golden_json_has_a_known_code() -> None:
    seen: set[str] = set()
    for path in sorted((ROOT / "tests/golden").rglob("*.json")):
        document = json.loads(path.read_text())
        if "warnings" not in document:
            continue
        records = document["warning_codes"]
        assert [record["text"] for record in records] == document["warnings"], path
        for record in records:
            assert record["code"] == code_of(record["text"]), path
            assert record["code"] != UNCLASSIFIED, f"{path}: no code for {record['text']!r}"
            seen.add(record["code"])
    assert len(seen) >= 5, seen  # the golden cases do warn, in several kinds


def test_text_is_kept_and_unknown_text_is_unclassified() -> None:
    texts = ["maxmem raised from 1G to 2G so that ...", "something no row knows"]
    assert coded(texts) == [{"code": "maxmem-raised", "text": texts[0]},
                            {"code": UNCLASSIFIED, "text": texts[1]}]
