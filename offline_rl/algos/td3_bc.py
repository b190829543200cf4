"""TD3+BC: Fujimoto & Gu, "A Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2021.

Update rule (paper Alg. 1 / CORL `td3_bc.py`):
    critic:  y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))
    actor (every `policy_freq` critic steps):
             maximise  lambda Q_1(s, pi(s)) - (pi(s) - a)^2,   lambda = alpha / mean|Q_1(s, pi(s))|
    targets: Polyak averaging with tau after each actor step.
Defaults are the paper's: alpha 2.5, noise 0.2 clipped at 0.5, policy_freq 2, tau 0.005, lr 3e-4.
Deviation: the twin critics are one ensemble network evaluated in a single batched matmul; this
changes the arithmetic order only, not the maths.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from offline_rl.algos.base import AlgoConfig, load_parts, parts_state
from offline_rl.buffer import Batch
from offline_rl.networks import (
    DeterministicActor,
    EnsembleCritic,
    grad_norm,
    make_adam,
    q_stats,
    soft_update,
)
from offline_rl.streams import SideStream


class TD3BCConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    alpha: float = Field(default=2.5, ge=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    policy_noise: float = Field(default=0.2, ge=0)
    noise_clip: float = Field(default=0.5, ge=0)
    policy_freq: int = Field(default=2, ge=1)
    hidden: tuple[int, ...] = (256, 256)


class TD3BC:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "actor_target",
        "critic_target",
        "actor_opt",
        "critic_opt",
    )

    def __init__(
        self, obs_dim: int, act_dim: int, config: TD3BCConfig, device: torch.device
    ) -> None:
        self.config = config
        self.actor = DeterministicActor(obs_dim, act_dim, config.hidden).to(device)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, ensemble_size=2).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.side = SideStream(device)
        self.step = 0

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        self.step += 1
        actor_step = self.step % cfg.policy_freq == 0
        # The TD target runs on the side stream, beside the critic's and the actor's forward passes
        # (and the target's own inputs that do not need the target actor).
        with self.side.branch(), torch.no_grad():
            next_pi = self.actor_target(batch.next_observations)
        noise = (torch.randn_like(batch.actions) * cfg.policy_noise).clamp(
            -cfg.noise_clip, cfg.noise_clip
        )
        discounts = cfg.discount * (1.0 - batch.dones)
        with self.side.branch(), torch.no_grad():
            next_action = (next_pi + noise).clamp(-1.0, 1.0)
            target_q = self.critic_target(batch.next_observations, next_action).min(0).values
            target = batch.rewards + discounts * target_q
        q = self.critic(batch.observations, batch.actions)
        if actor_step:  # pi(s) needs only the actor's weights, which the critic step leaves alone
            pi = self.actor(batch.observations)
            bc_loss = F.mse_loss(pi, batch.actions)
        self.side.join()
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        with self.side.branch():  # diagnostics, beside the optimiser step
            metrics = {
                "critic_loss": critic_loss.detach(),
                "grad_norm/critic": grad_norm(self.critic),
                "target_q_mean": target.mean(),
                **q_stats(q),
            }
        self.critic_opt.step()

        if actor_step:
            with self.side.branch():  # the critic's target needs the stepped critic only
                soft_update(self.critic_target, self.critic, cfg.tau)
            q_pi = self.critic(batch.observations, pi, members=1).squeeze(0)  # Q_1 only, as in TD3
            lmbda = cfg.alpha / q_pi.abs().mean().detach()
            actor_loss = -lmbda * q_pi.mean() + bc_loss
            self.actor_opt.zero_grad(set_to_none=True)
            # Gradients reach the actor's weights only: the critic's would be discarded.
            actor_loss.backward(inputs=list(self.actor.parameters()))
            with self.side.branch():
                metrics |= {
                    "actor_loss": actor_loss.detach(),
                    "bc_loss": bc_loss.detach(),
                    "grad_norm/actor": grad_norm(self.actor),
                }
            self.actor_opt.step()
            soft_update(self.actor_target, self.actor, cfg.tau)
        self.side.join()
        return metrics

    def graph_key(self) -> bool:
        """Whether the next update also trains the actor (one CUDA graph per branch)."""
        return (self.step + 1) % self.config.policy_freq == 0

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
