"""The collection stages' config models (params.yaml `collect`), torch-free: pipelines/params.py
builds the params schema from them without loading the policies."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import StrictModel, choice_error
from core.errors import PipelineError

SAMPLED = ("random", "expert", "medium")
REPLAY = ("medium-replay", "full-replay")
COMBINED = ("medium-expert",)
RefSource = Literal["d4rl", "measured"]


class RecipeError(PipelineError, ValueError):
    """A dataset recipe names a policy that the behaviour stage did not produce."""


class DatasetRecipe(StrictModel):
    # random | expert (best evaluated checkpoint) | medium (the checkpoint, up to the expert's,
    # whose return is closest to medium_fraction of the expert's) | step_<N> (that checkpoint)
    # | medium-replay (replay buffer up to the medium checkpoint) | full-replay (whole buffer)
    # | medium-expert (first half medium, second half expert: the same episodes as those datasets)
    policy: str = "random"
    steps: int | None = Field(default=None, ge=1)  # replay kinds: null (the buffer decides)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value in SAMPLED + REPLAY + COMBINED or re.fullmatch(r"step_\d+", value):
            return value
        raise ValueError(choice_error("policy", value, (*SAMPLED, *REPLAY, *COMBINED, "step_<N>")))

    @model_validator(mode="after")
    def _steps_fit_policy(self) -> DatasetRecipe:
        if self.policy in REPLAY and self.steps is not None:
            raise ValueError(f"steps must be null for {self.policy}: the replay buffer sets it")
        if self.policy not in REPLAY and self.steps is None:
            raise ValueError(f"steps is required for policy {self.policy}")
        return self


def _d4rl_kinds() -> dict[str, DatasetRecipe]:
    """D4RL's six kinds, at the sizes of params.yaml (params/d4rl.yaml has D4RL's own)."""
    return {
        "random": DatasetRecipe(policy="random", steps=20_000),
        "medium": DatasetRecipe(policy="medium", steps=20_000),
        "expert": DatasetRecipe(policy="expert", steps=20_000),
        "medium-replay": DatasetRecipe(policy="medium-replay"),
        "full-replay": DatasetRecipe(policy="full-replay"),
        "medium-expert": DatasetRecipe(policy="medium-expert", steps=40_000),
    }


class CollectConfig(StrictModel):
    datasets: dict[str, DatasetRecipe] = Field(default_factory=_d4rl_kinds, min_length=1)
    # dataset namespace -> gymnasium id; the namespace names the folder data/datasets/<namespace>
    envs: dict[str, str] = Field(default_factory=lambda: {"hopper": "Hopper-v5"}, min_length=1)
    kinds: list[str] = Field(default_factory=lambda: list(_d4rl_kinds()), min_length=1)
    # one source for every env, or a mapping namespace -> source
    ref_scores: RefSource | dict[str, RefSource] = "d4rl"
    ref_episodes: int = Field(default=10, ge=1)  # D4RL averaged 100
    medium_fraction: float = Field(default=0.5, gt=0, lt=1)
    num_envs: int = Field(default=8, ge=1, le=256)
    chunk_episodes: int = Field(default=64, ge=1)
    deterministic_policy: bool = False
    shard_steps: int = Field(default=10_000, ge=1)  # changing it changes the dataset
    backend: Literal["process", "ray"] = "process"
    workers: int = Field(default=2, ge=1)  # changing it never changes the dataset
    ray_address: str | None = None  # null: a local Ray instance; "auto" or host:port joins one

    @model_validator(mode="after")
    def _kinds_defined(self) -> CollectConfig:
        unknown = [k for k in self.kinds if k not in self.datasets]
        if unknown:
            raise ValueError(
                f"kinds {unknown} are not defined under datasets ({sorted(self.datasets)})"
            )
        for namespace, env_id in self.envs.items():
            expected = dataset_namespace(env_id)
            if namespace != expected:
                raise ValueError(
                    f"envs: {env_id!r} must be listed under {expected!r}, not {namespace!r}"
                )
        return self

    def ref_source(self, namespace: str) -> RefSource:
        if isinstance(self.ref_scores, str):
            return self.ref_scores
        if namespace not in self.ref_scores:
            raise RecipeError(f"collect.ref_scores names no source for {namespace!r}")
        return self.ref_scores[namespace]

    @field_validator("datasets")
    @classmethod
    def _kind_names(cls, value: dict[str, DatasetRecipe]) -> dict[str, DatasetRecipe]:
        bad = [k for k in value if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", k)]
        if bad:
            raise ValueError(f"dataset names {bad} must be lowercase letters, digits, '-' or '_'")
        return value


def env_family(env_id: str) -> str:
    """Hopper-v5 -> Hopper: the environment without its version (D4RL's scores are per family)."""
    return env_id.split("/")[-1].split("-v")[0]


def dataset_namespace(env_id: str) -> str:
    """Hopper-v5 -> hopper: datasets live at data/datasets/<namespace>/<kind>-v0."""
    return env_family(env_id).lower()
