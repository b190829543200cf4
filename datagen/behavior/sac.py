"""Soft Actor-Critic (Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", 2018),
the behaviour-policy learner. It follows the offline algorithm contract, so it reuses the shared
networks and the device-resident buffer; only its batches come from a growing replay buffer.

Defaults are the paper's: lr 3e-4, batch 256, tau 0.005, gamma 0.99, automatic temperature with
target entropy -|A|. Deviations, both for speed and neither changing what is learned:
- the twin critics run as one batched ensemble network;
- the critic, actor and temperature losses are taken at the same parameters and summed into one
  backward pass and one fused Adam step, instead of three passes where the actor's loss reads
  the critic just stepped: here it reads the critic one update older. The actor's loss reads
  the critic `frozen`, so its gradient reaches the actor only. `benchmarks/sac_learning.py`
  checks the learning curves against a plain SAC over seeds.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import Tensor

from datagen.behavior.config import SACConfig
from offline_rl.actors import TanhGaussianActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.networks import EnsembleCritic, grad_norm, make_adam, q_stats, soft_update
from offline_rl.seeds import SeedNoise
from transitions.loader import Batch


class SAC:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "critic_target",
        "log_alpha",
        "optimizer",
        "noise",
    )

    def __init__(
        self, obs_dim: int, act_dim: int, config: SACConfig, device: torch.device, seed: int = 0
    ) -> None:
        self.config, self.seeds = config, 1  # one learner: tensors carry a seed dimension of 1
        self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden).to(device)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, ensemble_size=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.full((1,), float(config.init_temperature), device=device).log()
        self.log_alpha.requires_grad_(True)
        self.noise = SeedNoise([seed], device)  # exploration and the update's action samples
        self.target_entropy = -float(act_dim)
        # One optimiser over every learned tensor: the losses share one backward pass.
        self.optimizer = make_adam(
            [*self.actor.parameters(), *self.critic.parameters(), self.log_alpha],  # type: ignore[list-item]
            config.lr,
        )

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        alpha = self.log_alpha.exp().detach()[:, None]
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(batch.next_observations, self.noise)
            next_q = self.critic_target(batch.next_observations, next_action).min(0).values
            target = batch.rewards + cfg.discount * (1.0 - batch.dones) * (
                next_q - alpha * next_log_prob
            )
        q = self.critic(batch.observations, batch.actions)
        critic_loss = (q - target).square().mean(-1).sum(0)

        action, log_prob = self.actor.sample(batch.observations, self.noise)
        q_pi = self.critic(batch.observations, action, frozen=True).min(0).values
        actor_loss = (alpha * log_prob - q_pi).mean(-1)
        alpha_loss = -(self.log_alpha[:, None] * (log_prob.detach() + self.target_entropy)).mean(-1)

        self.optimizer.zero_grad(set_to_none=True)
        (critic_loss + actor_loss + alpha_loss).sum().backward()
        critic_grad, actor_grad = grad_norm(self.critic, 1), grad_norm(self.actor, 1)
        self.optimizer.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha[:, 0],
            "entropy": -log_prob.detach().mean(-1),
            "grad_norm/critic": critic_grad,
            "grad_norm/actor": actor_grad,
            **q_stats(q),
        }

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        """The critics' TD error to the policy's mode at s' (no entropy term, no sampling)."""
        next_q = self.critic_target(batch.next_observations, self.actor(batch.next_observations))
        target = batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q.min(0).values
        q = self.critic(batch.observations, batch.actions)
        return {"td_error": (q - target).square().mean((0, 2))}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions (1, n, A) for observations (1, n, obs_dim)."""
        return self.actor(obs, deterministic=deterministic, noise=self.noise)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
