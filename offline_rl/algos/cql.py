"""CQL: Kumar, Zhou, Tucker & Levine, "Conservative Q-Learning for Offline Reinforcement Learning",
NeurIPS 2020. The continuous CQL(H) variant on a SAC learner, as in CORL's `cql.py`.

Update rule, every step:
    actor:   minimise  alpha log pi(a~|s) - min_i Q_i(s, a~),  a~ ~ pi(.|s)
             (the first `bc_steps` updates use alpha log pi(a~|s) - log pi(a|s) instead)
    alpha:   SAC's automatic entropy tuning towards the target entropy -|A|
    critic:  TD error to r + gamma (1 - d) min_i Q'_i(s', a'), a' ~ pi(.|s') (no entropy backup)
             + cql_alpha * (logsumexp_a Q_i(s, a) / T * T - Q_i(s, a_data))
             where the logsumexp runs over `n_actions` uniform actions, `n_actions` policy actions
             at s and at s', each importance-weighted by its sampling density (CQL(H), paper
             App. F). With `lagrange: true` the weight becomes exp(log alpha') * cql_alpha and
             alpha' is tuned so the gap stays at `target_action_gap` (paper's automatic alpha).
    targets: Polyak averaging with `tau` after each step.
Defaults are CORL's for MuJoCo locomotion: cql_alpha 10, 10 sampled actions, temperature 1,
actor lr 3e-5, alpha lr = actor lr, tau 0.005, 3x256 networks, no BC warm-up (CORL's critic
lr 3e-4 is `-S lr=3e-4`: critic_lr null follows the top-level `lr`, 1e-3),
no Lagrange (target_action_gap 5 is the paper's value for when it is switched on).
CORL's reward_scale/bias are data settings here (`preprocess.reward_scale` / `reward_shift`).
Deviations: PyTorch's default initialisation instead of CORL's orthogonal one; the twin critics
run as one batched ensemble network (arithmetic order only).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from offline_rl.actors import TanhGaussianActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import CQLConfig
from offline_rl.networks import EnsembleCritic, make_adam, soft_update
from offline_rl.seeds import SeedNoise
from transitions.loader import Batch


class CQL:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "critic_target",
        "log_alpha",
        "log_alpha_prime",
        "actor_opt",
        "critic_opt",
        "alpha_opt",
        "alpha_prime_opt",
        "noise",
    )

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: CQLConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.act_dim = act_dim
        self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden, seeds=self.seeds)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, seeds=self.seeds)
        self.actor.to(device)
        self.critic.to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros(self.seeds, device=device, requires_grad=True)
        self.log_alpha_prime = torch.zeros(self.seeds, device=device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.alpha_opt = make_adam([self.log_alpha], config.lr("actor_lr"))  # type: ignore[list-item]
        self.alpha_prime_opt = make_adam([self.log_alpha_prime], config.lr("critic_lr"))  # type: ignore[list-item]
        self.noise = SeedNoise(seeds, device)
        self.step = 0

    def conservative_penalty(
        self, batch: Batch, q_data: Tensor, next_actions: Tensor, next_log_pi: Tensor
    ) -> Tensor:
        """logsumexp over sampled actions minus Q on the data, per critic and seed: (E, S).
        `next_actions` (S, B, n, A) were drawn from pi(.|s') with log-densities `next_log_pi`."""
        cfg, n = self.config, self.config.n_actions
        with torch.no_grad():
            current_actions, current_log_pi = self.actor.sample_n(batch.observations, n, self.noise)
            random_actions = self.noise.rand(current_actions.shape[1:]) * 2.0 - 1.0
            # log of the uniform density on [-1, 1]^A
            random_log_density = torch.full_like(current_log_pi, self.act_dim * math.log(0.5))
        # All 3n candidate actions per state through the critic in one batched pass, at s.
        actions = torch.cat([random_actions, next_actions, current_actions], dim=2)
        log_density = torch.cat([random_log_density, next_log_pi, current_log_pi], dim=2)
        seeds, batch_size, candidates_per_state, _ = actions.shape
        obs = batch.observations.unsqueeze(2).expand(-1, -1, candidates_per_state, -1)
        q = self.critic(obs.flatten(1, 2), actions.flatten(1, 2))
        candidates = q.view(-1, seeds, batch_size, candidates_per_state) - log_density
        logsumexp = torch.logsumexp(candidates / cfg.temperature, dim=-1) * cfg.temperature
        return (logsumexp - q_data).mean(-1)

    def td_target(self, batch: Batch, next_actions: Tensor) -> Tensor:
        next_q = self.critic_target(batch.next_observations, next_actions).min(0).values
        return batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        self.step += 1
        action, log_pi = self.actor.sample(batch.observations, self.noise)
        alpha_loss = -(self.log_alpha[:, None] * (log_pi.detach() + self.target_entropy)).mean(-1)
        alpha = self.log_alpha.exp().detach()
        if self.step <= cfg.bc_steps:
            policy_term = self.actor.log_prob(batch.observations, batch.actions)
        else:
            policy_term = self.critic(batch.observations, action).min(0).values
        actor_loss = (alpha[:, None] * log_pi - policy_term).mean(-1)
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.sum().backward()
        self.alpha_opt.step()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.sum().backward(inputs=list(self.actor.parameters()))  # not the critic's
        self.actor_opt.step()

        with torch.no_grad():
            # One pass of the actor over s': the first draw is the TD target's a', the other
            # n_actions are the penalty's policy actions at s' (independent draws either way).
            next_actions, next_log_pi = self.actor.sample_n(
                batch.next_observations, cfg.n_actions + 1, self.noise
            )
            target = self.td_target(batch, next_actions[:, :, 0])
        q = self.critic(batch.observations, batch.actions)
        td_loss = (q - target).square().mean(-1).sum(0)
        gap = self.conservative_penalty(batch, q, next_actions[:, :, 1:], next_log_pi[:, :, 1:])
        if cfg.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            conservative = alpha_prime.detach() * cfg.cql_alpha * (gap - cfg.target_action_gap)
            alpha_prime_loss = -(
                alpha_prime * cfg.cql_alpha * (gap.detach() - cfg.target_action_gap)
            ).mean(0)
            self.alpha_prime_opt.zero_grad(set_to_none=True)
            alpha_prime_loss.sum().backward()
            self.alpha_prime_opt.step()
        else:
            conservative = cfg.cql_alpha * gap
        critic_loss = td_loss + conservative.sum(0)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "td_loss": td_loss.detach(),
            "cql_gap": gap.detach().mean(0),
            "alpha": alpha,
            "alpha_prime": self.log_alpha_prime.detach().exp(),
            "q_mean": q.detach().mean((0, 2)),
        }

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        q = self.critic(batch.observations, batch.actions)
        target = self.td_target(batch, self.actor(batch.next_observations))  # the policy's mode
        return {
            "td_error": (q - target).square().mean((0, 2)),
            "action_mse": (self.act(batch.observations) - batch.actions).square().mean((1, 2)),
        }

    def graph_key(self) -> bool:
        """Whether the next update is one of the BC warm-up updates (one CUDA graph per branch)."""
        return self.step + 1 <= self.config.bc_steps

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs, deterministic=deterministic, noise=self.noise)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
