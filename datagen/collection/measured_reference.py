"""Reference scores measured from our own policies (`collect.ref_scores: measured`): D4RL's recipe,
the mean return of the random and of the expert policy over the same fixed episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoint import seed_everything
from core.envs import make_env
from datagen.behavior.policies import RandomPolicy, load_policy
from datagen.collection.config import CollectConfig
from datagen.collection.recipes import checkpoint_for
from datagen.collection.reference import ReferenceScores, ReferenceScoresError
from datagen.collection.rollouts import BatchPolicy
from offline_rl.evaluation import rollout_returns

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
        return RandomPolicy(make_env(env_id).action_space, seed), "random"
    path, _ = checkpoint_for(policy, behavior_dir, config.medium_fraction)
    return load_policy(path, deterministic=config.deterministic_policy, seed=seed), str(path)
