"""Every schema in schemas/ matches the model it is generated from (no drift)."""

import json

import pytest

from layoutd.models.schemas import REGISTRY, SCHEMAS, render


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_schema_file_matches_model(name: str) -> None:
    model, mode = REGISTRY[name]
    path = SCHEMAS / name
    assert path.is_file(), f"{path} is missing: run python -m layoutd.models.schemas"
    assert json.loads(path.read_text()) == json.loads(render(model, mode)), (
        f"{path} drifted from {model.__name__}: run python -m layoutd.models.schemas"
    )
