"""Dataset kinds: which behaviour policy fills each dataset, chosen by name or evaluated return."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import gymnasium as gym
from pydantic import Field, field_validator

from datagen.collect import BatchPolicy
from datagen.policies import RandomPolicy, SACPolicy
from offline_rl.config import StrictModel, choice_error


class RecipeError(ValueError):
    """A dataset recipe names a policy that the behaviour stage did not produce."""


class DatasetRecipe(StrictModel):
    # random | expert (best evaluated checkpoint) | medium (first checkpoint reaching
    # medium_fraction of the expert's return, as D4RL defines it) | step_<N> (that checkpoint)
    policy: str = "random"
    steps: int = Field(default=20_000, ge=1)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value in ("random", "expert", "medium") or re.fullmatch(r"step_\d+", value):
            return value
        raise ValueError(choice_error("policy", value, ("random", "expert", "medium", "step_<N>")))


class CollectConfig(StrictModel):
    datasets: dict[str, DatasetRecipe] = Field(
        default_factory=lambda: {
            "random": DatasetRecipe(policy="random"),
            "medium": DatasetRecipe(policy="medium"),
        },
        min_length=1,
    )
    ref_scores: Literal["d4rl", "measured"] = "d4rl"
    ref_episodes: int = Field(default=10, ge=1)
    medium_fraction: float = Field(default=0.5, gt=0, lt=1)
    num_envs: int = Field(default=8, ge=1, le=256)
    chunk_episodes: int = Field(default=64, ge=1)
    deterministic_policy: bool = False

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
    """Resolve `expert`/`medium`/`step_<N>` to a checkpoint name like `step_20000`."""
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
    threshold = medium_fraction * returns[expert]
    return next(name for name in ordered if returns[name] >= threshold)


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
    return SACPolicy(path, deterministic=config.deterministic_policy), str(path)
