"""IQL for Discrete actions: Kostrikov, Nair & Levine, "Offline Reinforcement Learning with
Implicit Q-Learning", ICLR 2022, with every action's Q-value from one pass and a categorical
policy.

Update rule, every step (as `iql`):
    value:   minimise  L_e(min_i Q'_i(s, a) - V(s)),  L_e(u) = |e - 1(u < 0)| u^2, e = `expectile`
    critic:  minimise  (r + gamma (1 - d) V(s') - Q_i(s, a))^2  for both Q_i
    actor:   maximise  min(exp(beta (min_i Q'_i(s, a) - V(s))), 100) log pi(a | s),
             pi(.|s) categorical (softmax of the actor's logits)
    targets: Polyak averaging of the critics with `tau`.
IQL only ever evaluates the critics at the dataset's actions, so the update carries over to
Discrete actions unchanged; acting is greedy in pi. Neither the paper nor CORL nor d3rlpy gives
discrete defaults: these are `iql`'s (the paper's MuJoCo ones): expectile 0.7, beta 3.0, tau 0.005,
gamma 0.99, 256x256 MLPs, learning rates following the top-level `lr`.
Deviations from `iql`: a constant actor learning rate (no cosine decay), no side streams.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from offline_rl.actors import CategoricalActor
from offline_rl.algos.base import load_parts, parts_state
from offline_rl.algos.config import DiscreteIQLConfig
from offline_rl.algos.discrete_bc import action_mismatch
from offline_rl.networks import (
    EnsembleDiscreteCritic,
    Observations,
    make_adam,
    observation_mlp,
    soft_update,
    values_at,
)
from transitions.loader import Batch

EXP_ADV_MAX = 100.0  # the paper's clip on the advantage weight


class DiscreteIQL:
    PARTS: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "critic_target",
        "value",
        "actor_opt",
        "critic_opt",
        "value_opt",
    )
    IMAGES: ClassVar[bool] = True  # builds its networks from the observation layout

    def __init__(
        self,
        obs_dim: Observations,
        act_dim: int,
        config: DiscreteIQLConfig,
        device: torch.device,
        seeds: Sequence[int] = (0,),
    ) -> None:
        self.config, self.seeds = config, len(seeds)
        self.actor = CategoricalActor(obs_dim, act_dim, config.hidden, seeds=self.seeds).to(device)
        self.critic = EnsembleDiscreteCritic(
            obs_dim, act_dim, config.hidden, ensemble_size=2, seeds=self.seeds
        ).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = observation_mlp(obs_dim, 1, config.hidden, self.seeds).to(device)
        self.actor_opt = make_adam(self.actor, config.lr("actor_lr"))
        self.critic_opt = make_adam(self.critic, config.lr("critic_lr"))
        self.value_opt = make_adam(self.value, config.lr("value_lr"))

    def v(self, obs: Tensor) -> Tensor:
        return self.value(obs).squeeze(-1)  # (S, B)

    def q_target(self, batch: Batch) -> Tensor:
        """The critic's regression target r + gamma (1 - d) V(s'): (S, B)."""
        next_v = self.v(batch.next_observations)
        return batch.rewards + self.config.discount * (1.0 - batch.dones) * next_v

    def expectile_loss(self, diff: Tensor) -> Tensor:
        weight = torch.where(diff < 0, 1.0 - self.config.expectile, self.config.expectile)
        return (weight * diff.square()).mean(-1)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config
        with torch.no_grad():
            q_target = self.q_target(batch)
            target_q = values_at(self.critic_target(batch.observations), batch.actions)
            target_q = target_q.min(0).values
        v = self.v(batch.observations)
        diff = target_q - v
        value_loss = self.expectile_loss(diff)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.sum().backward()  # per-seed losses: each seed's gradient is its own
        self.value_opt.step()

        q = values_at(self.critic(batch.observations), batch.actions)
        critic_loss = (q - q_target).square().mean(-1).sum(0)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)

        advantage = diff.detach()
        exp_adv = torch.exp(cfg.beta * advantage).clamp(max=EXP_ADV_MAX)
        log_probs = self.actor.logits(batch.observations).float().log_softmax(-1)
        log_pi = values_at(log_probs, batch.actions)
        actor_loss = -(exp_adv * log_pi).mean(-1)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_opt.step()
        return {
            "value_loss": value_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q.detach().mean((0, 2)),
            "advantage_mean": advantage.mean(-1),
        }

    @torch.no_grad()
    def validation_losses(self, batch: Batch) -> dict[str, Tensor]:
        q = values_at(self.critic(batch.observations), batch.actions)
        target_q = values_at(self.critic_target(batch.observations), batch.actions)
        diff = target_q.min(0).values - self.v(batch.observations)
        return {
            "td_error": (q - self.q_target(batch)).square().mean((0, 2)),
            "value_loss": self.expectile_loss(diff),
            "action_mismatch": action_mismatch(
                self.actor.logits(batch.observations), batch.actions
            ),
        }

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Greedy action indices in pi, (S, B) int64."""
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return parts_state(self, self.PARTS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self, self.PARTS, state)
