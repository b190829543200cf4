"""Behaviour cloning for Discrete actions: a categorical policy fitted to the dataset's actions.

Follows d3rlpy's `DiscreteBC`: cross-entropy of the logits against the dataset's action index plus
`beta` times the mean squared logit (keeps the logits from growing without bound on separable
data), Adam, 256x256 ReLU MLP, observations normalised; image observations go through the shared
CNN encoder first (offline_rl/networks.py), scaled by 1/255 instead. d3rlpy's learning rate, 1e-3, is the
top-level `lr`'s default (`actor_lr` null follows it). Acting is greedy: the most likely index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from offline_rl.actors import CategoricalActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import DiscreteBCConfig
from offline_rl.networks import Observations, grad_norm, make_adam, values_at
from transitions.loader import Batch


class DiscreteBC:
    PARTS: ClassVar[tuple[str, ...]] = ("actor", "actor_opt")
    IMAGES: ClassVar[bool] = True  # builds its networks from the observation layout

    def __init__(
        self,
        obs_dim: Observations,
        act_dim: int,
        config: DiscreteBCConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.actor = CategoricalActor(obs_dim, act_dim, config.hidden, seeds=self.seeds)
        self.actor.to(device)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))

    def losses(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Per-seed loss (S,) and the logits (S, B, n)."""
        logits = self.actor.logits(batch.observations).float()  # fp32 softmax under autocast
        nll = -values_at(logits.log_softmax(-1), batch.actions)
        return nll.mean(-1) + self.config.beta * logits.square().mean((1, 2)), logits

    def update(self, batch: Batch) -> dict[str, Tensor]:
        loss, _ = self.losses(batch)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # per-seed losses: each seed's gradient is its own
        actor_grad = grad_norm(self.actor, self.seeds)
        self.actor_opt.step()
        return {"actor_loss": loss.detach(), "grad_norm/actor": actor_grad}

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        loss, logits = self.losses(batch)
        return {"actor_loss": loss, "action_mismatch": action_mismatch(logits, batch.actions)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Greedy action indices, (S, B) int64."""
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)


def action_mismatch(scores: Tensor, actions: Tensor) -> Tensor:
    """Per seed, the fraction of rows whose highest-scoring action (logit or Q-value, (S, B, n))
    is not the dataset's (S, B): the discrete counterpart of the Box algorithms' action_mse."""
    return (scores.argmax(-1) != actions.long()).float().mean(-1)
