"""JSON Schemas published in schemas/, generated from the models' pydantic view (reference.py).

Register a model here, then run `python -m layoutd.models.schemas` to (re)write schemas/;
tests/test_schemas.py fails when a file drifts from its model.
"""

import json
import sys
from pathlib import Path
from typing import Any, Literal

from layoutd.models.host import HostDump, HostView
from layoutd.models.plan import Plan
from layoutd.models.reference import model
from layoutd.models.spec import VmSpec
from layoutd.models.warning_codes import CODES, UNCLASSIFIED
from layoutd.record import Record

Mode = Literal["validation", "serialization"]

# file name in schemas/ -> (model, mode): "validation" for inputs, "serialization" for outputs
REGISTRY: dict[str, tuple[type[Record], Mode]] = {
    "host-dump.schema.json": (HostDump, "validation"),
    "probe.schema.json": (HostView, "serialization"),
    "vm-spec.schema.json": (VmSpec, "validation"),
    "plan.schema.json": (Plan, "serialization"),
}

WARNING_CODES = {
    "description": "the warnings in the same order, each with its stable code (docs/contract.md)",
    "items": {
        "additionalProperties": False,
        "properties": {"code": {"enum": [*(code for code, _ in CODES), UNCLASSIFIED], "type": "string"},
                       "text": {"type": "string"}},
        "required": ["code", "text"],
        "type": "object",
    },
    "title": "Warning Codes",
    "type": "array",
}

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "schemas"


def generate(record: type[Record], mode: Mode) -> dict[str, Any]:
    schema = model(record).model_json_schema(mode=mode)
    if mode == "serialization" and "warnings" in schema["properties"]:
        # the emitters add each warning's stable code beside the texts (models/warning_codes.py)
        schema["properties"]["warning_codes"] = WARNING_CODES
        schema["required"].append("warning_codes")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render(record: type[Record], mode: Mode) -> str:
    return json.dumps(generate(record, mode), indent=2, sort_keys=True) + "\n"


def write_all(directory: Path = SCHEMAS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (record, mode) in REGISTRY.items():
        path = directory / name
        path.write_text(render(record, mode))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMAS):
        print(path)
