"""Behaviour policies over Discrete actions and Dict observations: the uniform random policy and
a DQN checkpoint, each repeatable under its seed; the DQN greedy when deterministic and
epsilon-greedy with its `final_epsilon` otherwise; Dict observations flattened in the
checkpoint's key order."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from core.checkpoint import save_checkpoint
from datagen.behavior.config import DQNConfig
from datagen.behavior.dqn import DQN
from datagen.behavior.policies import DQNPolicy, RandomPolicy, dqn_checkpoint, load_policy
from transitions.spaces import ObservationLayout

OBS = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    agent = DQN(4, 3, DQNConfig(hidden=(8,), final_epsilon=0.3), torch.device("cpu"))
    path = tmp_path / "step_10.pt"
    save_checkpoint(path, dqn_checkpoint(agent, 4, 3, 1, 10, "Test-v0"))
    return path


def test_random_discrete_policy_is_uniform_in_the_space_and_repeats_under_its_seed() -> None:
    space = gym.spaces.Discrete(3, start=-1)
    a, b = RandomPolicy(space, 7)(OBS), RandomPolicy(space, 7)(OBS)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and a.shape == (256,) and set(a.tolist()) == {-1, 0, 1}
    assert not np.array_equal(a, RandomPolicy(space, 8)(OBS))
    batch = {"x": OBS[:, :2], "y": OBS[:, 2:]}  # a Dict observation's batch
    assert RandomPolicy(space, 7)(batch).shape == (256,)


def test_dqn_policy_greedy_when_deterministic(checkpoint: Path) -> None:
    policy = load_policy(checkpoint, deterministic=True, seed=1)
    assert isinstance(policy, DQNPolicy)
    greedy = policy.agent.q(torch.as_tensor(OBS)[None])[0].argmax(-1).numpy() + 1
    np.testing.assert_array_equal(policy(OBS), greedy)
    np.testing.assert_array_equal(load_policy(checkpoint, deterministic=True, seed=2)(OBS), greedy)


def test_dqn_policy_samples_epsilon_greedily_and_repeats_under_its_seed(checkpoint: Path) -> None:
    greedy = load_policy(checkpoint, deterministic=True)(OBS)
    first = load_policy(checkpoint, seed=5)
    a = np.concatenate([first(OBS) for _ in range(8)])
    second = load_policy(checkpoint, seed=5)
    np.testing.assert_array_equal(a, np.concatenate([second(OBS) for _ in range(8)]))
    assert a.dtype == np.int64 and set(a.tolist()) <= {1, 2, 3}
    # epsilon 0.3 of uniform choices over 3 actions: 0.2 of the actions differ from the greedy one
    differ = float(np.mean(a != np.tile(greedy, 8)))
    assert 0.15 < differ < 0.25, differ
    assert not np.array_equal(a, np.concatenate([load_policy(checkpoint, seed=6)(OBS)] * 8))


def test_dqn_policy_flattens_a_dict_observation_in_the_checkpoint_key_order(
    tmp_path: Path,
) -> None:
    agent = DQN(4, 2, DQNConfig(hidden=(8,)), torch.device("cpu"))
    layout = ObservationLayout(4, (("b", 3), ("a", 1)))
    path = tmp_path / "dict.pt"
    save_checkpoint(path, dqn_checkpoint(agent, 4, 2, 0, 1, "Test-v0", layout))
    flat = load_policy(tmp_path / "dict.pt", deterministic=True)
    batch = {"a": OBS[:, 3:], "b": OBS[:, :3]}
    np.testing.assert_array_equal(flat(batch), agent.act(torch.as_tensor(OBS)[None])[0].numpy())
