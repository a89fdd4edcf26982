"""A suggestion's `change` (dotted spec paths; None removes a field) applied to a spec's YAML,
as a user applies it: every would-work a "no" shows can be planned again as written."""

import re
from typing import Any

import yaml

from layoutd.models.spec import set_paths

_BDF = re.compile(r"(?<![\"'\w])([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])(?![\"'\w])")


def apply_change(text: str, change: dict[str, Any]) -> str:
    """`text` with `change` applied. PCI addresses are quoted first: YAML 1.1 reads an
    unquoted 0000:29:00.0 as a sexagesimal number."""
    data = set_paths(yaml.safe_load(_BDF.sub(r'"\1"', text)), change)
    return str(yaml.safe_dump(data, sort_keys=False))
