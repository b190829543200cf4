"""One default per value: every key params.yaml states equals its model's default, so the default
is stated once, in params.yaml (a key left out of a params file means what params.yaml says),
except where the key's line in params.yaml says why not (`# not the default: ...`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import BaseModel

from offline_rl.algos.config import ALGO_CONFIGS
from pipelines.params import SECTIONS, AlgosConfig, Params
from tests.pipelines.stage_runner import REPO

PARAMS = REPO / "params.yaml"
MARK = "# not the default:"


def key_lines(node: yaml.Node | None, prefix: str = "") -> Iterator[tuple[str, int]]:
    """Every dotted key of a YAML mapping and the line it stands on (0-based)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            dotted = f"{prefix}{key.value}"
            yield dotted, key.start_mark.line
            yield from key_lines(value, f"{dotted}.")


def stated_against_default(
    stated: dict[str, Any], value: BaseModel, default: BaseModel, prefix: str = ""
) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, validated value, the model's default) for every key params.yaml states."""
    for key, raw in stated.items():
        ours, theirs = getattr(value, key), getattr(default, key)
        if isinstance(ours, BaseModel) and isinstance(raw, dict):
            yield from stated_against_default(raw, ours, theirs, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", ours, theirs


def test_every_key_params_yaml_states_is_its_models_default() -> None:
    text = PARAMS.read_text()
    lines = text.splitlines()
    excused = {
        key: lines[line].split(MARK, 1)[1].strip()
        for key, line in key_lines(yaml.compose(text))
        if MARK in lines[line]
    }
    stated = yaml.safe_load(text)
    differing = {
        key: (value, default)
        for key, value, default in stated_against_default(
            stated, Params.model_validate(stated), Params()
        )
        if value != default
    }
    unexplained = {key: pair for key, pair in differing.items() if key not in excused}
    assert not unexplained, (
        "params.yaml states values that are not their models' defaults (params.yaml value, "
        f"default): {unexplained}; make the default params.yaml's, or say why on the key's line "
        f"with '{MARK} <why>'"
    )
    stale = sorted(key for key in excused if key not in differing)
    assert not stale, f"'{MARK}' on keys that are the default: {stale}"
    assert all(excused.values()), "each exception says why"


def test_the_schema_holds_every_section_and_algorithm() -> None:
    stated = yaml.safe_load(PARAMS.read_text())
    assert set(SECTIONS) | {"env", "seed", "lr"} == set(stated)
    assert list(AlgosConfig.model_fields) == list(ALGO_CONFIGS)
