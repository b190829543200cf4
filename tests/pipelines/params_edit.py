"""Build params dicts for config tests: the tiny fixture with one dotted key changed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests/fixtures/tiny_params.yaml"


def tiny_params() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TINY.read_text())
    return data


def with_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The tiny params with each dotted path set to its value (a missing key is added)."""
    params = copy.deepcopy(tiny_params())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[last] = value
    return params
