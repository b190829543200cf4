"""The preprocess stage's config model (params.yaml `preprocess`), torch-free: pipelines/params.py
builds the params schema from it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from core.config import StrictModel

# A part is a generated kind ("medium") or an imported id ("d4rl/hopper/medium-v0").
_PART = r"[a-z0-9_\-]+(/[a-z0-9_\-.]+)*"
DATASET_NAME = re.compile(rf"{_PART}(\+{_PART})*")


class PreprocessConfig(StrictModel):
    # One transitions file per entry; "medium+expert" concatenates datasets into one file.
    datasets: tuple[str, ...] = Field(default=("medium",), min_length=1)
    normalize_observations: bool = True
    # "return_range": rewards * 1000 / (max episode return - min episode return), as IQL does.
    reward_normalization: Literal["none", "return_range"] = "none"
    reward_scale: float = Field(default=1.0, gt=0)
    reward_shift: float = 0.0
    return_to_go_discount: float = Field(default=1.0, gt=0, le=1)
    validation_fraction: float = Field(default=0.0, ge=0, lt=1)
    chunk_rows: int = Field(default=100_000, ge=1)
    compression: Literal["none", "gzip", "lzf"] = "none"
    # Processes reading episodes while this one writes; 1 reads in-process. Never changes the file.
    workers: int = Field(default=2, ge=1)
    # Dict observations: the keys whose boxes are concatenated, in this order, into each row's
    # observation vector; None takes every key in the space's order. Must be None for a Box.
    observation_keys: tuple[str, ...] | None = Field(default=None, min_length=1)

    @field_validator("datasets")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not DATASET_NAME.fullmatch(name):
                raise ValueError(
                    f"dataset name {name!r}: use lower-case kinds such as 'medium', imported "
                    "ids such as 'd4rl/hopper/medium-v0', or 'medium+expert' to concatenate "
                    "several into one file"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"dataset names repeat: {list(value)}")
        return value

    @field_validator("observation_keys")
    @classmethod
    def _keys(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"observation keys repeat: {list(value)}")
        return value
