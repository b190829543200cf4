"""The D4RL dataset families: which episodes each kind holds, and their provenance.

random / medium / expert / step_<N>: sampled by that policy in shards (shards.py).
medium-replay / full-replay: the behaviour run's replay buffer, up to the medium checkpoint's step
or whole (replay.py). medium-expert: the medium shards then the expert shards, with the
seeds of the medium and expert datasets, so it holds exactly their episodes when sizes match.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.behavior.spaces import env_layouts
from datagen.collection.backends import BackendConfig, collect_shards
from datagen.collection.config import REPLAY, CollectConfig, DatasetRecipe
from datagen.collection.recipes import behavior_algo, checkpoint_for, dataset_seed_base
from datagen.collection.replay import replay_episodes, replay_size
from datagen.collection.rollouts import Episode
from datagen.collection.shards import PolicySpec, ShardJob, plan_shards, unpack
from transitions.spaces import ActionLayout


@dataclass
class DatasetPlan:
    """Everything that decides a dataset's contents, and how to produce its episodes."""

    env_id: str
    kind: str
    recipe: DatasetRecipe
    action: ActionLayout
    shard_groups: list[tuple[str, list[ShardJob]]] = field(default_factory=list)
    replay_steps: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    learner: str | None = None  # the behaviour stage's learner, as checkpoints.json records it

    @property
    def algorithm_name(self) -> str:
        learner = self.learner or ("DQN" if self.action.discrete else "SAC")
        if learner == "waypoint":
            learner = "waypoint controller"
        return (
            "uniform random"
            if self.recipe.policy == "random"
            else f"{learner} ({self.recipe.policy})"
        )


def plan_dataset(
    env_id: str, kind: str, config: CollectConfig, behavior_dir: Path, seed: int
) -> DatasetPlan:
    recipe = config.datasets[kind]
    action, _ = env_layouts(env_id)
    plan = DatasetPlan(env_id, kind, recipe, action)
    if recipe.policy != "random":
        plan.learner = behavior_algo(behavior_dir)
    if recipe.policy in REPLAY:
        replay = behavior_dir / "replay.h5"
        size = replay_size(replay)
        if recipe.policy == "medium-replay":
            path, medium_return = checkpoint_for("medium", behavior_dir, config.medium_fraction)
            plan.replay_steps = min(int(path.stem.split("_")[1]), size)
            plan.provenance["medium_checkpoint"] = {"name": path.stem, "eval_return": medium_return}
        else:
            plan.replay_steps = size
        plan.provenance |= {"replay_buffer": str(replay), "replay_steps": plan.replay_steps}
        return plan
    assert recipe.steps is not None
    parts = [(recipe.policy, recipe.steps)]
    if recipe.policy == "medium-expert":
        parts = [("medium", (recipe.steps + 1) // 2), ("expert", recipe.steps // 2)]
    plan.provenance["parts"] = []
    for policy, steps in parts:
        spec, source, eval_return = policy_spec(policy, behavior_dir, config)
        base = dataset_seed_base(seed, policy)
        jobs = plan_shards(env_id, spec, steps, base, config.shard_steps, config.num_envs)
        plan.shard_groups.append((policy, jobs))
        plan.provenance["parts"].append(
            {
                "policy": policy,
                "policy_checkpoint": source,
                "policy_sha256": spec.digest(),
                "checkpoint_eval_return": eval_return,
                "deterministic": config.deterministic_policy,
                "steps": steps,
                "seed_base": base,
                "episode_seeds": "shard k, episode j: seed_base + k * (shard_steps + num_envs) + j",
                "shard_steps": config.shard_steps,
                "num_envs": config.num_envs,
                "shards": len(jobs),
            }
        )
    return plan


def policy_spec(
    policy: str, behavior_dir: Path, config: CollectConfig
) -> tuple[PolicySpec, str, float | None]:
    """A shippable policy for `random`/`medium`/`expert`/`step_<N>`, its source and its return."""
    if policy == "random":
        return PolicySpec("random"), "random", None
    path, eval_return = checkpoint_for(policy, behavior_dir, config.medium_fraction)
    return PolicySpec.from_checkpoint(path, config.deterministic_policy), str(path), eval_return


def plan_episodes(
    plan: DatasetPlan, behavior_dir: Path, shards_dir: Path, backend: BackendConfig
) -> Iterator[Episode]:
    """The dataset's episodes in order; shards land in `shards_dir/<part>/` as resume points."""
    if plan.recipe.policy in REPLAY:
        yield from replay_episodes(behavior_dir / "replay.h5", plan.replay_steps, plan.action)
        return
    for part, jobs in plan.shard_groups:
        for arrays in collect_shards(jobs, shards_dir / part, backend):
            yield from unpack(arrays)


def discard_shards(shards_dir: Path) -> None:
    """Once the dataset is in place its shards are no longer a resume point."""
    shutil.rmtree(shards_dir, ignore_errors=True)
