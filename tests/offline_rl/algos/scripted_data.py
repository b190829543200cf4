"""Transitions from a scripted policy run in an environment, built as preprocessing would
(observations normalised by the data's own statistics, `dones` only where an episode terminated),
for the learning tests that need data a learner can beat random on in seconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.envs import make_env
from transitions.loader import Transitions
from transitions.metadata import TransitionsMeta


@dataclass(frozen=True)
class Rollout:
    """`steps` rows of whole episodes (episode k reset with seed k), observations flattened."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    episodes: int

    @property
    def obs_mean(self) -> np.ndarray:
        return self.observations.mean(0)

    @property
    def obs_std(self) -> np.ndarray:
        return self.observations.std(0) + 1e-3

    def transitions(self, meta: TransitionsMeta) -> Transitions:
        """The rows as Transitions, observations normalised by `meta`'s statistics."""
        mean, std = np.asarray(meta.obs_mean), np.asarray(meta.obs_std)

        def normalised(rows: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(((rows - mean) / std).astype(np.float32))

        return Transitions(
            observations=normalised(self.observations),
            actions=torch.as_tensor(self.actions, dtype=torch.float32),
            rewards=torch.as_tensor(self.rewards, dtype=torch.float32),
            next_observations=normalised(self.next_observations),
            dones=torch.as_tensor(self.terminals, dtype=torch.float32),
            meta=meta,
        )


def roll_out(
    env_id: str,
    act: Callable[[Any], Any],
    steps: int,
    flatten: Callable[[Any], np.ndarray] = np.asarray,
) -> Rollout:
    """Run `act` (one observation -> one env action) for whole episodes until `steps` rows."""
    env = make_env(env_id)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "act", "rew", "next", "done")}
    episodes = 0
    while len(rows["obs"]) < steps:
        obs, _ = env.reset(seed=episodes)
        episodes += 1
        done = False
        while not done:
            action = act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            values = (flatten(obs), action, reward, flatten(next_obs), terminated)
            for key, value in zip(rows, values, strict=True):
                rows[key].append(value)
            obs, done = next_obs, terminated or truncated
    env.close()
    return Rollout(
        np.asarray(rows["obs"], dtype=np.float32),
        np.asarray(rows["act"]),
        np.asarray(rows["rew"], dtype=np.float32),
        np.asarray(rows["next"], dtype=np.float32),
        np.asarray(rows["done"], dtype=np.float32),
        episodes,
    )
