"""Behaviour cloning: regress the dataset's actions with a deterministic tanh policy.

Follows CORL's `any_percent_bc` with the whole dataset (frac=1): MSE on actions, Adam, batch 256,
256x256 ReLU MLP, observations normalised. No deviation; CORL's learning rate, 3e-4, is
`-S lr=3e-4` (`actor_lr` null follows the top-level `lr`, 1e-3 in params.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from offline_rl.actors import DeterministicActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import BCConfig
from offline_rl.networks import grad_norm, make_adam
from transitions.loader import Batch


class BC:
    PARTS: ClassVar[tuple[str, ...]] = ("actor", "actor_opt")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: BCConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.actor = DeterministicActor(obs_dim, act_dim, config.hidden, seeds=self.seeds)
        self.actor.to(device)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))

    def update(self, batch: Batch) -> dict[str, Tensor]:
        loss = (self.actor(batch.observations) - batch.actions).square().mean((1, 2))
        self.actor_opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # per-seed losses: each seed's gradient is its own
        actor_grad = grad_norm(self.actor, self.seeds)
        self.actor_opt.step()
        return {"actor_loss": loss.detach(), "grad_norm/actor": actor_grad}

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        error = (self.actor(batch.observations) - batch.actions).square().mean((1, 2))
        return {"action_mse": error}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
