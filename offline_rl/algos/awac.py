"""AWAC: Nair, Gupta, Dalal & Levine, "AWAC: Accelerating Online Reinforcement Learning with
Offline Datasets", 2020, in its offline form as CORL's `awac.py` runs it on D4RL.

Update rule, every step:
    critic:  minimise  (r + gamma (1 - d) min_i Q'_i(s', a') - Q_i(s, a))^2,  a' ~ pi(.|s')
    actor:   maximise  min(exp(A(s, a) / lambda), 100) log pi(a | s)  over dataset actions, with
             A(s, a) = min_i Q_i(s, a) - min_i Q_i(s, a~),  a~ ~ pi(.|s)  (one-sample V estimate)
    targets: Polyak averaging of the critics with `target_tau`.
Defaults are CORL's: lambda (awac_lambda) 1.0, which its published D4RL scores use; lr 3e-4 for
actor and critic, gamma 0.99, tau 0.005, 3x256 networks, Gaussian policy with a
state-independent log-std, advantage weights clipped at 100. Sweep `algos.awac.awac_lambda` for
the temperature the AWAC paper tunes per domain.
Deviations: the policy mean is tanh-bounded (CORL's is unbounded and its samples are clipped to
[-1, 1]), so act() always lies in the action box; the twin critics run as one batched ensemble
network (arithmetic order only).
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
from offline_rl.networks import EnsembleCritic, GaussianActor, make_adam, soft_update
from offline_rl.streams import SideStream

EXP_ADV_MAX = 100.0


class AWACConfig(AlgoConfig):
    LR_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr")
    actor_lr: float | None = Field(default=None, gt=0, le=1)
    critic_lr: float | None = Field(default=None, gt=0, le=1)
    awac_lambda: float = Field(default=1.0, gt=0)
    discount: float = Field(default=0.99, gt=0, le=1)
    target_tau: float = Field(default=0.005, gt=0, le=1)
    hidden: tuple[int, ...] = (256, 256, 256)


class AWAC:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "critic_target",
        "actor_opt",
        "critic_opt",
    )

    def __init__(
        self, obs_dim: int, act_dim: int, config: AWACConfig, device: torch.device
    ) -> None:
        self.config = config
        self.actor = GaussianActor(obs_dim, act_dim, config.hidden).to(device)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, ensemble_size=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.side = SideStream(device)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        with self.side.branch(), torch.no_grad():  # the TD target, beside the critic's forward
            next_action = self.actor.distribution(batch.next_observations).rsample().clamp(-1, 1)
            next_q = self.critic_target(batch.next_observations, next_action).min(0).values
            target = batch.rewards + cfg.discount * (1.0 - batch.dones) * next_q
        q = self.critic(batch.observations, batch.actions)
        # pi(.|s) uses the actor's weights only, which the critic step leaves alone: run it early.
        dist = self.actor.distribution(batch.observations)
        self.side.join()
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        with self.side.branch():  # the critic's target needs the stepped critic only
            soft_update(self.critic_target, self.critic, cfg.target_tau)

        with torch.no_grad():
            policy_action = dist.rsample().clamp(-1.0, 1.0)
            v = self.critic(batch.observations, policy_action).min(0).values
            advantage = self.critic(batch.observations, batch.actions).min(0).values - v
            weights = torch.exp(advantage / cfg.awac_lambda).clamp(max=EXP_ADV_MAX)
        log_prob = dist.log_prob(batch.actions).sum(-1)
        actor_loss = -(weights * log_prob).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.side.join()
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q.detach().mean(),
            "advantage_mean": advantage.mean(),
        }

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs, deterministic=deterministic)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
