"""Learning test for the Discrete-action algorithms: trained briefly on CartPole-v1 data from a
scripted controller, each must return far more than the uniform-random policy (about 22).

The data: 20,000 steps of a controller that pushes the cart toward the pole's lean (angle plus
half the angular velocity; returns of 500 alone) taking a uniform-random action 30% of the time
(returns of about 420), built into Transitions as preprocessing would (observations normalised by
the data's statistics, `dones` only where the pole fell). Budget: 1,500 updates of 64x64
networks, batch 256, in fp32 and under bf16 autocast, then 10 evaluation episodes through
AgentPolicy. Seconds of CPU each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from offline_rl.algos.registry import ALGORITHMS, algorithm_names, make_algorithm
from offline_rl.buffer import ReplayBuffer
from offline_rl.evaluation import AgentPolicy, evaluate_policy
from offline_rl.speed import Precision, accelerate
from tests.offline_rl.algos.discrete_data import discrete_meta
from tests.offline_rl.algos.scripted_data import roll_out
from transitions.loader import Transitions

pytestmark = pytest.mark.usefixtures("one_thread")

ENV_ID = "CartPole-v1"
DATA_STEPS = 20_000
RANDOM_ACTIONS = 0.3
UPDATES = 1_500
BATCH_SIZE = 256
LR = 1e-3
EVAL_EPISODES = 10
EVAL_SEED = 1_000_000
RANDOM_RETURN = 22.0  # uniform-random CartPole-v1, measured below
MARGIN = 100.0
# d3rlpy's discrete CQL defaults are for Atari (6.25e-5, target copy every 8000 updates); this
# budget is 1,500 updates, so the rate follows LR and the target is copied every 100.
OVERRIDES: dict[str, dict[str, Any]] = {
    "discrete_cql": {"critic_lr": None, "target_update_interval": 100},
}


def lean_controller(obs: np.ndarray) -> int:
    """Push toward where the pole falls: right (1) when it leans or swings right."""
    return int(obs[2] + 0.5 * obs[3] > 0)


@pytest.fixture(scope="module")
def cartpole_transitions() -> Transitions:
    rng = np.random.default_rng(0)

    def act(obs: np.ndarray) -> int:
        action = lean_controller(obs)
        return int(rng.integers(2)) if rng.random() < RANDOM_ACTIONS else action

    rollout = roll_out(ENV_ID, act, DATA_STEPS)
    mean, std = rollout.obs_mean.tolist(), rollout.obs_std.tolist()
    rows = len(rollout.observations)
    return rollout.transitions(discrete_meta(4, 2, rows, ENV_ID, obs_mean=mean, obs_std=std))


def mean_return(policy: Any, seeds: int = 1) -> list[float]:
    results = evaluate_policy(ENV_ID, policy, EVAL_EPISODES, EVAL_SEED, None, None, seeds=seeds)
    return [result.mean_return for result in results]


def test_random_policy_returns_what_the_margin_assumes() -> None:
    rng = np.random.default_rng(0)
    (random,) = mean_return(lambda obs: rng.integers(0, 2, size=len(obs)))
    print(f"\nuniform-random policy: CartPole-v1 return {random:.1f}")
    assert random < RANDOM_RETURN + 10, random


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", algorithm_names(discrete_actions=True))
def test_beats_random_policy_on_cartpole(
    name: str, precision: Precision, cartpole_transitions: Transitions
) -> None:
    data = cartpole_transitions
    _, config_model = ALGORITHMS[name]
    config = config_model.model_validate({"hidden": (64, 64), **OVERRIDES.get(name, {})})
    config = config.with_default_lr(LR)
    algo = make_algorithm(name, data.meta.obs_dim, data.meta.act_dim, config, "cpu", [0])
    buffer = ReplayBuffer.from_transitions(data, seeds=[0])
    update = accelerate(algo, precision=precision)
    for _ in range(UPDATES):
        metrics = update(buffer.sample(BATCH_SIZE))
    assert all(torch.isfinite(v).all() for v in metrics.values()), metrics
    policy = AgentPolicy(algo.act, data.meta, torch.device("cpu"))
    (score,) = mean_return(policy)
    print(f"\n{name} {precision}: CartPole-v1 return {score:.1f} (random about {RANDOM_RETURN})")
    assert score > RANDOM_RETURN + MARGIN, f"{name}: {score:.1f}"
