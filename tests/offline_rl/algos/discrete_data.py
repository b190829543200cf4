"""Transitions with Discrete actions built in memory, for the algorithm tests: what
`load_transitions` gives for a Discrete(n) file (actions float32 indices of per-row shape ())."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from offline_rl.buffer import ReplayBuffer
from transitions.loader import Transitions
from transitions.metadata import TransitionsMeta


def in_memory_meta(obs_dim: int, act_dim: int, rows: int, **fields: Any) -> TransitionsMeta:
    """The header of rows built in memory: no transforms, no reference scores, one episode, Box
    actions in [-1, 1]; `fields` set any of it otherwise."""
    defaults: dict[str, Any] = {
        "env_id": "Hopper-v5",
        "dataset_ids": ("test/in-memory-v0",),
        "action_low": (-1.0,) * act_dim,
        "action_high": (1.0,) * act_dim,
        "obs_mean": (0.0,) * obs_dim,
        "obs_std": (1.0,) * obs_dim,
        "normalize_observations": False,
        "reward_scale": 1.0,
        "reward_shift": 0.0,
        "ref_min_score": None,
        "ref_max_score": None,
        "ref_score_source": "none",
        "num_episodes": 1,
    }
    return TransitionsMeta(obs_dim=obs_dim, act_dim=act_dim, size=rows, **(defaults | fields))


def discrete_meta(
    obs_dim: int,
    num_actions: int,
    rows: int,
    env_id: str = "CartPole-v1",
    action_start: int = 0,
    obs_mean: Sequence[float] | None = None,
    obs_std: Sequence[float] | None = None,
    observation_keys: tuple[tuple[str, int], ...] = (),
) -> TransitionsMeta:
    normalized: dict[str, Any] = {}
    if obs_mean is not None:  # normalised observations, their std 1 where not given
        std = (1.0,) * obs_dim if obs_std is None else tuple(obs_std)
        normalized = {"obs_mean": tuple(obs_mean), "obs_std": std, "normalize_observations": True}
    return in_memory_meta(
        obs_dim,
        num_actions,
        rows,
        env_id=env_id,
        dataset_ids=("test/discrete-v0",),
        action_low=(),
        action_high=(),
        num_actions=num_actions,
        action_start=action_start,
        observation_keys=observation_keys,
        **normalized,
    )


def random_discrete_transitions(
    obs_dim: int = 11,
    num_actions: int = 3,
    rows: int = 600,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Transitions:
    """Random rows: normal observations, uniform action indices, 5% terminal."""
    g = torch.Generator().manual_seed(seed)
    return Transitions(
        observations=torch.randn(rows, obs_dim, generator=g).to(device),
        actions=torch.randint(0, num_actions, (rows,), generator=g).float().to(device),
        rewards=torch.randn(rows, generator=g).to(device),
        next_observations=torch.randn(rows, obs_dim, generator=g).to(device),
        dones=(torch.rand(rows, generator=g) < 0.05).float().to(device),
        meta=discrete_meta(obs_dim, num_actions, rows),
    )


def discrete_buffer(
    seeds: Sequence[int] = (0,), device: torch.device | str = "cpu", rows: int = 600
) -> ReplayBuffer:
    """A replay buffer over `random_discrete_transitions` (11-wide observations, Discrete(3))."""
    data = random_discrete_transitions(rows=rows, device=device)
    return ReplayBuffer.from_transitions(data, seeds=seeds)
