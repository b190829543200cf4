"""Reference scores for normalisation: D4RL's published values, or measured from our policies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from core.checkpoint import seed_everything
from core.errors import PipelineError
from datagen.behavior.policies import RandomPolicy, SACPolicy
from datagen.collection.config import CollectConfig, env_family
from datagen.collection.recipes import checkpoint_for
from datagen.collection.rollouts import BatchPolicy
from offline_rl.evaluation import rollout_returns

# D4RL's REF_MIN_SCORE / REF_MAX_SCORE (random and expert returns of the v2 MuJoCo tasks), keyed by
# the environment family so that v4/v5 envs report scores on the literature's scale.
D4RL_REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "Hopper": (-20.272305, 3234.3),
    "HalfCheetah": (-280.178953, 12135.0),
    "Walker2d": (1.629008, 4592.3),
    "Ant": (-325.6, 3879.7),
}


@dataclass(frozen=True)
class ReferenceScores:
    min_score: float
    max_score: float
    source: str  # "d4rl" or "measured"


class ReferenceScoresError(PipelineError, ValueError):
    """No reference scores can be had for an environment (the message says which source to use)."""


def d4rl_reference(env_id: str) -> ReferenceScores:
    family = env_family(env_id)
    if family not in D4RL_REFERENCE_SCORES:
        raise ReferenceScoresError(
            f"D4RL published no reference scores for {env_id!r} (known: "
            f"{', '.join(sorted(D4RL_REFERENCE_SCORES))}); use ref_scores: measured"
        )
    low, high = D4RL_REFERENCE_SCORES[family]
    return ReferenceScores(low, high, "d4rl")


REFERENCE_SEED_OFFSET = 50_000  # reference episodes reset with seed + offset + i (fixed, shared)


def measure_reference(
    env_id: str,
    random_policy: BatchPolicy,
    expert_policy: BatchPolicy,
    episodes: int,
    seed: int,
) -> tuple[ReferenceScores, dict[str, Any]]:
    """D4RL's recipe: mean return of a random and of the expert policy over the same fixed seeds.

    The global RNGs are seeded before each policy runs, so a stochastic (sampling) expert gives the
    same scores on every run. An expert no better than random defines no normalised score: error.
    """
    first = seed + REFERENCE_SEED_OFFSET
    seed_everything(first)
    low, _ = rollout_returns(env_id, random_policy, episodes, seed=first)
    seed_everything(first)
    high, _ = rollout_returns(env_id, expert_policy, episodes, seed=first)
    if np.mean(high) <= np.mean(low):
        raise ReferenceScoresError(
            f"measured reference scores for {env_id}: the expert's mean return "
            f"{np.mean(high):.2f} does not exceed the random policy's {np.mean(low):.2f} over "
            f"{episodes} episodes, so no normalised score exists; train the behaviour policy "
            "longer (behavior.steps) or measure over more episodes (collect.ref_episodes)"
        )
    details = {
        "episodes": episodes,
        "episode_seeds": [first, first + episodes - 1],
        "random_return_std": float(np.std(low)),
        "expert_return_std": float(np.std(high)),
    }
    return ReferenceScores(float(np.mean(low)), float(np.mean(high)), "measured"), details


def reference_policy(
    policy: str, env_id: str, behavior_dir: Path, config: CollectConfig, seed: int
) -> tuple[BatchPolicy, str]:
    """The `random` or a behaviour checkpoint's policy (`expert`, ...) whose returns a measured
    reference score is, and where it came from."""
    if policy == "random":
        space = gym.make(env_id).action_space
        assert isinstance(space, gym.spaces.Box)
        return RandomPolicy(space, seed), "random"
    path, _ = checkpoint_for(policy, behavior_dir, config.medium_fraction)
    return SACPolicy(path, deterministic=config.deterministic_policy, seed=seed), str(path)
