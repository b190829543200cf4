"""Small Minari datasets of the spaces beyond Box/Box, written by Minari itself
(`minari.create_dataset_from_buffers`), so the files are what Minari stores: CartPole-v1 (Box
observations, Discrete(2) actions) and DictPoint-v0, registered here (Dict observations of three
boxes, Discrete(3, start=-1) actions)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from gymnasium import spaces
from minari.data_collector import EpisodeBuffer

DICT_ENV = "DictPoint-v0"
DICT_KEYS = {"velocity": 3, "position": 2, "goal": 1}  # Dict sorts them: goal, position, velocity


class DictPointEnv(gym.Env[dict[str, Any], np.int64]):
    """A point pushed by -1, 0 or +1 along each axis; observations are a Dict of boxes."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {key: spaces.Box(-10.0, 10.0, (width,), np.float32) for key, width in DICT_KEYS.items()}
        )
        self.action_space = spaces.Discrete(3, start=-1)
        self.state: dict[str, np.ndarray] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.state = {
            key: self.np_random.uniform(-1, 1, width).astype(np.float32)
            for key, width in DICT_KEYS.items()
        }
        return {k: v.copy() for k, v in self.state.items()}, {}

    def step(
        self, action: np.int64
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.state["velocity"] += np.float32(action) * 0.1
        self.state["position"] += self.state["velocity"][:2]
        distance = float(np.abs(self.state["position"] - self.state["goal"][0]).sum())
        terminated = bool(self.np_random.random() < 0.1)
        return {k: v.copy() for k, v in self.state.items()}, -distance, terminated, False, {}


if DICT_ENV not in gym.registry:
    gym.register(DICT_ENV, entry_point=f"{__name__}:DictPointEnv", max_episode_steps=12)


@contextlib.contextmanager
def _datasets_path(root: Path) -> Iterator[None]:
    """Minari writes and loads datasets under MINARI_DATASETS_PATH."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _stack(observations: list[Any]) -> Any:
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


def write_rollouts(root: Path, dataset_id: str, env_id: str, episodes: int, seed: int) -> Path:
    """`episodes` uniform-random episodes of `env_id` as a Minari dataset at root/dataset_id."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    buffers = []
    for index in range(episodes):
        observation, _ = env.reset(seed=seed + index)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        done = False
        while not done:
            action = env.action_space.sample()
            observation, reward, terminated, truncated, _ = env.step(action)
            observations.append(observation)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(terminated)
            truncations.append(truncated)
            done = terminated or truncated
        buffers.append(
            EpisodeBuffer(
                id=index,
                observations=_stack(observations),
                actions=np.asarray(actions),
                rewards=rewards,
                terminations=terminations,
                truncations=truncations,
                infos={},
            )
        )
    # Minari warns of every metadata field left out (author, permalink, ...).
    with _datasets_path(root), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env, algorithm_name="uniform random", description="test"
        )
    env.close()
    return root / dataset_id


def load_episodes(root: Path, dataset_id: str) -> list[Any]:
    """The dataset's episodes as Minari itself reads them."""
    with _datasets_path(root):
        return list(minari.load_dataset(dataset_id).iterate_episodes())
