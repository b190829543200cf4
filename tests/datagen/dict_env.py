"""A small registered test environment with Dict(Box, Box) observations (gymnasium-robotics'
envs, the usual Dict-observation ones, are not installed): a point in the plane pushed towards a
goal, observed as {"position": (2,), "goal": (2,)}, with Box actions in [-1, 1]^2, a positive
reward that grows near the goal (1 / (1 + distance)) and 50 steps."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "DictPointTest-v0"


class DictPointEnv(gym.Env[Any, np.ndarray]):
    def __init__(self) -> None:
        box = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"position": box, "goal": box})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros(2, np.float32)
        self.goal = np.zeros(2, np.float32)

    def _observation(self) -> dict[str, np.ndarray]:
        return {"position": self.position.copy(), "goal": self.goal.copy()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-2, 2, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-2, 2, 2).astype(np.float32)
        return self._observation(), {}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        step = 0.2 * np.clip(np.asarray(action, np.float32), -1, 1)
        self.position = np.clip(self.position + step, -5, 5).astype(np.float32)
        distance = float(np.linalg.norm(self.position - self.goal))
        return self._observation(), 1.0 / (1.0 + distance), distance < 0.1, False, {}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=f"{__name__}:DictPointEnv", max_episode_steps=50)
