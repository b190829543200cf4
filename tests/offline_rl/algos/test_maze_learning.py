"""Learning test on a goal-reaching maze with Dict observations: IQL and TD3+BC, trained briefly
on PointMaze_UMaze-v3 data from the noisy waypoint controller (the behaviour
`behavior.learner: waypoint` collects with), must reach the goal far more often than a uniform-
random policy.

The data: 30,000 steps of the controller with action noise of scale 4 (it reaches the goal in
about 60% of episodes; uniform-random actions in 2 of these 20 evaluation episodes), the declared keys `observation` + `desired_goal`
flattened and normalised as preprocessing would, sparse rewards (1 per step at the goal) and no
terminals (the maze is a continuing task; episodes end by the 300-step limit). Budget: 4,000
updates of 256x256 networks, batch 256, then 20 evaluation episodes through AgentPolicy, which
flattens the env's Dict observations in the file's key order. Seconds of CPU each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from core.envs import make_env
from datagen.behavior.config import WaypointConfig
from datagen.behavior.waypoint import WaypointController, noisy_action
from offline_rl.algos.registry import ALGORITHMS, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.speed import accelerate
from tests.offline_rl.algos.discrete_data import in_memory_meta
from tests.offline_rl.algos.scripted_data import roll_out
from transitions.loader import Transitions
from transitions.spaces import observation_layout

pytestmark = pytest.mark.usefixtures("one_thread")

ENV_ID = "PointMaze_UMaze-v3"
KEYS = ("observation", "desired_goal")
DATA_STEPS = 30_000
NOISE = 4.0
UPDATES = 4_000
BATCH_SIZE = 256
EVAL_EPISODES = 20
EVAL_SEED = 1_000_000
RANDOM_SUCCESS = 0.15  # uniform-random actions: 0.10 over these 20 episodes (measured below)
MARGIN = 0.4


@pytest.fixture(scope="module")
def maze_transitions() -> Transitions:
    layout = observation_layout(make_env(ENV_ID).observation_space, keys=KEYS)
    controller = WaypointController(ENV_ID, WaypointConfig())
    rng = np.random.default_rng(0)
    rollout = roll_out(
        ENV_ID, lambda obs: noisy_action(controller(obs), NOISE, rng)[0], DATA_STEPS, layout.flatten
    )
    meta = in_memory_meta(
        layout.obs_dim,
        2,
        len(rollout.observations),
        env_id=ENV_ID,
        dataset_ids=("test/pointmaze-v0",),
        obs_mean=tuple(rollout.obs_mean.tolist()),
        obs_std=tuple(rollout.obs_std.tolist()),
        normalize_observations=True,
        observation_keys=layout.keys,
        num_episodes=rollout.episodes,
    )
    return rollout.transitions(meta)


def success_rate(policy: Any) -> float:
    (result,) = evaluate_policy(ENV_ID, policy, EVAL_EPISODES, EVAL_SEED, None, None)
    assert result.successes is not None, "PointMaze reports info['success']"
    return float(np.mean(result.successes))


def test_random_policy_succeeds_as_rarely_as_the_margin_assumes() -> None:
    rng = np.random.default_rng(0)
    random = success_rate(lambda obs: rng.uniform(-1, 1, size=(len(obs["observation"]), 2)))
    print(f"\nuniform-random policy: {ENV_ID} success rate {random:.2f}")
    assert random <= RANDOM_SUCCESS, random


@pytest.mark.parametrize("name", ["iql", "td3_bc"])
def test_reaches_the_goal_far_more_than_random(name: str, maze_transitions: Transitions) -> None:
    data = maze_transitions
    _, config_model = ALGORITHMS[name]
    config = config_model.model_validate({}).with_default_lr(3e-4)
    algo = make_algorithm(name, data.meta.obs_dim, data.meta.act_dim, config, "cpu", [0])
    buffer = ReplayBuffer.from_transitions(data, seeds=[0])
    update = accelerate(algo)
    for _ in range(UPDATES):
        metrics = update(buffer.sample(BATCH_SIZE))
    assert all(torch.isfinite(v).all() for v in metrics.values()), metrics
    rate = success_rate(AgentPolicy(algo.act, data.meta, torch.device("cpu")))
    print(f"\n{name}: {ENV_ID} success rate {rate:.2f} (random 0.10)")
    assert rate >= RANDOM_SUCCESS + MARGIN, f"{name}: {rate:.2f}"
