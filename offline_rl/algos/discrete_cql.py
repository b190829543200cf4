"""Discrete CQL: Kumar, Zhou, Tucker & Levine, "Conservative Q-Learning for Offline Reinforcement
Learning", NeurIPS 2020, for Discrete actions on a Double DQN learner, as d3rlpy's `DiscreteCQL`.

Update rule, every step:
    critic:  Huber error of Q_i(s, a) to r + gamma (1 - d) min_i Q'_i(s', argmax_a' mean_i Q_i(s', a'))
             (Double DQN: the online critics choose a', the target critics value it)
             + cql_alpha * (logsumexp_a Q_i(s, a) - Q_i(s, a_data))   (CQL(H), exact over all actions)
    targets: copied from the critics every `target_update_interval` updates.
Acting is greedy in the critics' mean Q-value.
Defaults are d3rlpy's: learning rate 6.25e-5, discount 0.99, cql_alpha 1, target copy every 8000
updates, one critic, 256x256 ReLU MLP (d3rlpy's vector encoder); its batch size, 32, is
`train.batch_size`. The paper's discrete experiments (Atari) use QR-DQN heads; this is the plain
Q-value variant d3rlpy implements. Observations normalised, as every algorithm here.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import DiscreteCQLConfig
from offline_rl.algos.discrete_bc import action_mismatch
from offline_rl.networks import (
    EnsembleDiscreteCritic,
    Observations,
    grad_norm,
    hard_update,
    make_adam,
    values_at,
)
from transitions.loader import Batch


class DiscreteCQL:
    PARTS: ClassVar[tuple[str, ...]] = ("critic", "critic_target", "critic_opt")
    IMAGES: ClassVar[bool] = True  # builds its networks from the observation layout

    def __init__(
        self,
        obs_dim: Observations,
        act_dim: int,
        config: DiscreteCQLConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.critic = EnsembleDiscreteCritic(
            obs_dim, act_dim, config.hidden, config.n_critics, seeds=self.seeds
        )
        self.critic.to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.step = 0

    @torch.no_grad()
    def td_target(self, batch: Batch) -> Tensor:
        """r + gamma (1 - d) Q'(s', a'), a' greedy in the online critics: (S, B)."""
        next_actions = self.critic(batch.next_observations).mean(0).argmax(-1)
        next_q = values_at(self.critic_target(batch.next_observations), next_actions)
        return batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q.min(0).values

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        self.step += 1
        target = self.td_target(batch)
        q_all = self.critic(batch.observations).float()  # (E, S, B, n); fp32 under autocast
        q_data = values_at(q_all, batch.actions)  # (E, S, B)
        td_loss = F.smooth_l1_loss(q_data, target.expand_as(q_data), reduction="none")
        td_loss = td_loss.mean(-1).sum(0)  # per seed, summed over its critics
        gap = (torch.logsumexp(q_all, dim=-1) - q_data).mean(-1).sum(0)
        critic_loss = td_loss + cfg.cql_alpha * gap
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward()  # per-seed losses: each seed's gradient is its own
        critic_grad = grad_norm(self.critic, self.seeds)
        self.critic_opt.step()
        if self.step % cfg.target_update_interval == 0:
            hard_update(self.critic_target, self.critic)
        return {
            "critic_loss": critic_loss.detach(),
            "td_loss": td_loss.detach(),
            "cql_gap": gap.detach() / cfg.n_critics,
            "q_mean": q_data.detach().mean((0, 2)),
            "grad_norm/critic": critic_grad,
        }

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        q_all = self.critic(batch.observations)
        q_data = values_at(q_all, batch.actions)
        return {
            "td_error": (q_data - self.td_target(batch)).square().mean((0, 2)),
            "action_mismatch": action_mismatch(q_all.mean(0), batch.actions),
        }

    def graph_key(self) -> bool:
        """Whether the next update copies the target critics (one CUDA graph per branch)."""
        return (self.step + 1) % self.config.target_update_interval == 0

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Greedy action indices in the critics' mean Q-value, (S, B) int64."""
        return self.critic(obs).mean(0).argmax(-1)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
