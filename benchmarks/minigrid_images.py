"""MiniGrid end to end on images (issue 24): the behaviour DQN (CNN encoder) on
MiniGrid-Empty-5x5-v0, an expert dataset collected from its checkpoint by the collect stage's
rollouts and Minari writer, preprocessed (uint8 rows), and discrete BC on it, evaluated by the
env's success rate against uniform random. The figures in docs/datasets.md come from it.

    PYTHONPATH=. OMP_NUM_THREADS=1 python -m benchmarks.minigrid_images /tmp/minigrid
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core.envs import make_env
from datagen.behavior.config import BehaviorConfig, DQNConfig
from datagen.behavior.policies import load_policy
from datagen.behavior.train import train_behavior
from datagen.collection.minari_writer import DatasetInfo, dataset_dir, write_dataset
from datagen.collection.rollouts import rollout_episodes
from datagen.collection.validate import validate_dataset
from datagen.preprocessing.config import PreprocessConfig
from datagen.preprocessing.preprocess import preprocess
from offline_rl.algos.config import DiscreteBCConfig
from offline_rl.algos.registry import make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.evaluation import AgentPolicy, rollouts
from offline_rl.tracking import RunLogger
from transitions.loader import load_transitions
from transitions.spaces import action_layout, observation_layout

ENV_ID = "MiniGrid-Empty-5x5-v0"
DATASET = "minigrid/expert-v0"
BEHAVIOR = BehaviorConfig(
    steps=30_000,
    random_steps=1_000,
    batch_size=64,
    checkpoint_steps=(5_000, 10_000, 15_000, 20_000, 25_000, 30_000),
    eval_episodes=20,
    log_interval=500,
    dqn=DQNConfig(lr=5e-4, hidden=(64,), target_update_interval=250, epsilon_decay_steps=10_000),
)


def main(out: Path) -> None:
    started = time.perf_counter()
    logs = {k: out / f"{k}.csv" for k in ("train", "losses", "eval")}
    result, _ = train_behavior(
        ENV_ID, BEHAVIOR, 0, out / "behavior", lambda _: RunLogger.files_only(logs), False
    )
    expert_step = max(result.checkpoints, key=lambda s: (result.checkpoints[s], -s))
    print(f"behaviour DQN returns {result.checkpoints} ({time.perf_counter() - started:.0f} s)")
    policy = load_policy(out / "behavior" / f"step_{expert_step}.pt", seed=1)  # epsilon 0.05
    root = out / "datasets"
    episodes = rollout_episodes(ENV_ID, policy, 5_000, 2 * 10**8, num_envs=8)
    info = DatasetInfo(DATASET, ENV_ID, "dqn", f"expert: step_{expert_step}", "none")
    written = write_dataset(root, info, episodes, None)
    env = make_env(ENV_ID)
    stats = written.stats()
    validate_dataset(
        dataset_dir(root, DATASET),
        written.steps,
        observation_layout(env.observation_space),
        action_layout(env.action_space),
        stats["return_mean"],
    )
    print(f"expert dataset: {written.episodes} episodes, {written.steps} steps, {stats}")
    path = out / "expert.h5"
    config = PreprocessConfig(normalize_observations=False)
    preprocess([(DATASET, dataset_dir(root, DATASET))], path, config, env_id=ENV_ID)
    data = load_transitions(path)
    torch.manual_seed(0)
    bc_config = DiscreteBCConfig().with_default_lr(1e-3)
    algo = make_algorithm("discrete_bc", data.meta.observations, 7, bc_config, "cpu", [0])
    buffer, training = ReplayBuffer.from_transitions(data), time.perf_counter()
    for _ in range(2_000):
        algo.update(buffer.sample(256))
    seconds = time.perf_counter() - training
    bc = rollouts(ENV_ID, AgentPolicy.of(algo, data.meta, torch.device("cpu")), 100, 10_000, 20)
    rng = np.random.default_rng(0)
    uniform = rollouts(ENV_ID, lambda o: rng.integers(0, 7, len(o["image"])), 100, 10_000, 20)
    figures = {
        "bc_success_rate": float(np.mean(bc.successes or [np.nan])),
        "bc_return": float(np.mean(bc.returns)),
        "bc_train_s": seconds,
        "random_success_rate": float(np.mean(uniform.successes or [np.nan])),
        "random_return": float(np.mean(uniform.returns)),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
