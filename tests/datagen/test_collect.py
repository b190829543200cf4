from __future__ import annotations

import gymnasium as gym
import numpy as np

from datagen.behavior.policies import RandomPolicy
from datagen.collection.rollouts import rollout_episodes


def _episodes(seed: int, steps: int = 500, num_envs: int = 3) -> list:  # type: ignore[type-arg]
    space = gym.make("Hopper-v5").action_space
    assert isinstance(space, gym.spaces.Box)
    return list(rollout_episodes("Hopper-v5", RandomPolicy(space, seed), steps, seed, num_envs))


def test_exact_step_budget_and_truncated_tail() -> None:
    episodes = _episodes(0, steps=500)
    assert sum(len(e) for e in episodes) == 500
    last = episodes[-1]
    assert last.terminations[-1] or last.truncations[-1]
    for episode in episodes:
        assert len(episode.observations) == len(episode) + 1
        assert not any(episode.terminations[:-1]) and not any(episode.truncations[:-1])


def test_same_seed_same_episodes() -> None:
    a, b = _episodes(3), _episodes(3)
    assert [e.seed for e in a] == [e.seed for e in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.arrays()["observations"], y.arrays()["observations"])


def test_episode_seed_reproduces_its_first_observation() -> None:
    episode = _episodes(5)[4]
    env = gym.make("Hopper-v5")
    first, _ = env.reset(seed=episode.seed)
    np.testing.assert_allclose(episode.observations[0], first)
