"""Acting with history: a sequence model (Decision Transformer) acts from the last `context` steps
of its episode and the return it still has to collect. `ContextActor` keeps that window for every
environment of a batched evaluation on the device, in the layout the window sampler trains on
(offline_rl/windows.py): the newest step last, the steps before the episode's start padded.

Per environment step: `__call__` writes the new observation, the return still to go and the
step's index into the window's last slot and asks the model for the action, which it also keeps;
`observe` takes the rewards (the return to go drops by each) and the episodes that ended (their
windows start afresh from the target return), then shifts every window by one step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from transitions.loader import WindowBatch


class ContextActor:
    """`act` maps windows (S, n, K, ...) to the last steps' actions (S, n, act_dim). Returns and
    rewards are in the model's units: `reward_scale` takes an environment reward there."""

    def __init__(
        self,
        act: Callable[[WindowBatch], Tensor],
        seeds: int,
        context: int,
        obs_dim: int,
        act_dim: int,
        target_return: float,
        reward_scale: float,
        device: torch.device,
        max_timestep: int | None = None,
    ) -> None:
        self.act = act
        self.seeds, self.context = seeds, context
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.target_return, self.reward_scale = target_return, reward_scale
        self.device = device
        self.max_timestep = max_timestep
        self.start(seeds)  # one environment per seed until told otherwise

    def start(self, envs: int) -> None:
        """New episodes in `envs` environments (S * n, seed-major): empty windows."""
        if envs % self.seeds:
            raise ValueError(f"{envs} environments do not split over {self.seeds} seeds")
        shape, device = (self.seeds, envs // self.seeds, self.context), self.device
        self.to_go = torch.full(shape[:2], self.target_return, device=device)
        self.step = torch.zeros(shape[:2], dtype=torch.int64, device=device)
        self.mask = torch.zeros(shape, dtype=torch.bool, device=device)
        self.observations = torch.zeros((*shape, self.obs_dim), device=device)
        self.actions = torch.zeros((*shape, self.act_dim), device=device)
        self.returns_to_go = torch.zeros(shape, device=device)
        self.timesteps = torch.zeros(shape, dtype=torch.int64, device=device)

    def __call__(self, obs: Tensor) -> Tensor:
        """The actions (S, n, act_dim) at observations (S, n, obs_dim)."""
        self.observations[:, :, -1] = obs
        self.returns_to_go[:, :, -1] = self.to_go
        step = (
            self.step if self.max_timestep is None else self.step.clamp(max=self.max_timestep - 1)
        )
        self.timesteps[:, :, -1] = step
        self.mask[:, :, -1] = True
        window = WindowBatch(
            self.observations, self.actions, self.returns_to_go, self.timesteps, self.mask
        )
        action = self.act(window)
        self.actions[:, :, -1] = action
        return action

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """The rewards (S * n,) of the actions just taken and which episodes ended with them."""
        shape = self.to_go.shape
        reward = torch.as_tensor(rewards, dtype=torch.float32, device=self.device).view(shape)
        done = torch.as_tensor(dones, dtype=torch.bool, device=self.device).view(shape)
        self.to_go = torch.where(done, self.target_return, self.to_go - reward * self.reward_scale)
        self.step = torch.where(done, 0, self.step + 1)
        fields = (self.observations, self.actions, self.returns_to_go, self.timesteps, self.mask)
        for field in fields:
            field[:, :, :-1] = field[:, :, 1:].clone()  # one step older
            field[:, :, -1] = 0
            field[done] = 0  # an ended episode's window starts empty
