"""AWAC: Nair, Gupta, Dalal & Levine, "AWAC: Accelerating Online Reinforcement Learning with
Offline Datasets", 2020, in its offline form as CORL's `awac.py` runs it on D4RL.

Update rule, every step:
    critic:  minimise  (r + gamma (1 - d) min_i Q'_i(s', a') - Q_i(s, a))^2,  a' ~ pi(.|s')
    actor:   maximise  min(exp(A(s, a) / lambda), 100) log pi(a | s)  over dataset actions, with
             A(s, a) = min_i Q_i(s, a) - min_i Q_i(s, a~),  a~ ~ pi(.|s)  (one-sample V estimate)
    targets: Polyak averaging of the critics with `tau`.
Defaults are CORL's: lambda (awac_lambda) 1.0, which its published D4RL scores use; gamma 0.99,
tau 0.005, 3x256 networks (CORL's lr 3e-4 for actor and critic is `-S lr=3e-4`: the rates left
null follow the top-level `lr`, 1e-3), Gaussian policy with a
state-independent log-std, advantage weights clipped at 100. Sweep `algos.awac.awac_lambda` for
the temperature the AWAC paper tunes per domain.
Deviations: the policy mean is tanh-bounded (CORL's is unbounded and its samples are clipped to
[-1, 1]), so act() always lies in the action box; the twin critics run as one batched ensemble
network (arithmetic order only).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from offline_rl.actors import GaussianActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import AWACConfig
from offline_rl.networks import EnsembleCritic, make_adam, soft_update
from offline_rl.seeds import SeedNoise
from transitions.loader import Batch

EXP_ADV_MAX = 100.0


class AWAC:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "critic_target",
        "actor_opt",
        "critic_opt",
        "noise",
    )

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: AWACConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.actor = GaussianActor(obs_dim, act_dim, config.hidden, seeds=self.seeds).to(device)
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden, seeds=self.seeds).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.noise = SeedNoise(seeds, device)

    def td_target(self, batch: Batch, next_action: Tensor) -> Tensor:
        next_q = self.critic_target(batch.next_observations, next_action).min(0).values
        return batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        with torch.no_grad():
            next_action, _ = self.actor.sample(batch.next_observations, self.noise)
            target = self.td_target(batch, next_action)
        q = self.critic(batch.observations, batch.actions)
        critic_loss = (q - target).square().mean(-1).sum(0)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)

        pi = self.actor.distribution(batch.observations)  # one pass: the sample and the loss
        with torch.no_grad():  # a one-sample V(s) from the stepped critic
            v = self.critic(batch.observations, pi.sample(self.noise)[0])
            q_data = self.critic(batch.observations, batch.actions)
            advantage = q_data.min(0).values - v.min(0).values
            weights = torch.exp(advantage / cfg.awac_lambda).clamp(max=EXP_ADV_MAX)
        log_prob = pi.log_prob(batch.actions)
        actor_loss = -(weights * log_prob).mean(-1)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_opt.step()
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q.detach().mean((0, 2)),
            "advantage_mean": advantage.mean(-1),
        }

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        q = self.critic(batch.observations, batch.actions)
        target = self.td_target(batch, self.actor(batch.next_observations))  # the policy's mean
        return {
            "td_error": (q - target).square().mean((0, 2)),
            "action_mse": (self.act(batch.observations) - batch.actions).square().mean((1, 2)),
        }

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs, deterministic=deterministic, noise=self.noise)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
