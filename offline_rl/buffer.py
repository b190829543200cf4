"""Device-resident replay buffer and uniform batch sampler: no host round trip per batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offline_rl.transitions import Transitions


@dataclass(frozen=True)
class Batch:
    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    dones: Tensor
    next_actions: Tensor | None = None  # dataset action at s' (offline data only; ReBRAC uses it)


class ReplayBuffer:
    """Fixed-capacity storage on one device; grows by `add` (online SAC) or is filled once (offline)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.capacity = capacity
        self.observations = torch.zeros(capacity, obs_dim, device=self.device)
        self.actions = torch.zeros(capacity, act_dim, device=self.device)
        self.rewards = torch.zeros(capacity, device=self.device)
        self.next_observations = torch.zeros(capacity, obs_dim, device=self.device)
        self.dones = torch.zeros(capacity, device=self.device)
        self.next_actions: Tensor | None = None
        self.size = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    @classmethod
    def from_transitions(cls, data: Transitions, seed: int = 0) -> ReplayBuffer:
        """Wrap already-loaded tensors without copying them."""
        buffer = cls.__new__(cls)
        buffer.device = data.observations.device
        buffer.capacity = len(data)
        buffer.observations = data.observations
        buffer.actions = data.actions
        buffer.rewards = data.rewards
        buffer.next_observations = data.next_observations
        buffer.dones = data.dones
        buffer.next_actions = data.next_actions
        buffer.size = len(data)
        buffer.generator = torch.Generator(device=buffer.device)
        buffer.generator.manual_seed(seed)
        return buffer

    def add(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, done: Tensor
    ) -> None:
        """Append a batch of transitions (leading dimension = number of transitions)."""
        n = obs.shape[0]
        if self.size + n > self.capacity:
            raise ValueError(
                f"replay buffer full: capacity {self.capacity}, adding {n} to {self.size}"
            )
        rows = slice(self.size, self.size + n)
        self.observations[rows] = obs
        self.actions[rows] = action
        self.rewards[rows] = reward
        self.next_observations[rows] = next_obs
        self.dones[rows] = done
        self.size += n

    def sample(self, batch_size: int) -> Batch:
        """Uniform indices drawn on the buffer's device from its own generator."""
        idx = torch.randint(
            0, self.size, (batch_size,), device=self.device, generator=self.generator
        )
        rows = self._rows
        return Batch(
            observations=rows(self.observations, idx),
            actions=rows(self.actions, idx),
            rewards=rows(self.rewards, idx),
            next_observations=rows(self.next_observations, idx),
            dones=rows(self.dones, idx),
            next_actions=None if self.next_actions is None else rows(self.next_actions, idx),
        )

    @staticmethod
    def _rows(tensor: Tensor, idx: Tensor) -> Tensor:
        # index_select: half the time of tensor[idx] per call on CPU (no advanced-indexing setup).
        return torch.index_select(tensor, 0, idx)
