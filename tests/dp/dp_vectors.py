"""The one loader for tests/vectors/dp/*.json: each case becomes a pytest.param with its id."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dp"


def _num(x: Any) -> Any:
    if x == "inf":
        return math.inf
    if isinstance(x, list):
        return [_num(v) for v in x]
    return x


def cases(file: str, key: str = "cases") -> list[Any]:
    """``pytest.param(case, id=case['id'])`` for each case under ``key`` of ``file``."""
    data = json.loads((VECTORS / file).read_text())
    out = []
    for case in data[key]:
        assert case.get("source"), f"{file}: case {case.get('id')} has no source"
        out.append(pytest.param({k: _num(v) for k, v in case.items()}, id=case["id"]))
    return out
