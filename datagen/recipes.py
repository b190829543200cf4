"""Dataset kinds: which behaviour policy fills each dataset, chosen by name or evaluated return."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Literal

import gymnasium as gym
from pydantic import Field, field_validator, model_validator

from core.config import StrictModel, choice_error
from core.errors import PipelineError
from datagen.collect import BatchPolicy
from datagen.policies import RandomPolicy, SACPolicy
from datagen.shards import PolicySpec

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


class CollectConfig(StrictModel):
    datasets: dict[str, DatasetRecipe] = Field(
        default_factory=lambda: {
            "random": DatasetRecipe(policy="random", steps=20_000),
            "medium": DatasetRecipe(policy="medium", steps=20_000),
        },
        min_length=1,
    )
    # dataset namespace -> gymnasium id; the namespace names the folder data/datasets/<namespace>
    envs: dict[str, str] = Field(default_factory=lambda: {"hopper": "Hopper-v5"}, min_length=1)
    kinds: list[str] = Field(default_factory=lambda: ["random", "medium"], min_length=1)
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
            expected = env_id.split("/")[-1].split("-v")[0].lower()
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


def checkpoint_returns(behavior_dir: Path) -> dict[str, float]:
    path = behavior_dir / "checkpoints.json"
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data["checkpoints"].items()}
    except FileNotFoundError:
        raise RecipeError(f"{path}: not found (run the behavior stage or dvc pull)") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise RecipeError(
            f"{path}: not a behaviour checkpoint index ({type(error).__name__}: {error}); "
            "rerun the behavior stage"
        ) from None


def choose_checkpoint(
    policy: str, returns: dict[str, float], medium_fraction: float, source: Path
) -> str:
    """Resolve `expert`/`medium`/`step_<N>` to a checkpoint name like `step_20000`.

    `medium` is D4RL's partially trained policy: of the checkpoints up to the expert's, the one
    whose evaluated return is closest to `medium_fraction` of the expert's (the earliest of
    equals). Not the first to reach that fraction: a behaviour return can leap past it between two
    checkpoints (a Hopper SAC went from 714 to 2,553 within 5,000 steps, docs/fidelity.md), and
    the first above the line would then be a near-expert."""
    if not returns:
        raise RecipeError(f"{source}: the behaviour stage saved no checkpoints")
    if policy.startswith("step_"):
        if policy not in returns:
            raise RecipeError(f"{source}: no checkpoint {policy!r}; have {sorted(returns)}")
        return policy
    ordered = sorted(returns, key=lambda name: int(name.split("_")[1]))
    expert = max(ordered, key=lambda name: returns[name])
    if policy == "expert":
        return expert
    if returns[expert] <= 0:
        # the best return is below a fraction of itself: no checkpoint can reach the threshold
        raise RecipeError(
            f"{source}: medium is the checkpoint closest to medium_fraction of the expert's "
            f"return, which is {returns[expert]:.2f} (not positive) at {expert}; train the "
            "behaviour policy longer (behavior.steps) or name a checkpoint (policy: step_<N>)"
        )
    target = medium_fraction * returns[expert]
    candidates = ordered[: ordered.index(expert) + 1]
    return min(candidates, key=lambda name: abs(returns[name] - target))  # min keeps the earliest


def dataset_seed_base(seed: int, policy: str) -> int:
    """Episode seeds of a sampled dataset start here; they depend on the policy, not the dataset's
    name, so medium-expert replays exactly the episodes of medium and expert."""
    slot = {"random": 0, "medium": 1, "expert": 2}.get(policy, 3 + zlib.crc32(policy.encode()) % 7)
    return seed * 1_000_000_000 + slot * 100_000_000


def policy_spec(
    policy: str, behavior_dir: Path, config: CollectConfig
) -> tuple[PolicySpec, str, float | None]:
    """A shippable policy for `random`/`medium`/`expert`/`step_<N>`, its source and its return."""
    if policy == "random":
        return PolicySpec("random"), "random", None
    returns = checkpoint_returns(behavior_dir)
    name = choose_checkpoint(
        policy, returns, config.medium_fraction, behavior_dir / "checkpoints.json"
    )
    path = behavior_dir / f"{name}.pt"
    return PolicySpec.from_checkpoint(path, config.deterministic_policy), str(path), returns[name]


def make_policy(
    policy: str, env_id: str, behavior_dir: Path, config: CollectConfig, seed: int
) -> tuple[BatchPolicy, str]:
    """The batched policy for a recipe and a description of where it came from."""
    if policy == "random":
        space = gym.make(env_id).action_space
        assert isinstance(space, gym.spaces.Box)
        return RandomPolicy(space, seed), "random"
    name = choose_checkpoint(
        policy,
        checkpoint_returns(behavior_dir),
        config.medium_fraction,
        behavior_dir / "checkpoints.json",
    )
    path = behavior_dir / f"{name}.pt"
    return SACPolicy(path, deterministic=config.deterministic_policy, seed=seed), str(path)
