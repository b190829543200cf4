"""Soft Actor-Critic (Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", 2018),
the behaviour-policy learner. It follows the offline algorithm contract, so it reuses the shared
networks and the device-resident buffer; only its batches come from a growing replay buffer.

Defaults are the paper's: lr 3e-4, batch 256, tau 0.005, gamma 0.99, automatic temperature with
target entropy -|A|. Deviations, both for speed and neither changing what is learned:
- the twin critics run as one batched ensemble network;
- the critic, actor and temperature losses are taken at the same parameters and stepped by one
  fused Adam step, instead of three steps where the actor's loss reads the critic just stepped:
  here it reads the critic one update older. The actor's loss reads the critic `frozen`, so its
  gradient reaches the actor only, and the critic's loss reads the actor's samples without a
  graph: the two halves share nothing but their inputs, and with `side_thread` the critic's runs
  on a second CPU thread beside the actor's (offline_rl/side_thread.py; the same result).
  `benchmarks/sac_learning.py` checks the learning curves against a plain SAC over seeds.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import Tensor

from datagen.behavior.config import SACConfig
from offline_rl.actors import TanhGaussianActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.networks import (
    EnsembleCritic,
    adam_step,
    grad_norm,
    make_adam,
    q_stats,
    soft_update,
)
from offline_rl.seeds import SeedNoise
from offline_rl.side_thread import SideThread
from offline_rl.speed import autocast_dtype
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
        self,
        obs_dim: int,
        act_dim: int,
        config: SACConfig,
        device: torch.device,
        seed: int = 0,
        side_thread: bool = False,
    ) -> None:
        self.config, self.seeds = config, 1  # one learner: tensors carry a seed dimension of 1
        self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden).to(device)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, ensemble_size=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.full((1,), float(config.init_temperature), device=device).log()
        self.log_alpha.requires_grad_(True)
        self.noise = SeedNoise([seed], device)  # exploration and the update's action samples
        self.act_dim, self.device_type, self.target_entropy = act_dim, device.type, -float(act_dim)
        self.side = SideThread(device, enabled=side_thread)
        # One optimiser over every learned tensor: one fused Adam step for all three losses.
        self.optimizer = make_adam(
            [*self.actor.parameters(), *self.critic.parameters(), self.log_alpha],  # type: ignore[list-item]
            config.lr,
        )

    def update(self, batch: Batch, diagnostics: bool = True) -> dict[str, Tensor]:
        """One step of all three losses; the metrics are the losses, the temperature and the
        entropy, and with `diagnostics` also the gradient norms and Q statistics, which cost ~4%
        of a CPU step and which the behaviour loop reads only on the steps it logs."""
        alpha = self.log_alpha.exp().detach()[:, None]
        # Both samples' noise first, in the order of a sequential update: the halves then draw
        # nothing, and the critic's may run on the side thread (same numbers, same results).
        shape, dtype = (
            (batch.observations.shape[1], 1, self.act_dim),
            autocast_dtype(self.device_type),
        )
        next_eps, eps = self.noise.randn(shape, dtype), self.noise.randn(shape, dtype)
        self.optimizer.zero_grad(set_to_none=True)
        critic = self.side.run(self.critic_step, batch, next_eps, alpha, diagnostics)
        try:
            action, log_prob = self.sample(batch.observations, eps)
            q_pi = self.critic(batch.observations, action, frozen=True).min(0).values
            actor_loss = (alpha * log_prob - q_pi).mean(-1)
            entropy_gap = log_prob.detach() + self.target_entropy
            alpha_loss = -(self.log_alpha[:, None] * entropy_gap).mean(-1)
            (actor_loss + alpha_loss).sum().backward()
            actor_diagnostics = {"grad_norm/actor": grad_norm(self.actor, 1)} if diagnostics else {}
        finally:  # never leave the branch writing gradients behind an error
            critic_metrics = critic.result()

        adam_step(self.optimizer)
        soft_update(self.critic_target, self.critic, self.config.tau)
        actor_metrics = {
            "actor_loss": actor_loss.detach(),
            "alpha": alpha[:, 0],
            "entropy": -log_prob.detach().mean(-1),
        }
        return critic_metrics | actor_metrics | actor_diagnostics

    def critic_step(
        self, batch: Batch, next_eps: Tensor, alpha: Tensor, diagnostics: bool = True
    ) -> dict[str, Tensor]:
        """The critics' soft TD loss and its gradients (backward done); its metrics."""
        cfg = self.config
        with torch.no_grad():
            next_action, next_log_prob = self.sample(batch.next_observations, next_eps)
            next_q = self.critic_target(batch.next_observations, next_action).min(0).values
            target = batch.rewards + cfg.discount * (1.0 - batch.dones) * (
                next_q - alpha * next_log_prob
            )
        q = self.critic(batch.observations, batch.actions)
        critic_loss = (q - target).square().mean(-1).sum(0)
        critic_loss.sum().backward()
        metrics = {"critic_loss": critic_loss.detach()}
        if diagnostics:
            metrics |= {"grad_norm/critic": grad_norm(self.critic, 1), **q_stats(q)}
        return metrics

    def sample(self, obs: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """Actions (1, B, A) and their log-probabilities (1, B) for draws `eps` (1, B, 1, A)."""
        actions, log_prob = self.actor.distribution(obs).reparameterised(eps)
        return actions.squeeze(-2), log_prob.squeeze(-1)

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
